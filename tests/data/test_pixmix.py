"""medmodal.data.pixmix: procedural mixing set and photometric PixMix."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from medmodal.data.pixmix import MIXING_KINDS, PHOTOMETRIC_OPS, MixingSet, PixMix, mixing_picture


@pytest.fixture(scope="module")
def small_set():
    return MixingSet(n=8, size=48, seed=0)


def _pattern(s=32):
    x = torch.full((3, s, s), 0.2)
    x[:, 8:24, 10:14] = 0.8
    x[:, 14:18, 4:28] = 0.8
    return x


@pytest.mark.parametrize("kind", MIXING_KINDS)
def test_mixing_picture_deterministic_any_size(kind):
    a = mixing_picture(kind, (40, 56), seed=5)
    assert a.shape == (3, 40, 56) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1 and a.std() > 0.01
    assert np.array_equal(a, mixing_picture(kind, (40, 56), seed=5))
    assert not np.array_equal(a, mixing_picture(kind, (40, 56), seed=6))


def test_mixing_set_varied_and_deterministic(small_set):
    pics = [small_set[i] for i in range(len(small_set))]
    again = MixingSet(n=8, size=48, seed=0)
    assert all(torch.equal(p, again[i]) for i, p in enumerate(pics))
    for a, b in itertools.combinations(pics, 2):
        assert (a - b).abs().mean() > 0.02
    other = MixingSet(n=8, size=48, seed=1)
    assert not torch.equal(other[0], pics[0])
    s = small_set.sample((20, 30), np.random.default_rng(0))
    assert s.shape == (3, 20, 30) and 0 <= s.min() and s.max() <= 1


def test_pixmix_deterministic_shape_range(small_set):
    pm = PixMix(small_set)
    x = torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(0))
    outs = [pm(x, seed) for seed in range(12)]
    for y in outs:
        assert y.shape == x.shape and y.dtype == x.dtype
        assert y.min() >= 0 and y.max() <= 1 and not torch.isnan(y).any()
    assert torch.equal(pm(x, 3), outs[3])
    assert torch.equal(pm(x, np.random.default_rng(3)), outs[3])
    assert sum(not torch.equal(y, x) for y in outs) >= 8
    grey = PixMix(small_set)(x[:1], 1)
    assert grey.shape == (1, 32, 40)


class _ConstantSet(MixingSet):
    def sample(self, shape, rng):
        return torch.full((3, *shape), float(rng.uniform(0.05, 0.95)))


def test_pixmix_moves_no_pixel():
    # with constant mixing pictures, PixMix is a pixel-wise intensity map: every pixel of one input
    # value ends at one output value, so the pattern (and a label drawn on it) keeps its position
    x = _pattern()
    pm = PixMix(_ConstantSet(n=1, size=4), k=4)
    fg = x[0] > 0.5
    for seed in range(20):
        y = pm(x, seed)
        for region in (fg, ~fg):
            vals = y[:, region]
            assert torch.allclose(vals, vals[:, :1].expand_as(vals), atol=1e-6)


def _grad(img):
    g = img.mean(0)
    gy, gx = torch.zeros_like(g), torch.zeros_like(g)
    gy[1:] = (g[1:] - g[:-1]).abs()
    gx[:, 1:] = (g[:, 1:] - g[:, :-1]).abs()
    return gx + gy


def test_pixmix_edges_stay_in_place(small_set):
    # with the real (textured) mixing set the pattern's edges stay where they were: the gradient
    # map correlates with the input's far more than with the input shifted by 3 pixels
    x = _pattern()
    g0 = _grad(x).flatten()
    shifted = _grad(torch.roll(x, 3, dims=-1)).flatten()
    pm = PixMix(small_set)
    same, moved = [], []
    for seed in range(30):
        g = _grad(pm(x, seed)).flatten()
        if g.std() == 0:
            continue
        same.append(torch.corrcoef(torch.stack([g, g0]))[0, 1].item())
        moved.append(torch.corrcoef(torch.stack([g, shifted]))[0, 1].item())
    assert np.mean(same) > 0.5 and np.mean(same) > np.mean(moved) + 0.3


def test_photometric_ops_pixelwise():
    x = _pattern()
    rng = np.random.default_rng(0)
    for name, op in PHOTOMETRIC_OPS.items():
        y = op(x, 3.0, rng)
        assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1, name


def test_bad_arguments(small_set):
    with pytest.raises(ValueError):
        mixing_picture("mandelbrot", 8)
    with pytest.raises(ValueError):
        PixMix(small_set, ops=("rotate",))
    with pytest.raises(ValueError):
        PixMix(small_set)(torch.rand(2, 3, 8, 8))


def test_mixing_set_pickles(small_set):
    import pickle

    clone = pickle.loads(pickle.dumps(small_set))
    assert torch.equal(clone[2], small_set[2])
