"""``medmodal seg synth --dataset <fundus>`` and ``seg summary`` on fundus folders (synthetic twins, real
DRIVE and CHASE_DB1); an MRI folder is still summarised by the volume readers (tests/test_cli.py)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from tests.conftest import REAL_DATA

runner = CliRunner()
FUNDUS_REAL = REAL_DATA / "fundus-real"
DRIVE, CHASE = FUNDUS_REAL / "DRIVE", FUNDUS_REAL / "CHASEDB1"

# --dataset, layout read back, images written for -n 2, FOV column, a note expected
CASES = [("drive", "drive", 4, "official", None),
         ("chase_db1", "chase_db1", 2, "derived", "FOV is derived"),
         ("hrf", "hrf", 2, "official", None),
         ("stare", "stare", 2, "derived", "FOV is derived"),
         ("fundus-generic", "generic", 2, "official", None)]


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("dataset,layout,count,fov,note", CASES)
def test_synth_then_summary(tmp_path, dataset, layout, count, fov, note):
    out = tmp_path / dataset
    line = invoke("seg", "synth", str(out), "--dataset", dataset, "-n", "2", "--size", "32", "--seed", "3")
    assert len(line.strip().splitlines()) == 1 and f"wrote {count} synthetic {dataset} images" in line
    for extra in ((), ("--layout", layout)):
        text = invoke("seg", "summary", str(out), *extra)
        assert f"layout: {layout}; {count} images" in text and f"FOV {fov} {count}" in text
        assert "32x32" in text
        notes = [ln for ln in text.splitlines() if ln.startswith("note:")]
        assert (note is None and not notes) or any(note in ln for ln in notes)
    if layout == "drive":
        assert "training 2, test 2" in text


def test_summary_of_a_folder_neither_family_knows(tmp_path):
    (tmp_path / "README").write_text("nothing here")
    result = runner.invoke(app, ["seg", "summary", str(tmp_path)])
    assert result.exit_code == 1 and result.output.startswith("error:")
    assert len(result.output.strip().splitlines()) == 1
    assert "BraTS 2020" in result.output and "DRIVE" in result.output


def test_an_unknown_synth_dataset_names_the_fundus_choices(tmp_path):
    result = runner.invoke(app, ["seg", "synth", str(tmp_path), "--dataset", "drivee"])
    assert result.exit_code == 1 and "fundus-generic" in result.output


@pytest.mark.realdata
@pytest.mark.skipif(not DRIVE.is_dir(), reason=f"real DRIVE not found at {DRIVE}")
def test_real_drive_summary():
    text = invoke("seg", "summary", str(DRIVE))
    assert "layout: drive; 40 images, training 20, test 20; 40 labelled; FOV official 40" in text
    assert "565x584" in text


@pytest.mark.realdata
@pytest.mark.skipif(not CHASE.is_dir(), reason=f"real CHASE_DB1 not found at {CHASE}")
def test_real_chase_db1_summary_says_the_fov_is_not_official():
    text = invoke("seg", "summary", str(CHASE))
    assert "layout: chase_db1; 28 images; 28 labelled" in text
    fov_column = {ln.split("│")[-1].strip() for ln in text.splitlines() if ln.lstrip().startswith("Image_")}
    assert fov_column <= {"unofficial", "derived"} and fov_column
    assert any(ln.startswith("note:") and ("NOT part of the official release" in ln or "FOV is derived" in ln)
               for ln in text.splitlines())
