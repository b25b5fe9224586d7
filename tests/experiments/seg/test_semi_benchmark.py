"""The semi-supervised 2-D benchmark (seg benchmark --task semi) on a tiny synthetic ACDC twin, smoke profile."""

import json

import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.data.seg2d import write_synthetic
from medmodal.errors import ConfigError
from medmodal.experiments.seg.planar import run_config
from medmodal.experiments.seg.semi import SEMI_BENCH_METHODS, SEMI_PROFILES, budget_methods, run

runner = CliRunner()


@pytest.fixture(scope="module")
def acdc(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("semi") / "ACDC", "acdc_h5", n=10, size=32, seed=0)


def test_smoke_benchmark_writes_one_report_per_budget(acdc, tmp_path):
    out = tmp_path / "bench"
    result = runner.invoke(app, ["seg", "benchmark", "--task", "semi", "--data", str(acdc), "--out", str(out),
                                 "--profile", "smoke", "--methods", "supervised,mean_teacher,eranet,eranet_cst,full",
                                 "--seeds", "0", "--labelled", "2"])
    assert result.exit_code == 0, result.output
    report = (out / "report_l2" / "semi_l2.md").read_text()
    for label in ("Supervised only", "Mean Teacher (1 seed)", "conditional self-training", "Fully supervised"):
        assert label in report
    summary = json.loads((out / "report_l2" / "summary.json").read_text())
    assert set(summary["methods"]) == {"supervised_l2", "mean_teacher_l2", "eranet_l2", "eranet_cst_l2", "full"}
    cst = json.loads((out / "runs" / "eranet_cst_l2" / "seed0" / "metrics.json").read_text())
    assert cst["cst"]["stage1"].endswith("eranet_l2/seed0")          # stage 1 is the eranet run, not retrained
    assert not (out / "runs" / "eranet_cst_l2" / "seed0" / "stage1").exists()
    again = runner.invoke(app, ["seg", "benchmark", "--task", "semi", "--data", str(acdc), "--out", str(out),
                                "--profile", "smoke", "--methods", "mean_teacher", "--seeds", "0", "--labelled", "2",
                                "--report-only"])
    assert again.exit_code == 0 and "Mean Teacher" in again.output


def test_every_method_and_budget_builds_its_config(acdc, tmp_path):
    table, labels = budget_methods(list(SEMI_BENCH_METHODS), [3, 7])
    assert "full" in table and "full_l3" not in table and "cps_l7" in table
    for key in table:
        cfg = run_config(key, 2, SEMI_PROFILES["cpu-reduced"], acdc, tmp_path, methods=table)
        assert cfg.model.name == "unet2d" and cfg.trainer.seed == 2 and cfg.semi.labelled_batch == 4
        assert cfg.semi.labelled_patients == (None if key == "full" else int(key.rsplit("_l", 1)[1]))
    assert run_config("eranet_era_l3", 0, SEMI_PROFILES["cpu-reduced"], acdc, tmp_path,
                      methods=table).semi.era_classes == [1]


def test_bad_requests_are_one_line(acdc, tmp_path):
    with pytest.raises(ConfigError, match="unknown --methods"):
        run(tmp_path, "smoke", ["uamt"], data=acdc)
    with pytest.raises(ConfigError, match="needs --data"):
        run(tmp_path, "smoke", ["cps"])
    with pytest.raises(ConfigError, match="unknown --profile"):
        run(tmp_path, "gpu", ["cps"], data=acdc)
    result = runner.invoke(app, ["seg", "benchmark", "--task", "semi", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "--task semi takes one --data folder" in result.output


def test_volume_data_gets_the_3d_methods(tmp_path):
    from medmodal.data.seg3d import write_synthetic as write_3d
    la = write_3d(tmp_path / "LA", "la2018", n=10, size=(40, 40, 24), seed=0)
    out = tmp_path / "bench3d"
    result = runner.invoke(app, ["seg", "benchmark", "--task", "semi", "--data", str(la), "--out", str(out),
                                 "--profile", "smoke", "--methods", "supervised,swdl,swdl_no_feedback,full",
                                 "--seeds", "0", "--labelled", "2"])
    assert result.exit_code == 0, result.output
    report = (out / "report_l2" / "semi_l2.md").read_text()
    assert "2 labelled volumes" in report and "| Dice (%) | Jaccard (%) | HD95 | ASD |" in report
    assert "SWDL-Net (1 seed)" in report and "## Ablations" in report and "without the difference feedback" in report
    with pytest.raises(ConfigError, match="for 3-D data"):
        run(tmp_path, "smoke", ["cps"], data=la)


@pytest.mark.slow
def test_semi_demo_runs_end_to_end(tmp_path):
    result = runner.invoke(app, ["seg", "demo", "--task", "semi", "--out", str(tmp_path / "demo"), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "supervised-only" in result.output and "SWDL-Net" in result.output
    assert list((tmp_path / "demo" / "predictions").glob("*_seg.nii.gz"))
