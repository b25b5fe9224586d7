"""The references' segmentation loss (10 * focal + -log soft Dice) against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from medmodal.losses.focal_dice import MixedFocalDiceLoss


def _by_hand(logits: torch.Tensor, target: torch.Tensor, weight: float = 10.0, gamma: float = 2.0) -> float:
    total_focal, n = 0.0, 0
    inter = p_sum = t_sum = 0.0
    for x, t in zip(logits.flatten().tolist(), target.flatten().tolist()):
        p = 1 / (1 + math.exp(-x))
        p_t = p if t == 1 else 1 - p
        total_focal += (1 - p_t) ** gamma * -math.log(p_t)
        n += 1
        inter, p_sum, t_sum = inter + p * t, p_sum + p, t_sum + t
    dice = (2 * inter + 1) / (p_sum + t_sum + 1)  # over the whole batch, smoothing 1
    return weight * total_focal / n - math.log(dice)


def test_matches_a_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 6, 5) * 2
    target = (torch.rand(3, 1, 6, 5) > 0.6).float()
    loss, terms = MixedFocalDiceLoss()(logits, target)
    assert loss.item() == pytest.approx(_by_hand(logits, target), rel=1e-5)
    assert (10 * terms["focal"] + terms["dice_log"]).item() == pytest.approx(loss.item(), rel=1e-6)
    squeezed, _ = MixedFocalDiceLoss(focal_weight=3.0, gamma=1.0)(logits[:, 0], target[:, 0])  # [B, H, W] input
    assert squeezed.item() == pytest.approx(_by_hand(logits, target, 3.0, 1.0), rel=1e-5)


def test_a_batch_without_foreground_still_penalises_predicted_foreground():
    target = torch.zeros(2, 1, 4, 4)
    confident_empty, _ = MixedFocalDiceLoss()(torch.full((2, 1, 4, 4), -8.0), target)
    predicted_mass, _ = MixedFocalDiceLoss()(torch.full((2, 1, 4, 4), 2.0), target)
    assert confident_empty.item() == pytest.approx(_by_hand(torch.full((2, 1, 4, 4), -8.0), target), rel=1e-5)
    assert predicted_mass.item() > confident_empty.item() + 1  # -log(1 / (1 + sum p)) = log(1 + 28.2)
    with pytest.raises(ValueError, match="differ in shape"):
        MixedFocalDiceLoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
