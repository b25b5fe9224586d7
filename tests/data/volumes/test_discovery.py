"""Discovery never drops or picks a file silently (issue 14, section 2).

Each situation is rebuilt from real-world reports with tiny hand-made NIfTI files: macOS
resource forks and ``__MACOSX`` folders, ``.nii`` + ``.nii.gz`` twins, stray files in case folders,
MyoPS copies with ``_LGE`` and one folder per case, the Medical Segmentation Decathlon's 4-D
layout, and nnU-Net's own BraTS label convention declared in ``dataset.json``.
"""

from __future__ import annotations

import json
import os
import warnings

import nibabel as nib
import numpy as np
import pytest

from medmodal.data.volumes.layouts import LayoutError, detect_layout, discover_cases
from medmodal.data.volumes.loading import CaseError, load_case
from medmodal.data.volumes.spec import BRATS2020, MYOPS2020
from medmodal.notices import InputWarning
from tests.conftest import save_nifti, tiny_volumes, write_brats2020_case
from tests.data.volumes.test_layouts import NNUNET_BRATS_LABELS, _nnunet_root, to_nnunet_labels

MSD_LABELS = {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}
MSD_MODALITY = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}  # Task01_BrainTumour's order


def _messages(caught):
    return [str(w.message) for w in caught if issubclass(w.category, InputWarning)]


