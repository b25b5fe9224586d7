import json

import numpy as np
import pytest

from medmodal.data.volumes.layouts import LayoutError, detect_layout, discover_cases, parse_mapping
from tests.conftest import (BRATS_REAL, TCGA_MAPPING, requires_real_data, save_nifti, tiny_volumes,
                            write_brats2020_case)

BRATS2023_NAMES = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w"}


def test_brats2020_layout(brats2020_root):
    cases = discover_cases(brats2020_root)
    assert [c.case_id for c in cases] == [f"BraTS20_Training_{i:03d}" for i in range(3)]
    assert all(c.layout == "brats2020" and set(c.images) == {"flair", "t1", "t1ce", "t2"} for c in cases)
    assert all(c.label.name.endswith("_seg.nii.gz") for c in cases)


def test_brats2020_missing_sequence_and_odd_label_name(tmp_path):
    folder = write_brats2020_case(tmp_path, "BraTS20_Training_355", skip=("t1",), label=False)
    _, seg = tiny_volumes()
    save_nifti(folder / "W39_1998.09.19_Segm.nii", seg)  # the known BraTS2020 trap
    (case,) = discover_cases(tmp_path)
    assert set(case.images) == {"flair", "t1ce", "t2"}
    assert case.present(("flair", "t1", "t1ce", "t2")) == (True, False, True, True)
    assert case.label.name == "W39_1998.09.19_Segm.nii"


def test_single_case_folder(brats2020_root):
    (case,) = discover_cases(brats2020_root / "BraTS20_Training_001")
    assert case.case_id == "BraTS20_Training_001"


def test_brats2023_layout(tmp_path):
    images, seg = tiny_volumes()
    folder = tmp_path / "BraTS-GLI-00002-000"
    for name, suffix in BRATS2023_NAMES.items():
        save_nifti(folder / f"BraTS-GLI-00002-000-{suffix}.nii.gz", images[name])
    save_nifti(folder / "BraTS-GLI-00002-000-seg.nii.gz", np.where(seg == 4, 3, seg).astype(np.uint8))
    (case,) = discover_cases(tmp_path)
    assert case.layout == "brats2023" and case.source_labels == "brats2023"
    assert case.images["flair"].name.endswith("-t2f.nii.gz") and case.images["t1ce"].name.endswith("-t1c.nii.gz")


#: nnU-Net's own BraTS conversion (nnunetv2/dataset_conversion/Dataset137_BraTS21.py): label files hold
#: 1 = edema, 2 = necrosis / non-enhancing core, 3 = enhancing, declared as regions.
NNUNET_BRATS_LABELS = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}


def to_nnunet_labels(seg):
    """BraTS 2020 file labels {0, 1, 2, 4} -> nnU-Net's BraTS convention {0, 2, 1, 3}."""
    out = np.zeros_like(seg)
    out[seg == 2], out[seg == 1], out[seg == 4] = 1, 2, 3
    return out


def _nnunet_root(tmp_path, channel_names, labels=NNUNET_BRATS_LABELS):
    root = tmp_path / "Dataset500_Brats"
    images, seg = tiny_volumes()
    order = list(channel_names.values())
    for case in ("BRATS_001", "BRATS_002"):
        for ch, name in enumerate(order):
            if case == "BRATS_002" and ch == 2:
                continue  # an absent _0002 file is a missing sequence
            key = {"FLAIR": "flair", "T1": "t1", "T1ce": "t1ce", "T2": "t2"}[name]
            save_nifti(root / "imagesTr" / f"{case}_{ch:04d}.nii.gz", images[key])
        save_nifti(root / "labelsTr" / f"{case}.nii.gz", to_nnunet_labels(seg))
    (root / "dataset.json").write_text(json.dumps({"channel_names": channel_names, "file_ending": ".nii.gz",
                                                   "labels": labels, "regions_class_order": [1, 2, 3],
                                                   "numTraining": 2}))
    return root


def test_nnunet_layout_matches_channels_by_name(tmp_path):
    # nnU-Net's BraTS order is T1, T1ce, T2, FLAIR: channel order must not matter.
    root = _nnunet_root(tmp_path, {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"})
    assert detect_layout(root) == "nnunet"
    cases = discover_cases(root)
    assert [c.case_id for c in cases] == ["BRATS_001", "BRATS_002"]
    assert cases[0].images["flair"].name == "BRATS_001_0003.nii.gz"
    assert cases[0].images["t1"].name == "BRATS_001_0000.nii.gz"
    assert "t2" not in cases[1].images and cases[1].label.name == "BRATS_002.nii.gz"


def test_nnunet_unknown_channel_name(tmp_path):
    root = _nnunet_root(tmp_path, {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"})
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "PET"}, "file_ending": ".nii.gz"}))
    with pytest.raises(LayoutError, match="PET"):
        discover_cases(root)


