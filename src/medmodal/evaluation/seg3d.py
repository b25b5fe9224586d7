"""Scores of a 3-D segmentation against its reference: Dice, Jaccard, HD95 and ASD per foreground class, the four
metrics of the semi-supervised LA benchmark (UA-MT's ``test_util.py``: medpy's ``dc``, ``jc``, ``hd95``, ``asd``).

Surface distances are MONAI's edge distances (:func:`medmodal.evaluation.metrics.surface_distances`, the same
edges and Euclidean distances as medpy): HD95 is the 95th percentile of both directions pooled (medpy ``hd95``),
ASD the mean distance from the prediction's surface to the reference's (medpy ``asd``, directed as UA-MT calls
it), in the units of ``spacing`` (voxels for LA2018, whose files store none). A class empty in the prediction or
the reference has no surface distance: HD95 / ASD are NaN and the row's ``empty_<class>`` says which side was
empty (the SWDL copy sets one voxel in both instead, which biases the distances; medmodal reports the case).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from medmodal.evaluation.metrics import surface_distances

__all__ = ["volume_metrics", "metric_columns"]


def metric_columns(classes: Sequence[str], surface: bool = True) -> list[str]:
    """The score keys of a case row: ``Dice_<c>``, ``Jaccard_<c>`` (and ``HD95_<c>``, ``ASD_<c>``) per foreground
    class."""
    fg = list(classes[1:])
    keys = [f"Dice_{c}" for c in fg] + [f"Jaccard_{c}" for c in fg]
    return keys + ([f"HD95_{c}" for c in fg] + [f"ASD_{c}" for c in fg] if surface else [])


def volume_metrics(pred: np.ndarray, ref: np.ndarray, classes: Sequence[str],
                   spacing: Sequence[float] | None = None, surface: bool = True) -> dict:
    """One case's scores (:func:`metric_columns` keys, plus ``empty_<c>``: ``""``, ``"prediction"``,
    ``"reference"`` or ``"both"``).

    Args:
        pred, ref: integer class maps ``[*spatial]`` of the same shape.
        classes: class names, index = label value (background first).
        spacing: voxel size per axis (``None``: voxels).
        surface: compute HD95 and ASD.

    Raises:
        ValueError: shapes differ.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape")
    row: dict = {}
    for value, name in enumerate(classes):
        if value == 0:
            continue
        p, r = pred == value, ref == value
        inter, sp, sr = int(np.logical_and(p, r).sum()), int(p.sum()), int(r.sum())
        union = sp + sr - inter
        row[f"Dice_{name}"] = 1.0 if sp + sr == 0 else 2.0 * inter / (sp + sr)
        row[f"Jaccard_{name}"] = 1.0 if union == 0 else inter / union
        empty = {(True, True): "both", (True, False): "prediction", (False, True): "reference"}.get((sp == 0, sr == 0), "")
        row[f"empty_{name}"] = empty
        if surface:
            if empty:
                row[f"HD95_{name}"] = row[f"ASD_{name}"] = float("nan")
            else:
                forward, backward = surface_distances(p, r, spacing)
                row[f"HD95_{name}"] = float(np.percentile(np.concatenate([forward, backward]), 95))
                row[f"ASD_{name}"] = float(forward.mean())
    return row
