"""The unsupervised terms of medmodal.losses.semi, against hand computations."""

import math

import pytest
import torch
import torch.nn.functional as F

from medmodal.losses.semi import (cross_pseudo_supervision, predictive_entropy, prototype_consistency,
                                  prototype_similarity, softmax_mse, uncertainty_masked_mse, uncertainty_threshold)


def test_softmax_mse_is_zero_for_the_same_prediction_and_positive_otherwise():
    logits = torch.randn(2, 4, 8, 8)
    assert softmax_mse(logits, logits.softmax(1)).item() == pytest.approx(0.0, abs=1e-7)
    assert softmax_mse(logits, torch.full_like(logits, 0.25)).item() > 0


def test_entropy_is_ln_c_for_uniform_and_zero_for_certain():
    uniform = torch.full((1, 4, 3, 3), 0.25)
    assert torch.allclose(predictive_entropy(uniform), torch.full((1, 1, 3, 3), math.log(4)), atol=1e-4)
    certain = F.one_hot(torch.zeros(1, 3, 3, dtype=torch.long), 4).permute(0, 3, 1, 2).float()
    assert predictive_entropy(certain).abs().max() < 1e-4


def test_uncertainty_threshold_schedule():
    assert uncertainty_threshold(0.0) == pytest.approx(0.75 * math.log(2))
    assert uncertainty_threshold(1.0, math.log(4)) == pytest.approx(math.log(4))
    with pytest.raises(ValueError):
        uncertainty_threshold(1.5)


def test_masked_mse_keeps_only_certain_elements():
    logits = torch.zeros(1, 2, 1, 2)
    teacher = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]])        # both pixels: (1, 0); student (0.5, 0.5)
    unc = torch.tensor([[[[0.1, 5.0]]]])                           # the second pixel is uncertain
    loss = uncertainty_masked_mse(logits, teacher, unc, threshold=1.0)
    assert loss.item() == pytest.approx((0.25 + 0.25) / (2 * 1 + 1e-16))
    assert uncertainty_masked_mse(logits, teacher, unc, threshold=0.0).item() == 0.0


def test_cps_is_symmetric_and_zero_gradient_free_on_targets():
    a = torch.randn(2, 3, 4, 4, requires_grad=True)
    b = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = cross_pseudo_supervision(a, b)
    expected = F.cross_entropy(a, b.argmax(1)) + F.cross_entropy(b, a.argmax(1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert cross_pseudo_supervision(b, a).item() == pytest.approx(loss.item(), rel=1e-6)
    loss.backward()
    assert a.grad is not None and b.grad is not None


def test_prototype_similarity_is_one_at_a_pure_class_pixel():
    # two classes with orthogonal features; hard masks -> each pixel is identical to its class prototype
    feats = torch.zeros(1, 2, 1, 4)
    feats[0, 0, 0, :2] = 1.0
    feats[0, 1, 0, 2:] = 1.0
    probs = torch.zeros(1, 2, 1, 4)
    probs[0, 0, 0, :2] = 1.0
    probs[0, 1, 0, 2:] = 1.0
    sim = prototype_similarity(feats, probs)
    assert torch.allclose(sim[0, 0, 0], torch.tensor([1.0, 1.0, 0.0, 0.0]), atol=1e-4)
    assert torch.allclose(sim[0, 1, 0], torch.tensor([0.0, 0.0, 1.0, 1.0]), atol=1e-4)
    sim3d = prototype_similarity(torch.randn(2, 5, 3, 4, 4), torch.rand(2, 3, 3, 4, 4).softmax(1))
    assert sim3d.shape == (2, 3, 3, 4, 4) and sim3d.abs().max() <= 1 + 1e-5


def test_prototype_consistency_sends_gradient_to_logits_only():
    feats = torch.randn(2, 6, 8, 8, requires_grad=True)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    loss = prototype_consistency(feats, logits)
    loss.backward()
    assert loss.item() > 0 and logits.grad.abs().sum() > 0
    assert feats.grad is None or feats.grad.abs().sum() == 0
