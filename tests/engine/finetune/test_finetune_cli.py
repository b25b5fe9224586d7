"""``medmodal finetune`` end to end on tiny synthetic twins (ResNet-18 at 64 px, 2 epochs): every
task, the run folder, resume, encoder loading from an export, errors as one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.engine.finetune.config import load_finetune_config
from medmodal.engine.finetune.train import run_finetune
from medmodal.models.encoder_export import load_image_encoder, save_image_encoder, state_fingerprint

runner = CliRunner()


def finetune(*args: str):
    result = runner.invoke(app, ["cxr", "finetune", *args])
    if result.exit_code != 0 and result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def read_metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def covidx_cached(twins, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "covidx-cached"
    result = finetune("--preset", "finetune_tiny_classification", "--dataset", "covidx", "--data",
                      str(twins["covidx"]), "-o", str(run), "--fraction", "1")
    assert result.exit_code == 0, result.output
    return run, result.output


def test_classification_on_cached_features_writes_the_run_folder(covidx_cached, twins):
    run, output = covidx_cached
    assert "covidx classification at 100 % labels: test accuracy" in output
    assert "read as 'rsna'" in output  # the reader's notes are shown
    for name in ("config.yaml", "splits.json", "metrics.json", "results.csv", "train_time.json",
                 "checkpoints/best.ckpt", "checkpoints/last.ckpt", "logs/metrics.csv"):
        assert (run / name).is_file(), name
    metrics = read_metrics(run)
    assert metrics["metric"] == "accuracy" and 0 <= metrics["value"] <= 1
    assert metrics["features"] == "cached" and metrics["frozen"] is True and metrics["epochs"] == 2
    assert set(metrics["test"]) >= {"accuracy", "accuracy_normal", "accuracy_pneumonia", "accuracy_covid_19", "loss"}
    splits = json.loads((run / "splits.json").read_text())
    ids = {s: set(splits[s]) for s in ("train", "val", "test")}
    assert {s: len(v) for s, v in ids.items()} == metrics["counts"]
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    rows = list(csv.DictReader((run / "results.csv").open()))
    assert len(rows) == 1 and rows[0]["metric"] == "accuracy" and float(rows[0]["value"]) == metrics["value"]
    assert load_finetune_config(run / "config.yaml").classification.features == "cached"
    cache = twins["covidx"] / ".medmodal_cache"
    assert len(list(cache.glob("features512_*.npy"))) == 1 and len(list(cache.glob("images73_*.npy"))) == 1
    again = finetune("--preset", "finetune_tiny_classification", "--dataset", "covidx", "--data", str(twins["covidx"]),
                     "-o", str(run))
    assert again.exit_code == 0 and "finished run found" in again.output


def test_re_encoding_every_epoch_reaches_the_cached_result(covidx_cached, twins, tmp_path):
    """Same images (evaluation view), same head initialisation and batch order: same test result."""
    run = tmp_path / "covidx-re-encode"
    result = finetune("--preset", "finetune_tiny_classification", "--dataset", "covidx", "--data",
                      str(twins["covidx"]), "-o", str(run), "--set", "classification.features=augmented",
                      "--set", "classification.train_transform=eval")
    assert result.exit_code == 0, result.output
    cached, encoded = read_metrics(covidx_cached[0]), read_metrics(run)
    assert encoded["features"] == "augmented"
    assert encoded["test"]["loss"] == pytest.approx(cached["test"]["loss"], abs=1e-4)
    assert encoded["value"] == pytest.approx(cached["value"], abs=1e-6)


def test_chexpert_exact_protocol_reports_every_finding(twins, tmp_path):
    run = tmp_path / "chexpert"
    result = finetune("--preset", "finetune_tiny_classification", "--dataset", "chexpert", "--data",
                      str(twins["chexpert"]), "-o", str(run), "--exact-protocol")
    assert result.exit_code == 0, result.output
    metrics = read_metrics(run)
    assert metrics["metric"] == "auroc" and metrics["features"] == "augmented"
    findings = {"atelectasis", "cardiomegaly", "consolidation", "edema", "pleural_effusion"}
    assert {f"auroc_{f}" for f in findings} <= set(metrics["test"])
    assert metrics["value"] is None or 0 <= metrics["value"] <= 1  # None: no finding has both classes in test


def test_unfreeze_fine_tunes_the_encoder(twins, tmp_path):
    run = tmp_path / "rsna-unfrozen"
    result = finetune("--preset", "finetune_tiny_classification", "--dataset", "rsna", "--data", str(twins["rsna"]),
                      "-o", str(run), "--unfreeze", "--set", "trainer.max_epochs=1")
    assert result.exit_code == 0, result.output
    assert "features cannot be cached" in result.output
    assert read_metrics(run)["frozen"] is False and read_metrics(run)["metric"] == "auroc"
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    start, _ = load_image_encoder("random", arch="resnet18", seed=43)
    assert not torch.equal(state["model.encoder.backbone.conv1.weight"], start.conv1.weight)


def test_segmentation_from_an_exported_encoder_keeps_it_frozen(twins, tmp_path):
    encoder, _ = load_image_encoder("random", arch="resnet18", seed=7)
    save_image_encoder(tmp_path / "pretrain" / "export" / "image_encoder", encoder, "resnet18", source="test")
    run = tmp_path / "siim"
    result = finetune("--preset", "finetune_tiny_segmentation", "--dataset", "siim", "--data", str(twins["siim"]),
                      "-o", str(run), "--encoder", str(tmp_path / "pretrain"), "--fraction", "0.5")
    assert result.exit_code == 0, result.output
    assert "siim segmentation at 50 % labels: test dice" in result.output
    metrics = read_metrics(run)
    assert metrics["encoder"]["kind"] == "export" and metrics["encoder"]["source"] == "test"
    size_note = (f"the encoder was pre-trained at 224 px ({tmp_path / 'pretrain' / 'export' / 'image_encoder'}"
                 f"/model.safetensors); this run feeds it 64 px images (data.image_size; --set data.image_size=224 "
                 f"to match)")
    assert size_note in metrics["notes"] and "note: the encoder was pre-trained at 224 px" in result.output
    assert metrics["metric"] == "dice" and set(metrics["test"]) >= {"dice", "dice_dataset", "focal", "dice_log"}
    assert 0 <= metrics["value"] <= 1
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert not any(k.startswith("model.unet.encoder.") for k in checkpoint["state_dict"])  # frozen: not stored
    assert checkpoint["frozen_encoder"]["fingerprint"] == state_fingerprint(encoder.state_dict())
    assert any(k.startswith("model.unet.decoder.") for k in checkpoint["state_dict"])


def test_a_frozen_encoder_stays_identical_batchnorm_included(twins, tmp_path):
    """RSNA segmentation (masks from boxes) through the Python API: the encoder at the end of
    training equals the loaded one, running statistics included (kept in eval mode)."""
    from lightning.pytorch.callbacks import Callback

    class Snapshot(Callback):
        def on_fit_end(self, trainer, module):
            self.state = {k: v.clone() for k, v in module.model.encoder.state_dict().items()}
            self.encoder_training = module.model.encoder.training

    cfg = load_finetune_config(preset="finetune_tiny_segmentation", dataset="rsna")
    cfg.data.root, cfg.out_dir, cfg.trainer.max_epochs = str(twins["rsna"]), str(tmp_path / "rsna-seg"), 1
    snapshot = Snapshot()
    result = run_finetune(cfg, resume="never", extra_callbacks=[snapshot])
    start, _ = load_image_encoder("random", arch="resnet18", seed=42)
    assert snapshot.encoder_training is False
    assert snapshot.state.keys() == start.state_dict().keys()
    assert all(torch.equal(v, start.state_dict()[k]) for k, v in snapshot.state.items())
    assert result["dataset"] == "rsna" and result["metric"] == "dice" and result["counts"]["test"] > 0


def test_detection_on_object_cxr(twins, tmp_path):
    run = tmp_path / "object-cxr"
    result = finetune("--preset", "finetune_tiny_detection", "--dataset", "object-cxr", "--data",
                      str(twins["object-cxr"]), "-o", str(run))
    assert result.exit_code == 0, result.output
    metrics = read_metrics(run)
    assert metrics["metric"] == "map" and set(metrics["test"]) >= {"map", "map_50", "map_75", "map_reference", "xy"}
    assert metrics["value"] is None or 0 <= metrics["value"] <= 1
    assert load_finetune_config(run / "config.yaml").data.geometry == "stretch"


@pytest.mark.parametrize("args, message", [
    (["--task", "segmentation", "--dataset", "covidx"], "covidx has no segmentation task (it supports classification)"),
    (["--task", "classification", "--dataset", "covidx", "--encoder", "nowhere/run"], "nowhere/run: no such encoder"),
    (["--preset", "finetune_tiny_detection", "--task", "classification", "--dataset", "rsna"],
     "is a detection config, not classification"),
    (["--task", "classification", "--dataset", "covidx", "--set", "optim.learning_rate=1"],
     "unknown config keys ['learning_rate']"),
    (["--task", "detection", "--dataset", "rsna", "--exact-protocol"], "--exact-protocol applies to classification"),
])
def test_bad_requests_fail_with_one_line(twins, tmp_path, args, message):
    result = finetune(*args, "--data", str(twins["covidx"]), "-o", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
