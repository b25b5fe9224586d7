"""The CLI: sub-commands exist, data commands work, input errors are one clear line (no traceback)."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from tests.conftest import BRATS_REAL, TCGA_MAPPING, requires_real_data

runner = CliRunner()


@pytest.mark.parametrize("cmd", [[], ["data"], ["train"], ["evaluate"], ["predict"], ["demo"],
                                 ["benchmark"], ["data", "summary"], ["data", "synth-brats"], ["data", "synth-myops"],
                                 ["data", "split"],
                                 ["data", "missing-rates"], ["data", "preprocess"]])
def test_help(cmd):
    result = runner.invoke(app, [*cmd, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_summary_split_missing_rates(brats2020_root):
    result = runner.invoke(app, ["data", "summary", str(brats2020_root)])
    assert result.exit_code == 0, result.output
    assert "BraTS20_Training_002" in result.output and "flair 3/3" in result.output
    result = runner.invoke(app, ["data", "split", str(brats2020_root), "--seed", "1"])
    assert result.exit_code == 0 and (brats2020_root / "splits_seed1.json").is_file()
    result = runner.invoke(app, ["data", "missing-rates", str(brats2020_root), "--rates", "flair=0.5,t2=0.5"])
    assert result.exit_code == 0, result.output
    assert (brats2020_root / "missing_mr5005_seed0.csv").is_file()


def test_bad_input_is_one_clear_line(brats2020_root):
    seg = brats2020_root / "BraTS20_Training_000" / "BraTS20_Training_000_t1.nii.gz"
    seg.write_bytes(seg.read_bytes()[:100])
    result = runner.invoke(app, ["data", "summary", str(brats2020_root)])
    assert result.exit_code == 1
    assert "BraTS20_Training_000_t1.nii.gz: cannot read NIfTI" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["data", "summary", str(brats2020_root / "missing")])
    assert result.exit_code == 1 and "no such folder" in result.output


@requires_real_data
def test_summary_of_real_case_with_mapping():
    result = runner.invoke(app, ["data", "summary", str(BRATS_REAL / "TCGA-DU-7294"), "--map", TCGA_MAPPING])
    assert result.exit_code == 0, result.output
    assert "TCGA-DU-7294" in result.output and "240x240x155" in result.output


def test_preprocess_refusing_a_case_leaves_no_progress_bar_behind(brats2020_root):
    """A refused case gives the one-line error and clears the progress bar (a real process: the
    half-drawn bar used to be printed at interpreter exit, after the error)."""
    bad = brats2020_root / "BraTS20_Training_001" / "BraTS20_Training_001_t2.nii.gz"
    bad.write_bytes(b"not a nifti")
    done = subprocess.run([sys.executable, "-m", "medmodal.cli", "data", "preprocess", str(brats2020_root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and "BraTS20_Training_001_t2.nii.gz: cannot read NIfTI" in done.stderr
    assert "preprocessing" not in done.stdout  # the bar is cleared, not left half-drawn


def test_demo_endoscopy_prints_its_table_unwrapped(tmp_path, monkeypatch):
    """Redirected output (not a terminal): the markdown table and the report path are not cut at 80 columns."""
    import medmodal.data.endoscopy.synthetic as synthetic
    import medmodal.evaluation.endoscopy as evaluation

    row = "| " + " | ".join(f"method-{k} accuracy 0.{k}00 +- 0.0{k}" for k in range(5)) + " |"
    report = tmp_path / ("a-long-report-folder-name-" * 4)
    report.mkdir()
    (report / "comparison.md").write_text(row + "\n")
    monkeypatch.setattr(synthetic, "synth_endoscopy", lambda *a, **k: None)
    monkeypatch.setattr(evaluation, "run_endoscopy_benchmark", lambda *a, **k: report)
    result = runner.invoke(app, ["demo-endoscopy", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert len(row) > 120 and row in result.output.splitlines()
    assert f"report: {report}" in result.output
