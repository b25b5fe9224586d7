"""medmodal.data.seg2d ``meniscus`` (ERANet's .npy slices + CSV lists) and ``folder2d`` (images/ + masks/ +
unlabelled/): twins read back by the real readers, detection (Kvasir-SEG's unchanged), unlabelled cases, notes,
and one-line refusals naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmodal.data.seg2d import (MENISCUS_CLASSES, as_seg2d_dataset, case_patient, case_shape, detect_layout,
                                 load_case, load_label, read_seg2d, write_synthetic)
from medmodal.data.seg2d.common import patient_of, percentile_scale
from medmodal.data.seg2d.meniscus import patient_from_name
from medmodal.data.seg2d.synthetic import FOLDER2D_TWIN_CLASSES, KNEE_SLICES, split_counts
from medmodal.errors import DamagedFileError, DataError, LayoutError

SIZE = 24


def one_line(info) -> str:
    text = str(info.value)
    assert "\n" not in text and text
    return text


def knee(tmp_path, n=4, **kw) -> Path:
    return write_synthetic(tmp_path / "knee", "meniscus", n=n, size=SIZE, seed=kw.pop("seed", 1), **kw)


def pictures(tmp_path, n=4, name="mine") -> Path:
    return write_synthetic(tmp_path / name, "folder2d", n=n, size=SIZE, seed=1)


# --------------------------------------------------------------------------- meniscus
def test_meniscus_twin_reads_back(tmp_path):
    root = knee(tmp_path, n=10)
    counts = split_counts("meniscus", 10)
    assert counts == {"train": 4, "val": 1, "test": 2, "unlabelled": 3}
    assert {p.name for p in root.glob("*.csv")} == {"train_lb.csv", "val.csv", "test.csv", "train_unlb.csv"}
    assert detect_layout(root) == ("meniscus", root)
    found = read_seg2d(root)
    assert (found.layout, found.dataset, found.classes, found.channels) == ("meniscus", "meniscus", MENISCUS_CLASSES,
                                                                            ("mri",))
    assert {s: len(found.split(s)) for s in ("train", "val", "test")} == {"train": 21, "val": 3, "test": 6}
    assert found.has_splits and all(c.kind == "npy" for c in found)
    unlabelled = [c for c in found if not c.has_label]
    assert len(unlabelled) == 3 * KNEE_SLICES and {c.split for c in unlabelled} == {"train"}
    assert all(c.label == () for c in unlabelled)
    assert any("unlabelled slice(s)" in n and "train_unlb.csv" in n and unlabelled[0].id in n for n in found.notes)
    assert any("patients derived from the image file names" in n for n in found.notes)
    # patients: the subject of img_<subject>_<k>.npy; the three slices of a knee are one patient
    assert found.cases[0].id == "img_9000001_000" and case_patient(found.cases[0]) == "9000001"
    by_patient = {}
    for case in found:
        by_patient.setdefault(case_patient(case), set()).add(case.split)
    assert len(by_patient) == 10 and all(len(s) == 1 for s in by_patient.values())
    assert len(found.train_order) == 4 * KNEE_SLICES and all(found.cases[i].has_label for i in range(12))
    seen = set()
    for case in found:
        arrays = load_case(found, case)
        assert arrays.image.shape == (1, 1, SIZE, SIZE) and arrays.image.dtype == np.float32
        assert case_shape(found, case) == (1, SIZE, SIZE)
        assert arrays.image.min() == 0.0 and arrays.image.max() == 1.0 and arrays.image.std() > 0.05
        assert arrays.spacing is None and arrays.affine is None
        if not case.has_label:
            assert arrays.label is None and load_label(found, case) is None
            continue
        assert arrays.label.shape == (1, SIZE, SIZE) and arrays.label.dtype == np.int64
        seen |= set(np.unique(arrays.label).tolist())
    assert seen == set(range(5))
    # both label forms: class values (odd subjects) and a 5-channel one-hot (even subjects)
    assert np.load(found.cases[0].label[0]).shape == (SIZE, SIZE)
    assert np.load(found.cases[KNEE_SLICES].label[0]).shape == (5, SIZE, SIZE)


def test_meniscus_intensity_is_erana_percentile_rescale(tmp_path):
    root = knee(tmp_path, n=2)
    found = read_seg2d(root)
    case = found.cases[0]
    raw = np.load(case.image[0])
    assert raw.shape == (1, SIZE, SIZE) and raw.max() > 100  # scanner-like values, as ERANet's [1, H, W] files
    p10, p99 = np.percentile(raw[0], (10, 99))
    expected = np.clip((raw[0] - p10) / (p99 - p10), 0, 1)
    assert np.allclose(load_case(found, case).image[0, 0], expected, atol=1e-5)
    assert np.array_equal(percentile_scale(np.full((4, 4), 7.0)), np.zeros((4, 4), np.float32))


def test_meniscus_class_order_lateral_left_medial_right(tmp_path):
    found = read_seg2d(knee(tmp_path, n=2))
    label = load_case(found, found.cases[1]).label[0]
    cols = {v: np.nonzero(label == v)[1].mean() for v in range(1, 5)}
    assert cols[1] < SIZE / 2 < cols[3] and cols[2] < SIZE / 2 < cols[4]
    rows = {v: np.nonzero(label == v)[0].mean() for v in range(1, 5)}
    assert rows[1] < rows[2] and rows[3] < rows[4]  # menisci sit on the tibial cartilage


def test_meniscus_header_subject_column_paths_and_notes(tmp_path):
    root = knee(tmp_path, n=4)
    found = read_seg2d(root)
    first, second = found.split("train")[0], found.split("test")[0]
    free = next(c for c in found if not c.has_label)
    lists = root / "splits"
    lists.mkdir()
    for path in root.glob("*.csv"):
        path.unlink()
    # paths relative to the root (ERANet joins them to its data folder), one absolute; a header; other columns
    (lists / "train.csv").write_text(f"Subject,Image,Label,Note\nK1,images/{first.image[0].name},"
                                     f"labels/{first.label[0].name},x\n", encoding="utf-8")
    (lists / "test.csv").write_text(f"{second.image[0]},{second.label[0]}\n", encoding="utf-8")
    (lists / "unlabeled.csv").write_text(f"images/{free.image[0].name},labels/none.npy\n")
    (lists / "all.csv").write_text("whatever\n")
    assert detect_layout(root) == ("meniscus", root)
    again = read_seg2d(root)
    assert [(c.id, c.split, c.has_label) for c in again] == [(first.id, "train", True),
                                                           (free.id, "train", False),
                                                           (second.id, "test", True)]
    assert again.cases[0].patient == "K1" and case_patient(again.cases[2]) == patient_from_name(second.image[0])
    notes = " | ".join(again.notes)
    assert "column(s) not read: Note" in notes and "all.csv" in notes and "not read" in notes
    assert "unlabeled.csv: the label column of the unlabelled list is not read (1 row(s))" in notes
    assert "named by no CSV, not used" in notes  # the other slices beside the listed ones
    assert "where the subject column is empty" in notes


def test_meniscus_missing_file_names_csv_line_and_file(tmp_path):
    root = knee(tmp_path, n=4)
    victim = root / "images" / "img_9000001_001.npy"
    victim.unlink()
    with pytest.raises(LayoutError) as info:
        read_seg2d(root)
    assert one_line(info) == f"{root / 'train_lb.csv'}: line 2 names images/img_9000001_001.npy, but {victim} is missing"
    np.save(victim, np.zeros((1, SIZE, SIZE), np.float32))
    label = root / "labels" / "lab_9000003_000.npy"
    label.unlink()
    with pytest.raises(LayoutError) as info:
        read_seg2d(root)
    assert one_line(info).startswith(f"{root / 'test.csv'}: line 1 names labels/lab_9000003_000.npy, but {label}")


def test_meniscus_label_problems_are_data_errors_naming_the_file(tmp_path):
    root = knee(tmp_path, n=4)
    found = read_seg2d(root)
    case = found.cases[0]
    np.save(case.label[0], np.zeros((SIZE, SIZE - 2), np.uint8))
    with pytest.raises(DataError) as info:
        load_case(found, case)
    assert one_line(info) == (f"{case.image[0]} and {case.label[0]}: image ({SIZE}, {SIZE}) and label "
                              f"({SIZE}, {SIZE - 2}) differ in shape")
    np.save(case.label[0], np.full((SIZE, SIZE), 7, np.uint8))
    with pytest.raises(DataError) as info:
        load_label(found, case)
    assert one_line(info) == f"{case.label[0]}: label values 7 outside the 5 meniscus classes 0..4"
    np.save(case.label[0], np.ones((5, SIZE, SIZE), np.uint8))
    with pytest.raises(DataError, match="not one-hot") as info:
        load_case(found, case)
    assert one_line(info).startswith(str(case.label[0]))
    np.save(case.label[0], np.zeros((3, SIZE, SIZE), np.uint8))
    with pytest.raises(DataError, match=r"expected \[H, W\] class values or a one-hot \[5, H, W\]"):
        load_case(found, case)
    hot = np.zeros((SIZE, SIZE, 5), np.float32)
    hot[..., 3] = 1  # channel-last one-hot: all medial meniscus
    np.save(case.label[0], hot)
    assert set(np.unique(load_case(found, case).label)) == {3}
    np.save(case.image[0], np.zeros((2, SIZE, SIZE), np.float32))
    with pytest.raises(DataError, match="expected a 2-D image slice") as info:
        load_case(found, case)
    assert one_line(info).startswith(str(case.image[0]))
    case.image[0].write_bytes(b"\x93NUMPY broken")
    with pytest.raises(DamagedFileError) as info:
        load_case(found, case)
    assert one_line(info).startswith(f"{case.image[0]}: not a readable .npy file")


def test_meniscus_rows_without_label_and_slices_in_two_splits(tmp_path):
    root = knee(tmp_path, n=4)
    train = root / "train_lb.csv"
    rows = train.read_text().splitlines()
    train.write_text("\n".join([rows[0].split(",")[0], *rows[1:]]) + "\n")
    with pytest.raises(LayoutError) as info:
        read_seg2d(root)
    assert one_line(info).startswith(f"{train}: line 1 names images/img_9000001_000.npy without a label")
    kept = read_seg2d(root, require_labels=False)
    assert sum(not c.has_label for c in kept) == 1 + KNEE_SLICES
    assert any("without a label path, kept unlabelled" in n for n in kept.notes)
    train.write_text("\n".join(rows) + "\n")
    test_rows = (root / "test.csv").read_text()
    (root / "val.csv").write_text(test_rows.splitlines()[0] + "\n")
    with pytest.raises(LayoutError, match="puts in val") as info:
        read_seg2d(root)
    assert one_line(info).startswith(f"{root / 'test.csv'}: line 1 names images/img_9000003_000.npy")
    (root / "val.csv").unlink()
    (root / "train_unlb.csv").write_text(rows[0].split(",")[0] + "\n" + (root / "train_unlb.csv").read_text())
    (root / "test.csv").write_text(test_rows + test_rows.splitlines()[0] + "\n")
    found = read_seg2d(root)
    assert found.cases[0].has_label and len(found) == 4 * KNEE_SLICES
    notes = " | ".join(found.notes)
    assert "1 slice(s) also in a labelled list, read once, labelled" in notes
    assert "test.csv: 1 slice(s) listed again, read once" in notes
    (root / "test.csv").write_text("images/img_9000003_000.png,labels/lab_9000003_000.npy\n")
    with pytest.raises(LayoutError, match=r"line 1 names images/img_9000003_000\.png, which is not a \.npy file"):
        read_seg2d(root)
    (root / "test.csv").write_text("Image;Label\nimages/x.npy\n")
    with pytest.raises(LayoutError, match="no image column") as info:
        read_seg2d(root, "meniscus")
    one_line(info)


def test_meniscus_patient_rule():
    assert patient_from_name(Path("/d/img_9001104_R_030.npy")) == "9001104_R"  # ERANet's basename[4:-8]
    assert patient_from_name(Path("/d/9001104_030.npy")) == "9001104"
    assert patient_from_name(Path("/d/case7-slice12.npy")) == "case7"
    assert patient_from_name(Path("/d/image_knee3_slice_4.npy")) == "knee3"
    assert patient_from_name(Path("/d/9001104/030.npy")) == "9001104"  # a numeric stem: its folder
    assert patient_from_name(Path("/d/scan.npy")) == "scan"
    assert patient_of("patient001_frame01") == "patient001" and patient_of("case0005") == "case0005"


def test_meniscus_detection_is_specific(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "train.csv").write_text("image,label\na.png,b.png\n")
    assert as_seg2d_dataset(plain) is None
    with pytest.raises(LayoutError) as info:
        read_seg2d(plain, "meniscus")
    assert "is not a .npy file" in one_line(info)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="not a meniscus folder") as info:
        read_seg2d(tmp_path / "empty", "meniscus")
    assert one_line(info).startswith(str(tmp_path / "empty"))


# --------------------------------------------------------------------------- folder2d
def test_folder2d_twin_reads_back(tmp_path):
    root = pictures(tmp_path, n=5)
    assert detect_layout(root) == ("folder2d", root)
    found = read_seg2d(root)
    assert (found.layout, found.dataset, found.classes, found.channels) == ("folder2d", "folder2d",
                                                                            FOLDER2D_TWIN_CLASSES, ("grey",))
    assert len(found) == 5 and not found.has_splits and all(c.split is None and c.kind == "image" for c in found)
    assert [c.id for c in found if not c.has_label] == ["sample_004", "sample_005"]
    assert any("2 unlabelled picture(s)" in n and "sample_004, sample_005" in n for n in found.notes)
    seen = set()
    for case in found:
        arrays = load_case(found, case)
        assert arrays.image.shape == (1, 1, SIZE, SIZE) and arrays.image.dtype == np.float32
        assert 0 <= arrays.image.min() and arrays.image.max() <= 1 and arrays.image.std() > 0.05
        assert case_shape(found, case) == (1, SIZE, SIZE)
        if case.has_label:
            assert arrays.label.shape == (1, SIZE, SIZE) and arrays.label.dtype == np.int64
            seen |= set(np.unique(arrays.label).tolist())
        else:
            assert arrays.label is None and case.label == ()
    assert seen == {0, 1, 2}


def test_folder2d_detection_leaves_plain_and_kvasir_folders_alone(tmp_path):
    root = pictures(tmp_path, n=3)
    plain = tmp_path / "plain"
    shutil.copytree(root / "images", plain / "images")
    shutil.copytree(root / "masks", plain / "masks")
    assert as_seg2d_dataset(plain) is None  # needs --layout folder2d
    assert read_seg2d(plain, "folder2d").classes == ("background", "class1", "class2")
    (plain / "classes.txt").write_text("background\ndisc\nsquare\n")
    assert detect_layout(plain) == ("folder2d", plain)
    (plain / "classes.txt").unlink()
    shutil.copytree(root / "unlabelled", plain / "unlabeled")  # the other spelling
    assert detect_layout(plain) == ("folder2d", plain)
    # a Kvasir-SEG folder keeps its detection, with an unlabelled/ folder or a classes.txt beside
    kvasir = write_synthetic(tmp_path / "kv", "kvasir_seg", n=2, size=SIZE)
    assert detect_layout(kvasir) == ("kvasir_seg", kvasir)
    shutil.copytree(root / "unlabelled", kvasir / "unlabelled")
    (kvasir / "classes.txt").write_text("background\npolyp\n")
    assert detect_layout(kvasir) == ("kvasir_seg", kvasir)
    named = tmp_path / "kvasir-copy"
    shutil.copytree(plain, named)
    assert detect_layout(named)[0] == "kvasir_seg"


def test_folder2d_classes_from_masks_and_binary_255(tmp_path):
    root = pictures(tmp_path, n=3)
    (root / "classes.txt").unlink()
    found = read_seg2d(root)
    assert found.classes == ("background", "class1", "class2")
    assert any("classes from the largest mask value (2)" in n and "classes.txt" in n for n in found.notes)
    for mask in (root / "masks").iterdir():
        values = np.asarray(Image.open(mask))
        Image.fromarray(((values == 1) * 255).astype(np.uint8)).save(mask)
    found = read_seg2d(root)
    assert found.classes == ("background", "class1")
    assert any("2 mask(s) of 0 / 255 read as binary (255 -> 1)" in n for n in found.notes)
    label = load_case(found, found.cases[0]).label
    assert set(np.unique(label)) == {0, 1}
    Image.fromarray(np.full((SIZE, SIZE), 200, np.uint8)).save(root / "masks" / "sample_001.png")
    with pytest.raises(LayoutError) as info:
        read_seg2d(root)
    assert one_line(info).startswith(f"{root / 'masks' / 'sample_001.png'}: mask values up to 200 beside masks of")
    (root / "classes.txt").write_text("background\nthing\n")
    found = read_seg2d(root)
    with pytest.raises(DataError) as info:
        load_case(found, found.cases[0])
    assert one_line(info) == f"{root / 'masks' / 'sample_001.png'}: label values 200 outside the 2 classes 0..1"
    (root / "classes.txt").write_text("background\n")
    with pytest.raises(LayoutError, match="at least two class names"):
        read_seg2d(root)


def test_folder2d_mixed_grey_and_rgb_is_one_line(tmp_path):
    root = pictures(tmp_path, n=3)
    odd = root / "unlabelled" / "colour.png"
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(odd)
    with pytest.raises(LayoutError) as info:
        read_seg2d(root)
    assert one_line(info) == (f"{odd}: a colour picture among grey ones (the first, {root / 'images' / 'sample_001.png'}"
                              f", is grey); make them all grey or all RGB")
    for folder in ("images", "unlabelled"):
        for path in (root / folder).iterdir():
            grey = np.asarray(Image.open(path).convert("L"))
            Image.fromarray(np.stack([grey, grey // 2, grey], -1)).save(path)
    found = read_seg2d(root)
    assert found.channels == ("red", "green", "blue")
    assert load_case(found, found.cases[0]).image.shape == (1, 3, SIZE, SIZE)


def test_folder2d_splits_json(tmp_path):
    root = pictures(tmp_path, n=4)
    (root / "splits.json").write_text(json.dumps({"train": ["sample_001", "sample_004.png"], "val": ["sample_002"]}))
    found = read_seg2d(root)
    assert [(c.id, c.split, c.has_label) for c in found] == [("sample_001", "train", True),
                                                           ("sample_004", "train", False),
                                                           ("sample_002", "val", True), ("sample_003", None, True)]
    assert any("splits.json: 1 case(s) in no split (split None): sample_003" in n for n in found.notes)
    (root / "splits.json").write_text(json.dumps({"train": ["nope"]}))
    with pytest.raises(LayoutError) as info:
        read_seg2d(root)
    assert one_line(info).startswith(f"{root / 'splits.json'}: train names 'nope', but no picture")
    (root / "splits.json").write_text(json.dumps({"train": ["sample_001"], "test": ["sample_001"]}))
    with pytest.raises(LayoutError, match="in both the train and the test split"):
        read_seg2d(root)
    (root / "splits.json").write_text(json.dumps({"training": []}))
    with pytest.raises(LayoutError, match="unknown split 'training'"):
        read_seg2d(root)
    (root / "splits.json").write_text("{broken")
    with pytest.raises(LayoutError, match="not a readable JSON file") as info:
        read_seg2d(root)
    one_line(info)


def test_folder2d_pairs_and_mask_problems(tmp_path):
    root = pictures(tmp_path, n=4)
    mask = root / "masks" / "sample_002.png"
    kept = tmp_path / "kept.png"
    shutil.move(mask, kept)
    with pytest.raises(LayoutError) as info:
        read_seg2d(root)
    assert one_line(info).startswith(f"{root / 'images' / 'sample_002.png'}: image without its mask")
    found = read_seg2d(root, require_labels=False)
    assert [c.has_label for c in found] == [True, False, True, False]
    assert any("1 image(s) without a mask, kept unlabelled" in n for n in found.notes)
    shutil.move(kept, mask)
    shutil.copy(mask, root / "masks" / "stray.png")
    with pytest.raises(LayoutError, match="stray.png: mask without its image"):
        read_seg2d(root)
    (root / "masks" / "stray.png").unlink()
    shutil.copy(root / "images" / "sample_001.png", root / "unlabelled" / "sample_001.png")
    with pytest.raises(LayoutError, match="is both in"):
        read_seg2d(root)
    (root / "unlabelled" / "sample_001.png").unlink()
    (root / "images" / "notes.txt").write_text("x")
    (root / "images" / "extra.npy").write_bytes(b"")
    found = read_seg2d(root)
    assert any("no picture, not used" in n and "extra.npy" in n for n in found.notes)
    case = found.cases[1]
    Image.fromarray(np.zeros((SIZE, SIZE + 3), np.uint8)).save(case.label[0])
    with pytest.raises(DataError) as info:
        load_case(found, case)
    assert one_line(info).startswith(f"{case.image[0]} and {case.label[0]}: image (")
    colour = np.zeros((SIZE, SIZE, 3), np.uint8)
    colour[..., 0] = 1
    Image.fromarray(colour).save(case.label[0])
    with pytest.raises(DataError, match="a colour mask") as info:
        load_case(found, case)
    assert one_line(info).startswith(str(case.label[0]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="not a folder2d folder") as info:
        read_seg2d(tmp_path / "empty", "folder2d")
    assert one_line(info).startswith(str(tmp_path / "empty"))
