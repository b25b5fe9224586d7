"""Region-wise segmentation metrics under a named evaluation protocol.

Predictions and references are *internal class maps* (integer arrays ``[*spatial]`` of class
indices ``0..C-1``, see :class:`medmodal.data.volumes.spec.DatasetSpec`). They are scored per evaluated
region (BraTS: WT, TC, ET), each region being the union of some classes, under an
:class:`~medmodal.evaluation.protocols.EvaluationProtocol` (PASSION, BraTS challenge, MyoPS-Net,
or medmodal's earlier MONAI convention) that fixes the distance definition, the values for empty
regions and the ET post-processing.

* :func:`classes_to_regions` - class map ``[*spatial]`` -> boolean region masks ``[R, *spatial]``.
* :func:`~medmodal.inference.postprocess.postprocess_et` (imported from :mod:`medmodal.inference`) - a
  predicted enhancing tumour smaller than ``min_voxels`` voxels is relabelled (BraTS 2020: as
  necrosis), as nnU-Net's BraTS post-processing does.
* :func:`surface_distances` - MONAI's edge-to-edge distances in both directions.
* :func:`region_metrics` - Dice and HD95 (or HD) per region under a protocol.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch
from monai.metrics import get_confusion_matrix
from monai.metrics.utils import get_edge_surface_distance

from medmodal.data.volumes.spec import DatasetSpec
from medmodal.errors import DataError
from medmodal.evaluation.protocols import ETPRO, EvaluationProtocol, et_threshold, get_protocol
from medmodal.inference.postprocess import ArrayLike, postprocess_et, to_numpy

#: HD95 of ``monai-max-directed`` (medmodal's earlier default) when exactly one of prediction /
#: reference is empty: the diagonal of a BraTS volume of 240 x 240 x 155 voxels of 1 mm
#: (``sqrt(240**2 + 240**2 + 155**2)`` = 373.12866, rounded). ``brats-challenge`` uses 373.12866.
HD95_PENALTY = 373.13


def _check_classes(classes: np.ndarray, spec: DatasetSpec) -> None:
    if classes.dtype.kind not in "iub":
        raise TypeError(f"class map must hold integers, got dtype {classes.dtype}")
    if classes.size and (classes.min() < 0 or classes.max() >= spec.num_classes):
        raise DataError(f"class map values must be in 0..{spec.num_classes - 1} for {spec.name}, "
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
    classes = to_numpy(classes)
    _check_classes(classes, spec)
    return np.stack([np.isin(classes, region) for region in spec.regions.values()])


def _spacing(spacing: float | Sequence[float] | ArrayLike, ndim: int) -> tuple[float, ...]:
    values = to_numpy(spacing).astype(float).ravel()
    if values.size == 1:
        values = np.repeat(values, ndim)
    if values.size != ndim:
        raise ValueError(f"spacing {tuple(values)} does not match {ndim} spatial dimensions")
    return tuple(float(v) for v in values)


def _foreground_box(pred: np.ndarray, ref: np.ndarray, spec: DatasetSpec, margin: int = 1) -> tuple[slice, ...]:
    """Smallest box (plus ``margin``) holding every voxel of any region in ``pred`` or ``ref``.

    Voxels outside it are background in every region of both maps, so Dice and surface distances
    computed on the box equal those of the whole volume: the margin keeps every region border
    inside the box, and every reference edge voxel (the nearest partner of a distance) is in it.
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


