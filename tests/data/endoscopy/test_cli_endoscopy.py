"""The endoscopy data commands: help, real pairs through every command, one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from tests.data.endoscopy.conftest import REAL_PAIRS, requires_endoscopy_data, write_image

runner = CliRunner()


@pytest.mark.parametrize("cmd", ["summary", "split", "simulate-nbi", "calibrate-nbi", "synth"])
def test_help(cmd):
    result = runner.invoke(app, ["endoscopy", cmd, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_summary_reports_unpaired_and_writes_the_list(authors_root, tmp_path):
    result = runner.invoke(app, ["endoscopy", "summary", str(authors_root), "--out", str(tmp_path / "l.csv")])
    assert result.exit_code == 0, result.output
    assert "lonely_wli.png: no NBI partner" in result.output and "2 of 8 samples lack a partner" in result.output
    assert "layout: authors; 8 samples, 2 classes; 14 images decoded" in result.output
    again = runner.invoke(app, ["endoscopy", "summary", str(tmp_path / "l.csv")])
    assert again.exit_code == 0 and "layout: csv; 8 samples, 2 classes" in again.output


def test_bad_image_is_one_line_or_skipped(authors_root):
    bad = write_image(authors_root / "polyps_WLI" / "002.png", size=(64, 64))
    bad.write_bytes(bad.read_bytes()[:100])
    result = runner.invoke(app, ["endoscopy", "summary", str(authors_root)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "polyps_WLI/002.png: unreadable or truncated image" in result.output
    result = runner.invoke(app, ["endoscopy", "summary", str(authors_root), "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "1 unreadable skipped" in result.output and "7 samples" in result.output
    result = runner.invoke(app, ["endoscopy", "summary", str(authors_root / "absent")])
    assert result.exit_code == 1 and "no such folder" in result.output


@requires_endoscopy_data
def test_real_pairs_summary_and_split(tmp_path):
    result = runner.invoke(app, ["endoscopy", "summary", str(REAL_PAIRS)])
    assert result.exit_code == 0, result.output
    assert "layout: wl-nbi; 12 samples, 3 classes; 24 images decoded" in result.output
    assert "warning" not in result.output
    out = tmp_path / "split.json"
    result = runner.invoke(app, ["endoscopy", "split", str(REAL_PAIRS), "--out", str(out),
                                 "--label-fraction", "0.05"])
    assert result.exit_code == 0, result.output
    split = json.loads(out.read_text())
    assert len(split["train"]) + len(split["val"]) + len(split["test"]) == 12
    assert len(split["labelled"]) == 3 and set(split["labelled"]) <= set(split["train"])


@requires_endoscopy_data
def test_real_pairs_through_simulate_and_calibrate(tmp_path):
    out = tmp_path / "sim"
    result = runner.invoke(app, ["endoscopy", "simulate-nbi", str(REAL_PAIRS), str(out), "--size", "32"])
    assert result.exit_code == 0, result.output
    assert "wrote 12 WLI / simulated-NBI pairs (3 classes)" in result.output
    assert "12 sample(s) have a real NBI image" in result.output
    again = runner.invoke(app, ["endoscopy", "summary", str(out)])
    assert again.exit_code == 0 and "layout: authors; 12 samples, 3 classes" in again.output
    result = runner.invoke(app, ["endoscopy", "calibrate-nbi", str(REAL_PAIRS), "--size", "16", "--max-evals", "30",
                                 "--cross-validate", "--folds", "2", "--out", str(tmp_path / "p.json"),
                                 "--report", str(tmp_path / "r.md")])
    assert result.exit_code == 0, result.output
    assert "fitted on 12 pairs" in result.output and "simulated NBI, calibrated (held out)" in result.output
    assert json.loads((tmp_path / "p.json").read_text())["params"]["blue_weight"] == 0.5
    assert "2 folds, 12 pairs" in (tmp_path / "r.md").read_text()
    bad = runner.invoke(app, ["endoscopy", "simulate-nbi", str(REAL_PAIRS), str(out), "--params",
                              str(tmp_path / "r.md")])
    assert bad.exit_code == 1 and "r.md: not a JSON parameter file" in bad.output


def test_simulate_nbi_from_class_folders(tmp_path):
    for i, cls in enumerate(("polyps", "cecum", "bbps-0-1")):
        write_image(tmp_path / "kvasir" / cls / f"img{i}.jpg", seed=i)
    result = runner.invoke(app, ["endoscopy", "simulate-nbi", str(tmp_path / "kvasir"), str(tmp_path / "out"),
                                 "--authors-classes"])
    assert result.exit_code == 0, result.output
    assert "bbps-0-1 1" in result.output and "wrote 2 WLI / simulated-NBI pairs" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "nbi_simulation.json", "normal-cecum_NBI", "normal-cecum_WLI", "polyps_NBI", "polyps_WLI"]


def test_simulate_nbi_authors_classes_refuses_unlabelled_images(tmp_path):
    """A flat folder has no classes to map: one line, nothing written (it used to write a class 'unlabelled'
    that summary / finetune read back as a real class)."""
    for i in range(2):
        write_image(tmp_path / "flat" / f"img{i}.jpg", seed=i)
    result = runner.invoke(app, ["endoscopy", "simulate-nbi", str(tmp_path / "flat"), str(tmp_path / "out"),
                                 "--authors-classes"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "--authors-classes maps class names, but 2 of 2 samples have no class" in result.output
    assert not (tmp_path / "out" / "unlabelled_WLI").exists()


def test_synth_endoscopy_then_every_command(tmp_path, monkeypatch):
    out = tmp_path / "syn"
    result = runner.invoke(app, ["endoscopy", "synth", str(out), "-n", "12", "--size", "40"])
    assert result.exit_code == 0, result.output
    assert "wrote 12 WLI / NBI pairs (6 classes, 40 px)" in result.output
    result = runner.invoke(app, ["endoscopy", "summary", str(out)])
    assert result.exit_code == 0 and "layout: authors; 12 samples, 6 classes; 24 images decoded" in result.output
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = runner.invoke(app, ["endoscopy", "split", str(out), "--label-fraction", "0.05"])
    # the data folder is input: the split file goes to the current folder, not into the data
    assert result.exit_code == 0 and (work / "splits_seed0.json").is_file(), result.output
    assert not (out / "splits_seed0.json").exists()
    bad = runner.invoke(app, ["endoscopy", "synth", str(tmp_path / "x"), "-n", "0"])
    assert bad.exit_code == 1 and "must be positive" in bad.output
