"""Region-wise segmentation metrics with the BraTS conventions.

Predictions and references are *internal class maps* (integer arrays ``[*spatial]`` of class
indices ``0..C-1``, see :class:`medmodal.data.volumes.spec.DatasetSpec`). They are scored per evaluated
region (BraTS: WT, TC, ET), each region being the union of some classes.

* :func:`classes_to_regions` - class map ``[*spatial]`` -> boolean region masks ``[R, *spatial]``.
* :func:`postprocess_et` - the RFNet/mmFormer rule: a predicted enhancing tumour smaller than
  ``min_voxels`` voxels is relabelled (BraTS 2020: as necrosis).
* :func:`region_metrics` - Dice and HD95 per region, computed by MONAI's metric functions, with
  the BraTS rules for empty regions (both empty: Dice 1, HD95 0; one empty: Dice 0, HD95
  :data:`HD95_PENALTY`).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance

from medmodal.data.volumes.spec import DatasetSpec

#: HD95 given when exactly one of prediction / reference is empty: the diagonal of a BraTS
#: volume of 240 x 240 x 155 voxels of 1 mm (``sqrt(240**2 + 240**2 + 155**2)``).
HD95_PENALTY = 373.13

ArrayLike = np.ndarray | torch.Tensor


def _to_numpy(array: ArrayLike) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def _check_classes(classes: np.ndarray, spec: DatasetSpec) -> None:
    if classes.dtype.kind not in "iub":
        raise TypeError(f"class map must hold integers, got dtype {classes.dtype}")
    if classes.size and (classes.min() < 0 or classes.max() >= spec.num_classes):
        raise ValueError(f"class map values must be in 0..{spec.num_classes - 1} for {spec.name}, "
                         f"got range {classes.min()}..{classes.max()}")


def classes_to_regions(classes: ArrayLike, spec: DatasetSpec) -> np.ndarray:
    """Boolean region masks of a class map.

    Args:
        classes: integer class map ``[*spatial]`` (numpy array or torch tensor) with values in
            ``0..spec.num_classes - 1``.
        spec: dataset spec; its ``regions`` define the masks.

    Returns:
        bool array ``[R, *spatial]``, channels in the order of ``spec.region_names``.
    """
    classes = _to_numpy(classes)
    _check_classes(classes, spec)
    return np.stack([np.isin(classes, region) for region in spec.regions.values()])


def postprocess_et(classes: ArrayLike, spec: DatasetSpec, min_voxels: int = 500) -> np.ndarray:
    """Relabel a too-small predicted enhancing tumour (RFNet / mmFormer convention).

    If class ``spec.et_class`` covers fewer than ``min_voxels`` voxels of the whole volume,
    those voxels become ``spec.et_replacement``. No-op when ``spec.et_class`` is ``None`` or
    ``min_voxels <= 0``. The input is never modified.

    Args:
        classes: integer class map ``[*spatial]``.

    Returns:
        class map ``[*spatial]``, same dtype (a copy when anything was relabelled).
    """
    classes = _to_numpy(classes)
    if spec.et_class is None or min_voxels <= 0:
        return classes
    et = classes == spec.et_class
    count = int(et.sum())
    if count == 0 or count >= min_voxels:
        return classes
    out = classes.copy()
    out[et] = spec.et_replacement
    return out


def _spacing(spacing: float | Sequence[float] | ArrayLike, ndim: int) -> tuple[float, ...]:
    values = _to_numpy(spacing).astype(float).ravel()
    if values.size == 1:
        values = np.repeat(values, ndim)
    if values.size != ndim:
        raise ValueError(f"spacing {tuple(values)} does not match {ndim} spatial dimensions")
    return tuple(float(v) for v in values)


def _foreground_box(pred: np.ndarray, ref: np.ndarray, spec: DatasetSpec, margin: int = 1) -> tuple[slice, ...]:
    """Smallest box (plus ``margin``) holding every voxel of any region in ``pred`` or ``ref``.

    Voxels outside it are background in every region of both maps, so Dice and HD95 computed on
    the box equal those of the whole volume; the margin keeps the region borders inside the box.
    """
    classes = sorted({c for region in spec.regions.values() for c in region})
    foreground = np.isin(pred, classes) | np.isin(ref, classes)
    box = []
    for axis in range(foreground.ndim):
        hits = np.flatnonzero(foreground.any(axis=tuple(a for a in range(foreground.ndim) if a != axis)))
        if hits.size == 0:  # no region anywhere: one voxel is enough
            return tuple(slice(0, 1) for _ in range(foreground.ndim))
        box.append(slice(max(hits[0] - margin, 0), hits[-1] + margin + 1))
    return tuple(box)


def _hd95(pred: torch.Tensor, ref: torch.Tensor, spacing: tuple[float, ...]) -> np.ndarray:
    """HD95 per region ``[R]`` of one-hot ``[1, R, *spatial]`` masks, empty regions by convention."""
    pred_any = pred[0].flatten(1).any(1).numpy()
    ref_any = ref[0].flatten(1).any(1).numpy()
    hd = np.where(pred_any == ref_any, 0.0, HD95_PENALTY)
    both = np.flatnonzero(pred_any & ref_any)
    if both.size:
        with warnings.catch_warnings():  # MONAI warns about its own use of a deprecated argument
            warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
            values = compute_hausdorff_distance(pred[:, both], ref[:, both], include_background=True,
                                                percentile=95, spacing=spacing)
        hd[both] = values[0].double().numpy()
    return hd


def region_metrics(pred_classes: ArrayLike, ref_classes: ArrayLike, spec: DatasetSpec,
                   spacing: float | Sequence[float] | ArrayLike = (1.0, 1.0, 1.0),
                   hd95: bool = True) -> dict[str, float]:
    """Dice and HD95 of every region of ``spec`` (BraTS conventions).

    Dice comes from :func:`monai.metrics.compute_dice`, HD95 from
    :func:`monai.metrics.compute_hausdorff_distance` (``percentile=95``, physical ``spacing``).
    Both are computed on the bounding box of all foreground, which leaves them unchanged.
    Empty regions follow BraTS: prediction and reference both empty -> Dice 1, HD95 0; exactly
    one empty -> Dice 0, HD95 :data:`HD95_PENALTY` (373.13).

    Note:
        MONAI's symmetric HD95 is the *maximum of the two directed* 95th percentiles
        (prediction -> reference and reference -> prediction). The official BraTS tool (CaPTk)
        instead takes the 95th percentile of both directions' distances pooled together, so
        values can differ slightly on asymmetric errors.

    Args:
        pred_classes: predicted class map ``[*spatial]`` (internal class indices).
        ref_classes: reference class map ``[*spatial]``, same shape.
        spec: dataset spec defining the regions.
        spacing: voxel size in mm, one value per spatial axis (or one for all).
        hd95: also compute HD95 (the slow part); if False only the Dice keys are returned.

    Returns:
        ``{"Dice_<region>": ..., "HD95_<region>": ...}`` for the regions of ``spec``, in order.
    """
    pred_np, ref_np = _to_numpy(pred_classes), _to_numpy(ref_classes)
    if pred_np.shape != ref_np.shape:
        raise ValueError(f"prediction {pred_np.shape} and reference {ref_np.shape} shapes differ")
    _check_classes(pred_np, spec)
    _check_classes(ref_np, spec)
    box = _foreground_box(pred_np, ref_np, spec)
    pred = torch.from_numpy(classes_to_regions(pred_np[box], spec)).unsqueeze(0)  # [1, R, *box]
    ref = torch.from_numpy(classes_to_regions(ref_np[box], spec)).unsqueeze(0)
    # ignore_empty=False gives the BraTS rule directly: both empty -> 1, one empty -> 0.
    dice = compute_dice(pred, ref, include_background=True, ignore_empty=False)[0].double().numpy()
    names = spec.region_names
    out = {f"Dice_{name}": float(d) for name, d in zip(names, dice)}
    if hd95:
        hd = _hd95(pred, ref, _spacing(spacing, pred_np.ndim))
        out.update({f"HD95_{name}": float(h) for name, h in zip(names, hd)})
    return out
