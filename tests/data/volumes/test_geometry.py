"""Training geometry (issue 14, section 1): orientation and spacing, 3-D and 2-D (MyoPS) stacks."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from nibabel import orientations as ornt

from medmodal.data.volumes.geometry import Geometry, parse_orientation, plan_grid, training_geometry
from medmodal.data.volumes.layouts import discover_cases
from medmodal.data.volumes.loading import load_case
from medmodal.data.volumes.preprocess import PreprocessedCache, preprocess
from medmodal.data.volumes.spec import BRATS2020, MYOPS2020
from medmodal.notices import InputWarning
from tests.conftest import save_nifti, tiny_volumes

RAS_1MM = Geometry(("R", "A", "S"), (1.0, 1.0, 1.0))


def stored_as(img: nib.Nifti1Image, codes: str) -> nib.Nifti1Image:
    """The same voxels in another voxel order (world coordinates unchanged)."""
    transform = ornt.ornt_transform(ornt.io_orientation(img.affine), ornt.axcodes2ornt(tuple(codes)))
    return img.as_reoriented(transform)


def write_case(root, case_id, images, seg, affine):
    folder = root / case_id
    for name, array in images.items():
        save_nifti(folder / f"{case_id}_{name}.nii.gz", array, affine)
    save_nifti(folder / f"{case_id}_seg.nii.gz", seg, affine)
    (case,) = discover_cases(folder)
    return case


def oriented_case(root, codes, shape=(16, 18, 20)):
    """The tiny case stored in ``codes`` order (RAS 1 mm grid reoriented by nibabel)."""
    images, seg = tiny_volumes(shape)
    ras = np.diag([1.0, 1.0, 1.0, 1.0])
    out = {n: np.asarray(stored_as(nib.Nifti1Image(a, ras), codes).dataobj) for n, a in images.items()}
    seg_img = stored_as(nib.Nifti1Image(seg, ras), codes)
    return write_case(root, f"case_{codes}", out, np.asarray(seg_img.dataobj), seg_img.affine)


def test_parse_orientation():
    assert parse_orientation("lps") == ("L", "P", "S") and parse_orientation(["P", "I", "R"]) == ("P", "I", "R")
    for bad in ("LRS", "RA", "XYZ"):
        with pytest.raises(ValueError, match="must name each of L/R, A/P, I/S once"):
            parse_orientation(bad)


def test_same_geometry_is_not_touched(tmp_path):
    """A case already in the training geometry (spacing within 1 %) is bit-identical to no geometry at all."""
    images, seg = tiny_volumes()
    case = write_case(tmp_path, "c", images, seg, np.diag([1.004, 1.0, 0.996, 1.0]))
    loaded = load_case(case, BRATS2020)
    plain, with_geometry = preprocess(loaded), preprocess(loaded, geometry=RAS_1MM)
    assert with_geometry.grid.identity and with_geometry.native_label is None
    np.testing.assert_array_equal(plain.image, with_geometry.image)
    np.testing.assert_array_equal(plain.label, with_geometry.label)
    assert plain.spacing == with_geometry.spacing == loaded.spacing


def test_three_orientations_give_the_same_working_arrays(tmp_path):
    """LPS, RAS and PIR copies of one case: identical network inputs and labels after reorientation."""
    results = {}
    for codes in ("LPS", "RAS", "PIR"):
        case = oriented_case(tmp_path, codes)
        assert nib.aff2axcodes(nib.load(str(case.images["flair"])).affine) == tuple(codes)
        pre = preprocess(load_case(case, BRATS2020), geometry=RAS_1MM)
        assert pre.grid.reoriented == (codes != "RAS") and not pre.grid.resampled
        results[codes] = pre
    for codes in ("LPS", "PIR"):
        np.testing.assert_array_equal(results[codes].image, results["RAS"].image)
        np.testing.assert_array_equal(results[codes].label, results["RAS"].label)
        native = results[codes].native_label
        probs = np.eye(4, dtype=np.float32)[results[codes].label].transpose(3, 0, 1, 2)  # one-hot on the crop
        full = np.zeros((4, *results[codes].original_shape), np.float32)
        full[0] = 1
        full[(slice(None), *(slice(a, b) for a, b in results[codes].bbox))] = probs
        back = results[codes].grid.probabilities_to_native(full).argmax(0)
        np.testing.assert_array_equal(back, native)  # exact round trip to the stored voxel order


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_half_and_double_spacing_are_resampled_to_the_training_spacing(tmp_path, factor):
    """A case at half / double the training spacing reaches the network on the training grid."""
    images, seg = tiny_volumes((24, 24, 24))
    native = preprocess(load_case(write_case(tmp_path, "native", images, seg, np.eye(4)), BRATS2020),
                        geometry=RAS_1MM)
    from scipy import ndimage

    zoom = 1 / factor
    moved_images = {n: ndimage.zoom(a.astype(np.float32), zoom, order=1, grid_mode=True, mode="nearest")
                    for n, a in images.items()}
    moved_seg = ndimage.zoom(seg, zoom, order=0, grid_mode=True, mode="nearest")
    case = write_case(tmp_path, f"x{factor}", moved_images, moved_seg, np.diag([factor] * 3 + [1.0]))
    pre = preprocess(load_case(case, BRATS2020), geometry=RAS_1MM)
    assert pre.grid.resampled and pre.original_shape == (24, 24, 24)
    assert pre.spacing == pytest.approx((1.0, 1.0, 1.0))
    assert abs(np.array(pre.image.shape[1:]) - np.array(native.image.shape[1:])).max() <= 2
    assert pre.native_label.shape == moved_seg.shape
    assert 0.8 < (pre.label > 0).sum() / (native.label > 0).sum() < 1.25  # the tumour keeps its size in voxels


def _myops_affine(in_plane, slice_mm, tilt_deg=0.0):
    """A short-axis stack: in-plane pixels, thick slices; ``tilt_deg`` rotates the stack (oblique)."""
    t = np.deg2rad(tilt_deg)
    rotation = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([in_plane, in_plane, slice_mm])
    return affine


def test_myops_stacks_are_resampled_in_plane_only():
    """0.73 mm pixels and 10-20 mm slices: the training geometry keeps slices; resampling is in-plane."""
    affines = [_myops_affine(0.73, 10.0), _myops_affine(0.75, 15.0), _myops_affine(0.80, 20.0)]
    geometry = training_geometry(affines, spatial_dims=2)
    assert geometry.spacing == (0.75, 0.75, None) and geometry.axcodes == ("R", "A", "S")
    grid = plan_grid(affines[0], (256, 256, 9), geometry)
    assert grid.resampled and grid.working_shape == (249, 249, 9)  # round(256 * 0.73 / 0.75), slices kept
    assert grid.working_spacing[2] == 10.0
    stack = np.random.default_rng(0).normal(size=(1, 256, 256, 9)).astype(np.float32)
    working = grid.image_to_working(stack)
    assert working.shape == (1, 249, 249, 9)
    probs = np.random.default_rng(1).random((6, 249, 249, 9)).astype(np.float32)
    assert grid.probabilities_to_native(probs).shape == (6, 256, 256, 9)


def test_oblique_myops_stack_keeps_its_slice_axis_last():
    """A stack tilted so that its slice direction is closer to another world axis: never permuted."""
    geometry = Geometry(("R", "A", "S"), (0.75, 0.75, None), spatial_dims=2)
    oblique = _myops_affine(0.75, 12.0, tilt_deg=70)  # slice normal now closest to A/P
    assert nib.aff2axcodes(oblique)[2] in "AP"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grid = plan_grid(oblique, (128, 128, 8), geometry, case_id="Case3001")
    assert not grid.reoriented and grid.working_shape == (128, 128, 8)
    (message,) = [str(w.message) for w in caught if issubclass(w.category, InputWarning)]
    assert message.startswith("case Case3001: in-plane axes") and "kept as stored" in message
    # a stack stored with its first in-plane axis reversed and slices running I->S or S->I:
    # the in-plane flip is undone, the slice order is left alone (a 2-D model does not care)
    for slice_sign in (1, -1):
        reversed_x = _myops_affine(0.75, 12.0) @ np.diag([-1, 1, slice_sign, 1])
        grid = plan_grid(reversed_x, (128, 128, 8), geometry)
        assert grid.reoriented and grid.transform.tolist() == [[0, -1], [1, 1], [2, 1]]


def test_training_geometry_majority_orientation_and_median_spacing():
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    affines = [lps, lps @ np.diag([1.0, 1.0, 1.5, 1.0]), np.diag([0.5, 0.5, 0.5, 1.0])]
    geometry = training_geometry(affines)
    assert geometry.axcodes == ("L", "P", "S") and geometry.spacing == (1.0, 1.0, 1.0)
    chosen = training_geometry(affines, orientation="RAS", spacing=[2, 2, 2])
    assert chosen == Geometry(("R", "A", "S"), (2.0, 2.0, 2.0))
    assert Geometry.from_dict(geometry.to_dict()) == geometry


def test_cache_key_includes_the_target_geometry(tmp_path):
    case = oriented_case(tmp_path / "data", "LPS")
    stored = PreprocessedCache(tmp_path / "cache", BRATS2020)
    lps = PreprocessedCache(tmp_path / "cache", BRATS2020, geometry=Geometry(("L", "P", "S"), (1.0, 1.0, 1.0)))
    ras = PreprocessedCache(tmp_path / "cache", BRATS2020, geometry=RAS_1MM)
    stored.build(case)
    assert stored.is_cached(case) and lps.is_cached(case)  # same arrays: the entry is shared
    assert not ras.is_cached(case)
    pre = ras.get(case)
    assert pre.grid.reoriented and pre.native_label is not None and ras.is_cached(case) and not stored.is_cached(case)


def test_myops_case_with_native_label_through_the_cache(tmp_path):
    affine = _myops_affine(0.73, 10.0)
    rng = np.random.default_rng(0)
    folder = tmp_path / "Case3001"
    for key in ("C0", "LGE", "T2"):
        save_nifti(folder / f"Case3001_{key}.nii.gz", rng.normal(100, 10, (40, 40, 4)).astype(np.float32), affine)
    gd = np.zeros((40, 40, 4), np.uint16)
    gd[10:30, 10:30] = 500
    save_nifti(folder / "Case3001_gd.nii.gz", gd, affine)
    (case,) = discover_cases(folder)
    cache = PreprocessedCache(tmp_path / "cache", MYOPS2020, geometry=Geometry(("R", "A", "S"), (1.46, 1.46, None), 2))
    pre = cache.get(case)
    assert pre.image.shape[1:] == (20, 20, 4) and pre.native_label.shape == (40, 40, 4)


def test_describe_names_the_spacing_kept_as_stored():
    assert Geometry(("R", "A", "S"), (1.0, 1.0, 1.0)).describe() == "RAS, 1 x 1 x 1 mm"
    slices = Geometry(("R", "A", "S"), (2.5, 2.5, None), spatial_dims=2).describe()
    assert slices == "RAS, 2.5 x 2.5 mm in-plane, slice spacing as stored"
    assert Geometry(("L", "P", "S"), (None, None, None)).describe() == "LPS, spacing as stored"
