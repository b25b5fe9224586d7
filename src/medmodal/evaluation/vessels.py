"""Retinal vessel segmentation scores, as the field reports them.

Input per image: a vessel probability map ``prob`` float ``[H, W]`` in ``[0, 1]``, the reference label
(first observer) bool ``[H, W]`` and the field-of-view (FOV) mask bool ``[H, W]``. The map is binarised
at ``prob >= threshold`` (0.5 unless a method calibrates its own threshold, e.g. the Frangi baseline,
:mod:`medmodal.models.fundus.frangi`, whose threshold is chosen on the source domain's training images).

Scores (all unitless fractions in ``[0, 1]``), with TP / FP / TN / FN counted over the pixels
**inside the FOV** - the DRIVE protocol (Staal et al., "Ridge-based vessel segmentation in color images
of the retina", IEEE TMI 23(4), 2004) and the convention of most vessel papers since (retina-unet,
SA-UNet, FR-UNet; Fraz et al., "Blood vessel segmentation methodologies in retinal images - a survey",
CMPB 108(1), 2012):

* ``dice`` - Dice = F1 = ``2 TP / (2 TP + FP + FN)`` inside the FOV (1.0 when the label and the
  prediction are both empty).
* ``sensitivity`` - ``TP / (TP + FN)`` (recall, true-positive rate; NaN without vessel pixels).
* ``specificity`` - ``TN / (TN + FP)`` (NaN without background pixels).
* ``accuracy`` - ``(TP + TN) / N_FOV``.
* ``auc_roc`` - area under the ROC curve of the probabilities inside the FOV (threshold-free;
  ``torchmetrics`` ``binary_auroc``). NaN when the FOV holds only one class.
* ``auc_pr`` - average precision (the step-wise area under the precision-recall curve,
  ``torchmetrics`` ``binary_average_precision``, as scikit-learn's ``average_precision_score``).
  NaN without vessel pixels.
* ``dice_whole`` - Dice over **all** pixels of the image, FOV ignored. Papers differ (some report
  whole-image F1); both are given so a number can be matched to its definition. Since most labels
  are empty outside the FOV, the two differ only by the false positives a method puts outside it.

The second observer (DRIVE test, CHASE_DB1, STARE) is scored against the first with the same
binary scores (:func:`observer_scores`): the human reference a method is compared with. AUCs of a
binary map are not reported for it (NaN).

Errors: a shape mismatch raises a one-line :class:`~medmodal.errors.DataError` naming the sample.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

from medmodal.errors import DataError

__all__ = ["SCORES", "VesselScores", "vessel_scores", "observer_scores", "summarise", "dice_at_thresholds",
           "choose_threshold", "scores_table"]

#: The per-image scores, in table order.
SCORES = ("dice", "sensitivity", "specificity", "accuracy", "auc_roc", "auc_pr", "dice_whole")


@dataclass(frozen=True)
class VesselScores:
    """One image's scores (module docstring for the definitions); ``name``: the sample's id."""

    name: str
    dice: float
    sensitivity: float
    specificity: float
    accuracy: float
    auc_roc: float
    auc_pr: float
    dice_whole: float

    def as_dict(self) -> dict:
        return asdict(self)


def _check(name: str, **arrays) -> tuple[int, int]:
    shapes = {k: tuple(np.shape(v)) for k, v in arrays.items() if v is not None}
    ref = next(iter(shapes.values()))
    if len(ref) != 2 or any(s != ref for s in shapes.values()):
        raise DataError(f"{name}: shapes differ or are not [H, W]: "
                        + ", ".join(f"{k} {list(s)}" for k, s in shapes.items()))
    return ref


def _ratio(num: float, den: float, empty: float = math.nan) -> float:
    return float(num) / float(den) if den > 0 else empty


def _binary(pred: np.ndarray, label: np.ndarray) -> tuple[int, int, int, int]:
    """TP, FP, TN, FN of two flat bool arrays (torchmetrics ``binary_stat_scores``)."""
    from torchmetrics.functional.classification import binary_stat_scores

    tp, fp, tn, fn, _ = binary_stat_scores(torch.from_numpy(pred.astype(np.int64)),
                                           torch.from_numpy(label.astype(np.int64)), threshold=0.5).tolist()
    return tp, fp, tn, fn


def _dice(tp, fp, fn) -> float:
    return _ratio(2 * tp, 2 * tp + fp + fn, empty=1.0)


def vessel_scores(prob: np.ndarray, label: np.ndarray, fov: np.ndarray | None = None, *, threshold: float = 0.5,
                  name: str = "sample") -> VesselScores:
    """Scores of one probability map (module docstring).

    Args:
        prob: float ``[H, W]``, vessel probability (or any score increasing with vessel-ness: the AUCs
            only use its order). label: bool ``[H, W]``, the reference. fov: bool ``[H, W]`` or ``None``
            (the whole image). threshold: vessel where ``prob >= threshold``. name: for errors.
    Raises:
        DataError: shapes differ (one line naming ``name``).
    """
    _check(name, prob=prob, label=label, fov=fov)
    prob = np.asarray(prob, dtype=np.float32)
    label = np.asarray(label).astype(bool)
    fov = np.ones_like(label) if fov is None else np.asarray(fov).astype(bool)
    pred = prob >= threshold
    tp, fp, tn, fn = _binary(pred[fov], label[fov])
    wtp, wfp, _, wfn = _binary(pred.ravel(), label.ravel())
    auc_roc, auc_pr = _aucs(prob[fov], label[fov])
    return VesselScores(name=name, dice=_dice(tp, fp, fn), sensitivity=_ratio(tp, tp + fn),
                        specificity=_ratio(tn, tn + fp), accuracy=_ratio(tp + tn, tp + fp + tn + fn),
                        auc_roc=auc_roc, auc_pr=auc_pr, dice_whole=_dice(wtp, wfp, wfn))


def _aucs(prob: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    positives = int(label.sum())
    if positives == 0:
        return math.nan, math.nan
    p, t = torch.from_numpy(prob.astype(np.float32)), torch.from_numpy(label.astype(np.int64))
    ap = float(binary_average_precision(p, t))
    if positives == label.size:
        return math.nan, ap
    return float(binary_auroc(p, t)), ap


def observer_scores(second: np.ndarray, first: np.ndarray, fov: np.ndarray | None = None, *,
                    name: str = "sample") -> VesselScores:
    """The second observer's binary label scored against the first's (the human reference); AUCs NaN.

    Raises:
        DataError: shapes differ (one line naming ``name``).
    """
    _check(name, second=second, first=first, fov=fov)
    second, first = np.asarray(second).astype(bool), np.asarray(first).astype(bool)
    fov = np.ones_like(first) if fov is None else np.asarray(fov).astype(bool)
    tp, fp, tn, fn = _binary(second[fov], first[fov])
    wtp, wfp, _, wfn = _binary(second.ravel(), first.ravel())
    return VesselScores(name=name, dice=_dice(tp, fp, fn), sensitivity=_ratio(tp, tp + fn),
                        specificity=_ratio(tn, tn + fp), accuracy=_ratio(tp + tn, tp + fp + tn + fn),
                        auc_roc=math.nan, auc_pr=math.nan, dice_whole=_dice(wtp, wfp, wfn))


def summarise(rows: Iterable[VesselScores]) -> dict[str, tuple[float, float]]:
    """Mean and (population, ``ddof=0``) standard deviation over images of each score: ``{score: (mean, std)}``.

    NaN entries (undefined for an image) are left out of that score's mean; a score NaN for every
    image stays NaN.
    """
    rows = list(rows)
    out = {}
    for key in SCORES:
        values = np.array([getattr(r, key) for r in rows], dtype=float)
        values = values[~np.isnan(values)]
        out[key] = (float(values.mean()), float(values.std())) if values.size else (math.nan, math.nan)
    return out


def dice_at_thresholds(prob: np.ndarray, label: np.ndarray, fov: np.ndarray | None,
                       thresholds: Sequence[float]) -> np.ndarray:
    """FOV Dice of one map at each threshold (``prob >= t``), float ``[len(thresholds)]``.

    Counts come from one sort of the FOV probabilities (a cumulative histogram), so a fine grid of
    thresholds costs about as much as one.
    """
    prob = np.asarray(prob, dtype=np.float64)
    label = np.asarray(label).astype(bool)
    fov = np.ones_like(label) if fov is None else np.asarray(fov).astype(bool)
    p, t = prob[fov], label[fov]
    order = np.sort(p)
    pos = np.sort(p[t])
    thresholds = np.asarray(thresholds, dtype=np.float64)
    predicted = order.size - np.searchsorted(order, thresholds, side="left")  # count of p >= thr
    tp = pos.size - np.searchsorted(pos, thresholds, side="left")
    fp, fn = predicted - tp, pos.size - tp
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 1.0)


def choose_threshold(maps: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
                     thresholds: Sequence[float] | None = None) -> tuple[float, float]:
    """The threshold maximising the **mean** FOV Dice over ``(prob, label, fov)`` triples.

    For methods whose output is a score, not a probability (the Frangi baseline). Call it on the
    source domain's *training* images only; the test images are then scored at the threshold chosen.

    Args:
        maps: ``(prob [H, W], label [H, W], fov [H, W] | None)`` per image.
        thresholds: candidates (default 400 geometrically spaced from ``1e-4`` to 1: score maps such as
            normalised vesselness are heavy-tailed, their best thresholds small).
    Returns:
        ``(threshold, mean Dice there)``.
    Raises:
        DataError: no images.
    """
    grid = np.geomspace(1e-4, 1.0, 400) if thresholds is None else np.asarray(thresholds, float)
    curves = [dice_at_thresholds(p, lab, f, grid) for p, lab, f in maps]
    if not curves:
        raise DataError("choose_threshold: no images to choose a threshold on")
    mean = np.mean(curves, axis=0)
    best = int(np.argmax(mean))
    return float(grid[best]), float(mean[best])


def scores_table(rows: Mapping[str, tuple[int, dict[str, tuple[float, float]]]], digits: int = 2) -> str:
    """A markdown table: one row per ``label -> (n, summarise(...))``, each score as ``mean ± std`` in percent
    (scores are fractions in ``summarise`` and the per-image CSV; the table multiplies by 100, as papers and the
    train / benchmark output report them); a line under the table says so."""
    head = "| data set | n | Dice (FOV) | Sen | Spe | Acc | AUC-ROC | AUC-PR | Dice (whole image) |"
    lines = [head, "|" + "---|" * 9]
    for label, (n, summary) in rows.items():
        cells = []
        for key in SCORES:
            mean, std = summary[key]
            cells.append("-" if math.isnan(mean) else f"{100 * mean:.{digits}f} ± {100 * std:.{digits}f}")
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Scores in %, mean ± std over images (the per-image CSV holds fractions 0-1).")
    return "\n".join(lines)

