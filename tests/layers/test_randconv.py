"""medmodal.layers.randconv: random convolutions (Xu et al., ICLR 2021)."""

from __future__ import annotations

import pytest
import torch

from medmodal.layers.randconv import RandConv


def _images(b=4, c=3, s=24):
    return torch.rand(b, c, s, s, generator=torch.Generator().manual_seed(1))


def test_shape_range_and_change():
    x = _images()
    y = RandConv(seed=0, conv_weight=1.0).train()(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    lo, hi = x.amin(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3))
    assert torch.all(y.amin(dim=(1, 2, 3)) >= lo - 1e-5) and torch.all(y.amax(dim=(1, 2, 3)) <= hi + 1e-5)
    # renormalised to each image's own range
    assert torch.allclose(y.amin(dim=(1, 2, 3)), lo, atol=1e-5) and torch.allclose(y.amax(dim=(1, 2, 3)), hi, atol=1e-5)


def test_determinism_by_seed_and_redraw_per_batch():
    x = _images()
    a, b = RandConv(seed=3).train(), RandConv(seed=3).train()
    y1, y2 = a(x), b(x)
    assert torch.equal(y1, y2)
    assert not torch.equal(a(x), y1)  # weights re-drawn for the next batch
    assert not torch.equal(RandConv(seed=4).train()(x), y1)


def test_kernel_sizes_respected():
    seen = set()
    rc = RandConv(seed=0).train()
    for _ in range(60):
        weight, w = rc.draw(3)
        assert weight.shape[:2] == (3, 3) and weight.shape[-1] == weight.shape[-2]
        assert 0 <= w <= 1
        seen.add(weight.shape[-1])
    assert seen == {1, 3, 5, 7}
    rc5 = RandConv(kernel_sizes=(5,), seed=0).train()
    rc5(_images())
    assert rc5.last_kernel_size == 5
    # Kaiming normal: std 1 / sqrt(C k^2)
    ws = torch.cat([RandConv(kernel_sizes=(7,), seed=s).draw(3)[0].flatten() for s in range(20)])
    assert abs(ws.std().item() - (1 / (3 * 49)) ** 0.5) < 0.01


def test_identity_when_weight_zero_and_in_eval():
    x = _images()
    assert torch.equal(RandConv(conv_weight=0.0).train()(x), x)
    assert torch.equal(RandConv().eval()(x), x)
    assert torch.equal(RandConv(p=0.0).train()(x), x)


def test_kernel_one_keeps_structure():
    # a 1x1 random conv maps colours pixel-wise: a binary pattern's edges stay where they are
    x = torch.zeros(1, 3, 16, 16)
    x[:, :, 4:12, 6:10] = 1
    y = RandConv(kernel_sizes=(1,), conv_weight=1.0, seed=0).train()(x)
    inside = y[0, :, 4:12, 6:10].flatten(1)
    assert torch.allclose(inside, inside[:, :1].expand_as(inside))


def test_bad_arguments():
    with pytest.raises(ValueError):
        RandConv(kernel_sizes=(2,))
    with pytest.raises(ValueError):
        RandConv(conv_weight=1.5)
