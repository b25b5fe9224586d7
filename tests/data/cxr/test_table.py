"""Generic image-report CSV, the study table, layout detection and the cxr-reports command."""

import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.data.cxr.readers import detect_layout, read_studies
from medmodal.data.cxr.records import CXRDataError
from medmodal.data.cxr.table import read_csv_table, write_study_table
from tests.data.cxr.conftest import (IU_REAL, REPORTS, SIIM_DICOM, TXRV_TESTS, requires_images_real, requires_iu_real,
                                     write_mimic, write_png, write_r2gen)

pytestmark = pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")
runner = CliRunner()


def write_generic(root):
    for k in range(3):
        write_png(root / "img" / f"a{k}.png", seed=k)
    (root / "pairs.csv").write_text(
        "Path,Report,subject_id,View,Cardiomegaly,split\n"
        f'img/a0.png,"{REPORTS[0]}",P1,PA,0,train\n'
        f'img/a1.png,"{REPORTS[1]}",P1,LATERAL,1,train\n'
        f'img/a2.png,"{REPORTS[3]}",P2,AP,,test\n')
    return root / "pairs.csv"


def test_generic_csv(tmp_path):
    path = write_generic(tmp_path)
    result = read_csv_table(path, label_cols=["Cardiomegaly"])
    assert [s.study_id for s in result.studies] == ["a0", "a1", "a2"]  # no study column: the image stem
    assert [s.patient_id for s in result.studies] == ["P1", "P1", "P2"]
    assert [s.labels["Cardiomegaly"] for s in result.studies] == [0, 1, None]
    assert result.studies[1].view_positions == ["LATERAL"] and result.studies[2].split == "test"
    frontal = read_csv_table(path, views="frontal")
    assert len(frontal.studies) == 2 and not frontal.excluded  # excluded counts images of kept studies only
    assert frontal.dropped == {"every image excluded": 1}  # study a1 had only its lateral image
    with pytest.raises(CXRDataError, match="no column 'Findings'"):
        read_csv_table(path, report_col="Findings")
    (tmp_path / "noimage.csv").write_text("report\nsome text here\n")
    with pytest.raises(CXRDataError, match="no image column .*--image-col"):
        read_csv_table(tmp_path / "noimage.csv")
    (tmp_path / "noreport.csv").write_text("image,note\nimg/a0.png,some text here\n")
    with pytest.raises(CXRDataError, match="no report column .*--report-col"):
        read_csv_table(tmp_path / "noreport.csv")
    (tmp_path / "img" / "a2.png").unlink()
    with pytest.raises(CXRDataError, match=r"line 4: image .*a2.png not found"):
        read_csv_table(path)
    assert len(read_csv_table(path, skip_bad=True).skipped) == 1


def test_study_table_round_trip(tmp_path):
    studies = read_csv_table(write_generic(tmp_path), label_cols=["Cardiomegaly"]).studies
    table = write_study_table(studies, tmp_path / "out" / "table.csv", relative_to=tmp_path)
    back = read_csv_table(table, image_root=tmp_path).studies
    assert [(s.study_id, s.patient_id, s.split, s.image_paths, s.view_positions, s.findings, s.sentences, s.labels)
            for s in back] == [(s.study_id, s.patient_id, s.split, s.image_paths, s.view_positions, s.findings,
                                s.sentences, s.labels) for s in studies]


def test_layout_detection(tmp_path):
    mimic = write_mimic(tmp_path / "mimic")
    write_r2gen(tmp_path / "iu")
    assert detect_layout(mimic)[0] == "mimic"
    assert detect_layout(tmp_path / "iu") == ("iu", tmp_path / "iu" / "annotation.json")
    assert detect_layout(write_generic(tmp_path))[0] == "csv"
    with pytest.raises(CXRDataError, match="no MIMIC-CXR tables"):
        detect_layout(tmp_path / "iu" / "images")
    with pytest.raises(ValueError, match="the iu layout does not take merge_val_test"):
        read_studies(tmp_path / "iu", merge_val_test=True)
    assert len(read_studies(mimic, merge_val_test=True).studies) == 5


