"""A preset's ``encoder.arch`` is a default for sources that need one (random, ImageNet, weight
files); an export names its own architecture and is checked only against an explicit ``--arch``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import medmodal.engine.finetune.train as finetune_train
from medmodal.cli import app
from medmodal.models.encoder_export import architecture_for, create_backbone, save_image_encoder

runner = CliRunner()


@pytest.fixture(scope="module")
def export_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("pretrain")
    save_image_encoder(run / "export" / "image_encoder", create_backbone("resnet10t"), "resnet10t", source="test")
    return run


@pytest.fixture
def captured(monkeypatch):
    seen = {}

    def fake_run_finetune(cfg, resume="auto"):
        seen["cfg"] = cfg
        raise SystemExit(0)

    monkeypatch.setattr(finetune_train, "run_finetune", fake_run_finetune)
    return seen


def invoke(tmp_path, *args):
    return runner.invoke(app, ["cxr", "finetune", "--preset", "finetune_tiny_classification", "--dataset", "rsna",
                               "--data", str(tmp_path), "-o", str(tmp_path / "run"), *args])


def test_architecture_for(export_run, tmp_path):
    assert architecture_for(export_run, "resnet18") == "resnet10t"
    assert architecture_for(export_run / "export" / "image_encoder", None) == "resnet10t"
    assert architecture_for("random", "resnet18") == "resnet18"
    assert architecture_for("imagenet:/x.pth", "resnet18") == "resnet18"
    assert architecture_for(tmp_path, "resnet18") == "resnet18"  # a folder without an export: left to the loader


def test_preset_arch_yields_to_the_export(export_run, tmp_path, captured):
    result = invoke(tmp_path, "--encoder", str(export_run))
    assert result.exit_code == 0, result.output
    assert captured["cfg"].encoder.arch == "resnet10t"


def test_preset_arch_applies_to_random_init(tmp_path, captured):
    result = invoke(tmp_path, "--encoder", "random")
    assert result.exit_code == 0, result.output
    assert captured["cfg"].encoder.arch == "resnet18"


@pytest.mark.parametrize("explicit", [["--arch", "resnet18"], ["--set", "encoder.arch=resnet18"]])
def test_explicit_arch_is_checked_against_the_export(export_run, tmp_path, explicit):
    result = invoke(tmp_path, "--encoder", str(export_run), *explicit)
    assert result.exit_code == 1, result.output
    assert "the export is a resnet10t, not resnet18 (--arch)" in result.output and "Traceback" not in result.output
