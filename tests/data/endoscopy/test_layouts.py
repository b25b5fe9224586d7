import logging
import shutil

import pytest

from medmodal.data.endoscopy.layouts import (LayoutError, detect_layout, read_csv_samples, read_official_split,
                                             read_samples, write_samples_csv)
from medmodal.data.endoscopy.samples import AUTHORS_CLASSES, harmonise_labels
from tests.data.endoscopy.conftest import (HYPERKVASIR_SPLITS, KVASIR_ONE_PER_CLASS, KVASIR_SEG, REAL_PAIRS,
                                           requires_endoscopy_data, write_image)


def _copy(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)


def test_authors_layout_pairs_by_name_and_reports_unpaired(authors_root, caplog):
    with caplog.at_level(logging.WARNING, logger="medmodal.data.endoscopy"):
        samples = read_samples(authors_root)
    assert detect_layout(authors_root) == "authors"
    assert len(samples) == 8 and {s.source for s in samples} == {"authors"}
    by_id = {s.sample_id: s for s in samples}
    assert by_id["polyps/000"].paired and by_id["polyps/000"].wli.parent.name == "polyps_WLI"
    assert by_id["polyps/000"].nbi.name == "000.png" and by_id["polyps/000"].label == "polyps"
    assert by_id["polyps/lonely_wli"].present == (True, False)
    assert by_id["normal-cecum/lonely_nbi"].present == (False, True)
    text = caplog.text
    assert "lonely_wli.png: no NBI partner" in text and "lonely_nbi.png: no WLI partner" in text
    assert "2 of 8 samples lack a partner image (1 WLI-only, 1 NBI-only)" in text
    assert "DS_Store" not in text and "MACOSX" not in text  # hidden files are not data


def test_authors_layout_pairs_across_suffixes_and_refuses_ambiguous_names(tmp_path):
    write_image(tmp_path / "ulcer_WLI" / "a.jpg")
    write_image(tmp_path / "ulcer_NBI" / "a.png")
    (s,) = read_samples(tmp_path)
    assert s.paired and s.wli.suffix == ".jpg" and s.nbi.suffix == ".png"
    write_image(tmp_path / "ulcer_NBI" / "a.jpg")
    with pytest.raises(LayoutError, match="two images named 'a'"):
        read_samples(tmp_path)


@requires_endoscopy_data
def test_real_wl_nbi_pairs_load(caplog):
    with caplog.at_level(logging.WARNING, logger="medmodal.data.endoscopy"):
        samples = read_samples(REAL_PAIRS)
    assert detect_layout(REAL_PAIRS) == "wl-nbi"
    assert len(samples) == 12 and all(s.paired for s in samples)
    assert sorted({s.label for s in samples}) == ["adenoma", "hyperplasic", "serrated"]
    assert all(s.wli.name == s.nbi.name for s in samples)
    assert "warning" not in caplog.text.lower() and not caplog.records


def test_wl_nbi_unlabelled_images_and_missing_partner(tmp_path, caplog):
    write_image(tmp_path / "WL" / "adenoma" / "adenoma_1.jpg")
    write_image(tmp_path / "NBI" / "adenoma" / "adenoma_1.jpg")
    write_image(tmp_path / "WL" / "adenoma" / "adenoma_2.jpg")
    write_image(tmp_path / "WL" / "loose.jpg")
    with caplog.at_level(logging.WARNING, logger="medmodal.data.endoscopy"):
        samples = read_samples(tmp_path)
    assert [(s.sample_id, s.label, s.present) for s in samples] == [
        ("adenoma/adenoma_1", "adenoma", (True, True)), ("adenoma/adenoma_2", "adenoma", (True, False)),
        ("loose", None, (True, False))]
    assert "adenoma_2.jpg: no NBI partner" in caplog.text and "2 of 3 samples lack a partner" in caplog.text


@requires_endoscopy_data
def test_kvasir_class_folders(tmp_path, caplog):
    root = tmp_path / "kvasir-dataset-v2"
    names = {"cecum": "normal-cecum", "polyp": "polyps", "esophagitis": "esophagitis"}
    for src, cls in names.items():
        _copy(KVASIR_ONE_PER_CLASS / f"{src}.jpg", root / cls / "img1.jpg")
    write_image(root / "polyps" / "masks" / "img1.jpg")  # a masks folder is not a class
    with caplog.at_level(logging.WARNING, logger="medmodal.data.endoscopy"):
        samples = read_samples(root)
    assert detect_layout(root) == "kvasir"
    assert [(s.sample_id, s.label, s.present) for s in samples] == [
        ("esophagitis/img1", "esophagitis", (True, False)), ("normal-cecum/img1", "normal-cecum", (True, False)),
        ("polyps/img1", "polyps", (True, False))]
    assert "masks: ignored" in caplog.text
    assert "partner" not in caplog.text  # a single-modality dataset is not reported as unpaired


