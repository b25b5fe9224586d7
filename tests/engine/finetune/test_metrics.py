"""Downstream metrics: the reference Dice rule, per-finding AUROC with unknown labels, mAP counted
over all images vs. as the references count it."""

from __future__ import annotations

import math

import pytest
import torch

from medmodal.engine.finetune.metrics import DetectionMAP, PerLabelAUROC, ReferenceDice


def test_reference_dice_rule_on_empty_masks():
    metric = ReferenceDice(threshold=0.5)
    empty = torch.zeros(4, 4)
    positive = torch.zeros(4, 4)
    positive[:2, :2] = 1  # 4 pixels
    prediction = torch.zeros(4, 4)
    prediction[:2, :] = 0.9  # 8 pixels, 4 of them right
    probabilities = torch.stack([empty, prediction, prediction, positive * 0.7])
    targets = torch.stack([empty, empty, positive, positive])
    metric.update(probabilities[:2], targets[:2])
    metric.update(probabilities[2:], targets[2:])  # batches are merged per image
    out = metric.compute()
    # per image: empty + empty = 1, empty GT + prediction = 0, 2*4/(8+4), perfect = 1
    assert out["dice"].item() == pytest.approx((1 + 0 + 8 / 12 + 1) / 4)
    # dataset level: 2 * (4 + 4) / ((8 + 8 + 4) + (4 + 4))
    assert out["dice_dataset"].item() == pytest.approx(16 / 28)
    metric.reset()
    metric.update(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4))
    assert metric.compute() == {"dice": pytest.approx(1.0), "dice_dataset": pytest.approx(1.0)}


def test_per_label_auroc_ignores_unknown_targets_and_flags_degenerate_labels():
    metric = PerLabelAUROC(3)
    nan = float("nan")
    scores = torch.tensor([[0.9, 0.2, 0.5], [0.1, 0.8, 0.5], [0.8, 0.3, 0.5], [0.3, 0.9, 0.5]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [nan, 1.0, 0.0], [0.0, nan, 0.0]])
    metric.update(scores, targets)
    per = metric.compute()
    assert per[0].item() == pytest.approx(1.0)  # the NaN row is left out
    assert per[1].item() == pytest.approx(1.0)
    assert math.isnan(per[2].item())  # no positive: undefined, not 0


def _box(*xyxy):
    return torch.tensor([list(xyxy)], dtype=torch.float32)


def test_map_over_all_images_vs_the_references_counting():
    metric = DetectionMAP()
    predictions = [{"boxes": _box(10, 10, 50, 50), "scores": torch.tensor([0.9]), "labels": torch.tensor([0])},
                   {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)},
                   {"boxes": _box(0, 0, 20, 20), "scores": torch.tensor([0.8]), "labels": torch.tensor([0])}]
    targets = [{"boxes": _box(10, 10, 50, 52), "labels": torch.tensor([0])},  # found (IoU 0.95)
               {"boxes": _box(60, 60, 90, 90), "labels": torch.tensor([0])},  # missed: no prediction
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]  # a false positive
    metric.update(predictions, targets)
    out = metric.compute()
    assert out["map_reference"].item() == pytest.approx(1.0)  # only image 0 is counted
    assert 0 < out["map"].item() < 0.6  # recall 1/2, one false positive
    metric.reset()
    metric.update(predictions[1:2], targets[1:2])
    assert math.isnan(metric.compute()["map_reference"].item())  # nothing the references would count
