"""``medmodal seg synth --dataset <2-D set>`` and ``seg summary`` on 2-D segmentation folders (synthetic twins, the
real ACDC copy); bad folders and files are one ``error:`` line with exit code 1."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from tests.conftest import REAL_DATA

runner = CliRunner()
ACDC_REAL = REAL_DATA / "cardiac-real" / "ACDC"

# --dataset, layout read back, -n, the counts the synth line and the summary's last line report
CASES = [("synapse", "synapse", "2", "2 cases: train 1, test 1; slices: train "),
         ("synapse-raw", "synapse_raw", "2", "2 cases: train 1, test 1; slices: train "),
         ("acdc", "acdc", "3", "6 cases: train 2, val 2, test 2; patients: train 1, val 1, test 1; slices: "),
         ("acdc-h5", "acdc_h5", "3", "6 cases: train 2, val 2, test 2; patients: train 1, val 1, test 1; slices: "),
         ("cvc-clinicdb", "cvc_clinicdb", "2", "2 images (no split 2)"),
         ("kvasir-seg", "kvasir_seg", "2", "2 images (no split 2)")]


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def error_line(*args: str) -> str:
    result = runner.invoke(app, list(args))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.mark.parametrize("dataset,layout,n,counts", CASES)
def test_synth_then_summary(tmp_path, dataset, layout, n, counts):
    out = tmp_path / dataset
    line = invoke("seg", "synth", str(out), "--dataset", dataset, "-n", n, "--size", "24", "--seed", "2")
    assert len(line.strip().splitlines()) == 1
    assert f"wrote synthetic {dataset} data to {out} ({layout} layout): {counts}" in line.replace("\n", "")
    for extra in ((), ("--layout", layout)):
        text = invoke("seg", "summary", str(out), *extra)
        last = text.strip().splitlines()[-1]
        assert last.startswith(f"layout: {layout}; {counts}") and last.endswith(" labelled")
        assert "24x24" in text and ("Polyp" in text or "Myo" in text or "Aorta" in text)
    no_validate = invoke("seg", "summary", str(out), "--no-validate")
    assert "Polyp" not in no_validate and "Aorta" not in no_validate and "Myo" not in no_validate


# the semi-supervised twins: --dataset, -n, counts; their unlabelled cases are reported, not refused
SEMI = [("meniscus", "3", "9 slices: train 6, test 3; patients: train 2, test 1; unlabelled 3", "lateral meniscus",
         "6 labelled"),
        ("folder2d", "3", "3 images (no split 3)", "disc", "2 labelled")]


@pytest.mark.parametrize("dataset,n,counts,a_class,labelled", SEMI)
def test_synth_then_summary_of_the_semi_supervised_twins(tmp_path, dataset, n, counts, a_class, labelled):
    out = tmp_path / dataset
    line = invoke("seg", "synth", str(out), "--dataset", dataset, "-n", n, "--size", "24", "--seed", "2")
    assert f"wrote synthetic {dataset} data to {out} ({dataset} layout): {counts}" in line.replace("\n", "")
    for extra in ((), ("--layout", dataset)):
        text = invoke("seg", "summary", str(out), *extra)
        last = text.strip().splitlines()[-1]
        assert last == f"layout: {dataset}; {counts}; {labelled}"
        assert "24x24" in text and a_class in text and "unlabelled" in text
        assert any(ln.startswith("note: ") and "unlabelled" in ln for ln in text.splitlines())


def test_summary_names_notes(tmp_path):
    out = tmp_path / "acdc"
    invoke("seg", "synth", str(out), "--dataset", "acdc-h5", "-n", "3", "--size", "24")
    text = invoke("seg", "summary", str(out))
    assert any(ln.startswith("note: ") and "train.list: not read" in ln for ln in text.splitlines())


def test_bad_folders_and_files_are_one_error_line(tmp_path):
    (tmp_path / "empty").mkdir()
    line = error_line("seg", "summary", str(tmp_path / "empty"), "--layout", "acdc_h5")
    assert str(tmp_path / "empty") in line and "not an SSL4MIS ACDC folder" in line
    assert "data folder not found" in error_line("seg", "summary", str(tmp_path / "missing"), "--layout", "synapse")
    out = tmp_path / "synapse"
    invoke("seg", "synth", str(out), "--dataset", "synapse", "-n", "2", "--size", "24")
    victim = out / "train_npz" / "case0005_slice000.npz"
    np.savez(victim, image=np.zeros((24, 24), np.float32), label=np.full((24, 24), 11.0, np.float32))
    line = error_line("seg", "summary", str(out))
    assert str(victim) in line and "label values 11" in line
    victim.unlink()
    line = error_line("seg", "summary", str(out))
    assert "train.txt names case0005_slice000" in line and str(victim) in line


def test_an_unknown_synth_dataset_names_the_2d_choices(tmp_path):
    line = error_line("seg", "synth", str(tmp_path), "--dataset", "acdc2")
    assert "synapse-raw" in line and "kvasir-seg" in line and "meniscus" in line and "folder2d" in line
    assert "2 to 100 cases" in error_line("seg", "synth", str(tmp_path / "x"), "--dataset", "acdc", "-n", "1")


def test_volume_and_fundus_folders_are_not_taken(tmp_path):
    """The 2-D detectors are asked first; a fundus twin still reads as fundus."""
    out = tmp_path / "drive"
    invoke("seg", "synth", str(out), "--dataset", "drive", "-n", "1", "--size", "32")
    assert "layout: drive;" in invoke("seg", "summary", str(out))


@pytest.mark.realdata
@pytest.mark.skipif(not ACDC_REAL.is_dir(), reason=f"real ACDC not found at {ACDC_REAL}")
def test_real_acdc_summary():
    text = invoke("seg", "summary", str(ACDC_REAL), "--no-validate")
    assert text.strip().splitlines()[-1] == ("layout: acdc_h5; 200 cases: train 140, val 20, test 40; patients: train "
                                             "70, val 10, test 20; slices: train 1312, val 210, test 380; 200 labelled")