@requires_endoscopy_data
def test_hyperkvasir_with_official_split_file(tmp_path, caplog):
    split_file = HYPERKVASIR_SPLITS / "2_fold_split.csv"
    table = read_official_split(split_file)
    assert len(table) == 10662 and table["4bf58f1c-8233-41fc-9614-344e6d0fc351.jpg"] == ("impacted-stool", "fold0")
    cecum = [n for n, (c, _) in table.items() if c == "normal-cecum"][:2]
    root = tmp_path / "labeled-images"
    for name in cecum:
        _copy(KVASIR_ONE_PER_CLASS / "cecum.jpg", root / "lower-gi-tract" / "anatomical-landmarks" / "cecum" / name)
    write_image(root / "upper-gi-tract" / "anatomical-landmarks" / "pylorus" / "not-listed.jpg")
    with caplog.at_level(logging.WARNING, logger="medmodal.data.endoscopy"):
        samples = read_samples(root, split_file=split_file)
    by_name = {s.wli.name: s for s in samples}
    for name in cecum:  # label from the split file (its class names differ from the folder names)
        assert by_name[name].label == "normal-cecum" and by_name[name].split == table[name][1]
    assert by_name["not-listed.jpg"].label == "pylorus" and by_name["not-listed.jpg"].split is None
    assert "1 of 3 images are not in the split file" in caplog.text and "pylorus/not-listed.jpg" in caplog.text
    assert "10660 of 10662 listed images are not under" in caplog.text
    assert len(read_official_split(HYPERKVASIR_SPLITS / "5_fold_split.csv")) == 10662


@requires_endoscopy_data
def test_real_kvasir_seg_and_image_folder():
    seg = read_samples(KVASIR_SEG, "kvasir-seg")   # asked for: images/ as one class (auto refuses it)
    assert len(seg) == 5 and all(s.label == "polyps" and s.present == (True, False) for s in seg)
    assert all(s.wli.parent.name == "images" for s in seg)
    flat = read_samples(KVASIR_ONE_PER_CLASS)
    assert detect_layout(KVASIR_ONE_PER_CLASS) == "image-folder"
    assert len(flat) == 8 and all(s.label is None for s in flat)


def test_csv_layout_and_roundtrip(tmp_path):
    write_image(tmp_path / "img" / "a_wli.jpg")
    write_image(tmp_path / "img" / "a_nbi.png")
    write_image(tmp_path / "img" / "b_wli.jpg")
    (tmp_path / "pairs.csv").write_text("WLI,NBI,Label\nimg/a_wli.jpg,img/a_nbi.png,polyps\nimg/b_wli.jpg,,\n")
    samples = read_samples(tmp_path / "pairs.csv")
    assert [(s.sample_id, s.present, s.label) for s in samples] == [("a_wli", (True, True), "polyps"),
                                                                     ("b_wli", (True, False), None)]
    write_samples_csv(tmp_path / "out" / "list.csv", samples)
    assert read_csv_samples(tmp_path / "out" / "list.csv") == [
        s.__class__(s.sample_id, s.wli.resolve(), s.nbi.resolve() if s.nbi else None, s.label, s.split, "csv")
        for s in samples]


def test_csv_errors_name_file_and_row(tmp_path):
    (tmp_path / "a.csv").write_text("wli,nbi\nmissing.jpg,\n")
    with pytest.raises(FileNotFoundError, match=r"a.csv:2: .*missing.jpg does not exist"):
        read_samples(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("image,target\nx.jpg,1\n")
    with pytest.raises(ValueError, match="b.csv: the header needs a 'wli' and/or an 'nbi' column"):
        read_samples(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("wli,nbi,label\n,,polyps\n")
    with pytest.raises(ValueError, match="c.csv:2: row has neither"):
        read_samples(tmp_path / "c.csv")


def test_unrecognised_layout_is_one_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(LayoutError, match="cannot recognise the layout"):
        read_samples(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        read_samples(tmp_path / "absent")
    with pytest.raises(LayoutError, match="unknown layout"):
        read_samples(tmp_path, layout="dicom")


def test_harmonise_kvasir_labels_to_the_authors_classes(caplog):
    from medmodal.data.endoscopy.samples import PairedSample

    raw = [PairedSample(str(i), None, None, lab) for i, lab in enumerate(
        ["cecum", "z-line", "oesophagitis-b-d", "ulcerative-colitis-grade-2", "polyp", "pylorus", "bbps-0-1", None])]
    with caplog.at_level(logging.WARNING, logger="medmodal.data.endoscopy"):
        out = harmonise_labels(raw)
    assert {s.label for s in out} - {None} == set(AUTHORS_CLASSES)
    assert len(out) == 7 and "bbps-0-1 1" in caplog.text


def test_images_not_in_the_split_file_are_one_warning_with_a_count(tmp_path, caplog):
    """Docs promise one warning with a count (it used to be one line per image, up to 20, then the count)."""
    split_file = tmp_path / "split.csv"
    split_file.write_text("file-name;class-name;split-index\nlisted.jpg;polyp;0\n")
    write_image(tmp_path / "data" / "polyps" / "listed.jpg")
    for i in range(30):
        write_image(tmp_path / "data" / "polyps" / f"extra{i:02d}.jpg", size=(8, 8))
    with caplog.at_level(logging.WARNING, logger="medmodal.data.endoscopy"):
        samples = read_samples(tmp_path / "data", split_file=split_file)
    assert len(samples) == 31
    lines = [r.getMessage() for r in caplog.records if "split file" in r.getMessage()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("30 of 31 images are not in the split file") and "polyps/extra00.jpg" in lines[0]
    assert "and 25 more" in lines[0]
