"""medmodal.data.seg3d readers and loader: detection of every layout, the layouts' variants, one-line errors naming
the file, notes naming what is skipped or unlabelled, the axis / spacing / intensity conventions, and the real
UA-MT LA copy's counts (with ``MEDMODAL_LA2018`` pointing at it)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from medmodal.data.layouts import LayoutReader, layout_readers
from medmodal.data.seg3d import (BHSD_CLASSES, BINARY_CLASSES, FAMILY, HAEMORRHAGE_CLASSES, LAYOUTS, detect_layout,
                                 load_label, load_volume, read_seg3d, volume_shape, write_synthetic)
from medmodal.data.seg3d.la2018 import LA_FILE
from medmodal.errors import DamagedFileError, DataError, InputError, LayoutError

LA_REAL = os.environ.get("MEDMODAL_LA2018")
needs_la = pytest.mark.skipif(not (LA_REAL and Path(LA_REAL).is_dir()),
                              reason="set MEDMODAL_LA2018 to UA-MT's LA data folder (train.list, test.list, "
                                     "2018LA_Seg_Training Set/)")
SIZE = (20, 16, 10)
TRAINING = "2018LA_Seg_Training Set"


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> dict[str, Path]:
    """One small twin of every layout, written once (tests that change files copy it first)."""
    base = tmp_path_factory.mktemp("seg3d-twins")
    n = {"la2018": 5, "bhsd": 3, "nifti_folder": 4}
    return {layout: write_synthetic(base / layout, layout, n=n[layout], size=SIZE, seed=1) for layout in n}


def copy(twins, layout, tmp_path) -> Path:
    return Path(shutil.copytree(twins[layout], tmp_path / layout))


def one_line(info) -> str:
    text = str(info.value)
    assert "\n" not in text and text
    return text


def noted(found, *words) -> str:
    """The one note holding every word (fails when none does)."""
    hits = [n for n in found.notes if all(w in n for w in words)]
    assert hits, f"no note with {words}: {found.notes}"
    return hits[0]


def save(path: Path, array, spacing=(1.0, 1.0, 1.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array), np.diag([*spacing, 1.0])), str(path))
    return path


# --------------------------------------------------------------------------- registry and detection
def test_the_family_registers_its_layouts_in_detection_order():
    readers = layout_readers(FAMILY)
    assert [r.name for r in readers] == list(LAYOUTS[1:]) == ["la2018", "bhsd", "nifti_folder"]
    assert all(isinstance(r, LayoutReader) for r in readers)


@pytest.mark.parametrize("layout", LAYOUTS[1:])
def test_detection_picks_each_layout(twins, layout):
    root = twins[layout]
    assert detect_layout(root) == (layout, root)
    assert read_seg3d(root).layout == layout == read_seg3d(root, layout).layout


def test_ordinary_missing_and_unknown(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no 3-D segmentation layout recognised") as info:
        read_seg3d(tmp_path / "empty")
    assert one_line(info).startswith(str(tmp_path / "empty"))
    with pytest.raises(LayoutError, match="data folder not found"):
        read_seg3d(tmp_path / "missing", "bhsd")
    with pytest.raises(LayoutError, match="unknown 3-D segmentation layout 'nope'; choose one of auto, la2018"):
        read_seg3d(tmp_path, "nope")
    for layout, what in (("la2018", "not a UA-MT LA folder"), ("bhsd", "not a BHSD folder"),
                         ("nifti_folder", "not a NIfTI folder")):
        with pytest.raises(LayoutError, match=what) as info:
            read_seg3d(tmp_path / "empty", layout)
        assert one_line(info).startswith(str(tmp_path / "empty"))


def test_nifti_folder_is_detected_only_with_imagesTr(tmp_path):
    save(tmp_path / "plain" / "labelsTr" / "a.nii.gz", np.zeros((4, 4, 4), np.uint8))
    save(tmp_path / "plain" / "imagesTs" / "a_0000.nii.gz", np.ones((4, 4, 4), np.int16))
    with pytest.raises(LayoutError, match="no 3-D segmentation layout recognised"):
        detect_layout(tmp_path / "plain")
    (tmp_path / "plain" / "imagesTr").mkdir()
    assert detect_layout(tmp_path / "plain") == ("nifti_folder", tmp_path / "plain")


# --------------------------------------------------------------------------- la2018
def test_la2018_splits_order_and_loading(twins):
    root = twins["la2018"]
    found = read_seg3d(root)
    train = (root / "train.list").read_text().split()
    test = (root / "test.list").read_text().split()
    assert found.dataset == "la" and found.channels == ("mri",) and found.classes == ("background", "left atrium")
    assert [c.id for c in found.split("train")] == sorted(train) and [c.id for c in found.split("test")] == test
    assert found.train_order == train and found.has_splits and not found.split("val")
    assert all(c.has_label and c.label is None and c.image.name == LA_FILE for c in found)
    noted(found, "spacing", "(1, 1, 1)", "0.625")
    noted(found, "UA-MT", "train.list", "no validation")
    volume = load_volume(found.cases[0], found)
    assert volume.image.shape == (1, *SIZE) and volume.label.shape == SIZE and volume.spacing == (1.0, 1.0, 1.0)
    assert set(np.unique(volume.label)) == {0, 1} and volume.affine is None
    assert any("no voxel size" in n for n in volume.notes)
    with h5py.File(found.cases[0].image, "r") as h5:  # the stored array order and values, untouched
        assert np.array_equal(volume.image[0], h5["image"][()]) and np.array_equal(volume.label, h5["label"][()])
    assert np.array_equal(load_label(found.cases[0], found), volume.label)


def test_la2018_pointed_at_the_training_set_folder(twins):
    data = twins["la2018"] / TRAINING
    assert detect_layout(data) == ("la2018", data)
    found = read_seg3d(data)
    assert found.root == data and len(found.split("train")) == 4 and len(found.split("test")) == 1
    noted(found, "the training-set folder itself", str(twins["la2018"]))


def test_la2018_unlisted_cases_debris_and_missing_lists(twins, tmp_path):
    root = copy(twins, "la2018", tmp_path)
    data = root / TRAINING
    shutil.copytree(data / (root / "test.list").read_text().split()[0], data / "EXTRA0000000000000001")
    (data / "EXTRA0000000000000001" / "desktop.ini").write_text("[.ShellClassInfo]")
    (data / "NOFILE").mkdir()
    found = read_seg3d(root)
    assert found.case("EXTRA0000000000000001").split is None
    noted(found, "1 case(s) in no list file, split None", "EXTRA0000000000000001")
    noted(found, "desktop.ini", "not used")
    noted(found, "without mri_norm2.h5", "NOFILE")
    for name in ("train.list", "test.list"):
        (root / name).unlink()
    found = read_seg3d(root)
    assert {c.split for c in found} == {None} and found.train_order == []
    noted(found, "no list file")


def test_la2018_list_naming_a_missing_case_or_a_case_twice(twins, tmp_path):
    root = copy(twins, "la2018", tmp_path)
    listed = (root / "train.list").read_text()
    (root / "train.list").write_text(listed + "MISSING0000000000000\n")
    with pytest.raises(LayoutError) as info:
        read_seg3d(root)
    assert one_line(info).startswith(f"{root / 'train.list'} names MISSING0000000000000 but ")
    assert str(root / TRAINING / "MISSING0000000000000" / LA_FILE) in str(info.value)
    (root / "train.list").write_text(listed + (root / "test.list").read_text())
    with pytest.raises(LayoutError, match="is in both the train and the test list"):
        read_seg3d(root)


def test_la2018_damaged_and_inconsistent_files(twins, tmp_path):
    root = copy(twins, "la2018", tmp_path)
    found = read_seg3d(root)
    first, second = found.cases[0].image, found.cases[1].image
    data = first.read_bytes()
    first.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(DamagedFileError) as info:
        read_seg3d(root)
    assert one_line(info).startswith(str(first))
    with pytest.raises(DamagedFileError) as info:
        load_volume(found.cases[0], found)
    assert one_line(info).startswith(str(first))
    first.write_bytes(b"not an HDF5 file at all")
    with pytest.raises(DamagedFileError, match="not a readable HDF5 file") as info:
        read_seg3d(root)
    assert one_line(info).startswith(str(first))
    first.write_bytes(data)
    with h5py.File(second, "w") as h5:
        h5.create_dataset("image", data=np.zeros((4, 5, 6), np.float32))
        h5.create_dataset("label", data=np.zeros((4, 5, 7), np.uint8))
    with pytest.raises(DataError, match=r"image \(4, 5, 6\) and label \(4, 5, 7\) differ in shape") as info:
        read_seg3d(root)
    assert one_line(info).startswith(str(second))
    with pytest.raises(DataError) as info:  # the loader checks again (files change between reading and loading)
        load_volume(found.cases[1], found)
    assert one_line(info).startswith(str(second))
    with h5py.File(second, "w") as h5:
        h5.create_dataset("image", data=np.zeros((4, 5, 6), np.float32))
    assert not read_seg3d(root).cases[1].has_label
    noted(read_seg3d(root), "without a 'label' dataset, kept unlabelled", str(second))
    with pytest.raises(DataError, match="no 'label' dataset"):
        read_seg3d(root, require_labels=True)
    with h5py.File(second, "w") as h5:
        h5.create_dataset("image", data=np.zeros((4, 5, 6), np.float32))
        h5.create_dataset("label", data=np.full((4, 5, 6), 3, np.uint8))
    with pytest.raises(DataError, match="label values 3 outside the 2 la classes 0..1") as info:
        load_volume(read_seg3d(root).cases[1], found)
    assert one_line(info).startswith(str(second))


# --------------------------------------------------------------------------- bhsd
def test_bhsd_unlabelled_binary_default_and_five_types(twins):
    root = twins["bhsd"]
    found = read_seg3d(root)
    assert found.classes == HAEMORRHAGE_CLASSES and found.binary and found.source_classes == BHSD_CLASSES
    assert found.channels == ("ct",) and {c.split for c in found} == {None} and found.train_order == []
    assert len(found.labelled) == 3 and len(found.unlabelled) == 2
    note = noted(found, "2 image(s) without a label, kept unlabelled")
    assert all(str(c.image) in note for c in found.unlabelled)
    noted(found, "binarised", "SWDL")
    noted(found, "brain window [0, 80] HU")
    case = found.labelled[0]
    volume = load_volume(case, found)
    assert volume.image.min() >= 0 and volume.image.max() <= 1 and set(np.unique(volume.label)) == {0, 1}
    assert volume.spacing == (0.5, 0.5, 5.0) and volume.affine[0, 0] == -0.5 and volume.image.shape == (1, *SIZE)
    raw = nib.load(str(case.image)).get_fdata()
    assert np.allclose(volume.image[0], np.clip(raw, 0, 80) / 80)  # the window, voxel for voxel, no transpose
    multi = read_seg3d(root, binary=False)
    assert multi.classes == BHSD_CLASSES and not multi.binary
    types = set()
    for c in multi.labelled:
        label = load_volume(c, multi).label
        types |= set(np.unique(label).tolist())
        assert np.array_equal(load_label(c, multi, binary=True), label > 0)
    assert types > {0} and types <= set(range(6))
    again = load_volume(case, found, binary=False)  # the file's values on a binarised set
    assert again.label.max() >= 1 and any("not binarised" in n for n in again.notes)
    assert load_volume(found.unlabelled[0], found).label is None and load_label(found.unlabelled[0], found) is None


def test_bhsd_splits_json_and_list_files(twins, tmp_path):
    root = copy(twins, "bhsd", tmp_path)
    found = read_seg3d(root)
    ids = [c.id for c in found.labelled]
    extra = [c.id for c in found.unlabelled]
    (root / "splits.json").write_text(json.dumps({"train": [ids[1] + ".nii.gz", ids[0]], "test": [ids[2]],
                                                  "note": "x"}))
    (root / "train.list").write_text(ids[0])
    found = read_seg3d(root)
    assert found.train_order == [ids[1], ids[0]] and [c.id for c in found.split("test")] == [ids[2]]
    assert {c.id for c in found.split("train")} == {ids[0], ids[1], *extra}  # unlabelled images train
    noted(found, "splits.json", "'note'", "not read")
    noted(found, "train.list", "not read")
    noted(found, "2 unlabelled image(s) in no split, training data")
    (root / "splits.json").unlink()
    (root / "test.list").write_text(f"{ids[2]}\n")
    found = read_seg3d(root)
    assert found.train_order == [ids[0]] and found.case(ids[1]).split is None
    noted(found, "1 labelled case(s) in no split", ids[1])
    (root / "test.list").write_text("ID_missing\n")
    with pytest.raises(LayoutError) as info:
        read_seg3d(root)
    assert one_line(info).startswith(f"{root / 'test.list'} names ID_missing but ")
    (root / "test.list").unlink()
    (root / "splits.json").write_text("{broken")
    with pytest.raises(LayoutError, match="cannot read the split file") as info:
        read_seg3d(root)
    assert one_line(info).startswith(str(root / "splits.json"))


def test_bhsd_release_folder_names_and_refusals(twins, tmp_path):
    root = copy(twins, "bhsd", tmp_path)
    (root / "labels").rename(root / "ground truths")
    (root / "images" / "readme.txt").write_text("x")
    found = read_seg3d(root)
    assert found.layout == "bhsd" and len(found.labelled) == 3
    noted(found, "readme.txt", "not NIfTI")
    scaled = found.unlabelled[0]
    save(scaled.image, np.linspace(0, 1, np.prod(SIZE), dtype=np.float32).reshape(SIZE))
    assert any("look already scaled, not Hounsfield units" in n for n in load_volume(scaled, found).notes)
    save(scaled.image, np.full(SIZE, 1024, np.int16))
    assert any("raw CT numbers" in n for n in load_volume(scaled, found).notes)
    case = found.labelled[0]
    save(case.label, np.zeros((5, 5, 5), np.uint8))  # label of another grid
    with pytest.raises(DataError, match=r"image \(20, 16, 10\) and label \(5, 5, 5\) differ in shape") as info:
        load_volume(case, found)
    assert one_line(info).startswith(str(case.label))
    bad = np.zeros(SIZE, np.uint8)
    bad[0, 0, 0] = 7
    save(case.label, bad)
    with pytest.raises(DataError, match="label values 7 outside the 6 bhsd classes 0..5") as info:
        load_volume(case, found)
    assert one_line(info).startswith(str(case.label))
    save(root / "ground truths" / "ID_orphan.nii.gz", np.zeros(SIZE, np.uint8))
    with pytest.raises(LayoutError, match="label without its image") as info:
        read_seg3d(root)
    assert one_line(info).startswith(str(root / "ground truths" / "ID_orphan.nii.gz"))
    (root / "ground truths" / "ID_orphan.nii.gz").unlink()
    with pytest.raises(LayoutError, match="image without its label"):
        read_seg3d(root, require_labels=True)
    case.image.write_bytes(b"\x1f\x8b broken gzip")
    with pytest.raises(DamagedFileError) as info:
        load_volume(case, found)
    assert one_line(info).startswith(str(case.image))


# --------------------------------------------------------------------------- nifti_folder
def test_nifti_folder_splits_classes_and_zscore(twins):
    found = read_seg3d(twins["nifti_folder"])
    assert found.classes == ("background", "organ", "lesion") and found.channels == ("MRI",)
    assert [(c.id, c.split, c.has_label) for c in found] == [
        ("case_001", "train", True), ("case_002", "train", True), ("case_003", "train", True),
        ("case_005", "train", False), ("case_006", "train", False), ("case_004", "test", True)]
    assert found.train_order == [] and not found.binary
    noted(found, "2 unlabelled image(s)", "case_005_0000.nii.gz")
    volume = load_volume(found.cases[0], found)
    assert abs(volume.image.mean()) < 1e-4 and abs(volume.image.std() - 1) < 1e-4
    assert volume.spacing == (1.0, 1.0, 2.0) and set(np.unique(volume.label)) == {0, 1, 2}
    binary = read_seg3d(twins["nifti_folder"], binary=True)
    assert binary.classes == BINARY_CLASSES and binary.source_classes == found.classes
    assert set(np.unique(load_volume(binary.cases[0], binary).label)) == {0, 1}


def test_nifti_folder_without_dataset_json_plain_names_and_refusals(tmp_path):
    root = tmp_path / "plain"
    image = np.arange(6 * 6 * 6, dtype=np.int16).reshape(6, 6, 6)
    save(root / "imagesTr" / "a.nii.gz", image)
    save(root / "labelsTr" / "a.nii.gz", (image > 100).astype(np.uint8))
    save(root / "imagesTr" / "b.nii.gz", image)
    save(root / "imagesUnlabelled" / "c.nii.gz", image)
    found = read_seg3d(root)
    assert found.classes == BINARY_CLASSES and found.channels == ("image",)
    assert [(c.id, c.has_label) for c in found] == [("a", True), ("b", False), ("c", False)]
    noted(found, "no dataset.json", "('background', 'foreground') assumed")
    noted(found, "1 image(s) without a label, kept unlabelled", "b.nii.gz")
    save(root / "labelsTr" / "a.nii.gz", (image > 100).astype(np.uint8) * 3)
    with pytest.raises(DataError, match="label values 3 outside the 2 nifti classes 0..1"):
        load_volume(found.cases[0], found)
    assert load_volume(found.cases[0], read_seg3d(root, binary=True)).label.max() == 1
    save(root / "imagesTr" / "b_0001.nii.gz", image)  # plain names: b_0001 is a case of its own
    assert {c.id for c in read_seg3d(root)} == {"a", "b", "b_0001", "c"}

    nn = tmp_path / "nnunet"
    for name in ("x_0000", "x_0001"):
        save(nn / "imagesTr" / f"{name}.nii.gz", image)
    save(nn / "labelsTr" / "x.nii.gz", np.zeros((6, 6, 6), np.uint8))
    with pytest.raises(LayoutError, match="a second channel of x") as info:
        read_seg3d(nn)
    assert one_line(info).startswith(str(nn / "imagesTr" / "x_0001.nii.gz"))
    (nn / "imagesTr" / "x_0001.nii.gz").unlink()
    (nn / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "2": "tumour"}}))
    with pytest.raises(LayoutError, match=r"label values \[0, 2\] are not 0..1") as info:
        read_seg3d(nn)
    assert one_line(info).startswith(str(nn / "dataset.json"))
    (nn / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "tumour": 1}, "modality": {"0": "CT"}}))
    found = read_seg3d(nn)
    assert found.classes == ("background", "tumour") and found.channels == ("CT",) and found.cases[0].id == "x"
    save(nn / "labelsTr" / "y.nii.gz", np.zeros((6, 6, 6), np.uint8))
    with pytest.raises(LayoutError, match="label without its image"):
        read_seg3d(nn)


def test_constant_and_non_finite_images_are_refused(tmp_path):
    root = tmp_path / "flat"
    save(root / "imagesTr" / "a.nii.gz", np.full((6, 6, 6), 7, np.int16))
    found = read_seg3d(root)
    with pytest.raises(DataError, match="constant") as info:
        load_volume(found.cases[0], found)
    assert one_line(info).startswith(str(root / "imagesTr" / "a.nii.gz"))
    nan = np.ones((6, 6, 6), np.float32)
    nan[1, 1, 1] = np.nan
    save(root / "imagesTr" / "a.nii.gz", nan)
    with pytest.raises(DataError, match="NaN"):
        load_volume(found.cases[0], found)
    assert volume_shape(found.cases[0], found) == (6, 6, 6)


def test_errors_are_input_errors():
    for cls in (LayoutError, DataError, DamagedFileError):
        assert issubclass(cls, InputError)


# --------------------------------------------------------------------------- real data
@pytest.mark.realdata
@needs_la
def test_real_la2018_copy():
    root = Path(LA_REAL)
    found = read_seg3d(root)
    assert found.layout == "la2018" and found.dataset == "la" and found.has_splits and len(found) == 100
    assert len(found.split("train")) == 80 and len(found.split("test")) == 20 and not found.split("val")
    assert found.train_order == (root / "train.list").read_text().split() and len(found.train_order) == 80
    assert all(c.has_label for c in found)
    noted(found, "desktop.ini")  # the release's Windows debris is named, not silently skipped
    noted(found, "spacing", "(1, 1, 1)")
    shapes = [volume_shape(c, found) for c in found]
    assert all(len(s) == 3 and s[2] == 88 for s in shapes)  # x, y cropped per volume; the 88 slices kept
    for case in (found.split("train")[0], found.split("test")[0]):
        volume = load_volume(case, found)
        assert volume.image.shape == (1, *volume_shape(case, found)) and volume.label.shape == volume.image.shape[1:]
        assert volume.image.dtype == np.float32 and np.isfinite(volume.image).all()
        assert set(np.unique(volume.label)) == {0, 1} and volume.spacing == (1.0, 1.0, 1.0)
