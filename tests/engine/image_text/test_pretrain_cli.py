"""``medmodal cxr pretrain`` / ``medmodal cxr export``: bad requests fail with one line and exit code 1."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from medmodal.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args, message", [
    (["cxr", "pretrain"], "give --preset"),
    (["cxr", "pretrain", "--preset", "nope"], "no packaged config 'nope'"),
    (["cxr", "pretrain", "--preset", "pretrain_demo_cpu", "--data", "/no/such/folder"],
     "/no/such/folder: data not found"),
    (["cxr", "pretrain", "--preset", "pretrain_demo_cpu", "--model", "dmafnet"], "not a registered image_text model"),
    (["cxr", "pretrain", "--preset", "pretrain_demo_cpu", "--set", "optim.lr=fast"], "optim.lr: expected a number"),
    (["cxr", "export", "/no/such/run"], "no last checkpoint"),
])
def test_bad_requests_fail_with_one_line(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_export_refuses_a_checkpoint_that_is_not_pre_training(tmp_path):
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir()
    torch.save({"state_dict": {}, "hyper_parameters": {"config": {"experiment": {}}}}, ckpt)
    result = runner.invoke(app, ["cxr", "export", str(tmp_path)])
    assert result.exit_code == 1 and "not an image-text pre-training checkpoint" in result.output
