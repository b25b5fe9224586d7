"""Segmentation losses: Dice + cross-entropy, masked per-sequence auxiliary loss, deep supervision.

* :class:`SegmentationLoss` is Dice + cross-entropy with the definitions of MONAI's
  :class:`~monai.losses.DiceCELoss` (softmax over the class channel, one-hot labels, smoothing
  ``1e-5``): the tests check it equals MONAI's value for every option combination. It is written
  out here (:func:`soft_dice_loss`, ten lines) because MONAI 1.6's ``DiceLoss.forward`` calls
  ``.tolist()``, which breaks a ``torch.compile`` graph at every loss call, so a training step
  could not compile into one graph (``fullgraph=True``) nor be replayed as a CUDA graph.
  ``forward`` returns the batch loss; :meth:`SegmentationLoss.per_sample` returns one value per
  sample with the same definition, so ``per_sample(x, y).mean() == forward(x, y)``.
* :func:`masked_aux_loss` evaluates the loss of each sequence's own prediction only for the
  (sample, sequence) pairs whose sequence is present; absent pairs get exactly 0 and their
  logits exactly zero gradient (pairs selected by :mod:`medmodal.models.segmentation.pairs`).
* :func:`deep_supervision_loss` adds ``sum_i w_i * L(z_i, y)`` for coarser predictions (label
  down-sampled by nearest neighbour when a prediction is smaller than the label).

Labels are ``[B, *S]`` integer class indices (0 = background), logits ``[B, C, *S]``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medmodal.layers.masking import masked_pair_mean
from medmodal.models.segmentation.pairs import gather_pairs, pair_indices, scatter_pairs

#: Old name of :func:`medmodal.layers.masking.masked_pair_mean` (kept for one release).
masked_mean = masked_pair_mean

__all__ = [
    "SegmentationLoss",
    "soft_dice_loss",
    "masked_aux_loss",
    "masked_mean",
    "deep_supervision_loss",
    "resize_labels",
]


def soft_dice_loss(probs: torch.Tensor, onehot: torch.Tensor, squared_pred: bool = False, smooth_nr: float = 1e-5,
                   smooth_dr: float = 1e-5, batch: bool = False) -> torch.Tensor:
    """``1 - (2 sum(p y) + nr) / (sum(p^q) + sum(y^q) + dr)`` per sample and class (MONAI's Dice loss).

    Args:
        probs: ``[B, K, *S]`` probabilities; onehot: ``[B, K, *S]`` one-hot target.
        squared_pred: ``q = 2`` (else 1) in the denominator.
        batch: sum over the batch as well (one value per class).

    Returns:
        ``[B, K]`` (or ``[K]`` with ``batch=True``).
    """
    dims = list(range(2, probs.dim()))
    if batch:
        dims = [0, *dims]
    # MONAI's operation order (monai.losses.utils.compute_tp_fp_fn), so values and gradients are
    # bit-identical to monai.losses.DiceLoss and a training run does not drift from one using it
    if squared_pred:
        pred_o = torch.linalg.vector_norm(probs, ord=2, dim=dims).pow(2)
        ground_o = torch.linalg.vector_norm(onehot, ord=2, dim=dims).pow(2)
        tp = (pred_o + ground_o - torch.linalg.vector_norm(probs - onehot, ord=2, dim=dims).pow(2)) / 2
        fp, fn = pred_o - tp, ground_o - tp
    else:
        tp = torch.sum(probs * onehot, dim=dims)
        fp = torch.sum(probs, dim=dims) - tp
        fn = torch.sum(onehot, dim=dims) - tp
    numerator = 2 * tp + smooth_nr
    denominator = 2 * (tp + 0.5 * fp + 0.5 * fn) + smooth_dr
    return 1.0 - numerator / denominator


class SegmentationLoss(nn.Module):
    """Dice + cross-entropy on softmax probabilities (the definitions of MONAI ``DiceCELoss``).

    Args:
        include_background: include class 0 in the Dice term (cross-entropy always uses every
            class). Default ``False`` (foreground-only Dice, as nnU-Net / RFNet).
        lambda_dice: weight of the Dice term (default 1.0).
        lambda_ce: weight of the cross-entropy term (default 1.0).
        smooth_nr, smooth_dr: Dice smoothing constants (MONAI defaults, 1e-5).
        squared_pred: squared probabilities in the Dice denominator (default ``False``).
        batch: pool Dice statistics over the batch before dividing (default ``False``: Dice per
            sample, which :meth:`per_sample` and :func:`masked_aux_loss` require; with
            ``batch=True`` :meth:`per_sample` raises).
    """

    def __init__(
        self,
        include_background: bool = False,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        squared_pred: bool = False,
        batch: bool = False,
    ) -> None:
        super().__init__()
        self.include_background = bool(include_background)
        self.batch = batch
        self.lambda_dice = float(lambda_dice)
        self.lambda_ce = float(lambda_ce)
        self.dice_kwargs = dict(squared_pred=squared_pred, smooth_nr=smooth_nr, smooth_dr=smooth_dr)

    @staticmethod
    def _check(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.dim() != target.dim() + 1 or logits.shape[0] != target.shape[0] or logits.shape[2:] != target.shape[1:]:
            raise ValueError(f"logits [B, C, *S] and target [B, *S] disagree: {tuple(logits.shape)} vs {tuple(target.shape)}")
        if logits.shape[1] < 2:
            raise ValueError("SegmentationLoss needs >= 2 classes (softmax over the class channel)")
        return target.long()

    def _dice(self, x: torch.Tensor, y: torch.Tensor, batch: bool) -> torch.Tensor:
        """Dice loss ``[B, K']`` (``[K']`` with ``batch``) of float32 logits ``x`` and labels ``y``."""
        classes = torch.arange(x.shape[1], device=x.device).reshape(1, -1, *[1] * (x.dim() - 2))
        onehot = (y.unsqueeze(1) == classes).to(x.dtype)  # static shapes (F.one_hot checks the values)
        probs = torch.softmax(x, dim=1)
        if not self.include_background:
            probs, onehot = probs[:, 1:], onehot[:, 1:]
        return soft_dice_loss(probs, onehot, batch=batch, **self.dice_kwargs)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss. ``logits`` ``[B, C, *S]``, ``target`` ``[B, *S]`` class indices."""
        y = self._check(logits, target)
        x = logits.float()
        dice = self._dice(x, y, self.batch).mean()
        return self.lambda_dice * dice + self.lambda_ce * F.cross_entropy(x, y)

    def per_sample(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of each sample separately, ``[B]`` (mean over samples == :meth:`forward`)."""
        if self.batch:
            raise ValueError("per_sample needs batch=False (Dice computed per sample)")
        y = self._check(logits, target)
        x = logits.float()
        dice = self._dice(x, y, batch=False).mean(1)
        ce = F.cross_entropy(x, y, reduction="none").flatten(1).mean(1)
        return self.lambda_dice * dice + self.lambda_ce * ce


def masked_aux_loss(
    aux_logits: torch.Tensor,
    target: torch.Tensor,
    modality_mask: torch.Tensor,
    loss_fn: SegmentationLoss | None = None,
    reduction: str = "none",
) -> torch.Tensor:
    """Per-sequence auxiliary segmentation loss over present (sample, sequence) pairs.

    Args:
        aux_logits: ``[B, M, C, *S]`` per-sequence predictions (entries of absent sequences are
            ignored: never read by the loss).
        target: ``[B, *S]`` class indices.
        modality_mask: ``[B, M]`` bool, True = present.
        loss_fn: a :class:`SegmentationLoss` (default: a fresh one with default settings).
        reduction: ``"none"`` -> ``[B, M]`` with the loss of each present pair and exactly 0 for
            absent pairs; ``"mean"`` -> scalar mean over present pairs.

    Absent pairs are excluded (indexed away eagerly, masked under ``torch.compile``), so changing
    their logits changes nothing and they receive exactly zero gradient.
    """
    if aux_logits.dim() != target.dim() + 2:
        raise ValueError(f"aux_logits must be [B, M, C, *S] for target [B, *S]; got {tuple(aux_logits.shape)}")
    b, m = aux_logits.shape[:2]
    mask = modality_mask.to(device=aux_logits.device, dtype=torch.bool)
    if mask.shape != (b, m):
        raise ValueError(f"modality_mask must be [B, M] = {(b, m)}, got {tuple(mask.shape)}")
    loss_fn = loss_fn if loss_fn is not None else SegmentationLoss()
    bi, mi = pair_indices(mask)
    out = aux_logits.new_zeros((b, m), dtype=torch.float32)
    if bi.numel():
        out = scatter_pairs(loss_fn.per_sample(gather_pairs(aux_logits, bi, mi, mask), target[bi]), bi, mi, mask)
    if reduction == "none":
        return out
    if reduction == "mean":
        return masked_pair_mean(out, mask)
    raise ValueError(f"reduction must be 'none' or 'mean', got {reduction!r}")


def resize_labels(target: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Nearest-neighbour resize of integer labels ``[B, *S]`` to ``size`` (no-op if equal)."""
    size = tuple(int(s) for s in size)
    if tuple(target.shape[1:]) == size:
        return target
    return F.interpolate(target[:, None].float(), size=size, mode="nearest")[:, 0].long()


def deep_supervision_loss(
    loss_fn: nn.Module,
    deep_logits: Sequence[torch.Tensor],
    target: torch.Tensor,
    weights: Sequence[float] = (0.5, 0.25),
) -> torch.Tensor:
    """``sum_i w_i * loss_fn(z_i, y_i)`` over the coarser predictions ``z_i`` (finest first).

    ``y_i`` is ``target`` resized (nearest) to ``z_i``'s spatial size when they differ. If there
    are more predictions than weights, each further weight is half the previous one. Returns a
    zero scalar for an empty list. The weights are not normalised (the total weight of deep
    supervision is the caller's choice; defaults 0.5, 0.25 as nnU-Net's halving scheme).
    """
    total = target.new_zeros((), dtype=torch.float32)
    w = list(weights)
    for i, z in enumerate(deep_logits):
        if i >= len(w):
            w.append((w[-1] if w else 1.0) * 0.5)
        total = total + float(w[i]) * loss_fn(z, resize_labels(target, z.shape[2:]))
    return total
