"""MIMIC-CXR-JPG + reports: sections, frontal views, official split, labels, bad input."""

import gzip

import pytest

from medmodal.data.cxr.mimic import read_mimic_cxr
from medmodal.data.cxr.records import CXRDataError
from tests.data.cxr.conftest import MIMIC_REPORTS, write_mimic

pytestmark = pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")


@pytest.fixture
def mimic_root(tmp_path):
    return write_mimic(tmp_path / "mimic-cxr-jpg")


def test_rows_sections_split_labels(mimic_root):
    result = read_mimic_cxr(mimic_root)
    by_study = {}
    for s in result.studies:
        by_study.setdefault(s.study_id, []).append(s)
    assert sorted(by_study) == ["50000001", "50000002", "50000004", "50000005"]
    assert result.dropped == {"no FINDINGS or IMPRESSION": 1}  # a study left out whole
    assert result.excluded == {"view not PA/AP": 1}  # the lateral image of a kept study
    first = by_study["50000001"][0]
    assert first.patient_id == "10000001" and first.view_positions == ["PA"] and first.split == "train"
    assert first.image_path == mimic_root / "files/p10/p10000001/s50000001/d50000001-0.jpg"
    assert first.sentences[0] == "no acute cardiopulmonary process"  # impression first
    assert by_study["50000002"][0].impression.startswith("Interval increase")  # 'IMPRESSON:'
    assert len(by_study["50000005"]) == 2 and by_study["50000005"][0].split == "val"  # every frontal DICOM a row
    fourth = by_study["50000004"][0]
    assert fourth.split == "test" and fourth.labels["Cardiomegaly"] == 1 and fourth.labels["Edema"] == -1
    assert fourth.labels["Atelectasis"] is None and fourth.labels["Pleural Effusion"] == 0
    merged = read_mimic_cxr(mimic_root, merge_val_test=True)
    assert {s.split for s in merged.studies} == {"train", "val"}
    grouped = read_mimic_cxr(mimic_root, rows="study", views="all")
    assert [len(s.image_paths) for s in grouped.studies if s.study_id == "50000001"] == [2]


def test_bad_reports_raise_or_are_skipped(tmp_path):
    reports = dict(MIMIC_REPORTS)
    reports[("10000005", "50000006")] = " FINDINGS:  ___ ___.\n IMPRESSION:  ___\n"
    root = write_mimic(tmp_path / "m", reports)
    bad_txt = root / "files/p10/p10000001/s50000002.txt"
    bad_txt.write_bytes(b" IMPRESSION:  Effusion \xff\xfe.\n")
    with pytest.raises(CXRDataError, match=r"s50000002\.txt: not UTF-8 text"):
        read_mimic_cxr(root)
    (root / "files/p10/p10000003/s50000004/d50000004-0.jpg").unlink()
    (root / "files/p10/p10000004/s50000005.txt").unlink()
    result = read_mimic_cxr(root, skip_bad=True)
    assert sorted({s.study_id for s in result.studies}) == ["50000001"]
    problems = " | ".join(p for _, p in result.skipped)
    assert "not UTF-8" in problems and "only de-identification tokens" in problems
    assert "d50000004-0.jpg: image file not found" in problems and "s50000005.txt: file not found" in problems
    assert len(read_mimic_cxr(root, skip_bad=True, check_images=False).studies) == 2


def test_layout_errors(tmp_path, mimic_root):
    with pytest.raises(CXRDataError, match="metadata.csv\\[.gz\\] not found"):
        read_mimic_cxr(tmp_path)
    split = mimic_root / "mimic-cxr-2.0.0-split.csv.gz"
    text = gzip.decompress(split.read_bytes()).decode().replace("d50000002-0,50000002,10000001,train",
                                                                "d50000002-0,50000002,10000001,test")
    split.write_bytes(gzip.compress(text.encode()))
    with pytest.raises(ValueError, match="patient 10000001 in test, train"):
        read_mimic_cxr(mimic_root)
    reports = tmp_path / "elsewhere"
    (mimic_root / "files").rename(reports)
    with pytest.raises(CXRDataError, match="report files .* not found"):
        read_mimic_cxr(mimic_root)


def test_dicom_release_is_named(tmp_path, mimic_root):
    """Issue 25 item 7: a MIMIC-CXR DICOM release (<dicom_id>.dcm where the JPG release has .jpg) is named."""
    images = sorted((mimic_root / "files").rglob("*.jpg"))
    for jpg in images:
        jpg.rename(jpg.with_suffix(".dcm"))
    with pytest.raises(CXRDataError, match=r"d50000001-0\.jpg: image file not found, but d50000001-0\.dcm is beside "
                                           r"it: this folder looks like the MIMIC-CXR DICOM release .* medmodal reads "
                                           r"the MIMIC-CXR-JPG release"):
        read_mimic_cxr(mimic_root)
    skipped = read_mimic_cxr(mimic_root, skip_bad=True).skipped
    assert skipped and all("MIMIC-CXR DICOM release" in problem for _, problem in skipped)
    (images[0].with_suffix(".dcm")).unlink()  # neither file: the plain line
    with pytest.raises(CXRDataError, match=r"d50000001-0\.jpg: image file not found$"):
        read_mimic_cxr(mimic_root)
    dicom_only = tmp_path / "mimic-cxr"  # the DICOM release's own tables, no JPG tables
    (dicom_only / "files").mkdir(parents=True)
    (dicom_only / "cxr-record-list.csv.gz").write_bytes(gzip.compress(b"subject_id,study_id,dicom_id,path\n"))
    with pytest.raises(CXRDataError, match="looks like the MIMIC-CXR DICOM release"):
        read_mimic_cxr(dicom_only)