def test_mapping_layout(tmp_path):
    images, seg = tiny_volumes()
    folder = tmp_path / "patientA"
    for name, tag in {"flair": "fla", "t1": "t1", "t1ce": "t1c", "t2": "t2"}.items():
        save_nifti(folder / f"patientA_{tag}_bet.nii.gz", images[name])
    save_nifti(folder / "patientA_seg_fusion.nii.gz", seg)
    (case,) = discover_cases(tmp_path, mapping=TCGA_MAPPING)
    assert case.images["t1"].name == "patientA_t1_bet.nii.gz" and case.images["t1ce"].name == "patientA_t1c_bet.nii.gz"


def test_mapping_ambiguous_pattern_names_files(tmp_path):
    images, _ = tiny_volumes()
    folder = tmp_path / "p"
    save_nifti(folder / "p_t1_bet.nii.gz", images["t1"])
    save_nifti(folder / "p_t1c_bet.nii.gz", images["t1ce"])
    with pytest.raises(LayoutError, match=r"p_t1_bet.nii.gz.*p_t1c_bet.nii.gz|p_t1c_bet.nii.gz.*p_t1_bet.nii.gz"):
        discover_cases(tmp_path, mapping="t1=*_t1*")


def test_parse_mapping_errors():
    assert parse_mapping("flair=*_fla*, seg=*seg*") == {"flair": "*_fla*", "seg": "*seg*"}
    with pytest.raises(LayoutError, match="name=glob"):
        parse_mapping("flair")


def test_unrecognised_folder(tmp_path):
    (tmp_path / "x").mkdir()
    save_nifti(tmp_path / "x" / "scan.nii.gz", np.zeros((4, 4, 4), np.int16))
    with pytest.raises(LayoutError, match="cannot recognise the layout"):
        discover_cases(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        discover_cases(tmp_path / "nope")


@requires_real_data
def test_real_cases_discovered():
    (gli,) = discover_cases(BRATS_REAL / "BraTS-GLI-00001-000")
    assert gli.layout == "brats2023" and set(gli.images) == {"flair", "t1", "t1ce", "t2"} and gli.label is None
    (tcga,) = discover_cases(BRATS_REAL / "TCGA-DU-7294", mapping=TCGA_MAPPING)
    assert set(tcga.images) == {"flair", "t1", "t1ce", "t2"} and tcga.label.name == "TCGA-DU-7294_seg_fusion.nii.gz"


def test_mapping_pattern_matching_no_file_is_named(tmp_path):
    """A --map pattern with a typo matches nothing: one warning naming it (not a silently missing sequence)."""
    from medmodal.notices import InputWarning

    images, seg = tiny_volumes()
    for case_id in ("A", "B"):
        for name, suffix in (("flair", "fla_bet"), ("t1", "t1_bet")):
            save_nifti(tmp_path / case_id / f"{case_id}_{suffix}.nii.gz", images[name])
    with pytest.warns(InputWarning) as record:
        cases = discover_cases(tmp_path, mapping="flair=*_flair*.nii.gz,t1=*_t1_bet*")
    assert all(set(c.images) == {"t1"} for c in cases)
    typo = [str(w.message) for w in record if "_flair*" in str(w.message)]
    assert len(typo) == 1 and "flair='*_flair*.nii.gz'" in typo[0] and "matches no file" in typo[0]
    assert not [w for w in record if "t1=" in str(w.message)]


def test_files_in_case_sub_folders_and_skipped_folders_are_named(tmp_path):
    """BraTS case folder with a sub-folder of NIfTI files (TCGA-DU-7294's algorithm-segmentations/):
    one warning counts and names them; a folder none of whose files matches is listed as skipped."""
    from medmodal.notices import InputWarning

    folder = write_brats2020_case(tmp_path, "BraTS20_Training_001")
    _, seg = tiny_volumes()
    for name in ("a-20", "b-20", "c-20", "d-20"):
        save_nifti(folder / "algorithm-segmentations" / f"{name}.nii.gz", seg)
    save_nifti(tmp_path / "Other" / "Other_fla_bet.nii.gz", seg)
    with pytest.warns(InputWarning) as record:
        found = discover_cases(tmp_path)
    nested = [str(w.message) for w in record if "sub-folders" in str(w.message)]
    assert len(nested) == 1 and nested[0].startswith("4 NIfTI files in sub-folders")
    assert "BraTS20_Training_001/algorithm-segmentations/a-20.nii.gz" in nested[0] and "(4 in all)" in nested[0]
    assert len(found.nested) == 4 and [p.name for p in found.skipped] == ["Other"]
    assert [c.case_id for c in found] == ["BraTS20_Training_001"]
