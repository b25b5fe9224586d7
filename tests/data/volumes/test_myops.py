"""MyoPS 2020: spec, both on-disk layouts, label mapping, synthetic generator, 2-D slice dataset."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from medmodal.data.volumes.dataset import MissingProtocol
from medmodal.data.volumes.layouts import LayoutError, detect_layout, discover_cases
from medmodal.data.volumes.loading import CaseError, load_case
from medmodal.data.volumes.preprocess import PreprocessedCache
from medmodal.data.volumes.slices import SliceDataset
from medmodal.data.volumes.spec import MYOPS2020, get_spec
from medmodal.data.volumes.synthetic_myops import synth_myops, synth_myops_case
from tests.conftest import save_nifti

SIZE = (64, 64)
SLICES = 5
NUM_CASES = 3
IDS = [f"myops_training_{101 + i}" for i in range(NUM_CASES)]


@pytest.fixture(scope="module")
def flat_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("myops") / "MyoPS2020"
    assert synth_myops(root, num_cases=NUM_CASES, size=SIZE, slices=SLICES, seed=0) == IDS
    return root


@pytest.fixture
def per_case_root(flat_root, tmp_path):
    """The same files, one folder per case."""
    root = tmp_path / "per_case"
    for path in [*(flat_root / "train25").iterdir(), *(flat_root / "train25_myops_gd").iterdir()]:
        case_id = path.name.rsplit("_", 1)[0]
        (root / case_id).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / case_id / path.name)
    return root


# --------------------------------------------------------------------------- spec and layouts
def test_spec_registered():
    spec = get_spec("myops2020")
    assert spec is MYOPS2020 and spec.modalities == ("c0", "de", "t2")
    assert spec.num_classes == 6 and spec.spatial_dims == 2 and spec.normalization == "volume"
    assert spec.regions["Scar"] == (5,) and spec.regions["Edema+Scar"] == (4, 5)
    assert set(spec.regions) == {"Scar", "Edema+Scar", "LV", "Myo", "RV"} and spec.et_class is None
    # MyoPS 2020: 500 = LV blood pool, 200 = LV (normal) myocardium, 600 = RV blood pool
    values = np.array([0, 500, 200, 600, 1220, 2221])
    np.testing.assert_array_equal(spec.encode_labels(values), [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(spec.decode_labels(np.arange(6)), values)
    assert spec.class_names[spec.source_labels[500]] == "lv_blood_pool"
    assert spec.class_names[spec.source_labels[200]] == "lv_myocardium"
    assert spec.decode_labels(np.arange(6)).dtype == np.uint16


def test_flat_official_layout(flat_root):
    assert sorted(p.name for p in flat_root.iterdir()) == ["train25", "train25_myops_gd"]
    assert detect_layout(flat_root) == "myops2020"
    for layout in ("auto", "myops2020"):
        cases = discover_cases(flat_root, layout=layout)
        assert [c.case_id for c in cases] == IDS
        for case in cases:
            assert case.layout == "myops2020" and case.source_labels == "myops2020"
            assert {k: p.name for k, p in case.images.items()} == {
                "c0": f"{case.case_id}_C0.nii.gz", "de": f"{case.case_id}_DE.nii.gz", "t2": f"{case.case_id}_T2.nii.gz"}
            assert case.label.parent.name == "train25_myops_gd" and case.label.name == f"{case.case_id}_gd.nii.gz"
            assert case.extra["folder"] == "train25"
    # pointing at the image folder itself: labels are found in the sibling <folder>_myops_gd
    cases = discover_cases(flat_root / "train25")
    assert [c.case_id for c in cases] == IDS and all(c.label is not None for c in cases)


def test_per_case_layout_and_single_case(per_case_root):
    cases = discover_cases(per_case_root)
    assert [c.case_id for c in cases] == IDS
    assert all(set(c.images) == {"c0", "de", "t2"} and c.label.parent.name == c.case_id for c in cases)
    (single,) = discover_cases(per_case_root / IDS[1])
    assert single.case_id == IDS[1] and single.layout == "myops2020"


def test_missing_sequence_test_split_and_duplicates(flat_root, tmp_path):
    root = tmp_path / "d"
    (root / "test20").mkdir(parents=True)
    for key in ("C0", "T2"):  # an unlabelled test case without its LGE
        shutil.copy(flat_root / "train25" / f"{IDS[0]}_{key}.nii.gz", root / "test20" / f"myops_test_201_{key}.nii.gz")
    (case,) = discover_cases(root)
    assert case.label is None and case.present(MYOPS2020.modalities) == (True, False, True)
    loaded = load_case(case, MYOPS2020)
    assert loaded.present.tolist() == [True, False, True] and not loaded.image[1].any()
    (root / "copy").mkdir()
    shutil.copy(root / "test20" / "myops_test_201_C0.nii.gz", root / "copy")
    with pytest.raises(LayoutError, match="myops_test_201.*two files"):
        discover_cases(root)


def test_label_mapping_and_geometry(flat_root):
    case = discover_cases(flat_root)[0]
    loaded = load_case(case, MYOPS2020)
    raw = np.asanyarray(nib.load(str(case.label)).dataobj)
    assert set(np.unique(raw).tolist()) == {0, 200, 500, 600, 1220, 2221}
    np.testing.assert_array_equal(loaded.label, MYOPS2020.encode_labels(raw))
    assert loaded.image.shape == (3, *SIZE, SLICES) and loaded.label.dtype == np.uint8
    assert loaded.spacing == pytest.approx((128 / 64, 128 / 64, 10.0))


def test_bad_label_value_names_the_file(flat_root, tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(flat_root, root)
    case = discover_cases(root)[1]
    img = nib.load(str(case.label))
    label = np.asanyarray(img.dataobj).copy()
    label[0, 0, 0] = 3  # e.g. a BraTS-style value in a MyoPS label file
    save_nifti(case.label, label, img.affine)
    with pytest.raises(CaseError, match=rf"{IDS[1]}_gd.nii.gz: label values \[3\] are not in the myops2020 label map"):
        load_case(case, MYOPS2020)


# --------------------------------------------------------------------------- synthetic generator
def test_synthetic_files(flat_root):
    c0 = nib.load(str(flat_root / "train25" / f"{IDS[0]}_C0.nii.gz"))
    gd = nib.load(str(flat_root / "train25_myops_gd" / f"{IDS[0]}_gd.nii.gz"))
    assert c0.shape == (*SIZE, SLICES) and c0.get_data_dtype() == np.int16 and gd.get_data_dtype() == np.uint16
    assert np.allclose(c0.header.get_zooms(), (2.0, 2.0, 10.0)) and np.array_equal(c0.affine, gd.affine)
    images, label = synth_myops_case(SIZE, SLICES, seed=0, index=0)
    np.testing.assert_array_equal(np.asanyarray(c0.dataobj), images["c0"])
    np.testing.assert_array_equal(np.asanyarray(gd.dataobj), MYOPS2020.decode_labels(label))


def _zscored_means(images, label):
    z = {k: (v - v.mean()) / v.std() for k, v in ((k, v.astype(np.float64)) for k, v in images.items())}
    return {cls: {k: float(z[k][label == cls].mean()) for k in z} for cls in range(6) if (label == cls).sum() >= 10}


def test_synthetic_contrasts():
    for index in range(4):
        images, label = synth_myops_case((96, 96), 6, seed=1, index=index)
        assert set(np.unique(label).tolist()) == set(range(6)), index
        assert ((label == 4) | (label == 5)).sum() > (label == 5).sum() > 30
        m = _zscored_means(images, label)
        lv, myo, rv, edema, scar = (m[c] for c in (1, 2, 3, 4, 5))
        assert scar["de"] > myo["de"] + 2.0 and scar["de"] > lv["de"] + 1.0, (index, m)  # LGE: bright scar
        assert edema["t2"] > myo["t2"] + 1.0, (index, m)                                   # T2: bright edema
        assert lv["c0"] > myo["c0"] + 1.0 and rv["c0"] > myo["c0"] + 1.0, (index, m)      # bSSFP: bright blood
        assert abs(scar["c0"] - myo["c0"]) < 0.5 and lv["t2"] < myo["t2"]                 # pathology hidden on bSSFP


def test_synthetic_scar_inside_myocardium_and_anatomy():
    images, label = synth_myops_case((96, 96), 6, seed=2, index=0)
    lv = label == 1
    for k in range(label.shape[2]):
        if not lv[..., k].any():
            continue
        # the myocardium (with its pathology) encloses the LV cavity: no cavity pixel touches background/RV
        cavity = lv[..., k]
        grown = np.zeros_like(cavity)
        grown[1:] |= cavity[:-1]
        grown[:-1] |= cavity[1:]
        grown[:, 1:] |= cavity[:, :-1]
        grown[:, :-1] |= cavity[:, 1:]
        ring = label[..., k][grown & ~cavity]
        assert np.isin(ring, (2, 4, 5)).all(), k


def test_synthetic_determinism(tmp_path):
    a = synth_myops_case(SIZE, SLICES, seed=0, index=2)
    b = synth_myops_case(SIZE, SLICES, seed=0, index=2)
    c = synth_myops_case(SIZE, SLICES, seed=5, index=2)
    np.testing.assert_array_equal(a[1], b[1])
    for k in ("c0", "de", "t2"):
        np.testing.assert_array_equal(a[0][k], b[0][k])
    assert not np.array_equal(a[1], c[1]) and not np.array_equal(a[0]["de"], c[0]["de"])
    with pytest.raises(ValueError, match="size"):
        synth_myops(tmp_path, num_cases=1, size=8)
    with pytest.raises(ValueError, match="slices"):
        synth_myops(tmp_path, num_cases=1, slices=0)
    assert not any(tmp_path.rglob("*.nii.gz"))


# --------------------------------------------------------------------------- preprocessing and slices
@pytest.fixture
def cache(flat_root, tmp_path):
    return PreprocessedCache(tmp_path / "cache", MYOPS2020)


def test_volume_zscore(flat_root, cache):
    case = discover_cases(flat_root)[0]
    pre = cache.get(case)
    assert pre.image.shape == (3, *SIZE, SLICES) and pre.bbox == ((0, 64), (0, 64), (0, SLICES))
    flat = np.asarray(pre.image).reshape(3, -1)
    np.testing.assert_allclose(flat.mean(1), 0, atol=1e-4)
    np.testing.assert_allclose(flat.std(1), 1, atol=1e-3)


def test_slice_dataset_items(flat_root, cache):
    cases = discover_cases(flat_root)
    ds = SliceDataset(cache, cases, crop_size=(48, 40), missing=MissingProtocol("balanced"))
    assert ds.num_slices == len(ds) == NUM_CASES * SLICES
    item = ds[0]
    assert set(item) == {"image", "label", "modality_mask", "case_id", "slice_index"}
    assert item["image"].shape == (3, 48, 40) and item["image"].dtype == torch.float32
    assert item["label"].shape == (48, 40) and item["label"].dtype == torch.int64
    assert item["modality_mask"].shape == (3,) and item["modality_mask"].dtype == torch.bool
    assert item["case_id"] == IDS[0] and item["slice_index"] == 0
    masks = []
    for i in range(len(ds)):
        it = ds[i]
        assert it["modality_mask"].any() and not it["image"][~it["modality_mask"]].any()
        assert set(it["label"].unique().tolist()) <= set(range(6))
        masks.append(tuple(it["modality_mask"].tolist()))
    assert len(set(masks)) > 2
    # reproducible per (seed, epoch, index); the next epoch draws differently
    assert torch.equal(ds[4]["image"], ds[4]["image"]) and torch.equal(ds[4]["label"], ds[4]["label"])
    assert not torch.equal(ds[4]["image"], ds[len(ds) + 4]["image"])
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 48, 40) and batch["label"].shape == (4, 48, 40)


def test_slice_dataset_pads_and_imbalanced(flat_root, cache):
    cases = discover_cases(flat_root)
    assignment = {c.case_id: (True, False, True) for c in cases}
    ds = SliceDataset(cache, cases, crop_size=(80, 80), missing=MissingProtocol("imbalanced", assignment),
                      augment=False, samples_per_epoch=7, seed=3)
    assert len(ds) == 7
    item = ds[SLICES + 1]  # case 1, slice 1
    assert item["case_id"] == IDS[1] and item["slice_index"] == 1
    assert item["image"].shape == (3, 80, 80) and item["modality_mask"].tolist() == [True, False, True]
    assert not item["image"][1].any() and item["image"][0].any()
    full = SliceDataset(cache, cases, crop_size=(64, 64), missing=MissingProtocol("full"), augment=False)
    it = full[2]
    pre = cache.get(cases[0])
    np.testing.assert_allclose(it["image"].numpy(), np.asarray(pre.image)[..., 2], atol=1e-6)  # no crop needed
    np.testing.assert_array_equal(it["label"].numpy(), np.asarray(pre.label)[..., 2])
