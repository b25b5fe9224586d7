"""The SWDL-Net training objective (semi-supervised; arXiv 2506.10325) on
:class:`~medmodal.models.segmentation.swdl_net.SWDLOutputs`.

A batch holds ``labelled`` labelled samples first, then unlabelled ones (the two-stream sampler of
UA-MT / SSL4MIS). With ``l = labelled``::

    loss = Dice(softmax(dc[:l]), y[:l])                              # "dice_dc"
         + CE(lap[:l], y[:l])                                        # "ce_lap"
         + sum_i w_i * Dice(softmax(side_i[:l]), y[:l])              # "deep_supervision", w = 0.8 ... 0.1
         + consistency_weight * mean((softmax(dc) - softmax(lap))^2) # "consistency", whole batch

**Dice** is the one of the copy of the authors' code (``NguyenVanCongThanh/SWDL-BHSD``,
``code/utils/losses.py``, ``dice_loss``): per foreground class, ``1 - (2 sum(p y) + 1e-5) / (sum(p^2) +
sum(y^2) + 1e-5)`` pooled over the labelled samples, averaged over the foreground classes; i.e. MONAI's
``DiceLoss(include_background=False, to_onehot_y=True, softmax=True, squared_pred=True, batch=True)``. It is
computed with :func:`medmodal.losses.segmentation.soft_dice_loss`, the project's bit-identical,
``torch.compile``-friendly copy of MONAI's Dice (MONAI's ``DiceLoss.forward`` breaks a compiled graph); the
tests compare it with MONAI's ``DiceLoss``. **CE** is :func:`torch.nn.functional.cross_entropy` (mean over
voxels). **Deep supervision**: the side heads' weights are given finest first (0.8 on the full-resolution
stage, ..., 0.1 on the bottleneck) and *summed*, not normalised (total weight 2.1), as in the copy.
**Consistency**: the MSE of the two decoders' softmax maps over the whole batch, gradients to both
decoders (the copy's symmetric ``mse_loss``).

**Differences from the copy's training script** (``train_SWDL.py``):

1. The copy computes a sigmoid ramp-up of the consistency weight but never applies it (``loss = loss_sup +
   loss_ds + loss_cons``); here the weight is an argument of :meth:`SWDLLoss.forward` (default 1.0, the
   copy's effective value), so that the engine can ramp it.
2. The copy's deep-supervision Dice uses class 1 only (it is written for binary segmentation); here it is
   the same foreground-averaged Dice as the DC term (identical for two classes).
3. Labels: the copy binarises them (``label > 0``); here they are class indices ``0 .. K-1`` as given.

The returned terms besides ``"loss"`` are detached scalars for logging; ``"consistency"`` is the
unweighted MSE (``loss`` holds ``consistency_weight * consistency``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medmodal.losses.segmentation import soft_dice_loss
from medmodal.models.segmentation.swdl_net import SWDLOutputs

__all__ = ["SWDLLoss", "SIDE_WEIGHTS"]

#: deep-supervision weights of the side heads, finest first (the copy's 0.8 / 0.6 / 0.4 / 0.2 / 0.1)
SIDE_WEIGHTS = (0.8, 0.6, 0.4, 0.2, 0.1)


class SWDLLoss(nn.Module):
    """Dice (DC) + CE (Laplacian) + weighted deep-supervision Dice + consistency (module docstring).

    Args:
        side_weights: weights of the side heads, finest first (``SWDLOutputs.sides`` is coarse -> fine;
            the pairing is reversed here). Summed, not normalised.
        smooth: the Dice smoothing constant (numerator and denominator; copy 1e-5).
    """

    def __init__(self, side_weights: Sequence[float] = SIDE_WEIGHTS, smooth: float = 1e-5):
        super().__init__()
        self.side_weights = tuple(float(w) for w in side_weights)
        self.smooth = float(smooth)

    def dice(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Foreground-averaged, batch-pooled soft Dice loss with squared predictions (the copy's ``dice_loss``)."""
        x = logits.float()
        classes = torch.arange(x.shape[1], device=x.device).reshape(1, -1, *[1] * (x.dim() - 2))
        onehot = (label.unsqueeze(1) == classes).to(x.dtype)
        probs = torch.softmax(x, dim=1)
        return soft_dice_loss(probs[:, 1:], onehot[:, 1:], squared_pred=True, smooth_nr=self.smooth,
                              smooth_dr=self.smooth, batch=True).mean()

    def forward(self, outputs: SWDLOutputs, label: torch.Tensor, labelled: int,
                consistency_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """The objective of one batch.

        Args:
            outputs: :meth:`SWDLNet.forward_train` of the batch (``dc``, ``lap``, ``sides`` ``[B, K, *S]``).
            label: ``[B, *S]`` (or ``[labelled, *S]``) class indices; rows from ``labelled`` on are ignored.
            labelled: number of leading labelled samples, ``0 .. B``.
            consistency_weight: factor of the consistency term (the engine's ramp-up; default 1.0).

        Returns:
            ``{"loss": total (with grad), "dice_dc", "ce_lap", "deep_supervision", "consistency"}`` (the
            terms detached; ``consistency`` unweighted).

        Raises:
            ValueError: no Laplacian logits (a ``vnet``), fewer than 2 classes, ``labelled`` outside
                ``0 .. B``, a label batch other than ``B`` or ``labelled``, label and logits sizes that
                differ, a number of side heads other than the number of weights.
        """
        dc, lap, sides = outputs.dc, outputs.lap, list(outputs.sides)
        if lap is None:
            raise ValueError("SWDLLoss needs the Laplacian decoder's logits (swdl_net, not vnet)")
        if dc.shape != lap.shape or dc.shape[1] < 2:
            raise ValueError(f"dc and lap logits must both be [B, K >= 2, *S], got {tuple(dc.shape)} and "
                             f"{tuple(lap.shape)}")
        b, labelled = dc.shape[0], int(labelled)
        if not 0 <= labelled <= b:
            raise ValueError(f"labelled must be in 0..{b} (the batch size), got {labelled}")
        if label.shape[0] not in (b, labelled) or tuple(label.shape[1:]) != tuple(dc.shape[2:]):
            raise ValueError(f"label must be [B={b} or labelled={labelled}, *{tuple(dc.shape[2:])}], got "
                             f"{tuple(label.shape)}")
        if sides and len(sides) != len(self.side_weights):
            raise ValueError(f"{len(sides)} side heads but {len(self.side_weights)} side_weights")
        y = label[:labelled].to(device=dc.device, dtype=torch.long)
        zero = dc.new_zeros((), dtype=torch.float32)
        if labelled > 0:
            dice_dc = self.dice(dc[:labelled], y)
            ce_lap = F.cross_entropy(lap[:labelled].float(), y)
            deep = zero
            for w, side in zip(self.side_weights, reversed(sides)):
                deep = deep + w * self.dice(side[:labelled], y)
        else:
            dice_dc = ce_lap = deep = zero
        consistency = F.mse_loss(torch.softmax(dc.float(), dim=1), torch.softmax(lap.float(), dim=1))
        total = dice_dc + ce_lap + deep + float(consistency_weight) * consistency
        return {"loss": total, "dice_dc": dice_dc.detach(), "ce_lap": ce_lap.detach(),
                "deep_supervision": deep.detach(), "consistency": consistency.detach()}