def surface_distances(pred: np.ndarray | torch.Tensor, ref: np.ndarray | torch.Tensor,
                      spacing: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Edge-to-edge distances between two non-empty binary masks, in both directions.

    Edges and distances come from MONAI (:func:`monai.metrics.utils.get_edge_surface_distance`):
    edge voxels are a mask minus its binary erosion (6-neighbourhood, as medpy's
    ``connectivity=1``), and each edge voxel gets the exact Euclidean distance to the nearest edge
    voxel of the other mask, in the units of ``spacing`` (``None``: voxels). This is what medpy's
    ``__surface_distances`` computes (loli/medpy, ``medpy/metric/binary.py``).

    Args:
        pred, ref: boolean masks ``[*spatial]`` of the same shape, both non-empty.
        spacing: voxel size per axis, or ``None`` for unit spacing.

    Returns:
        ``(pred_to_ref, ref_to_pred)``: float64 arrays, one distance per edge voxel of ``pred``
        (resp. ``ref``).
    """
    pred_t = torch.as_tensor(np.asarray(pred, bool) if isinstance(pred, np.ndarray) else pred.bool())
    ref_t = torch.as_tensor(np.asarray(ref, bool) if isinstance(ref, np.ndarray) else ref.bool())
    if not pred_t.any() or not ref_t.any():
        raise ValueError("surface distances need two non-empty masks (empty regions follow the protocol's values)")
    with warnings.catch_warnings():  # MONAI warns about its own use of a deprecated argument
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        _, distances, _ = get_edge_surface_distance(pred_t, ref_t, spacing=spacing, symmetric=True)
    forward, backward = (np.asarray(d.cpu().numpy() if isinstance(d, torch.Tensor) else d, np.float64)
                         for d in distances)
    return forward, backward


def distance_metric(pred: np.ndarray, ref: np.ndarray, protocol: EvaluationProtocol,
                    spacing: Sequence[float] | None) -> float:
    """HD95 (or HD) of two binary masks ``[*spatial]`` under ``protocol``.

    Empty masks get ``protocol.distance_empty``; otherwise the ``protocol.percentile``-th
    percentile (:func:`numpy.percentile`, linear interpolation) of :func:`surface_distances`,
    either over both directions pooled (``protocol.pooled``, medpy's ``hd95``) or as the larger
    of the two directed percentiles (MONAI's ``compute_hausdorff_distance``).
    """
    pred_any, ref_any = bool(pred.any()), bool(ref.any())
    if not (pred_any and ref_any):
        return float(protocol.distance_empty.value(not pred_any, not ref_any))
    forward, backward = surface_distances(pred, ref, spacing)
    q = protocol.percentile
    if protocol.pooled:
        return float(np.percentile(np.concatenate([forward, backward]), q))
    return float(max(np.percentile(forward, q), np.percentile(backward, q)))


def dice_from_counts(tp: float, fp: float, fn: float, protocol: EvaluationProtocol) -> float:
    """Dice ``(2 TP + eps) / (2 TP + FP + FN + eps)`` (``eps = protocol.dice_smooth``), with
    ``protocol.dice_empty`` for empty masks (NaN: undefined, left out of the means)."""
    empty = protocol.dice_empty.value(tp + fp == 0, tp + fn == 0)
    if empty is not None:
        return float(empty)
    eps = protocol.dice_smooth
    return float((2 * tp + eps) / (2 * tp + fp + fn + eps))


def _column_masks(pred: np.ndarray, ref: np.ndarray, spec: DatasetSpec, columns: Sequence[str],
                  et_min_voxels: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks ``[K, *spatial]`` of each column; ``ETPro`` = ET with a predicted ET under
    ``et_min_voxels`` voxels removed (PASSION / RFNet ``enhancing_postpro``)."""
    pred_masks, ref_masks = [], []
    for column in columns:
        if column == ETPRO:
            et = pred == spec.et_class
            pred_masks.append(et if int(et.sum()) >= et_min_voxels else np.zeros_like(et))
            ref_masks.append(ref == spec.et_class)
        else:
            pred_masks.append(np.isin(pred, spec.regions[column]))
            ref_masks.append(np.isin(ref, spec.regions[column]))
    return np.stack(pred_masks), np.stack(ref_masks)


def region_metrics(pred_classes: ArrayLike, ref_classes: ArrayLike, spec: DatasetSpec,
                   spacing: float | Sequence[float] | ArrayLike = (1.0, 1.0, 1.0),
                   hd95: bool = True, protocol: str | EvaluationProtocol | None = None,
                   et_min_voxels: int | None = None) -> dict[str, float]:
    """Dice and the distance metric of every column of ``protocol`` (regions, ``ETPro``).

    Dice comes from MONAI's confusion matrix (:func:`monai.metrics.get_confusion_matrix`),
    distances from :func:`surface_distances`; both are computed on the bounding box of all
    foreground, which leaves them unchanged. The protocol's rules give the values of empty
    regions and the ET post-processing (see :mod:`medmodal.evaluation.protocols`).

    Args:
        pred_classes: predicted class map ``[*spatial]`` (internal class indices).
        ref_classes: reference class map ``[*spatial]``, same shape.
        spec: dataset spec defining the regions.
        spacing: voxel size in mm, one value per spatial axis (or one for all); unused by
            protocols that measure in voxels.
        hd95: also compute the distance metric (the slow part); if False only Dice keys.
        protocol: protocol name or object; ``None``: ``monai-max-directed``, the convention of
            this function before protocols existed (so older callers keep their numbers).
        et_min_voxels: ET post-processing threshold; ``None``: the protocol's (500).

    Returns:
        ``{"Dice_<column>": ..., "<HD95|HD>_<column>": ...}`` in the protocol's column order.
        Values may be NaN where the protocol leaves a case undefined (MyoPS: empty reference).

    Raises:
        ValueError: shapes differ or a spacing of the wrong length (programming errors).
        DataError: a class map holds values outside the spec. ConfigError: a protocol whose
            regions the spec lacks.
    """
    protocol = get_protocol(protocol, spec)
    pred_np, ref_np = to_numpy(pred_classes), to_numpy(ref_classes)
    if pred_np.shape != ref_np.shape:
        raise ValueError(f"prediction {pred_np.shape} and reference {ref_np.shape} shapes differ")
    _check_classes(pred_np, spec)
    _check_classes(ref_np, spec)
    columns = protocol.columns(spec)
    threshold = et_threshold(protocol, et_min_voxels)
    if protocol.et_postprocess == "relabel":
        pred_np = postprocess_et(pred_np, spec, min_voxels=threshold)
    box = _foreground_box(pred_np, ref_np, spec)
    pred, ref = _column_masks(pred_np[box], ref_np[box], spec, columns, threshold)
    # float inputs: MONAI's confusion matrix miscounts boolean tensors (checked with MONAI 1.6.1)
    counts = get_confusion_matrix(torch.from_numpy(pred).unsqueeze(0).float(),
                                  torch.from_numpy(ref).unsqueeze(0).float())[0].double().numpy()  # [K, 4]: TP FP TN FN
    out = {f"Dice_{c}": dice_from_counts(tp, fp, fn, protocol) for c, (tp, fp, _, fn) in zip(columns, counts)}
    if hd95:
        physical = _spacing(spacing, pred_np.ndim) if protocol.spacing == "physical" else None
        out.update({f"{protocol.distance}_{c}": distance_metric(p, r, protocol, physical)
                    for c, p, r in zip(columns, pred, ref)})
    return out
