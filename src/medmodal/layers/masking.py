"""Masked reductions and presence-mask helpers shared by every family.

A *presence mask* is a bool tensor ``[B, N]`` (True = present / valid) over the second axis of a
tensor ``[B, N, ...]``: the ``M`` input sequences of a multi-modal MRI case, the two endoscopy
modalities (white light, narrow band), the ``L`` tokens of a report. Three reductions, one per
meaning (each keeps the float operation order of the code it replaces, so results are bit-identical):

* :func:`masked_mean`: mean over axis 1 of the present entries, ``[B, N, ...] -> [B, ...]``;
  absent entries are multiplied by 0; a row with nothing present gives 0 (MICS late fusion and
  pooled features, token pooling of text encoders).
* :func:`present_mean`: the same mean for *features of absent sequences that may hold anything*
  (NaN / inf included): absent entries are replaced by exact zeros with ``torch.where`` and each
  present entry is weighted by ``1 / #present`` before the sum (DMAF-Net ``MaskedMeanFusion``
  and the mean fusion of the segmentation baselines). Needs >= 1 present entry per row
  (:func:`check_modality_mask`).
* :func:`masked_pair_mean`: one scalar, the mean of ``values [B, M]`` over all present
  ``(b, m)`` pairs, optionally weighted per column (DMAF-Net per-sequence loss terms, DTM weights).

Plus :func:`check_modality_mask` (validate a ``[B, M]`` mask) and :func:`mask_modalities`
(zero the entries of absent sequences), moved here from ``models/segmentation/blocks.py``.
"""

from __future__ import annotations

import torch

__all__ = ["masked_mean", "present_mean", "masked_pair_mean", "check_modality_mask", "mask_modalities"]


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values [B, N, ...]`` over axis 1 where ``mask [B, N]`` is true -> ``[B, ...]``.

    ``sum_n mask_bn * v_bn / max(1, sum_n mask_bn)``: a row with no true entry gives 0. Absent
    entries are *multiplied* by 0 (an inf / NaN there propagates: use :func:`present_mean` for
    inputs whose absent entries are undefined). Gradients into absent entries are 0.

    Replaces ``models/image_text/layers.masked_mean`` (tokens ``[B, L, D]``) and
    ``models/endoscopy/blocks.masked_mean`` (modalities ``[B, M, ...]``, which raised for an empty
    row; the MICS classifier now checks that in its input check).
    """
    weight = mask.to(values.dtype).reshape(*mask.shape, *([1] * (values.dim() - mask.dim())))
    return (values * weight).sum(1) / weight.sum(1).clamp_min(1.0)


def present_mean(features: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:
    """Average over the *present* sequences, NaN-safe.

    Args:
        features: ``[B, M, C, *S]`` (any ``[B, M, ...]``).
        modality_mask: ``[B, M]`` bool with at least one True per row (:func:`check_modality_mask`).

    Returns:
        ``[B, C, *S]``: ``sum_m where(mask_bm, x_bm, 0) * (mask_bm / #present_b)``. Absent entries
        are zeroed with ``torch.where`` first, so even NaN / inf there cannot leak. Weights are
        normalised *before* the sum (the operation order of DMAF-Net's mean fusion). A row with no
        present entry gives NaN.
    """
    weights = modality_mask.to(features.dtype)
    weights = weights / weights.sum(dim=1, keepdim=True)
    view = weights.reshape(*weights.shape, *[1] * (features.ndim - 2))
    return (mask_modalities(features, modality_mask) * view).sum(dim=1)


def masked_pair_mean(values: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``values`` ``[B, M]`` over the present pairs (``mask`` ``[B, M]`` bool) -> scalar.

    With ``weights`` ``[M]`` (per-sequence, e.g. DTM loss weights) the result is
    ``sum_{(b,m) present} w_m * v_bm / #present``: the weights scale the contribution of each
    sequence without being renormalised (DTM keeps their L2 norm at ``sqrt(M)``, i.e. mean
    close to 1). Absent pairs are masked out with ``torch.where`` (no gradient, NaN-safe); 0 when
    none is present. Formerly ``losses/segmentation.masked_mean`` (still importable there).
    """
    mask = mask.to(torch.bool)
    v = values
    if weights is not None:
        v = v * weights.to(device=values.device, dtype=values.dtype).expand_as(values)
    v = torch.where(mask, v, torch.zeros((), dtype=v.dtype, device=v.device))  # static shapes (torch.compile)
    return v.sum() / mask.sum().clamp_min(1).to(v.dtype)


def check_modality_mask(modality_mask: torch.Tensor, batch_size: int | None, num_modalities: int,
                        device: torch.device | None = None) -> torch.Tensor:
    """Validate a presence mask and return it as bool on ``device``.

    Args:
        modality_mask: ``[B, M]`` bool (or 0/1 numbers), True = present.
        batch_size: expected ``B`` (``None``: any).
        num_modalities: expected ``M``.

    Returns:
        ``[B, M]`` bool tensor.

    Raises:
        ValueError: wrong shape, or a sample with no sequence present.
    """
    if not isinstance(modality_mask, torch.Tensor):
        modality_mask = torch.as_tensor(modality_mask)
    if modality_mask.ndim != 2 or modality_mask.shape[1] != num_modalities or (
            batch_size is not None and modality_mask.shape[0] != batch_size):
        raise ValueError(f"modality_mask must have shape [B={batch_size if batch_size is not None else 'B'}, "
                         f"M={num_modalities}], got {tuple(modality_mask.shape)}")
    mask = modality_mask.to(device=device) if device is not None else modality_mask
    mask = mask if mask.dtype == torch.bool else mask != 0
    empty = ~mask.any(dim=1)
    if torch.compiler.is_compiling():  # no host sync inside a compiled graph: checked on the device
        torch._assert_async(~empty.any(), "a sample of the batch has no sequence present")
        return mask
    if bool(empty.any()):
        rows = torch.nonzero(empty).flatten().tolist()
        raise ValueError(f"sample(s) {rows} of the batch have no sequence present; "
                         "every sample needs at least one sequence")
    return mask


def mask_modalities(x: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:
    """Replace the entries of absent sequences by exact zeros.

    Args:
        x: ``[B, M, ...]`` (images ``[B, M, *S]`` or features ``[B, M, C, *S]``).
        modality_mask: ``[B, M]`` bool.

    Returns:
        Same shape as ``x``. Uses ``torch.where``, so even NaN/inf in an absent sequence cannot
        leak, and gradients into absent entries are exactly zero.
    """
    view = modality_mask.reshape(*modality_mask.shape, *[1] * (x.ndim - 2))
    return torch.where(view, x, torch.zeros((), dtype=x.dtype, device=x.device))
