"""The references' segmentation loss for the chest X-ray U-Net: ``10 * focal + (-log soft Dice)``.

MGCA / CM-CGNS ``segmentation_loss.MixedLoss(alpha=10, gamma=2)`` on logits ``x`` and a binary mask
``t`` (``p = sigmoid(x)``):

* focal: ``mean over every pixel of the batch of (1 - p_t)^gamma * BCE(x, t)`` (no alpha
  weighting), ``p_t = p`` where ``t = 1`` else ``1 - p``. This is exactly MONAI's
  ``FocalLoss(gamma=2, use_softmax=False, reduction="mean")`` (the same formula, via log-sigmoid),
  which is used.
* soft Dice over the WHOLE batch (one score, not per image), smoothing 1:
  ``D = (2 * sum(p * t) + 1) / (sum(p) + sum(t) + 1)``; the loss term is ``-log D``. MONAI's
  ``DiceLoss(sigmoid=True, batch=True, smooth_nr=1, smooth_dr=1)`` returns ``1 - D``, so the term
  is ``-log(1 - dice_loss)``. (smp's ``DiceLoss(log_loss=True)`` computes the same ``D`` but sets
  the loss to 0 for a batch without any foreground pixel, where the reference still penalises
  predicted foreground with ``log(1 + sum(p))``: not used for that reason.)
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MixedFocalDiceLoss"]


class MixedFocalDiceLoss(nn.Module):
    """``focal_weight * focal(gamma) - log(soft Dice)`` (module docstring).

    ``forward(logits [B, 1, H, W] | [B, H, W], target same shape in {0, 1}) -> (loss, terms)``,
    ``terms = {"focal": ..., "dice_log": ...}`` (detached, for logging).

    Args:
        focal_weight: the reference's ``alpha`` = 10. gamma: focal exponent, 2.
    """

    def __init__(self, focal_weight: float = 10.0, gamma: float = 2.0):
        super().__init__()
        from monai.losses import DiceLoss, FocalLoss

        self.focal_weight = float(focal_weight)
        self.focal = FocalLoss(gamma=gamma, use_softmax=False, reduction="mean")
        self.dice = DiceLoss(sigmoid=True, batch=True, smooth_nr=1.0, smooth_dr=1.0, reduction="mean")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if logits.dim() == 3:
            logits = logits[:, None]
        if target.dim() == 3:
            target = target[:, None]
        if logits.shape != target.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape")
        logits, target = logits.float(), target.float()
        focal = self.focal(logits, target)
        dice_log = -torch.log(1.0 - self.dice(logits, target))
        return self.focal_weight * focal + dice_log, {"focal": focal.detach(), "dice_log": dice_log.detach()}
