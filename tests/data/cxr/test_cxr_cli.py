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


def test_reports_says_what_happens_to_rows_without_split(tmp_path):
    from tests.data.cxr.test_iu import write_openi

    rows = [(str(i), "normal", "", "", "", "", "The heart is normal.", "Normal chest.") for i in range(1, 5)]
    root = write_openi(tmp_path / "openi", rows, [(str(i), f"{i}_IM-0001-4001.dcm.png", "Frontal")
                                                  for i in range(1, 5)])
    plain = runner.invoke(app, ["cxr", "reports", str(root / "indiana_reports.csv"), "-o", str(tmp_path / "a.csv")])
    assert plain.exit_code == 0, plain.output
    assert "Open-i has no official split: rows are read without one" in plain.output
    assert "4 rows without split keep none (empty split column); --split-seed N draws a patient-level" in plain.output
    assert "split None" not in plain.output
    seeded = runner.invoke(app, ["cxr", "reports", str(root / "indiana_reports.csv"), "-o", str(tmp_path / "b.csv"),
                                 "--split-seed", "0"])
    assert seeded.exit_code == 0 and "got a patient-level split (70/10/20, seed 0)" in seeded.output
    assert "keep none" not in seeded.output and "split None" not in seeded.output


def test_reports_of_synthetic_data_do_not_ask_for_a_projections_table(tmp_path):
    from medmodal.data.cxr.synthetic import synth_cxr

    synth_cxr(tmp_path / "syn", 4, seed=0, size=64)
    result = runner.invoke(app, ["cxr", "reports", str(tmp_path / "syn"), "-o", str(tmp_path / "s.csv")])
    assert result.exit_code == 0 and "cannot be checked" not in result.output, result.output
    (tmp_path / "syn" / "synth_meta.json").unlink()  # the same folder, not known to be drawn: the note is back
    result = runner.invoke(app, ["cxr", "reports", str(tmp_path / "syn"), "-o", str(tmp_path / "t.csv")])
    assert "the views of 4 of 4 studies cannot be checked" in result.output
