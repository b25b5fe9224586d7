"""Damaged (truncated) checkpoints, weight files and run JSON: one line naming the file, exit code 1.

A new-user trial truncated ``last.ckpt`` / ``model.safetensors`` / ``encoders.safetensors`` /
``model.json`` (``head -c 1000``) and got 40-75 line tracebacks from torch / safetensors / Lightning.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.errors import CheckpointError
from medmodal.engine.endoscopy.train import load_pretrained_encoders
from medmodal.engine.trainer import find_resume_checkpoint
from medmodal.io import DamagedFileError, check_torch_file, load_safetensors_file, load_torch_file, read_json_file
from medmodal.models.bundles import load_model
from medmodal.models.encoder_export import EncoderLoadError, read_state_dict

runner = CliRunner()


def truncated(path, keep=300):
    """Cut ``path`` to its first ``keep`` bytes, as ``head -c`` / an interrupted copy would."""
    path.write_bytes(path.read_bytes()[:keep])
    return path


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {"model.w": torch.zeros(64, 64)}, "epoch": 1}, path)
    return path


@pytest.fixture
def safetensors_file(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(64, 64)}, str(path))
    return path


def test_complete_files_pass(ckpt, safetensors_file):
    assert check_torch_file(ckpt) == ckpt
    assert load_torch_file(ckpt)["epoch"] == 1
    assert set(load_safetensors_file(safetensors_file)) == {"w"}


@pytest.mark.parametrize("keep", [0, 10, 300])
def test_truncated_torch_file_names_file(ckpt, keep):
    truncated(ckpt, keep)
    with pytest.raises(DamagedFileError, match=r"last\.ckpt: damaged or incomplete checkpoint"):
        load_torch_file(ckpt)


def test_truncated_safetensors_names_file(safetensors_file):
    truncated(safetensors_file, 100)
    with pytest.raises(DamagedFileError, match=r"weights\.safetensors: damaged or incomplete safetensors"):
        load_safetensors_file(safetensors_file)


def test_broken_json_names_file(tmp_path):
    path = tmp_path / "model.json"
    path.write_text('{"model":\n')
    with pytest.raises(DamagedFileError, match=r"model\.json: damaged or not valid JSON"):
        read_json_file(path)


def test_resume_refuses_damaged_last_ckpt_before_lightning(ckpt):
    truncated(ckpt)
    with pytest.raises(DamagedFileError, match=r"last\.ckpt: damaged or incomplete checkpoint"):
        find_resume_checkpoint(ckpt.parent.parent, "auto")
    with pytest.raises(DamagedFileError, match=r"last\.ckpt"):
        find_resume_checkpoint(ckpt.parent.parent, str(ckpt))


def test_encoder_weight_file_message_is_whole(ckpt):
    """``finetune --encoder damaged.ckpt``: the message says damaged, not a cut-off 'pickled code' line."""
    truncated(ckpt)
    with pytest.raises(EncoderLoadError) as err:
        read_state_dict(ckpt)
    message = str(err.value)
    assert message.startswith(f"{ckpt}: damaged or incomplete checkpoint") and "pickled" not in message


def test_model_bundle_and_lightning_ckpt(tmp_path, ckpt):
    truncated(ckpt)
    with pytest.raises(CheckpointError, match=r"last\.ckpt: damaged"):
        load_model(ckpt)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    save_file({"w": torch.zeros(8)}, str(bundle / "model.safetensors"))
    (bundle / "model.json").write_text("{\n\n")
    with pytest.raises(CheckpointError, match=r"model\.json: damaged or not valid JSON"):
        load_model(bundle)


def test_pretrained_encoders_damaged(tmp_path):
    save_file({"w": torch.zeros(64, 64)}, str(tmp_path / "encoders.safetensors"))
    (tmp_path / "encoders.json").write_text(json.dumps({"model": "x"}))
    truncated(tmp_path / "encoders.safetensors", 50)
    with pytest.raises(DamagedFileError, match=r"encoders\.safetensors: damaged or incomplete"):
        load_pretrained_encoders(tmp_path)


def test_cli_export_damaged_last_ckpt(ckpt):
    truncated(ckpt)
    result = runner.invoke(app, ["cxr", "export", str(ckpt.parent.parent)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "last.ckpt: damaged or incomplete checkpoint" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_cli_predict_endoscopy_damaged_model(tmp_path, safetensors_file):
    run = tmp_path / "ft"
    run.mkdir()
    (run / "model.json").write_text(json.dumps({"model": "x", "config": {}, "classes": ["a", "b"]}))
    (run / "model.safetensors").write_bytes(truncated(safetensors_file, 100).read_bytes())
    result = runner.invoke(app, ["endoscopy", "predict", "-i", str(tmp_path), "-o", str(tmp_path / "p.csv"),
                                 "-m", str(run)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "model.safetensors: damaged or incomplete" in result.output
    assert not (tmp_path / "p.csv").exists()
