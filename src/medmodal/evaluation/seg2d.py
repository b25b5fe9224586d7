"""Scores of 2-D segmentation (``task: 2d``): per-class Dice / HD95 of volumes, Dice / IoU / precision /
recall of photographs.

Volumes (Synapse, ACDC) are scored under the ``transunet`` protocol (:mod:`medmodal.evaluation.protocols`:
TransUNet's ``calculate_metric_percase``, per class on the whole stack, HD95 in voxels) with
:func:`medmodal.evaluation.metrics.region_metrics`, each class its own region. Photographs (polyps) are
scored under ``polyp``: per image, the foreground (every class but background) thresholded at 0.5 (the
arg-max of a two-class softmax is ``p >= 0.5``), Dice ``2TP / (2TP + FP + FN)``, IoU ``TP / (TP + FP + FN)``,
precision ``TP / (TP + FP)``, recall ``TP / (TP + FN)``, means over images (the convention of the polyp
papers' evaluation scripts, e.g. PraNet's and MSLAU-Net's CVC-ClinicDB tables). A ratio 0/0 is 1 when
the reference is empty too (nothing to find, nothing found), else 0.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from medmodal.data.volumes.spec import DatasetSpec
from medmodal.evaluation.metrics import region_metrics
from medmodal.evaluation.protocols import get_protocol

__all__ = ["POLYP_SCORES", "class_spec", "volume_scores", "polyp_scores", "summarise", "score_columns", "markdown_table",
           "resolve_protocol"]

#: the photograph scores, in table order
POLYP_SCORES = ("Dice", "IoU", "Precision", "Recall")


def resolve_protocol(protocol: str, kinds: Sequence[str], num_classes: int = 2) -> str:
    """``auto`` -> ``polyp`` when every case is a photograph (``kind == "image"``) with binary masks, else
    ``transunet`` (per-class Dice / HD95; multi-class photographs, e.g. a ``folder2d`` of several organs)."""
    if protocol != "auto":
        return protocol
    return "polyp" if kinds and all(k == "image" for k in kinds) and num_classes == 2 else "transunet"


def class_spec(classes: Sequence[str], name: str = "seg2d", channels: Sequence[str] = ("image",)) -> DatasetSpec:
    """A :class:`DatasetSpec` whose regions are the foreground classes, one each (``{"RV": (1,), ...}``)."""
    classes = tuple(classes)
    return DatasetSpec(name=name, modalities=tuple(channels), source_labels={i: i for i in range(len(classes))},
                       class_names=classes, regions={c: (i,) for i, c in enumerate(classes) if i > 0},
                       spatial_dims=2, normalization="volume")


def volume_scores(pred: np.ndarray, ref: np.ndarray, classes: Sequence[str], hd95: bool = True,
                  protocol: str = "transunet") -> dict[str, float]:
    """``{"Dice_<class>": ..., "HD95_<class>": ...}`` of a stack ``[S, H, W]`` (class indices) under ``protocol``;
    HD95 in voxels (the protocol's unit)."""
    return region_metrics(pred, ref, class_spec(classes), spacing=(1.0, 1.0, 1.0), hd95=hd95,
                          protocol=get_protocol(protocol))


def polyp_scores(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Dice, IoU, precision and recall of the foreground of one image (module docstring)."""
    p, r = np.asarray(pred) > 0, np.asarray(ref) > 0
    tp = float(np.logical_and(p, r).sum())
    fp = float(np.logical_and(p, ~r).sum())
    fn = float(np.logical_and(~p, r).sum())
    empty_ref = tp + fn == 0

    def ratio(num: float, den: float) -> float:
        return num / den if den > 0 else (1.0 if empty_ref else 0.0)

    return {"Dice": ratio(2 * tp, 2 * tp + fp + fn), "IoU": ratio(tp, tp + fp + fn),
            "Precision": ratio(tp, tp + fp), "Recall": ratio(tp, tp + fn)}


def score_columns(classes: Sequence[str], protocol: str, hd95: bool = True) -> list[str]:
    """The score keys of a case row: ``Dice_<c>`` (and ``HD95_<c>``) per foreground class, or :data:`POLYP_SCORES`."""
    if protocol == "polyp":
        return list(POLYP_SCORES)
    fg = [c for c in classes[1:]]
    return [f"Dice_{c}" for c in fg] + ([f"HD95_{c}" for c in fg] if hd95 else [])


def summarise(rows: Sequence[dict], columns: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """``{column: {"mean", "std"}}`` over the rows (NaN left out; ``None`` when no value), plus for volumes the
    class-averaged ``Dice`` / ``HD95`` (the papers' "mean DSC"; and ``Jaccard`` / ``ASD`` where the rows have them)
    computed per case first."""
    out: dict[str, dict[str, float | None]] = {}
    table = {c: [float(r[c]) for r in rows if c in r and r[c] is not None and not math.isnan(float(r[c]))]
             for c in columns}
    for prefix in ("Dice", "HD95", "Jaccard", "ASD"):
        per_class = [c for c in columns if c.startswith(prefix + "_")]
        if per_class:
            table[prefix] = [float(np.nanmean([float(r[c]) for c in per_class])) for r in rows]
    for column, values in table.items():
        out[column] = ({"mean": float(np.mean(values)), "std": float(np.std(values))} if values
                       else {"mean": None, "std": None})
    return out


def _cell(value: dict | None, scale: float, digits: int) -> str:
    if not value or value.get("mean") is None:
        return "-"
    return f"{scale * value['mean']:.{digits}f} ± {scale * value['std']:.{digits}f}"


def markdown_table(rows: dict[str, dict], classes: Sequence[str], protocol: str) -> str:
    """A markdown table, one row per entry of ``rows`` (``label -> summary`` of :func:`summarise`): for volumes the
    mean Dice (%), mean HD95 (voxels) and the Dice (%) of every class, then the HD95 of every class; for
    photographs Dice, IoU, precision and recall (%); for ``seg3d`` (3-D runs) Dice, Jaccard (%), HD95 and ASD.
    Cells: mean ± std."""
    if protocol == "seg3d":   # 3-D runs (medmodal.evaluation.seg3d): the four LA-benchmark metrics, class-averaged
        head = ["", "Dice (%)", "Jaccard (%)", "HD95", "ASD"]
        lines = [[label, _cell(summary.get("Dice"), 100, 2), _cell(summary.get("Jaccard"), 100, 2),
                  _cell(summary.get("HD95"), 1, 2), _cell(summary.get("ASD"), 1, 2)] for label, summary in rows.items()]
    elif protocol == "polyp":
        head = ["", *(f"{s} (%)" for s in POLYP_SCORES)]
        lines = [[label, *(_cell(summary.get(s), 100, 2) for s in POLYP_SCORES)] for label, summary in rows.items()]
    else:
        fg = list(classes[1:])
        head = ["", "mean Dice (%)", "mean HD95 (vox)", *(f"Dice {c}" for c in fg), *(f"HD95 {c}" for c in fg)]
        lines = [[label, _cell(summary.get("Dice"), 100, 2), _cell(summary.get("HD95"), 1, 2),
                  *(_cell(summary.get(f"Dice_{c}"), 100, 2) for c in fg),
                  *(_cell(summary.get(f"HD95_{c}"), 1, 2) for c in fg)] for label, summary in rows.items()]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)
