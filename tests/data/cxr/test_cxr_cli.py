"""``medmodal cxr synth`` / ``cxr reports``: outputs, counts, one-line errors."""

import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from tests.data.cxr.test_synthetic import write_reports

runner = CliRunner()


@pytest.mark.parametrize("cmd", [["cxr", "synth"], ["cxr", "reports"]])
def test_help(cmd):
    result = runner.invoke(app, [*cmd, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_synth_cxr_command(tmp_path):
    reports = write_reports(tmp_path / "reports.csv")
    result = runner.invoke(app, ["cxr", "synth", str(tmp_path / "out"), "-n", "5", "--size", "96",
                                 "--reports", str(reports), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "wrote 5 studies" in result.output and (tmp_path / "out" / "annotation.json").is_file()
    bad = runner.invoke(app, ["cxr", "synth", str(tmp_path / "x"), "-n", "0"])
    assert bad.exit_code == 1 and "error: number of studies must be >= 1" in bad.output
    (tmp_path / "broken.csv").write_text("a,b\n1,2\n")
    bad = runner.invoke(app, ["cxr", "synth", str(tmp_path / "y"), "--reports", str(tmp_path / "broken.csv")])
    assert bad.exit_code == 1 and "broken.csv: expected Open-i indiana_reports.csv columns" in bad.output
    assert not (tmp_path / "y" / "annotation.json").exists()
