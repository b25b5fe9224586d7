"""2-D scores: the ``transunet`` protocol against TransUNet's rule computed with medpy, and the polyp scores."""

import math

import numpy as np
import pytest

from medmodal.evaluation.seg2d import (markdown_table, polyp_scores, resolve_protocol, score_columns, summarise,
                                       volume_scores)

CLASSES = ("background", "RV", "Myo", "LV")


def _transunet_reference(pred, gt):
    """TransUNet's calculate_metric_percase, written from its description, with medpy's dc / hd95."""
    metric = pytest.importorskip("medpy.metric")
    pred, gt = pred.astype(bool), gt.astype(bool)
    if pred.sum() > 0 and gt.sum() > 0:
        return metric.binary.dc(pred, gt), metric.binary.hd95(pred, gt)
    if pred.sum() > 0 and gt.sum() == 0:
        return 1.0, 0.0
    return 0.0, 0.0


def _stack(seed):
    rng = np.random.default_rng(seed)
    ref = np.zeros((4, 40, 48), np.int64)
    ref[:, 10:30, 8:20] = 1
    ref[:, 12:28, 24:30] = 2
    ref[:, 14:26, 30:40] = 3
    pred = ref.copy()
    noise = rng.random(ref.shape) < 0.05
    pred[noise] = rng.integers(0, 4, size=int(noise.sum()))
    return pred, ref


def test_transunet_protocol_matches_the_release_rule_per_class():
    pred, ref = _stack(0)
    pred[pred == 1] = 0          # RV never predicted: Dice 0, HD95 0
    scores = volume_scores(pred, ref, CLASSES)
    for c, name in enumerate(CLASSES[1:], start=1):
        dice, hd = _transunet_reference(pred == c, ref == c)
        assert scores[f"Dice_{name}"] == pytest.approx(dice, abs=1e-9)
        assert scores[f"HD95_{name}"] == pytest.approx(hd, abs=1e-6)
    assert scores["Dice_RV"] == 0.0 and scores["HD95_RV"] == 0.0


def test_transunet_protocol_empty_cases():
    ref = np.zeros((2, 16, 16), np.int64)
    pred = ref.copy()
    pred[0, 4:8, 4:8] = 1       # predicted where the reference has none: 1 / 0 (the release's rule)
    scores = volume_scores(pred, ref, ("background", "A", "B"))
    assert (scores["Dice_A"], scores["HD95_A"]) == (1.0, 0.0)
    assert (scores["Dice_B"], scores["HD95_B"]) == (0.0, 0.0)   # empty in both: 0 / 0, as the release


def test_polyp_scores_by_hand():
    ref = np.zeros((1, 10, 10), np.int64)
    ref[0, 2:6, 2:6] = 1        # 16 px
    pred = np.zeros_like(ref)
    pred[0, 4:8, 2:6] = 1       # 16 px, 8 overlap
    s = polyp_scores(pred, ref)
    assert s == pytest.approx({"Dice": 0.5, "IoU": 8 / 24, "Precision": 0.5, "Recall": 0.5})
    assert polyp_scores(np.zeros_like(ref), ref) == {"Dice": 0.0, "IoU": 0.0, "Precision": 0.0, "Recall": 0.0}
    assert polyp_scores(np.zeros_like(ref), np.zeros_like(ref))["Dice"] == 1.0


def test_summary_and_table():
    rows = [{"Dice_RV": 0.8, "Dice_Myo": 0.6, "Dice_LV": 0.9, "HD95_RV": 2.0, "HD95_Myo": 3.0, "HD95_LV": math.nan},
            {"Dice_RV": 0.6, "Dice_Myo": 0.8, "Dice_LV": 0.7, "HD95_RV": 4.0, "HD95_Myo": 5.0, "HD95_LV": 1.0}]
    columns = score_columns(CLASSES, "transunet")
    s = summarise(rows, columns)
    assert s["Dice_RV"]["mean"] == pytest.approx(0.7) and s["HD95_LV"]["mean"] == pytest.approx(1.0)
    assert s["Dice"]["mean"] == pytest.approx(np.mean([np.mean([0.8, 0.6, 0.9]), np.mean([0.6, 0.8, 0.7])]))
    table = markdown_table({"MSLAU-Net": s}, CLASSES, "transunet")
    assert "Dice RV" in table and "70.00 ± 10.00" in table
    assert resolve_protocol("auto", ["image", "image"]) == "polyp"
    assert resolve_protocol("auto", ["volume", "slices"]) == "transunet"
