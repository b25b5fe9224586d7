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
    # the CHASE_DB1 twin has no FOV masks: the derived FOV is said in the output and kept in metrics.json
    assert result.output.count("note: CHASE_DB1: no official field-of-view masks; the FOV is derived") == 1
    assert "filled) (data set CHASEDB1)" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert any(n.endswith("(data set CHASEDB1)") and "derived" in n for n in metrics["notes"])
    assert any("derived" in n for n in metrics["domains"]["CHASEDB1"]["notes"])


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
    assert "## Data" in report and any("CHASE_DB1" in n and "derived" in n for n in summary["data_notes"])

    # a second process's runs join the report; --report-only trains nothing and names what is missing
    result = runner.invoke(app, [*args, "--methods", "erm,randconv", "--report-only"])
    assert result.exit_code == 0, result.output
    assert "Runs not finished (not in the table): randconv seed 0" in (out / "report" / "vessels.md").read_text()
    assert not (out / "runs" / "randconv").exists()
    # a finished run of another profile is never reported under this one
    other = runner.invoke(app, [*args[:5], "cpu-reduced", *args[6:], "--methods", "erm", "--report-only"])
    assert other.exit_code == 1 and "trained with another config (differs: " in other.output
    assert "not as the cpu-reduced profile's erm run" in other.output


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
    assert result.exit_code == 1 and "unknown --task 'retina'; choose volumes, vessels, 2d or semi" in result.output


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    root = tmp_path_factory.mktemp("lodo")
    return (write_synthetic(root / "DRIVE", "drive", n=2, size=64, seed=1),
            write_synthetic(root / "CHASEDB1", "chase_db1", n=2, size=80, seed=2),
            write_synthetic(root / "STARE", "stare", n=3, size=72, seed=3))


def test_lodo_benchmark_writes_the_lodo_table(three, tmp_path):
    out = tmp_path / "lodo"
    args = ["seg", "benchmark", "--task", "vessels", "--protocol", "lodo", "--profile", "smoke", "--out", str(out)]
    for root in three:
        args += ["--data", str(root)]
    result = runner.invoke(app, [*args, "--methods", "erm,frangi"])
    assert result.exit_code == 0, result.output
    report = (out / "report" / "vessels.md").read_text()
    assert "leave-one-domain-out over DRIVE, CHASEDB1, STARE" in report
    head = ("| method | seeds | DRIVE (held out) | CHASEDB1 (held out) | STARE (held out) | "
            "mean over held-out domains |")
    assert report.count(head) == 7  # one LODO table per score
    dice = report.split("## Dice (FOV) (%)")[1].split("##")[0]
    erm = next(line for line in dice.splitlines() if line.startswith("| ERM | 1 |"))
    # one seed: each of the 3 held-out cells and their mean is a single value (no ± over seeds)
    cells = erm.strip("| ").split(" | ")[2:]
    assert len(cells) == 4 and all(float(c) >= 0 for c in cells) and "±" not in erm
    assert "| Frangi (unsupervised) | - |" in dice
    for held, sources, images in (("DRIVE", {"CHASEDB1", "STARE"}, 4), ("CHASEDB1", {"DRIVE", "STARE"}, 2),
                                  ("STARE", {"DRIVE", "CHASEDB1"}, 3)):
        run = out / "runs" / f"lodo-{held}"
        metrics = json.loads((run / "erm" / "seed0" / "metrics.json").read_text())
        assert metrics["domains"][held] == {**metrics["domains"][held], "role": "target", "images": images}
        assert {n for n, d in metrics["domains"].items() if d["role"] == "source"} == sources
        frangi = json.loads((run / "frangi" / "metrics.json").read_text())
        # Frangi's threshold: chosen on the training images of this fold's sources only
        assert frangi["threshold_chosen_on"] == " + ".join(sorted(sources, key=[r.name for r in three].index)) + \
            " training images"
        assert frangi["domains"][held]["role"] == "target"
    with open(out / "report" / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["held_out"], r["method"]) for r in rows if r["domain"] == r["held_out"]} == {
        (h, m) for h in ("DRIVE", "CHASEDB1", "STARE") for m in ("erm", "frangi")}
    assert json.loads((out / "report" / "summary.json").read_text())["protocol"] == "lodo"


@pytest.mark.parametrize("extra, message", [
    (["--data", "{0}"], "the lodo protocol needs at least two data sets (--data), got 1"),
    (["--data", "{0}", "--data", "{1}", "--target", "{2}"], "--target belongs to the single-source protocol"),
    (["--data", "{0}", "--data", "{0}"], "DRIVE is given more than once"),
])
def test_lodo_bad_options_are_one_line(three, tmp_path, extra, message):
    extra = [e.format(*three) for e in extra]
    result = runner.invoke(app, ["seg", "benchmark", "--task", "vessels", "--protocol", "lodo", "--out",
                                 str(tmp_path / "b"), *extra])
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_single_source_with_several_data_sets_is_one_line(three, tmp_path):
    result = runner.invoke(app, ["seg", "benchmark", "--task", "vessels", "--data", str(three[0]), "--data",
                                 str(three[1]), "--target", str(three[2]), "--out", str(tmp_path / "b"),
                                 "--profile", "smoke", "--methods", "frangi"])
    assert result.exit_code == 1 and "several: --protocol lodo" in result.output


def test_volumes_benchmark_takes_one_data_folder(three, tmp_path):
    result = runner.invoke(app, ["seg", "benchmark", "--data", str(three[0]), "--data", str(three[1]), "--out",
                                 str(tmp_path / "b"), "--profile", "none-such"])
    assert result.exit_code == 1 and "--task volumes takes one --data folder, got 2" in result.output


def test_seg_train_vessel_config_mistakes_are_one_line(twins, tmp_path, monkeypatch):
    """A preset's built-in target that is not there names data.targets; vessel keys without `task` get the hint."""
    drive, _ = twins
    monkeypatch.chdir(tmp_path)  # the preset's relative target (the demo's CHASE_DB1 twin) is not here
    out = tmp_path / "run"
    result = runner.invoke(app, ["seg", "train", "--preset", "train_vessels_demo_cpu", "--data", str(drive),
                                 "--out", str(out)])
    assert result.exit_code == 1 and result.output.startswith("error: data.targets: runs/demo-vessels/fundus/CHASEDB1")
    assert "--set data.targets=" in result.output and not out.exists()
    config = tmp_path / "vessels.yaml"
    config.write_text(f"data:\n  root: {drive}\n  diameter: 64\n")
    result = runner.invoke(app, ["seg", "train", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 1 and "data.diameter belong to a vessel config" in result.output
    assert "add `task: vessels`" in result.output
    plain = runner.invoke(app, ["seg", "train", "--data", str(drive), "--out", str(out)])
    assert plain.exit_code == 1 and "a fundus data set (drive layout), but the config is a volume" in plain.output
    into = runner.invoke(app, ["seg", "train", "--preset", "train_vessels_demo_cpu", "--data", str(drive),
                               "--out", str(drive / "run"), "--set", "data.targets=[]"])
    assert into.exit_code == 1 and "the run folder is inside the data set" in into.output
    assert not (drive / "run").exists()
