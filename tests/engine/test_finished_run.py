"""A finished run folder that was copied / moved is reported where it is now: ``--out`` always wins
over the paths recorded in its ``metrics.json`` (a new-user trial saw the original folder named)."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.engine.trainer import finished_run

runner = CliRunner()


def finished_pretraining(tmp_path):
    original = tmp_path / "runs" / "pre"
    original.mkdir(parents=True)
    (original / "metrics.json").write_text(json.dumps({
        "run_dir": str(original), "model": "cmcgns", "epochs": 2, "counts": {"train": 4},
        "export": {"image_encoder": str(original / "export" / "image_encoder"), "architecture": "resnet10t",
                   "text_encoder": str(original / "export" / "text_encoder")},
        "notes": [f"elsewhere: {tmp_path / 'other'}"]}))
    copy = tmp_path / "runs" / "pre_c"
    shutil.copytree(original, copy)
    return original, copy


def test_finished_run_is_reported_where_it_is(tmp_path):
    original, copy = finished_pretraining(tmp_path)
    result = finished_run(copy, "auto")
    assert result["skipped"] is True and result["run_dir"] == str(copy)
    assert result["export"]["image_encoder"] == str(copy / "export" / "image_encoder")
    assert result["notes"] == [f"elsewhere: {tmp_path / 'other'}"]  # paths outside the run are kept
    assert finished_run(copy, "never") is None and finished_run(tmp_path, "auto") is None


def test_pretrain_out_wins_over_a_copied_run(tmp_path):
    original, copy = finished_pretraining(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    result = runner.invoke(app, ["cxr", "pretrain", "--preset", "pretrain_demo_cpu", "--data", str(data),
                                 "--out", str(copy)])
    assert result.exit_code == 0, result.output
    joined = result.output.replace("\n", "")
    assert f"finished run found (--resume never to train again): {copy}" in joined
    assert f"export: {copy / 'export' / 'image_encoder'} (resnet10t)" in joined
    assert str(original) not in joined.replace(str(copy), "")