def discover_quietly(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cases = discover_cases(*args, **kwargs)
    return cases, _messages(caught)


# ------------------------------------------------------------------------------ hidden files
def test_macos_resource_fork_beside_flair_in_renamed_case_folder(tmp_path):
    """A renamed case folder (case id != folder name) is matched on suffixes: a ``._`` twin used to
    make that match ambiguous, and FLAIR was reported missing (exit 0)."""
    folder = write_brats2020_case(tmp_path / "data", "BraTS20_Training_001")
    renamed = folder.with_name("patient_A")
    folder.rename(renamed)
    (renamed / "._BraTS20_Training_001_flair.nii.gz").write_bytes(b"\x00\x05\x16\x07 AppleDouble" * 8)
    (renamed / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    macosx = tmp_path / "data" / "__MACOSX" / "patient_A"
    macosx.mkdir(parents=True)
    (macosx / "._BraTS20_Training_001_t1.nii.gz").write_bytes(b"\x00\x05\x16\x07")
    (case,), notes = discover_quietly(tmp_path / "data")
    assert case.case_id == "patient_A"
    assert set(case.images) == {"flair", "t1", "t1ce", "t2"}
    assert case.images["flair"].name == "BraTS20_Training_001_flair.nii.gz"
    assert notes == [] and case.unmatched == []  # hidden files are not even reported


def test_resource_forks_in_nnunet_images_ts_do_not_block_valid_cases(tmp_path):
    root = _nnunet_root(tmp_path, {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"})
    images, _ = tiny_volumes()
    for ch, key in enumerate(("t1", "t1ce", "t2", "flair")):
        save_nifti(root / "imagesTs" / f"BRATS_101_{ch:04d}.nii.gz", images[key])
        (root / "imagesTs" / f"._BRATS_101_{ch:04d}.nii.gz").write_bytes(b"\x00\x05\x16\x07" * 20)
    cases, notes = discover_quietly(root)
    assert [c.case_id for c in cases] == ["BRATS_001", "BRATS_002", "BRATS_101"]
    assert set(cases[2].images) == {"flair", "t1", "t1ce", "t2"} and notes == []
    load_case(cases[2], BRATS2020)  # the real files, not the resource forks


# ------------------------------------------------------------------------------ duplicates
def test_nii_and_nii_gz_for_one_sequence_is_an_error_naming_both(tmp_path):
    folder = write_brats2020_case(tmp_path, "BraTS20_Training_002")
    images, _ = tiny_volumes(seed=5)
    save_nifti(folder / "BraTS20_Training_002_flair.nii", images["flair"] * 2)  # a different volume
    with pytest.raises(LayoutError, match="two files for flair of case BraTS20_Training_002") as err:
        discover_cases(tmp_path)
    both = f"{folder / 'BraTS20_Training_002_flair.nii'} and {folder / 'BraTS20_Training_002_flair.nii.gz'}"
    assert both in str(err.value)


def test_nii_and_nii_gz_in_myops_layout(tmp_path):
    folder = tmp_path / "myops" / "Case3001"
    for key in ("C0", "LGE", "T2"):
        save_nifti(folder / f"Case3001_{key}.nii.gz", np.ones((8, 8, 3), np.float32))
    save_nifti(folder / "Case3001_T2.nii", np.ones((8, 8, 3), np.float32))
    with pytest.raises(LayoutError, match=r"case Case3001: two files for 't2'"):
        discover_cases(tmp_path / "myops")


# ------------------------------------------------------------------------------ unmatched files
def test_unmatched_nifti_in_a_case_folder_is_reported(tmp_path):
    folder = write_brats2020_case(tmp_path, "BraTS20_Training_003")
    stray = save_nifti(folder / "BraTS20_Training_003_t1_mask.nii.gz", np.ones((16, 16, 16), np.uint8))
    (case,), notes = discover_quietly(tmp_path)
    assert case.unmatched == [stray]
    assert notes == [f"{stray}: matches no sequence or label of layout 'brats2020'; ignored"]
    assert discover_cases(tmp_path).unmatched == [stray]


# ------------------------------------------------------------------------------ MyoPS copies
def _myops_case(folder, case_id, lge="LGE"):
    shape = (12, 12, 3)
    rng = np.random.default_rng(0)
    for key in ("C0", lge, "T2"):
        save_nifti(folder / f"{case_id}_{key}.nii.gz", rng.normal(100, 10, shape).astype(np.float32))
    gd = np.zeros(shape, np.uint16)
    gd[4:8, 4:8] = 200  # LV myocardium (MyoPS 2020: 200; 500 is the LV blood pool)
    gd[5:7, 5:7] = 2221
    save_nifti(folder / f"{case_id}_gd.nii.gz", gd)


def test_myops_lge_suffix_and_one_folder_per_case(tmp_path):
    """45 real cases stored as ``Case3001/Case3001_{C0,LGE,T2,gd}`` used to report "de 0/45"."""
    root = tmp_path / "MyoPS"
    for i in range(3):
        _myops_case(root / f"Case{3001 + i}", f"Case{3001 + i}")
    assert detect_layout(root) == "myops2020"
    cases, notes = discover_quietly(root)
    assert [c.case_id for c in cases] == ["Case3001", "Case3002", "Case3003"] and notes == []
    for case in cases:
        assert case.present(MYOPS2020.modalities) == (True, True, True)
        assert case.images["de"].name == f"{case.case_id}_LGE.nii.gz" and case.label.name == f"{case.case_id}_gd.nii.gz"
    loaded = load_case(cases[0], MYOPS2020)
    assert loaded.present.all() and set(np.unique(loaded.label)) == {0, 2, 5}


def test_myops_official_flat_layout_still_read(tmp_path):
    _myops_case(tmp_path / "train25", "myops_training_101", lge="DE")
    (tmp_path / "train25" / "myops_training_101_gd.nii.gz").rename(tmp_path / "myops_training_101_gd.nii.gz")
    (tmp_path / "train25_myops_gd").mkdir()
    (tmp_path / "myops_training_101_gd.nii.gz").rename(tmp_path / "train25_myops_gd" / "myops_training_101_gd.nii.gz")
    (case,), _ = discover_quietly(tmp_path)
    assert set(case.images) == {"c0", "de", "t2"} and case.label.parent.name == "train25_myops_gd"


# ------------------------------------------------------------------------------ Decathlon layout
def _msd_root(tmp_path, with_fork=True):
    """Task01_BrainTumour as distributed: 4-D images (X, Y, Z, 4), no _000X suffix, macOS forks inside."""
    root = tmp_path / "Task01_BrainTumour"
    images, seg = tiny_volumes()
    names = ("flair", "t1", "t1ce", "t2")  # the order of MSD_MODALITY
    for case in ("BRATS_001", "BRATS_002"):
        stack = np.stack([images[n] for n in names], axis=-1).astype(np.float32)
        save_nifti(root / "imagesTr" / f"{case}.nii.gz", stack)
        save_nifti(root / "labelsTr" / f"{case}.nii.gz", to_nnunet_labels(seg))
        if with_fork:
            (root / "imagesTr" / f"._{case}.nii.gz").write_bytes(b"\x00\x05\x16\x07" * 20)
    save_nifti(root / "imagesTs" / "BRATS_485.nii.gz", np.stack([images[n] for n in names], -1).astype(np.float32))
    (root / "dataset.json").write_text(json.dumps({
        "name": "BRATS", "tensorImageSize": "4D", "modality": MSD_MODALITY, "labels": MSD_LABELS,
        "numTraining": 2, "numTest": 1,
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"}
                     for c in ("BRATS_001", "BRATS_002")],
        "test": ["./imagesTs/BRATS_485.nii.gz"]}))
    return root, images, seg


def test_decathlon_layout_channels_by_modality_name(tmp_path):
    root, images, seg = _msd_root(tmp_path)
    assert detect_layout(root) == "msd"
    cases, notes = discover_quietly(root)
    assert [c.case_id for c in cases] == ["BRATS_001", "BRATS_002", "BRATS_485"] and notes == []
    assert cases[0].channels == {"flair": 0, "t1": 1, "t1ce": 2, "t2": 3} and cases[2].label is None
    loaded = load_case(cases[0], BRATS2020)
    for i, name in enumerate(BRATS2020.modalities):
        np.testing.assert_array_equal(loaded.image[i], images[name])
    np.testing.assert_array_equal(loaded.label, BRATS2020.encode_labels(seg))  # edema = 1 in the file


def test_nnunet_layout_on_a_decathlon_folder_says_why(tmp_path):
    root, _, _ = _msd_root(tmp_path)
    with pytest.raises(LayoutError, match="Medical Segmentation Decathlon layout.*--layout msd"):
        discover_quietly(root, layout="nnunet")


# ------------------------------------------------------------------------------ declared labels
def test_nnunet_declared_region_labels_map_to_brats_classes(tmp_path):
    _, seg = tiny_volumes()
    root = _nnunet_root(tmp_path, {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"})
    cases, _ = discover_quietly(root)
    assert cases[0].declared_labels == NNUNET_BRATS_LABELS and cases[0].source_labels == "dataset.json"
    loaded = load_case(cases[0], BRATS2020)
    np.testing.assert_array_equal(loaded.label, BRATS2020.encode_labels(seg))  # necrosis stays necrosis


def test_explicit_labels_that_contradict_dataset_json_are_refused(tmp_path):
    """``--labels brats2023`` used to be accepted and swapped necrosis and edema (TC Dice 0.96 -> 0.38)."""
    root = _nnunet_root(tmp_path, {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"})
    with pytest.raises(LayoutError, match=r"declares 1 = edema, 2 = necrosis, 3 = enhancing, but --labels brats2023 "
                                          r"reads 1 = necrosis, 2 = edema, 3 = enhancing: they disagree"):
        discover_quietly(root, source_labels="brats2023")


def test_declared_labels_matching_no_convention_are_refused(tmp_path):
    root = _nnunet_root(tmp_path, {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"},
                        labels={"background": 0, "tumour": 1, "resection cavity": 2, "vessel": 3})
    with pytest.raises(LayoutError, match=r"declared label 'tumour' \(value 1\) matches no class.*match no supported "
                                          r"convention"):
        discover_quietly(root)


def test_msd_declared_labels_decide_the_prediction_convention(tmp_path):
    from medmodal.engine.segmentation.predict import output_convention

    root, _, _ = _msd_root(tmp_path, with_fork=False)
    case = discover_quietly(root)[0][0]
    convention = output_convention(case, BRATS2020)
    assert convention.source_labels == {0: 0, 1: 2, 2: 1, 3: 3}  # written back as 1 = edema, 2 = necrosis


# ------------------------------------------------------------------------------ relative roots
def test_relative_root_dot_names_the_case_after_the_folder(tmp_path, monkeypatch):
    folder = write_brats2020_case(tmp_path, "BraTS20_Training_004", label=False)
    monkeypatch.chdir(folder)
    (case,) = discover_cases(".")
    assert case.case_id == "BraTS20_Training_004" and case.images["flair"].is_absolute()
    monkeypatch.chdir(folder / "..")
    (case,) = discover_cases(os.path.join("BraTS20_Training_004", "."))
    assert case.case_id == "BraTS20_Training_004"


def test_label_file_of_an_nnunet_case_keeps_its_geometry(tmp_path):
    """The label of a declared convention is read with the images' geometry checks (sanity)."""
    root = _nnunet_root(tmp_path, {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"})
    label = root / "labelsTr" / "BRATS_001.nii.gz"
    img = nib.load(str(label))
    save_nifti(label, np.asarray(img.dataobj)[:, :, :12])
    case = discover_quietly(root)[0][0]
    with pytest.raises(CaseError, match="BRATS_001.nii.gz: shape"):
        load_case(case, BRATS2020)
