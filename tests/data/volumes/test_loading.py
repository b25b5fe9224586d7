import gzip

import numpy as np
import pytest

from medmodal.data.volumes.layouts import Case, discover_cases
from medmodal.data.volumes.loading import CaseError, load_case
from medmodal.data.volumes.spec import BRATS2020
from tests.conftest import BRATS_REAL, TCGA_MAPPING, requires_real_data, save_nifti, tiny_volumes, write_brats2020_case


def _case(root, **kw):
    write_brats2020_case(root, "c0", **kw)
    (case,) = discover_cases(root)
    return case


def test_load_valid_case_maps_labels(tmp_path):
    loaded = load_case(_case(tmp_path), BRATS2020)
    assert loaded.image.shape == (4, 16, 16, 16) and loaded.image.dtype == np.float32
    assert loaded.present.tolist() == [True] * 4
    assert set(np.unique(loaded.label)) == {0, 1, 2, 3}  # file label 4 -> internal class 3
    assert loaded.spacing == (1.0, 1.0, 1.0)


def test_missing_sequence_is_zero_and_flagged(tmp_path):
    loaded = load_case(_case(tmp_path, skip=("t1ce",)), BRATS2020)
    assert loaded.present.tolist() == [True, True, False, True]
    assert not loaded.image[2].any()


def test_missing_file(tmp_path):
    case = _case(tmp_path)
    case.images["t2"].unlink()
    with pytest.raises(CaseError, match=r"c0_t2.nii.gz: file not found"):
        load_case(case, BRATS2020)


def test_truncated_file(tmp_path):
    case = _case(tmp_path)
    path = case.images["t1"]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CaseError, match=r"c0_t1.nii.gz: cannot read NIfTI"):
        load_case(case, BRATS2020)


def test_not_a_nifti(tmp_path):
    case = _case(tmp_path)
    with gzip.open(case.images["flair"], "wb") as fh:
        fh.write(b"this is not an image" * 10)
    with pytest.raises(CaseError, match=r"c0_flair.nii.gz: cannot read NIfTI"):
        load_case(case, BRATS2020)


def test_shape_mismatch_names_both_files(tmp_path):
    case = _case(tmp_path)
    save_nifti(case.images["t2"], np.ones((16, 16, 12), np.int16))
    with pytest.raises(CaseError, match=r"c0_t2.nii.gz: shape \(16, 16, 12\) differs from c0_flair.nii.gz"):
        load_case(case, BRATS2020)


def test_affine_tolerance(tmp_path):
    case = _case(tmp_path)
    images, _ = tiny_volumes()
    tiny_shift = np.eye(4)
    tiny_shift[0, 3] = 1e-6  # what tools routinely disagree on: accepted
    save_nifti(case.images["t1"], images["t1"], tiny_shift)
    load_case(case, BRATS2020)
    big_shift = np.eye(4)
    big_shift[0, 3] = 2.0
    save_nifti(case.images["t1"], images["t1"], big_shift)
    with pytest.raises(CaseError, match=r"c0_t1.nii.gz: affine \(orientation/origin\) differs"):
        load_case(case, BRATS2020)
    spacing = np.diag([1.2, 1.0, 1.0, 1.0])
    save_nifti(case.images["t1"], images["t1"], spacing)
    with pytest.raises(CaseError, match=r"c0_t1.nii.gz: voxel spacing differs"):
        load_case(case, BRATS2020)
    load_case(case, BRATS2020, affine_tolerance=0.5)  # configurable (fraction of a voxel)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_voxels(tmp_path, bad):
    case = _case(tmp_path)
    images, _ = tiny_volumes()
    arr = images["t1ce"].astype(np.float32)
    arr[3, 3, 3] = bad
    save_nifti(case.images["t1ce"], arr)
    with pytest.raises(CaseError, match=r"c0_t1ce.nii.gz: 1 voxels are NaN or Inf"):
        load_case(case, BRATS2020)


def test_empty_sequence(tmp_path):
    case = _case(tmp_path)
    save_nifti(case.images["flair"], np.zeros((16, 16, 16), np.int16))
    with pytest.raises(CaseError, match=r"c0_flair.nii.gz: sequence is empty"):
        load_case(case, BRATS2020)


