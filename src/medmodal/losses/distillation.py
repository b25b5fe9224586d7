"""DMAF-Net distillation losses: Relation Distillation (CCA, MAA) and Prototype Distillation.

All three distil the deepest *fused* feature ``f_L`` (teacher) into each present sequence's
deepest encoder feature ``e^m_L`` (student). Inputs, with ``S_L`` the deepest spatial size and
``N = prod(S_L)`` positions:

* ``modality_features`` ``[B, M, C, *S_L]`` (absent sequences zeroed; never read),
* ``fused_features`` ``[B, C_f, *S_L]``,
* ``modality_mask`` ``[B, M]`` bool (True = present).

Each ``forward`` returns a per-sample-per-sequence loss ``[B, M]``: the loss of every present
``(b, m)`` pair and exactly 0 for absent pairs. Eagerly, absent pairs are removed by indexing
*before* any computation; under ``torch.compile`` (static shapes, :mod:`medmodal.models.segmentation.pairs`)
they are computed on their zeroed features and masked with ``torch.where``. Either way they
contribute exactly 0, receive exactly zero gradient and cannot produce NaN. :func:`reduce_pair_loss`
(= :func:`medmodal.losses.segmentation.masked_mean`) averages over present pairs, optionally
weighted per sequence (Dynamic Training Monitoring).

**Teacher detached (documented choice, ``detach_teacher=True``).** ``f_L`` is the target the
single-sequence encoders are pulled towards; letting these losses also move ``f_L`` would pull
the fused representation towards the weaker single-sequence ones (and allow the trivial
solution of both collapsing together). The fusion path is trained by the segmentation losses.
Set ``detach_teacher=False`` to let the gradient reach ``f_L`` as well.

Formulas (per present pair ``(b, m)``; ``x`` = student tokens ``[N, C]``, ``t`` = teacher tokens
``[N, C_f]``):

* **CCA** (:class:`CovarianceConsistencyLoss`): ``y = x W_m^T`` (a bias-free 1x1 linear
  projection ``C -> C_f``; a bias would cancel in a centred covariance), channel covariances over
  positions ``S_y = (y - mean_n y)^T (y - mean_n y) / (N - 1)`` and ``S_t`` likewise;
  ``mode="normalized"`` (default): ``L = 1/2 * || S_y/||S_y||_F - S_t/||S_t||_F ||_F^2
  = 1 - <S_y, S_t>_F / (||S_y||_F ||S_t||_F)`` in ``[0, 1]`` (scale-invariant: PSD matrices have a
  non-negative Frobenius inner product); ``mode="mse"``: ``mean((S_y - S_t)^2)``.
  ``W`` starts as the identity (so the loss initially compares ``e^m`` and ``f`` directly);
  one projection shared by all sequences (default) or one per sequence.
* **MAA** (:class:`MaskedAttentionAlignmentLoss`): ``o = MHA(Q = x, K = t, V = t)``
  (``torch.nn.MultiheadAttention``; optional key padding mask), ``mode="cosine"`` (default):
  ``L = mean_n (1 - cos(o_n, t_n))`` in ``[0, 2]``; ``mode="mse"``: ``mean((o - t)^2)``. The loss
  is *not* zero for ``x == t`` in general (the attention output is a learned mixture of value
  projections); it is ~0 when the attention selects the matching key and the value/output
  projections are the identity, which requires each student token to identify its teacher token.
* **Prototype** (:class:`PrototypeDistillationLoss`): class weights ``w_c(n)`` = label of class
  ``c`` down-sampled to ``S_L`` (``"area"``: fraction of the voxels of cell ``n`` that are class
  ``c``; ``"nearest"``: one-hot of the nearest label); ``p^m_c = sum_n w_c(n) x_n / sum_n w_c(n)``,
  ``p^f_c`` likewise from ``t``; ``L = mean_{c present in sample b} (1 - cos(p^m_c, p^f_c))``
  (``mode="cosine"``) or ``mean_c mean((p^m_c - p^f_c)^2)`` (``"mse"``). A class is present when
  ``sum_n w_c(n) > 0``; absent classes are excluded (no NaN, no gradient); 0 if none is present.

Computations run in float32 with autocast disabled (covariances and attention logits are
sensitive to bf16).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from medmodal.losses.segmentation import masked_mean, resize_labels
from medmodal.models.segmentation.pairs import gather_pairs, pair_indices, scatter_pairs

__all__ = [
    "CovarianceConsistencyLoss",
    "MaskedAttentionAlignmentLoss",
    "PrototypeDistillationLoss",
    "reduce_pair_loss",
    "class_weights_at",
]

#: Mean over present ``(b, m)`` pairs of a ``[B, M]`` loss, optionally weighted per sequence.
reduce_pair_loss = masked_mean


def _check_inputs(e: torch.Tensor, f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if e.dim() < 4 or f.dim() != e.dim() - 1:
        raise ValueError(f"modality_features must be [B, M, C, *S] and fused_features [B, C, *S]; "
                         f"got {tuple(e.shape)} and {tuple(f.shape)}")
    if f.shape[0] != e.shape[0] or f.shape[2:] != e.shape[3:]:
        raise ValueError(f"batch / spatial sizes differ: {tuple(e.shape)} vs {tuple(f.shape)}")
    mask = mask.to(device=e.device, dtype=torch.bool)
    if mask.shape != e.shape[:2]:
        raise ValueError(f"modality_mask must be [B, M] = {tuple(e.shape[:2])}, got {tuple(mask.shape)}")
    return mask


class _PairLoss(nn.Module):
    """Shared plumbing: select present pairs, float32 without autocast, scatter back to [B, M].

    The pairs come from :func:`medmodal.models.segmentation.pairs.pair_indices` (the present ones eagerly,
    all of them with static shapes under ``torch.compile``; absent ones are then zeroed)."""

    detach_teacher: bool

    def _select(self, e, f, mask):
        mask = _check_inputs(e, f, mask)
        bi, mi = pair_indices(mask)
        teacher = f.detach() if self.detach_teacher else f
        return mask, bi, mi, gather_pairs(e, bi, mi, mask).float(), teacher.float()


class CovarianceConsistencyLoss(_PairLoss):
    """CCA: channel covariance of a linear projection of ``e^m_L`` vs covariance of ``f_L``.

    Args:
        channels: student channels ``C`` of ``e^m_L``.
        teacher_channels: channels ``C_f`` of ``f_L`` (default ``channels``).
        num_modalities: number of sequences ``M`` (only used with ``per_modality=True``).
        per_modality: one projection per sequence instead of one shared (default ``False``:
            shared, so every parameter is used in every step - no DDP unused-parameter issue).
        mode: ``"normalized"`` (default, 1 - Frobenius cosine of the covariances, in [0, 1])
            or ``"mse"`` (mean squared difference of the covariance entries).
        init: ``"identity"`` (default; requires ``C == C_f``, else falls back to random) or
            ``"random"`` (``nn.Linear``'s Kaiming-uniform initialisation).
        detach_teacher: stop the gradient into ``f_L`` (default ``True``, see module docstring).
        eps: numerical floor for norms (default 1e-8).
    """

    def __init__(self, channels: int, teacher_channels: int | None = None, num_modalities: int = 1,
                 per_modality: bool = False, mode: str = "normalized", init: str = "identity",
                 detach_teacher: bool = True, eps: float = 1e-8) -> None:
        super().__init__()
        if mode not in ("normalized", "mse"):
            raise ValueError(f"mode must be 'normalized' or 'mse', got {mode!r}")
        if init not in ("identity", "random"):
            raise ValueError(f"init must be 'identity' or 'random', got {init!r}")
        c_t = int(teacher_channels or channels)
        groups = int(num_modalities) if per_modality else 1
        self.per_modality = bool(per_modality)
        self.mode, self.detach_teacher, self.eps = mode, bool(detach_teacher), float(eps)
        weight = torch.empty(groups, c_t, int(channels))
        if init == "identity" and c_t == channels:
            weight.copy_(torch.eye(c_t).expand(groups, c_t, c_t))
        else:
            for g in range(groups):
                nn.init.kaiming_uniform_(weight[g], a=math.sqrt(5))
        self.weight = nn.Parameter(weight)

    @staticmethod
    def covariance(tokens: torch.Tensor) -> torch.Tensor:
        """Channel covariance over positions: ``[P, C, N] -> [P, C, C]`` (centred, / max(N-1, 1))."""
        x = tokens - tokens.mean(dim=-1, keepdim=True)
        return x @ x.transpose(-1, -2) / max(tokens.shape[-1] - 1, 1)

    def forward(self, modality_features: torch.Tensor, fused_features: torch.Tensor,
                modality_mask: torch.Tensor) -> torch.Tensor:
        b, m = modality_features.shape[:2]
        with torch.autocast(device_type=modality_features.device.type, enabled=False):
            mask, bi, mi, x, t = self._select(modality_features, fused_features, modality_mask)
            if bi.numel() == 0:
                return modality_features.new_zeros((b, m), dtype=torch.float32)
            w = self.weight[mi] if self.per_modality else self.weight[0].expand(len(bi), -1, -1)
            y = w @ x.flatten(2)                              # [P, C_f, N]
            cov_s = self.covariance(y)
            cov_t = self.covariance(t.flatten(2))[bi]         # [P, C_f, C_f]
            if self.mode == "normalized":
                num = (cov_s * cov_t).flatten(1).sum(1)
                den = cov_s.flatten(1).norm(dim=1) * cov_t.flatten(1).norm(dim=1)
                loss = 1.0 - num / den.clamp_min(self.eps)
            else:
                loss = (cov_s - cov_t).pow(2).flatten(1).mean(1)
            if self.per_modality:  # keep every sequence's projection in the graph (DDP), value unchanged
                loss = loss + 0.0 * self.weight.sum()
            return scatter_pairs(loss, bi, mi, mask)


class MaskedAttentionAlignmentLoss(_PairLoss):
    """MAA: multi-head attention with queries from ``e^m_L`` and keys/values from ``f_L``.

    Args:
        channels: token dim ``C`` (student and teacher channels must both equal it).
        num_heads: attention heads (must divide ``channels``; default 4).
        dropout: attention-probability dropout (default 0.0).
        token_grid: if set, both features are adaptive-average-pooled to ``token_grid`` per axis
            before tokenising (bounds the ``N x N`` attention cost for large crops; default
            ``None``: one token per deepest-level position).
        mode: ``"cosine"`` (default, ``mean_n 1 - cos(o_n, t_n)``) or ``"mse"``.
        detach_teacher: stop the gradient into ``f_L`` (default ``True``).
    """

    def __init__(self, channels: int, num_heads: int = 4, dropout: float = 0.0, token_grid: int | None = None,
                 mode: str = "cosine", detach_teacher: bool = True) -> None:
        super().__init__()
        if mode not in ("cosine", "mse"):
            raise ValueError(f"mode must be 'cosine' or 'mse', got {mode!r}")
        if channels % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide channels={channels}")
        self.attention = nn.MultiheadAttention(channels, num_heads, dropout=dropout, batch_first=True)
        self.token_grid = token_grid
        self.mode, self.detach_teacher = mode, bool(detach_teacher)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``[P, C, *S] -> [P, N, C]`` (pooled to ``token_grid`` per axis if set)."""
        if self.token_grid is not None:
            pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[x.dim() - 2]
            x = pool(x, self.token_grid)
        return x.flatten(2).transpose(1, 2)

    def forward(self, modality_features: torch.Tensor, fused_features: torch.Tensor,
                modality_mask: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``key_padding_mask``: optional ``[B, N]`` bool, True = position excluded as a key and
        from the alignment average (``N`` after ``token_grid`` pooling). A row that masks every
        position is treated as unmasked."""
        b, m = modality_features.shape[:2]
        with torch.autocast(device_type=modality_features.device.type, enabled=False):
            mask, bi, mi, x, t = self._select(modality_features, fused_features, modality_mask)
            if bi.numel() == 0:
                return modality_features.new_zeros((b, m), dtype=torch.float32)
            q = self._tokens(x)                      # [P, N, C]
            kv = self._tokens(t)[bi]                 # [P, N, C]
            kpm = None
            if key_padding_mask is not None:
                kpm = key_padding_mask.to(device=q.device, dtype=torch.bool)
                if kpm.shape != (b, kv.shape[1]):
                    raise ValueError(f"key_padding_mask must be [B, N] = {(b, kv.shape[1])}, got {tuple(kpm.shape)}")
                kpm = kpm & ~kpm.all(dim=1, keepdim=True)
                kpm = kpm[bi]
            out, _ = self.attention(q, kv, kv, key_padding_mask=kpm, need_weights=False)
            if self.mode == "cosine":
                per_token = 1.0 - F.cosine_similarity(out, kv, dim=-1, eps=1e-8)
            else:
                per_token = (out - kv).pow(2).mean(-1)
            if kpm is None:
                loss = per_token.mean(1)
            else:
                valid = (~kpm).float()
                loss = (per_token * valid).sum(1) / valid.sum(1).clamp_min(1.0)
            return scatter_pairs(loss, bi, mi, mask)


def class_weights_at(target: torch.Tensor, size, num_classes: int, downsample: str = "area") -> torch.Tensor:
    """Per-class voxel weights ``[B, K, *size]`` of integer labels ``[B, *S]`` at ``size``.

    ``"area"``: fraction of each cell's voxels that belong to class ``k`` (adaptive average
    pooling of the one-hot label; exact when ``S`` is a multiple of ``size``), so a class
    smaller than one cell still counts. ``"nearest"``: one-hot of the nearest-neighbour label.
    """
    size = tuple(int(s) for s in size)
    if downsample == "nearest":
        lab = resize_labels(target, size)
        return F.one_hot(lab.long(), num_classes).movedim(-1, 1).float()
    if downsample == "area":
        onehot = F.one_hot(target.long(), num_classes).movedim(-1, 1).float()
        if tuple(onehot.shape[2:]) == size:
            return onehot
        pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[len(size)]
        return pool(onehot, size)
    raise ValueError(f"downsample must be 'area' or 'nearest', got {downsample!r}")


class PrototypeDistillationLoss(_PairLoss):
    """Prototype distillation: class prototypes of ``e^m_L`` vs those of ``f_L`` (no parameters).

    Args:
        num_classes: number of classes ``K`` (may instead be passed to ``forward``).
        downsample: ``"area"`` (default; class fractions per feature cell) or ``"nearest"``.
        include_background: include class 0's prototype (default ``True``).
        mode: ``"cosine"`` (default, ``1 - cos``) or ``"mse"``.
        detach_teacher: stop the gradient into ``f_L`` (default ``True``).
        min_weight: a class counts as present in a sample when its summed weight exceeds this
            (default 1e-6; with ``"area"`` a single full-resolution voxel is enough).
    """

    def __init__(self, num_classes: int | None = None, downsample: str = "area", include_background: bool = True,
                 mode: str = "cosine", detach_teacher: bool = True, min_weight: float = 1e-6) -> None:
        super().__init__()
        if mode not in ("cosine", "mse"):
            raise ValueError(f"mode must be 'cosine' or 'mse', got {mode!r}")
        if downsample not in ("area", "nearest"):
            raise ValueError(f"downsample must be 'area' or 'nearest', got {downsample!r}")
        self.num_classes = num_classes
        self.downsample, self.include_background = downsample, bool(include_background)
        self.mode, self.detach_teacher, self.min_weight = mode, bool(detach_teacher), float(min_weight)

    @staticmethod
    def prototypes(features: torch.Tensor, weights: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        """``features`` ``[P, C, N]``, ``weights`` ``[P, K, N]`` -> weighted means ``[P, K, C]``."""
        total = weights.sum(-1, keepdim=True).clamp_min(eps)
        return (weights @ features.transpose(1, 2)) / total

    def forward(self, modality_features: torch.Tensor, fused_features: torch.Tensor, target: torch.Tensor,
                modality_mask: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
        b, m = modality_features.shape[:2]
        k = int(num_classes or self.num_classes or 0)
        if k < 1:
            raise ValueError("PrototypeDistillationLoss needs num_classes (constructor or forward)")
        if target.shape[0] != b:
            raise ValueError(f"target batch {target.shape[0]} != features batch {b}")
        with torch.autocast(device_type=modality_features.device.type, enabled=False):
            mask, bi, mi, x, t = self._select(modality_features, fused_features, modality_mask)
            if bi.numel() == 0:
                return modality_features.new_zeros((b, m), dtype=torch.float32)
            w = class_weights_at(target.to(x.device), x.shape[2:], k, self.downsample).flatten(2)  # [B, K, N]
            present = w.sum(-1) > self.min_weight                                                # [B, K]
            if not self.include_background:
                present[:, 0] = False
            p_s = self.prototypes(x.flatten(2), w[bi])                                           # [P, K, C]
            p_t = self.prototypes(t.flatten(2), w)[bi]
            pres = present[bi]                                                                   # [P, K]
            keep = pres.unsqueeze(-1)
            # absent classes get a harmless constant in place (zero gradient, no 0/0 in the cosine)
            p_s = torch.where(keep, p_s, torch.ones_like(p_s))
            p_t = torch.where(keep, p_t, torch.ones_like(p_t))
            if self.mode == "cosine":
                per_class = 1.0 - F.cosine_similarity(p_s, p_t, dim=-1, eps=1e-8)
            else:
                per_class = (p_s - p_t).pow(2).mean(-1)
            per_class = torch.where(pres, per_class, torch.zeros_like(per_class))
            loss = per_class.sum(1) / pres.sum(1).clamp_min(1).to(per_class.dtype)
            return scatter_pairs(loss, bi, mi, mask)
