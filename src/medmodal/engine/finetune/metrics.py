"""Downstream metrics as torchmetrics ``Metric`` objects (states synchronised across DDP processes).

* :class:`PerLabelAUROC`: ROC AUC per finding (torchmetrics ``binary_auroc`` on the entries whose
  target is known; NaN targets = ignored), macro = mean over the findings that have both a
  positive and a negative; a finding without both is NaN (and left out of the macro), where
  torchmetrics' ``MultilabelAUROC`` would silently give 0.
* :class:`ReferenceDice`: MGCA / CM-CGNS ``get_dice``: per image, prediction ``p > threshold``;
  an image whose ground truth has foreground scores ``2 |P & T| / (|P| + |T|)``, an image with an
  empty ground truth scores 1 when nothing is predicted, else 0; ``dice`` = mean over images (the
  reference averages per-batch means, which is the same with equal batches). ``dice_dataset``:
  the standard dataset-level Dice ``2 sum |P & T| / (sum |P| + sum |T|)`` over all pixels of the
  split (1 when both are empty).
* :class:`DetectionMAP`: torchmetrics ``MeanAveragePrecision`` (COCO evaluation via
  faster-coco-eval) at IoU 0.40:0.05:0.75, twice: ``map`` over every image (predictions and
  ground truth of all images, negatives included) and ``map_reference`` as the references count it
  (``ssl_detector.py``: only images with at least one ground-truth box AND at least one
  prediction after the confidence threshold enter the metric; missed images and false positives
  on images without objects are not counted).
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
from torchmetrics import Metric

__all__ = ["PerLabelAUROC", "ReferenceDice", "DetectionMAP"]


class PerLabelAUROC(Metric):
    """``update(scores [B, K], targets [B, K] float with NaN = unknown)``; ``compute() -> [K]`` AUROC."""

    full_state_update = False

    def __init__(self, num_labels: int, **kwargs):
        super().__init__(**kwargs)
        self.num_labels = int(num_labels)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")

    def update(self, scores: torch.Tensor, targets: torch.Tensor) -> None:
        self.scores.append(scores.detach().float().reshape(-1, self.num_labels))
        self.targets.append(targets.detach().float().reshape(-1, self.num_labels))

    def compute(self) -> torch.Tensor:
        from torchmetrics.functional.classification import binary_auroc

        scores = _cat(self.scores).reshape(-1, self.num_labels)
        targets = _cat(self.targets).reshape(-1, self.num_labels)
        out = torch.full((self.num_labels,), float("nan"), device=scores.device)
        for k in range(self.num_labels):
            known = ~torch.isnan(targets[:, k])
            t = targets[known, k]
            if t.numel() and 0 < int(t.sum()) < t.numel():
                out[k] = binary_auroc(scores[known, k], t.long())
        return out


def _cat(values) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values
    return torch.cat(values) if values else torch.zeros(0)


class ReferenceDice(Metric):
    """``update(probabilities [B, H, W], targets [B, H, W] in {0, 1})``;
    ``compute() -> {"dice": reference per-image mean, "dice_dataset": dataset-level Dice}``."""

    full_state_update = False

    def __init__(self, threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.threshold = float(threshold)
        for name in ("dice_sum", "images", "intersection", "predicted", "truth"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probabilities: torch.Tensor, targets: torch.Tensor) -> None:
        b = probabilities.shape[0]
        p = (probabilities.detach().reshape(b, -1) > self.threshold).double()
        t = (targets.detach().reshape(b, -1) > 0.5).double()
        inter, p_sum, t_sum = (p * t).sum(1), p.sum(1), t.sum(1)
        positive = t_sum > 0
        per_image = torch.where(positive, 2 * inter / (p_sum + t_sum).clamp_min(1e-12), (p_sum == 0).double())
        self.dice_sum += per_image.sum()
        self.images += b
        self.intersection += inter.sum()
        self.predicted += p_sum.sum()
        self.truth += t_sum.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        dice = self.dice_sum / self.images if self.images > 0 else torch.tensor(float("nan"))
        denominator = self.predicted + self.truth
        dataset = 2 * self.intersection / denominator if denominator > 0 else torch.tensor(1.0, dtype=torch.float64)
        return {"dice": dice.float(), "dice_dataset": dataset.float()}


class DetectionMAP(torch.nn.Module):
    """Standard and reference-counted mAP over ``iou_thresholds`` (module docstring).

    ``update(predictions, targets)``: per image ``{"boxes" [n, 4] xyxy, "scores" [n], "labels" [n]}``
    and ``{"boxes" [m, 4], "labels" [m]}``. ``compute() -> {"map", "map_50", "map_75",
    "map_reference"}`` (NaN where no image could be scored). ``reset()``.
    """

    def __init__(self, iou_thresholds: Sequence[float] = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75)):
        super().__init__()
        from torchmetrics.detection import MeanAveragePrecision

        thresholds = [round(float(v), 4) for v in iou_thresholds]
        self.thresholds = thresholds
        # COCO's 100 highest-scoring detections per image are scored (torchmetrics' default, as the
        # references); its warning about images with more is off (untrained heads have many)
        self.standard, self.reference = (
            MeanAveragePrecision(iou_type="bbox", box_format="xyxy", iou_thresholds=thresholds,
                                 backend="faster_coco_eval") for _ in range(2))
        self.standard.warn_on_many_detections = self.reference.warn_on_many_detections = False

    def update(self, predictions: list[dict], targets: list[dict]) -> None:
        predictions = [{k: v.detach().float() if k != "labels" else v.detach().long() for k, v in p.items()}
                       for p in predictions]
        targets = [{"boxes": t["boxes"].detach().float().reshape(-1, 4), "labels": t["labels"].detach().long()}
                   for t in targets]
        self.standard.update(predictions, targets)
        pairs = [(p, t) for p, t in zip(predictions, targets) if len(p["boxes"]) and len(t["boxes"])]
        if pairs:
            self.reference.update([p for p, _ in pairs], [t for _, t in pairs])

    def compute(self) -> dict[str, torch.Tensor]:
        standard = self.standard.compute()
        out = {name: _valid(standard[name]) for name in ("map", "map_50", "map_75") if name in standard}
        with warnings.catch_warnings():  # a process without any scored image still joins the DDP gather
            warnings.filterwarnings("ignore", message=r".*compute.*before.*update.*")
            reference = self.reference.compute()
        out["map_reference"] = _valid(reference["map"])
        return out

    def reset(self) -> None:
        self.standard.reset()
        self.reference.reset()


def _valid(value: torch.Tensor) -> torch.Tensor:
    """torchmetrics reports -1 where nothing could be scored: NaN instead."""
    value = torch.as_tensor(value, dtype=torch.float32)
    return torch.tensor(float("nan")) if value.numel() == 1 and float(value) < 0 else value


def nan_to_none(value: float) -> float | None:
    """``None`` for NaN (JSON has no NaN)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
