"""The vessel benchmark (``medmodal seg benchmark --task vessels``) and vessel training through ``seg train``,
on tiny synthetic DRIVE / CHASE_DB1 twins."""

import csv
import json

import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.data.fundus.synthetic import write_synthetic

runner = CliRunner()


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    root = tmp_path_factory.mktemp("fundus")
    return (write_synthetic(root / "DRIVE", "drive", n=3, size=80, seed=1),
            write_synthetic(root / "CHASEDB1", "chase_db1", n=2, size=96, seed=2))


def test_seg_train_runs_a_vessel_preset(twins, tmp_path):
    drive, chase = twins
    out = tmp_path / "run"
    result = runner.invoke(app, ["seg", "train", "--preset", "train_vessels_demo_cpu", "--data", str(drive), "--out",
                                 str(out), "--set", f"data.targets=[{chase}]", "--set", "data.diameter=64",
                                 "--set", "trainer.max_epochs=1", "--set", "trainer.samples_per_epoch=4"])
    assert result.exit_code == 0, result.output
    assert "DRIVE (source, 3 images): Dice" in result.output and "CHASEDB1 (target, 2 images): Dice" in result.output
    assert f"run folder: {out}" in result.output
    assert "task: vessels" in (out / "config.yaml").read_text()


def test_vessel_benchmark_smoke_writes_the_report(twins, tmp_path):
    drive, chase = twins
    out = tmp_path / "bench"
    args = ["seg", "benchmark", "--task", "vessels", "--profile", "smoke", "--data", str(drive), "--target",
            str(chase), "--out", str(out)]
    result = runner.invoke(app, [*args, "--methods", "erm,dgssa,frangi"])
    assert result.exit_code == 0, result.output
    report = (out / "report" / "vessels.md").read_text()
    assert "| ERM | 1 |" in report and "| Frangi (unsupervised) | - |" in report
    assert "| DGSSA (style + structure) | 1 |" in report
    dgssa = json.loads((out / "runs" / "dgssa" / "seed0" / "metrics.json").read_text())
    assert dgssa["structure"]["source"] == "pix2pix" and (out / "runs" / "dgssa" / "seed0" / "structure").is_dir()
    assert "drop DRIVE -> CHASEDB1" in report
    with open(out / "report" / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # ERM: 3 DRIVE test + 2 CHASE images; Frangi the same images
    assert sorted({(r["method"], r["domain"]) for r in rows}) == [
        ("dgssa", "CHASEDB1"), ("dgssa", "DRIVE"), ("erm", "CHASEDB1"), ("erm", "DRIVE"), ("frangi", "CHASEDB1"),
        ("frangi", "DRIVE")]
    assert len(rows) == 3 * (3 + 2)
    assert (out / "report" / "overlays.png").stat().st_size > 1000
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["results"]["frangi"][0]["threshold"] > 0

    # a second process's runs join the report; --report-only trains nothing and names what is missing
    result = runner.invoke(app, [*args, "--methods", "erm,randconv", "--report-only"])
    assert result.exit_code == 0, result.output
    assert "Runs not finished (not in the table): randconv seed 0" in (out / "report" / "vessels.md").read_text()
    assert not (out / "runs" / "randconv").exists()


@pytest.mark.parametrize("extra, message", [
    (["--methods", "erm,magic"], "unknown vessel method(s) magic"),
    (["--profile", "huge"], "unknown vessel benchmark profile 'huge'"),
    (["--target", "/no/such/folder"], "/no/such/folder: no such folder"),
])
def test_vessel_benchmark_bad_options_are_one_line(twins, tmp_path, extra, message):
    drive, chase = twins
    result = runner.invoke(app, ["seg", "benchmark", "--task", "vessels", "--data", str(drive), "--target",
                                 str(chase), "--out", str(tmp_path / "b"), *extra])
    assert result.exit_code == 1
    assert message in result.output


def test_vessel_demo_trains_scores_and_writes_overlays(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["seg", "demo", "--task", "vessels", "--out", str(out), "--cases", "4",
                                 "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "DRIVE (source, 2 images): Dice" in result.output and "CHASEDB1 (target, 2 images): Dice" in result.output
    overlays = sorted(p.name for p in (out / "predictions").glob("*_overlay.png"))
    assert overlays == ["Image_01L_overlay.png", "Image_01R_overlay.png"]
    assert "2 images predicted, 0 skipped" in result.output
    # a second call reuses the data and the finished run, and skips what is predicted
    again = runner.invoke(app, ["seg", "demo", "--task", "vessels", "--out", str(out), "--cases", "4",
                                "--epochs", "1"])
    assert again.exit_code == 0, again.output
    assert "finished run found" in again.output and "0 images predicted, 2 skipped" in again.output


def test_demo_unknown_task_is_one_line(tmp_path):
    result = runner.invoke(app, ["seg", "demo", "--task", "retina", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "unknown --task 'retina'; choose volumes or vessels" in result.output