def test_label_values_outside_map(tmp_path):
    case = _case(tmp_path)
    _, seg = tiny_volumes()
    seg[0, 0, 0] = 3  # BraTS 2023 ET value in a BraTS 2020 file
    seg[0, 0, 1] = 7
    save_nifti(case.label, seg)
    with pytest.raises(CaseError, match=r"c0_seg.nii.gz: label values \[3, 7\] are not in the brats2020 label map"):
        load_case(case, BRATS2020)


def test_no_sequence_at_all(tmp_path):
    with pytest.raises(CaseError, match="case lonely: no sequence file found"):
        load_case(Case("lonely", {}, None), BRATS2020)


@requires_real_data
def test_real_cases_load():
    (tcga,) = discover_cases(BRATS_REAL / "TCGA-DU-7294", mapping=TCGA_MAPPING)
    loaded = load_case(tcga, BRATS2020)
    assert loaded.image.shape == (4, 240, 240, 155) and loaded.present.all()
    assert set(np.unique(loaded.label)) <= {0, 1, 2, 3} and (loaded.label == 2).sum() > 1000
    (gli,) = discover_cases(BRATS_REAL / "BraTS-GLI-00001-000")
    loaded = load_case(gli, BRATS2020)
    assert loaded.label is None and loaded.image.shape == (4, 240, 240, 155)
    assert np.isfinite(loaded.image).all() and all(loaded.image[i].any() for i in range(4))


# ------------------------------------------------------------------ issue 14: validation
def test_constant_sequence_is_refused_like_an_empty_one(tmp_path):
    """An all-ones T1 used to be accepted: its mask swallowed the background (WT 0.41, 3.4x the volume)."""
    case = _case(tmp_path)
    save_nifti(case.images["t1"], np.ones((16, 16, 16), np.int16))
    with pytest.raises(CaseError, match=r"c0_t1.nii.gz: sequence is constant \(every voxel is 1\): not an image"):
        load_case(case, BRATS2020)


def test_skip_invalid_treats_a_constant_sequence_as_missing(tmp_path):
    import warnings

    from medmodal.notices import InputWarning

    case = _case(tmp_path)
    save_nifti(case.images["t1"], np.full((16, 16, 16), 7, np.int16))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_case(case, BRATS2020, skip_invalid=True)
    assert loaded.present.tolist() == [True, False, True, True] and not loaded.image[1].any()
    assert loaded.skipped == {"t1": "sequence is constant (every voxel is 7): not an image"}
    (message,) = [str(w.message) for w in caught if issubclass(w.category, InputWarning)]
    assert "c0_t1.nii.gz" in message and "t1 treated as missing" in message
    for name in ("flair", "t1ce", "t2"):
        save_nifti(case.images[name], np.zeros((16, 16, 16), np.int16))
    with pytest.raises(CaseError, match="case c0: no usable sequence"):
        load_case(case, BRATS2020, skip_invalid=True)


def test_affine_tolerance_is_relative_to_the_voxel_size(tmp_path):
    """A 1.65e-4 mm header difference on a 2.5 mm axis is noise (it used to be refused)."""
    images, seg = tiny_volumes()
    folder = tmp_path / "c1"
    grid = np.diag([2.5, 2.5, 2.5, 1.0])
    for name, img in images.items():
        save_nifti(folder / f"c1_{name}.nii.gz", img, grid)
    save_nifti(folder / "c1_seg.nii.gz", seg, grid)
    noisy = grid.copy()
    noisy[2, 2] += 1.65e-4
    noisy[0, 3] = 1.65e-4
    save_nifti(folder / "c1_t2.nii.gz", images["t2"], noisy)
    (case,) = discover_cases(folder)
    assert load_case(case, BRATS2020).present.all()
    shifted = grid.copy()
    shifted[0, 3] = 0.05  # 2 % of a voxel: a real difference at the default 0.1 %
    save_nifti(folder / "c1_t2.nii.gz", images["t2"], shifted)
    with pytest.raises(CaseError) as err:
        load_case(case, BRATS2020)
    message = str(err.value)
    assert "c1_t2.nii.gz: affine (orientation/origin) differs from c1_flair.nii.gz by up to 0.05 mm" in message
    assert "tolerance 0.0025 mm = 0.001 of a voxel; spacing 2.5 x 2.5 x 2.5 vs 2.5 x 2.5 x 2.5 mm" in message
    assert "np.float" not in message and "--affine-tolerance" in message
    assert load_case(case, BRATS2020, affine_tolerance=0.05).present.all()
