"""``medmodal data synth-downstream`` / ``downstream-summary``: outputs, counts, one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.data.cxr.downstream import read_downstream
from tests.data.cxr.downstream.conftest import COVIDX_REAL, requires_covidx_real

runner = CliRunner()


@pytest.mark.parametrize("cmd", [["cxr", "synth-downstream"], ["cxr", "summary"]])
def test_help(cmd):
    result = runner.invoke(app, [*cmd, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_synth_and_summary(tmp_path):
    out = tmp_path / "twins"
    result = runner.invoke(app, ["cxr", "synth-downstream", str(out), "--dataset", "rsna", "-n", "20", "--size", "64"])
    assert result.exit_code == 0, result.output
    assert "rsna:" in result.output and (out / "rsna" / "stage_2_train_labels.csv").is_file()
    summary = runner.invoke(app, ["cxr", "summary", str(out / "rsna"), "-d", "rsna", "--task", "detection",
                                  "--fraction", "0.5", "--json", str(tmp_path / "s.json")])
    assert summary.exit_code == 0, summary.output
    assert "task detection (metric map_40_75): " in summary.output
    assert "outside the 0.5 label fraction" in summary.output
    written = json.loads((tmp_path / "s.json").read_text())
    full = read_downstream("rsna", out / "rsna", task="detection")
    assert written["splits"]["train"]["images"] == int(0.5 * len(full.select("train")))
    assert written["splits"]["test"]["images"] == len(full.select("test"))


def test_bad_input_is_one_line(tmp_path):
    bad = runner.invoke(app, ["cxr", "summary", str(tmp_path), "-d", "rsna"])
    assert bad.exit_code == 1 and "no stage_2_train_labels.csv" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["cxr", "summary", str(tmp_path), "-d", "mimic"])
    assert bad.exit_code == 1 and "unknown downstream dataset 'mimic'" in bad.output
    (tmp_path / "train-rle.csv").write_text("ImageId, EncodedPixels\na, 1 2 3\n")
    (tmp_path / "dicom-images-train").mkdir()
    bad = runner.invoke(app, ["cxr", "summary", str(tmp_path), "-d", "siim", "--uncertain", "ones"])
    assert bad.exit_code == 1 and "the siim reader does not take uncertain" in bad.output
    bad = runner.invoke(app, ["cxr", "synth-downstream", str(tmp_path / "x"), "-n", "3"])
    assert bad.exit_code == 1 and "at least 10 images" in bad.output


@requires_covidx_real
def test_summary_of_the_real_covidx_labels():
    labels = COVIDX_REAL / "labels"
    result = runner.invoke(app, ["cxr", "summary", str(COVIDX_REAL), "-d", "covidx", "--no-check-images",
                                 "--train-file", str(labels / "train_COVIDx9A.txt"),
                                 "--test-file", str(labels / "test_COVIDx5.txt")])
    assert result.exit_code == 0, result.output
    assert "199 row(s) have source 'rnsa'" in result.output and "197 row(s) have 3 columns" in result.output
    assert "30430 images" in result.output
