"""Space-colonisation vessel trees (issue 27): vectorised == reference, anatomy, calibre, rasterisation."""

import numpy as np
import pytest

from medmodal.data.fundus.vessel_tree import (VesselTreeParams, grow_vessel_tree, grow_vessel_tree_reference,
                                               rasterise_tree)
from medmodal.errors import ConfigError

SMALL = dict(n_attractors=400)
CASES = [
    (0, dict(SMALL)),
    (1, dict(SMALL)),
    (7, dict(n_attractors=300, step=0.03, kill_radius=0.05, influence_radius=0.2)),
    (3, dict(n_attractors=500, disc_center=(-0.5, 0.1), fovea_radius=0.0, max_iterations=40)),
    (11, dict(n_attractors=250, influence_radius=0.5, kill_radius=0.02, step=0.015, murray_exponent=2.7)),
]


@pytest.fixture(scope="module")
def tree():
    return grow_vessel_tree(5, n_attractors=600)


@pytest.mark.parametrize("seed,kw", CASES)
def test_vectorised_equals_reference(seed, kw):
    a = grow_vessel_tree(seed, **kw)
    b = grow_vessel_tree_reference(seed, **kw)
    assert len(a) > 50
    assert a.iterations == b.iterations
    for name in ("positions", "parent", "radius", "generation", "trunk", "attractors"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.same_as(b)


def test_deterministic_by_seed():
    a, b, c = grow_vessel_tree(4, **SMALL), grow_vessel_tree(4, **SMALL), grow_vessel_tree(5, **SMALL)
    assert a.same_as(b)
    assert not (len(a) == len(c) and np.array_equal(a.positions, c.positions))


def test_params_object_and_overrides_agree():
    p = VesselTreeParams(n_attractors=300, step=0.025)
    assert grow_vessel_tree(2, p).same_as(grow_vessel_tree(2, n_attractors=300, step=0.025))


def test_nodes_inside_fov_and_attractors_outside_disc(tree):
    p = tree.params
    assert np.hypot(*tree.positions.T).max() < 1 - p.fov_margin
    d = np.hypot(*(tree.attractors - np.asarray(p.disc_center)).T)
    assert d.min() > p.disc_radius
    assert np.hypot(*(tree.attractors - np.asarray(p.fovea_center)).T).min() > p.fovea_radius


def test_tree_is_connected_with_roots_at_disc(tree):
    p = tree.params
    parent = tree.parent
    roots = np.flatnonzero(parent < 0)
    assert roots.tolist() == [0, 1]
    assert np.hypot(*(tree.positions[roots] - np.asarray(p.disc_center)).T).max() < p.disc_radius
    i = np.arange(len(parent))
    assert ((parent >= 0) & (parent < i)).sum() == len(parent) - 2          # parent precedes child
    steps = np.hypot(*(tree.positions[2:] - tree.positions[parent[2:]]).T)
    np.testing.assert_allclose(steps, p.step, rtol=1e-9)
    assert set(np.unique(tree.trunk)) == {0, 1}
    np.testing.assert_array_equal(tree.trunk[2:], tree.trunk[parent[2:]])  # a branch stays on its arcade
    # both arcades leave the disc
    for t in (0, 1):
        far = np.hypot(*(tree.positions[tree.trunk == t] - np.asarray(p.disc_center)).T).max()
        assert far > 3 * p.disc_radius


def test_calibre_and_generation_along_paths(tree):
    p = tree.params
    child = np.flatnonzero(tree.parent >= 0)
    assert (tree.radius[child] <= tree.radius[tree.parent[child]]).all()
    assert (tree.generation[child] >= tree.generation[tree.parent[child]]).all()
    leaves = np.setdiff1d(np.arange(len(tree)), tree.parent)
    np.testing.assert_allclose(tree.radius[leaves], p.tip_radius)
    assert tree.radius.max() <= p.max_radius
    assert tree.radius[:2].min() > 3 * p.tip_radius
    # Murray's law at an uncapped bifurcation
    n_children = np.bincount(tree.parent[child], minlength=len(tree))
    fork = np.flatnonzero((n_children >= 2) & (tree.radius < p.max_radius))[0]
    kids = child[tree.parent[child] == fork]
    np.testing.assert_allclose(tree.radius[fork] ** 3, (tree.radius[kids] ** 3).sum(), rtol=1e-9)


def test_rasterisation_consistent_across_sizes(tree):
    small = rasterise_tree(tree, (160, 160))
    big = rasterise_tree(tree, (320, 320), soft=True)
    assert small.mask.shape == (160, 160) and small.mask.dtype == np.uint8
    assert set(np.unique(small.mask)) == {0, 1}
    assert 0.03 < small.mask[small.fov].mean() < 0.4
    assert not small.mask[~small.fov].any()
    down = big.mask.reshape(160, 2, 160, 2).mean(axis=(1, 3)) >= 0.5
    dice = 2 * (down & (small.mask > 0)).sum() / (down.sum() + small.mask.sum())
    assert dice > 0.8
    assert big.soft.shape == (320, 320) and big.soft.dtype == np.float32
    assert 0 <= big.soft.min() and big.soft.max() <= 1
    assert 0 < ((big.soft > 0) & (big.soft < 1)).sum()                  # anti-aliased edges
    dice_soft = 2 * ((big.soft >= 0.5) & (big.mask > 0)).sum() / ((big.soft >= 0.5).sum() + big.mask.sum())
    assert dice_soft > 0.7
    # a non-square image keeps the FOV centred
    wide = rasterise_tree(tree, (100, 140))
    assert wide.fov[:, :20].sum() == 0 and wide.fov[:, 20:120].any()


@pytest.mark.parametrize("kw", [
    dict(n_attractors=0), dict(n_attractors=2.5), dict(step=0), dict(step=-0.1), dict(kill_radius=float("nan")),
    dict(kill_radius=0.3, influence_radius=0.2), dict(step=0.3, influence_radius=0.25), dict(disc_center=(0.95, 0)),
    dict(disc_center="left"), dict(fov_margin=1.0), dict(tip_radius=0.02, max_radius=0.01), dict(max_iterations=0),
    dict(murray_exponent=0), dict(no_such_parameter=1),
])
def test_bad_parameters_raise_config_error(kw):
    with pytest.raises(ConfigError):
        grow_vessel_tree(0, **kw)
    with pytest.raises(ConfigError):
        grow_vessel_tree_reference(0, **kw)


@pytest.mark.parametrize("kw", [dict(shape=(0, 10)), dict(shape="big"), dict(shape=(10, 10), fov_radius_px=-1),
                                dict(shape=(10, 10), supersample=0), dict(shape=(10, 10), min_width_px=-1)])
def test_bad_raster_arguments_raise_config_error(tree, kw):
    with pytest.raises(ConfigError):
        rasterise_tree(tree, **kw)
