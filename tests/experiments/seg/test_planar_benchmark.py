"""The 2-D benchmark (seg benchmark --task 2d) on a tiny synthetic ACDC twin, smoke profile."""

import json

import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.data.seg2d import write_synthetic
from medmodal.errors import ConfigError
from medmodal.experiments.seg.planar import PLANAR_METHODS, PLANAR_PROFILES, run, run_config

runner = CliRunner()


@pytest.fixture(scope="module")
def acdc(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("planar") / "ACDC", "acdc_h5", n=10, size=32, seed=0)


def test_smoke_benchmark_report_and_report_only(acdc, tmp_path):
    out = tmp_path / "bench"
    result = runner.invoke(app, ["seg", "benchmark", "--task", "2d", "--data", str(acdc), "--out", str(out),
                                 "--profile", "smoke", "--methods", "mslau_net,unet2d,mslau_conv", "--seeds", "0"])
    assert result.exit_code == 0, result.output
    report = (out / "report" / "seg2d.md").read_text()
    assert "MSLAU-Net (1 seed)" in report and "U-Net (SSL4MIS) (1 seed)" in report
    assert "## Ablations" in report and "convolution instead of attention" in report
    assert "one seed" in report and "not computed: eval.hd95 is off" in report
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert set(summary["methods"]) == {"mslau_net", "unet2d", "mslau_conv"}
    again = runner.invoke(app, ["seg", "benchmark", "--task", "2d", "--data", str(acdc), "--out", str(out),
                                "--profile", "smoke", "--methods", "mslau_net", "--seeds", "0", "--report-only"])
    assert again.exit_code == 0 and "MSLAU-Net" in again.output


def test_every_method_builds_its_profile_config(acdc, tmp_path):
    for profile in ("cpu-reduced", "smoke"):
        for method in PLANAR_METHODS:
            cfg = run_config(method, 1, PLANAR_PROFILES[profile], acdc, tmp_path)
            assert cfg.model.name == PLANAR_METHODS[method].model and cfg.trainer.seed == 1
    assert run_config("mslau_conv", 0, PLANAR_PROFILES["cpu-reduced"], acdc, tmp_path).model.kwargs["attention"] == "conv"


def test_bad_requests_are_one_line(acdc, tmp_path):
    with pytest.raises(ConfigError, match="unknown --methods"):
        run(tmp_path, "smoke", ["mslau"], data=acdc)
    with pytest.raises(ConfigError, match="needs --data"):
        run(tmp_path, "smoke", ["mslau_net"])
    with pytest.raises(ConfigError, match="no finished run"):
        run(tmp_path / "empty", "smoke", ["mslau_net"], data=acdc, report_only=True)
    result = runner.invoke(app, ["seg", "benchmark", "--task", "2d", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "--task 2d takes one --data folder" in result.output


def test_polyp_data_gets_the_polyp_preset(tmp_path):
    cvc = write_synthetic(tmp_path / "CVC-ClinicDB", "cvc_clinicdb", n=12, size=64, seed=0)
    cfg = run_config("unet2d", 0, PLANAR_PROFILES["cpu-reduced"], cvc, tmp_path)
    assert cfg.data.layout == "cvc_clinicdb" and cfg.loss.ce_weight == 0 and cfg.optim.optimizer == "adamw"
    assert cfg.data.size == 128 and cfg.trainer.max_epochs == 16        # the profile's budget
    out = tmp_path / "bench"
    result = runner.invoke(app, ["seg", "benchmark", "--task", "2d", "--data", str(cvc), "--out", str(out),
                                 "--profile", "smoke", "--methods", "unet2d", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    report = (out / "report" / "seg2d.md").read_text()
    assert "Protocol `polyp`" in report and "Precision (%)" in report and "epochs trained: 1" in report
