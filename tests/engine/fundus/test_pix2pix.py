"""train_pix2pix on synthetic twins (tiny, CPU) and render_pseudo_fundus from space-colonisation trees."""

import numpy as np
import pytest

from medmodal.data.fundus.geometry import FundusGeometry
from medmodal.data.fundus.synthetic import synth_fundus
from medmodal.data.fundus.vessel_tree import grow_vessel_tree, rasterise_tree
from medmodal.engine.fundus import Pix2PixSettings, pairs_from_arrays, train_pix2pix
from medmodal.errors import ConfigError
from medmodal.inference.pix2pix import render_pseudo_fundus

GEOMETRY = FundusGeometry(target_diameter=52, margin=4, divisor=16)  # 64 px twins -> a 64 x 64 grid
SETTINGS = dict(steps=20, batch_size=4, base_width=16, depth=4, disc_width=16, log_every=5, seed=0)


@pytest.fixture(scope="module")
def pairs():
    twins = [synth_fundus(64, seed=s) for s in range(4)]
    return pairs_from_arrays([(image, label, fov) for image, label, _, fov in twins], GEOMETRY)


@pytest.fixture(scope="module")
def trained(pairs):
    history = []
    return train_pix2pix(pairs, Pix2PixSettings(**SETTINGS), history=history), history


def test_pairs_on_the_network_grid(pairs):
    assert len(pairs) == 4
    for p in pairs:
        assert p.image.shape == (64, 64, 3) and p.image.dtype == np.float32
        assert 0 <= p.image.min() and p.image.max() <= 1
        assert p.vessel.any() and not (p.vessel & ~p.fov).any()


def test_twenty_steps_reduce_the_l1_term(trained):
    _, history = trained
    assert [e["step"] for e in history] == [5, 10, 15, 20]
    first, last = history[0]["g_l1"], history[-1]["g_l1"]
    # measured (seed 0, CPU): 0.715, 0.681, 0.648, 0.616 (means of 5 steps, [-1, 1] units): last / first 0.86
    assert last < 0.93 * first, [e["g_l1"] for e in history]


def test_training_is_seeded(pairs, trained):
    generator, history = trained
    again = []
    other = train_pix2pix(pairs, Pix2PixSettings(**{**SETTINGS, "steps": 5}), history=again)
    assert again[0]["g_l1"] == pytest.approx(history[0]["g_l1"], rel=1e-5)
    assert other is not generator


def test_render_from_a_grown_tree(trained):
    generator, _ = trained
    raster = rasterise_tree(grow_vessel_tree(0), (64, 64), fov_radius_px=26)
    images = render_pseudo_fundus(generator, [raster, raster])
    assert images.shape == (2, 64, 64, 3) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    assert np.array_equal(images[0], images[1])  # eval mode: deterministic, batch-independent
    assert (images[0][~raster.fov] == 0).all()
    assert np.array_equal(images[:1], render_pseudo_fundus(generator, raster.mask[None], raster.fov[None]))
    noisy = render_pseudo_fundus(generator, [raster], dropout=True, seed=1)
    assert np.array_equal(noisy, render_pseudo_fundus(generator, [raster], dropout=True, seed=1))
    assert not generator.training
    with pytest.raises(ValueError, match="channels"):
        render_pseudo_fundus(generator, raster.mask[None])


def test_bad_settings_are_config_errors(pairs):
    with pytest.raises(ConfigError, match="steps"):
        train_pix2pix(pairs, Pix2PixSettings(steps=0))
    with pytest.raises(ConfigError, match="divisible"):
        train_pix2pix(pairs, Pix2PixSettings(steps=1, depth=7))
