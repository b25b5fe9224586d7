"""Region metrics on hand-made volumes with answers worked out by hand."""

import dataclasses

import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance

from medmodal.data.volumes.spec import BRATS2020
from medmodal.evaluation.metrics import HD95_PENALTY, classes_to_regions, region_metrics
from medmodal.inference import postprocess_et

SHAPE = (20, 20, 20)
WT, TC, ET = "WT", "TC", "ET"


def cube(lo, size=8, cls=2, shape=SHAPE):
    """Class map with one cube of class ``cls`` whose low corner is ``lo``."""
    out = np.zeros(shape, np.uint8)
    out[tuple(slice(start, start + size) for start in lo)] = cls
    return out


def test_hd95_penalty_is_the_brats_volume_diagonal():
    assert HD95_PENALTY == pytest.approx(np.sqrt(240**2 + 240**2 + 155**2), abs=0.005)


def test_classes_to_regions_brats():
    classes = np.array([[0, 1], [2, 3]], np.uint8)
    regions = classes_to_regions(classes, BRATS2020)
    assert regions.shape == (3, 2, 2) and regions.dtype == bool
    # class 1 (necrosis): WT, TC; class 2 (edema): WT only; class 3 (enhancing): WT, TC, ET.
    np.testing.assert_array_equal(regions[0], [[False, True], [True, True]])
    np.testing.assert_array_equal(regions[1], [[False, True], [False, True]])
    np.testing.assert_array_equal(regions[2], [[False, False], [False, True]])
    np.testing.assert_array_equal(classes_to_regions(torch.from_numpy(classes), BRATS2020), regions)


def test_classes_to_regions_rejects_bad_values():
    with pytest.raises(ValueError, match="0..3"):
        classes_to_regions(np.array([0, 4]), BRATS2020)  # file label 4, not an internal class
    with pytest.raises(TypeError):
        classes_to_regions(np.array([0.0, 1.0]), BRATS2020)


def test_overlapping_cubes_exact_dice():
    ref, pred = cube((4, 4, 4)), cube((7, 5, 4))  # shifted by 3 and 1 voxels
    a, b = ref > 0, pred > 0
    expected = 2 * (a & b).sum() / (a.sum() + b.sum())  # 2 * 5*7*8 / (512 + 512)
    assert expected == pytest.approx(0.546875)
    scores = region_metrics(pred, ref, BRATS2020)
    assert scores["Dice_WT"] == pytest.approx(expected, abs=1e-6)
    # edema only: TC and ET are empty in both -> BraTS convention Dice 1, HD95 0
    assert scores["Dice_TC"] == scores["Dice_ET"] == 1.0
    assert scores["HD95_TC"] == scores["HD95_ET"] == 0.0
    assert list(scores) == ["Dice_WT", "Dice_TC", "Dice_ET", "HD95_WT", "HD95_TC", "HD95_ET"]


def test_regions_combine_classes():
    ref = cube((4, 4, 4), cls=1)  # necrosis: WT + TC
    pred = cube((4, 4, 4), cls=3)  # enhancing: WT + TC + ET
    scores = region_metrics(pred, ref, BRATS2020)
    assert scores["Dice_WT"] == scores["Dice_TC"] == pytest.approx(1.0)
    assert scores["HD95_WT"] == scores["HD95_TC"] == 0.0
    assert scores["Dice_ET"] == 0.0 and scores["HD95_ET"] == HD95_PENALTY  # ET predicted, none in reference


def test_identical_masks():
    ref = cube((3, 4, 5), size=10, cls=2)
    ref[6:10, 7:11, 8:12] = 1
    ref[7:9, 8:10, 9:11] = 3
    scores = region_metrics(ref.copy(), ref, BRATS2020, spacing=(1.0, 1.2, 3.0), et_min_voxels=0)
    for region in (WT, TC, ET):
        assert scores[f"Dice_{region}"] == pytest.approx(1.0)
        assert scores[f"HD95_{region}"] == 0.0


@pytest.mark.parametrize("axis, shift, spacing", [
    (0, 3, (1.0, 1.0, 1.0)),
    (1, 1, (1.0, 1.0, 1.0)),
    (2, 2, (0.5, 1.0, 2.5)),  # anisotropic: 2 voxels of 2.5 mm
    (0, 3, (0.5, 1.0, 2.5)),  # anisotropic: 3 voxels of 0.5 mm
])
def test_shifted_cube_hd95_is_the_shift(axis, shift, spacing):
    lo = [4, 4, 4]
    moved = list(lo)
    moved[axis] += shift
    scores = region_metrics(cube(moved), cube(lo), BRATS2020, spacing=spacing)
    assert scores["HD95_WT"] == pytest.approx(shift * spacing[axis], abs=1e-5)
    assert scores["Dice_WT"] == pytest.approx((8 - shift) / 8)