def test_cxr_reports_command(tmp_path):
    mimic = write_mimic(tmp_path / "mimic")
    out = tmp_path / "table.csv"
    result = runner.invoke(app, ["cxr", "reports", str(mimic), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "5 rows, 4 studies, 3 patients; rows per split: test 1, train 2, val 2" in result.output
    assert ("studies dropped: no FINDINGS or IMPRESSION: 1; studies skipped as bad input: 0; images excluded from "
            "kept studies: view not PA/AP: 1") in result.output  # a kept study's lateral: not a dropped study
    header = out.read_text().splitlines()[0]
    assert header.startswith("study_id,patient_id,split,image_paths,view_positions,findings,impression")
    (mimic / "files/p10/p10000004/s50000005.txt").write_bytes(b" FINDINGS: \xff\n")
    bad = runner.invoke(app, ["cxr", "reports", str(mimic), "-o", str(tmp_path / "bad.csv")])
    assert bad.exit_code == 1 and "s50000005.txt: not UTF-8 text" in bad.output
    assert len(bad.output.strip().splitlines()) == 1 and not (tmp_path / "bad.csv").exists()
    skipped = runner.invoke(app, ["cxr", "reports", str(mimic), "-o", str(tmp_path / "ok.csv"), "--skip-bad"])
    assert skipped.exit_code == 0 and "skipped: " in skipped.output
    assert "studies skipped as bad input: 1" in skipped.output


def test_cxr_reports_summary_counts_one_row(tmp_path):
    write_generic(tmp_path)
    (tmp_path / "one.csv").write_text(f'image,report\nimg/a0.png,"{REPORTS[0]}"\n')
    result = runner.invoke(app, ["cxr", "reports", str(tmp_path / "one.csv"), "-o", str(tmp_path / "t.csv")])
    assert result.exit_code == 0, result.output
    assert "1 row, 1 study, 1 patient; rows per split: no split 1" in result.output


@requires_iu_real
def test_cxr_reports_on_the_real_files(tmp_path):
    result = runner.invoke(app, ["cxr", "reports", str(IU_REAL / "annotation_r2gen_layout.json"), "-o",
                                 str(tmp_path / "t.csv"), "--no-check-images"])
    assert result.exit_code == 0, result.output
    assert "2955 rows" in result.output and "'    '" in result.output
    pairs = runner.invoke(app, ["cxr", "reports", str(IU_REAL / "pairs.csv"), "-o", str(tmp_path / "p.csv"),
                                "--report-col", "report_findings_plus_impression", "--views", "frontal"])
    assert pairs.exit_code == 0, pairs.output
    assert "3 rows, 3 studies" in pairs.output
    assert "images excluded from kept studies: view not frontal: 2" in pairs.output
    split = runner.invoke(app, ["cxr", "reports", str(IU_REAL / "pairs.csv"), "-o", str(tmp_path / "s.csv"),
                                "--report-col", "report_findings_plus_impression", "--split-seed", "0"])
    assert split.exit_code == 0 and "no split" not in split.output and "patient-level split" in split.output
    assert "rows per split: no split " in pairs.output  # without --split-seed the rows have no split


@requires_images_real
def test_real_png_jpeg_and_dicom_through_the_dataset(tmp_path):
    from medmodal.data.cxr.dataset import ImageReportCollator, ImageReportDataset

    images = [SIIM_DICOM, TXRV_TESTS / "00000001_000.png", TXRV_TESTS / "16747_3_1.jpg"]
    lines = ["image,report,patient_id"] + [f'{p},"{REPORTS[k]}",P{k}' for k, p in enumerate(images)]
    (tmp_path / "real.csv").write_text("\n".join(lines) + "\n")
    studies = read_csv_table(tmp_path / "real.csv").studies
    dataset = ImageReportDataset(studies, tmp_path / "cache", train=False)
    assert dataset.image_cache.prefill() == 3
    batch = ImageReportCollator()([dataset[i] for i in range(3)])
    assert batch["image"].shape == (3, 3, 224, 224)
    for image in batch["image"]:
        assert image.std() > 0.1 and -1 <= image.min() < image.max() <= 1


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def test_cxr_reports_finds_truncated_images_at_preparation(tmp_path):
    """A truncated JPEG fails the table build with one line naming it (not first at training time);
    --skip-bad counts and names it; the summary says which check ran."""
    mimic = write_mimic(tmp_path / "mimic")
    bad = _truncate(mimic / "files/p10/p10000004/s50000005/d50000005-1.jpg")
    failed = runner.invoke(app, ["cxr", "reports", str(mimic), "-o", str(tmp_path / "t.csv")])
    assert failed.exit_code == 1 and len(failed.output.strip().splitlines()) == 1
    assert f"{bad}: unreadable or truncated image" in failed.output and not (tmp_path / "t.csv").exists()
    skipped = runner.invoke(app, ["cxr", "reports", str(mimic), "-o", str(tmp_path / "t.csv"), "--skip-bad"])
    assert skipped.exit_code == 0, skipped.output
    assert f"skipped: {bad}: unreadable or truncated" in skipped.output and "skipped as bad input: 1" in skipped.output
    assert "images checked (verify: file exists, header and size readable, file complete" in skipped.output
    assert "d50000005" not in (tmp_path / "t.csv").read_text()  # the whole study is left out, named above
    exists = runner.invoke(app, ["cxr", "reports", str(mimic), "-o", str(tmp_path / "e.csv"),
                                 "--image-check", "exists"])
    assert exists.exit_code == 0 and "images checked (exists: file exists): 5" in exists.output
    unchecked = runner.invoke(app, ["cxr", "reports", str(mimic), "-o", str(tmp_path / "n.csv"),
                                    "--no-check-images"])
    assert unchecked.exit_code == 0 and "images: not checked (--no-check-images)" in unchecked.output


def test_iu_and_csv_readers_find_truncated_images(tmp_path):
    annotation = write_r2gen(tmp_path / "iu")
    bad = _truncate(tmp_path / "iu" / "images" / "CXR101_IM-0001" / "0.png")
    with pytest.raises(CXRDataError, match=rf"entry CXR101_IM-0001: image {bad}: unreadable or truncated image"):
        read_studies(annotation)
    result = read_studies(annotation, skip_bad=True)
    assert len(result.skipped) == 1 and result.image_check == "verify" and result.images_checked == 4
    csv_path = write_generic(tmp_path / "csv")
    bad = _truncate(tmp_path / "csv" / "img" / "a2.png")
    with pytest.raises(CXRDataError, match=rf"pairs\.csv: line 4: image {bad}: unreadable or truncated"):
        read_csv_table(csv_path)
    assert len(read_csv_table(csv_path, check_images="exists").studies) == 3
