"""medmodal.layers.domain: DSU feature-statistics shift and gradient reversal."""

from __future__ import annotations

import torch

from medmodal.layers.domain import DSU, FeatureStatisticsShift, grad_reverse


def test_dsu_shift():
    torch.manual_seed(0)
    shift = FeatureStatisticsShift(p=1.0)
    x = torch.randn(8, 5, 16) * 3 + 1
    assert torch.equal(shift.eval()(x), x)
    y = shift.train()(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    # token-normalised content is kept: each sample is an affine map of itself per channel (DSU does not
    # clamp gamma, so a channel's sign may flip)
    z = (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)
    zy = (y - y.mean(1, keepdim=True)) / y.std(1, keepdim=True)
    assert torch.allclose(z.abs(), zy.abs(), atol=1e-3)
    assert torch.equal(FeatureStatisticsShift(p=0.0).train()(x), x)


def test_dsu_over_space_of_cnn_features():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 6, 6)
    y = DSU(p=1.0, dims=(2, 3)).train()(x)
    z = (x - x.mean((2, 3), keepdim=True)) / x.std((2, 3), keepdim=True)
    zy = (y - y.mean((2, 3), keepdim=True)) / y.std((2, 3), keepdim=True)
    assert torch.allclose(z.abs(), zy.abs(), atol=1e-3)


def test_grad_reverse():
    x = torch.ones(3, requires_grad=True)
    (grad_reverse(x, 0.5) * 2).sum().backward()
    assert x.grad.tolist() == [-1.0, -1.0, -1.0]


def test_old_import_path():
    from medmodal.models.endoscopy import blocks

    assert blocks.FeatureStatisticsShift is FeatureStatisticsShift and blocks.grad_reverse is grad_reverse