def test_spacing_accepts_arrays_and_scalars():
    pred, ref = cube((6, 4, 4)), cube((4, 4, 4))
    assert region_metrics(pred, ref, BRATS2020, spacing=torch.tensor([2.0, 1.0, 1.0]))["HD95_WT"] == pytest.approx(4.0)
    assert region_metrics(pred, ref, BRATS2020, spacing=0.5)["HD95_WT"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="spatial dimensions"):
        region_metrics(pred, ref, BRATS2020, spacing=(1.0, 1.0))


def test_cube_at_the_volume_border():
    scores = region_metrics(cube((0, 0, 12)), cube((0, 0, 10)), BRATS2020)
    assert scores["HD95_WT"] == pytest.approx(2.0) and scores["Dice_WT"] == pytest.approx(0.75)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_matches_monai_on_the_whole_volume():
    """Cropping to the foreground box must not change anything."""
    rng = np.random.default_rng(0)
    ref = np.zeros(SHAPE, np.uint8)
    ref[3:15, 2:12, 5:18] = 2
    ref[6:11, 4:9, 8:13] = 3
    pred = ref.copy()
    flip = rng.random(SHAPE) < 0.05
    pred[flip] = rng.integers(0, 4, flip.sum())
    spacing = (1.0, 0.8, 2.0)
    scores = region_metrics(pred, ref, BRATS2020, spacing=spacing, et_min_voxels=0)
    one_hot = [torch.from_numpy(classes_to_regions(x, BRATS2020))[None].float() for x in (pred, ref)]
    full = compute_hausdorff_distance(*one_hot, include_background=True, percentile=95, spacing=spacing)[0]
    for i, region in enumerate((WT, TC, ET)):
        assert scores[f"HD95_{region}"] == pytest.approx(float(full[i]), abs=1e-5)
        p, r = one_hot[0][0, i].bool().numpy(), one_hot[1][0, i].bool().numpy()
        assert scores[f"Dice_{region}"] == pytest.approx(2 * (p & r).sum() / (p.sum() + r.sum()), abs=1e-6)


def test_empty_conventions():
    empty, tumour = np.zeros(SHAPE, np.uint8), cube((4, 4, 4), cls=3)
    both = region_metrics(empty, empty, BRATS2020)
    assert all(both[f"Dice_{r}"] == 1.0 and both[f"HD95_{r}"] == 0.0 for r in (WT, TC, ET))
    for pred, ref in ((empty, tumour), (tumour, empty)):
        one = region_metrics(pred, ref, BRATS2020)
        assert all(one[f"Dice_{r}"] == 0.0 and one[f"HD95_{r}"] == HD95_PENALTY for r in (WT, TC, ET))


def test_dice_only_and_shape_check():
    scores = region_metrics(cube((5, 4, 4)), cube((4, 4, 4)), BRATS2020, hd95=False)
    assert list(scores) == ["Dice_WT", "Dice_TC", "Dice_ET"]
    with pytest.raises(ValueError, match="shapes differ"):
        region_metrics(np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 5), np.uint8), BRATS2020)


def test_region_metrics_accepts_tensors():
    pred, ref = cube((5, 4, 4)), cube((4, 4, 4))
    from_tensors = region_metrics(torch.from_numpy(pred), torch.from_numpy(ref), BRATS2020)
    assert from_tensors == region_metrics(pred, ref, BRATS2020)


def _with_et(count):
    classes = cube((2, 2, 2), size=12, cls=2)
    classes.reshape(-1)[np.flatnonzero(classes.reshape(-1) == 2)[:count]] = 3
    return classes


def test_postprocess_et_below_threshold_relabels():
    classes = _with_et(499)
    out = postprocess_et(classes, BRATS2020, min_voxels=500)
    assert (out == 3).sum() == 0
    assert (out == 1).sum() == 499 and (out == 2).sum() == 12**3 - 499
    assert (classes == 3).sum() == 499  # input untouched


def test_postprocess_et_at_or_above_threshold_keeps():
    for count in (500, 800):
        classes = _with_et(count)
        np.testing.assert_array_equal(postprocess_et(classes, BRATS2020, min_voxels=500), classes)


def test_postprocess_et_disabled():
    classes = _with_et(10)
    np.testing.assert_array_equal(postprocess_et(classes, BRATS2020, min_voxels=0), classes)
    no_et = dataclasses.replace(BRATS2020, name="no-et", et_class=None)
    np.testing.assert_array_equal(postprocess_et(classes, no_et, min_voxels=500), classes)
    other = dataclasses.replace(BRATS2020, name="other", et_replacement=2)
    assert set(np.unique(postprocess_et(classes, other, min_voxels=500))) == {0, 2}
