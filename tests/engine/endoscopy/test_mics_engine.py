"""MICS engine: configs, pre-training -> fine-tuning -> WLI-only prediction on a tiny built-in dataset."""

from __future__ import annotations

import csv
import json
import warnings

import pytest
import torch
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.engine.endoscopy.config import load_finetune_config, load_pretrain_config
from medmodal.engine.endoscopy.modules import classification_metrics
from medmodal.notices import InputWarning

runner = CliRunner()
TINY_ENCODER = ["model.encoder_kwargs={patch_size: 8, depth: 1, embed_dim: 32, num_heads: 2}", "data.image_size=32",
                "trainer.max_epochs=1", "data.batch_size=8"]
PRE = TINY_ENCODER + ["model.decoder_depth=1", "model.decoder_dim=16", "model.queue_size=16", "model.embed_dim=16"]


@pytest.fixture(scope="module")
def tiny_pairs(tmp_path_factory):
    from medmodal.data.endoscopy.synthetic import synth_endoscopy

    root = tmp_path_factory.mktemp("endo") / "data"
    synth_endoscopy(root, 48, 32, seed=0)
    return root


@pytest.mark.parametrize("preset", ["mics_pretrain_kvasir", "mics_pretrain_demo_cpu"])
def test_pretrain_presets_load(preset):
    cfg = load_pretrain_config(preset=preset)
    assert cfg.model.image_size == cfg.data.image_size
    assert (cfg.model.recon_weight, cfg.model.contrastive_weight, cfg.model.adversarial_weight) == (10, 1, 0.1)
    assert cfg.model.temperature == 0.07 and cfg.model.mask_ratio == 0.75


@pytest.mark.parametrize("preset", ["mics_finetune_kvasir", "mics_finetune_demo_cpu"])
def test_finetune_presets_load(preset):
    cfg = load_finetune_config(preset=preset)
    assert cfg.data.label_fraction == 0.05 and cfg.model.shift == "dsu"


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="unknown config keys"):
        load_finetune_config(overrides=["model.nonsense=1"])
    with pytest.raises(ValueError, match="unknown method"):
        load_finetune_config(overrides=["method=meanteacher"])
    with pytest.raises(ValueError, match="label_fraction"):
        load_finetune_config(overrides=["data.label_fraction=0"])
    with pytest.raises(ValueError, match="freeze_encoders_epochs"):
        load_finetune_config(overrides=["optim.freeze_encoders_epochs=-1"])


def test_classification_metrics_by_hand():
    target = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 0])
    m = classification_metrics(torch.nn.functional.one_hot(pred, 3).float(), target, 3)
    assert float(m["accuracy"]) == pytest.approx(4 / 6)
    # per class precision 1/2, 2/3, 1; recall 1/2, 1, 1/2
    assert m["per_class_precision"].tolist() == pytest.approx([0.5, 2 / 3, 1.0])
    assert float(m["recall"]) == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert m["confusion"].tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_pretrain_finetune_predict(tiny_pairs, tmp_path):
    from medmodal.engine.endoscopy import run_finetune, run_pretrain

    pre_cfg = load_pretrain_config(preset="mics_pretrain_demo_cpu", overrides=PRE + [f"data.root={tiny_pairs}"])
    pre_cfg.out_dir = str(tmp_path / "pre")
    pre = run_pretrain(pre_cfg)
    assert (tmp_path / "pre" / "encoders.safetensors").is_file() and pre["pairs"] > 0
    assert run_pretrain(pre_cfg)["skipped"]  # resume: a finished run is not trained again

    cfg = load_finetune_config(preset="mics_finetune_demo_cpu", overrides=TINY_ENCODER + [
        f"data.root={tiny_pairs}", "data.label_fraction=0.2"])
    cfg.init, cfg.out_dir = str(tmp_path / "pre"), str(tmp_path / "ft")
    result = run_finetune(cfg)
    run = tmp_path / "ft"
    for name in ("metrics.json", "results.csv", "per_class.csv", "confusion.png", "confusion_wli.png",
                 "model.safetensors", "splits.json", "config.yaml"):
        assert (run / name).is_file(), name
    assert {"test", "test_wli"} <= set(result)
    assert 0 <= result["test"]["accuracy"] <= 1 and len(result["per_class"]) == 6
    assert sum(r["support"] for r in result["per_class"]) == result["counts"]["test"]
    splits = json.loads((run / "splits.json").read_text())
    assert not set(splits["labelled"]) & set(splits["test"])

    # the identical request again, with what --init and the data fill in (architecture, image size, number
    # of classes) left to them: the finished run is reported without an 'another config' warning
    def bare():
        c = load_finetune_config(preset="mics_finetune_demo_cpu", overrides=[
            "trainer.max_epochs=1", "data.batch_size=8", "model.fusion_depth=1", "model.num_classes=3",
            f"data.root={tiny_pairs}", "data.label_fraction=0.2"])
        c.init, c.out_dir = str(tmp_path / "pre"), str(tmp_path / "ft-bare")
        return c

    assert not run_finetune(bare())["skipped"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        assert run_finetune(bare())["skipped"]

    # white light only at prediction time, from a plain folder of WLI images
    wli_only = tmp_path / "wli"
    wli_only.mkdir()
    for f in sorted((tiny_pairs / "polyps_WLI").glob("*.png"))[:3]:
        (wli_only / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "pred.csv"
    res = runner.invoke(app, ["endoscopy", "predict", "-i", str(wli_only), "-o", str(out), "-m", str(run)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 and {r["used"] for r in rows} == {"wli"} and all(r["prediction"] for r in rows)
    assert "label" not in rows[0] and "accuracy" not in res.output  # unlabelled input: no label column
    bad = runner.invoke(app, ["endoscopy", "predict", "-i", str(wli_only), "-o", str(out), "-m", str(tmp_path)])
    assert bad.exit_code == 1 and "model.json" in bad.output

    # an input laid out by class: one folder the model knows, one it does not (HyperKvasir's name of a class)
    by_class = tmp_path / "by_class"
    files = sorted((tiny_pairs / "polyps_WLI").glob("*.png"))
    for folder, f in (("polyps", files[0]), ("cecum", files[1])):
        (by_class / folder).mkdir(parents=True)
        (by_class / folder / f.name).write_bytes(f.read_bytes())
    res = runner.invoke(app, ["endoscopy", "predict", "-i", str(by_class), "-o", str(out), "-m", str(run)])
    assert res.exit_code == 0, res.output
    # labelled input: its label in the CSV, and the accuracy on the samples of a class the model knows
    labelled_rows = list(csv.DictReader(out.open()))
    assert list(labelled_rows[0])[:4] == ["sample_id", "used", "prediction", "label"]
    assert sorted(r["label"] for r in labelled_rows) == ["cecum", "polyps"]
    assert "(1 of 1) on the labelled samples of the given files" in res.output or \
        "(0 of 1) on the labelled samples of the given files" in res.output
    assert "1 labelled samples not scored" in res.output
    lines = [line for line in res.output.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "1 input class(es) are not classes of the model: cecum" in lines[0]
    assert "'cecum' may be the model's 'normal-cecum'" in lines[0] and "esophagitis" in lines[0]
    res = runner.invoke(app, ["endoscopy", "predict", "-i", str(by_class / "polyps"), "-o", str(out), "-m", str(run)])
    assert res.exit_code == 0 and "warning:" not in res.output  # a plain folder: no class names to compare
    assert "optimistic" not in res.output  # another folder than the model's data: no overlap note
    # the model's own data: the samples it was trained on are named as such (their accuracy is optimistic)
    res = runner.invoke(app, ["endoscopy", "predict", "-i", str(tiny_pairs), "-o", str(out), "-m", str(run)])
    assert res.exit_code == 0, res.output
    assert "scored samples were in the model's training / validation split" in res.output, res.output


def test_input_class_mismatch():
    from medmodal.data.endoscopy.samples import PairedSample
    from medmodal.engine.endoscopy.train import input_class_mismatch

    def samples(*labels):
        return [PairedSample(f"s{i}", None, None, label) for i, label in enumerate(labels)]

    classes = ["adenoma", "hyperplastic", "serrated"]
    assert input_class_mismatch(samples(None, None), classes) == (None, None)
    assert input_class_mismatch(samples("adenoma", "serrated", "hyperplastic"), classes) == (None, None)
    warning, note = input_class_mismatch(samples("Adenoma", "serrated", "polyp"), classes)
    assert note is None and warning.startswith("2 input class(es) are not classes of the model: Adenoma, polyp; "
                                               "model classes absent from the input: adenoma, hyperplastic")
    assert "'Adenoma' may be the model's 'adenoma'" in warning
    warning, note = input_class_mismatch(samples("adenoma"), classes)
    assert warning is None and note == "the input's labels cover 1 of the model's 3 classes (absent: hyperplastic, " \
        "serrated)"


def test_freeze_encoders_epochs_keeps_then_releases_pretrained_encoders(tiny_pairs, tmp_path):
    """LP-FT: frozen for all epochs the encoders stay the pre-trained ones (fusion + head still train);
    frozen for the first epoch only they change afterwards."""
    from safetensors.torch import load_file

    from medmodal.engine.endoscopy import run_finetune, run_pretrain

    pre_cfg = load_pretrain_config(preset="mics_pretrain_demo_cpu", overrides=PRE + [f"data.root={tiny_pairs}"])
    pre_cfg.out_dir = str(tmp_path / "pre")
    run_pretrain(pre_cfg)
    pretrained = load_file(str(tmp_path / "pre" / "encoders.safetensors"))

    def finetune(name, frozen):
        cfg = load_finetune_config(preset="mics_finetune_demo_cpu", overrides=TINY_ENCODER + [
            f"data.root={tiny_pairs}", "data.label_fraction=0.2", "trainer.max_epochs=2",
            f"optim.freeze_encoders_epochs={frozen}"])
        cfg.init, cfg.out_dir = str(tmp_path / "pre"), str(tmp_path / name)
        result = run_finetune(cfg)
        assert result["val_accuracy"] is not None and 0 <= result["val_accuracy"] <= 1
        return load_file(str(tmp_path / name / "model.safetensors"))

    def encoder_change(weights):
        return max(float((weights[f"encoders.{k}"] - v).abs().max()) for k, v in pretrained.items())

    frozen = finetune("frozen", 2)
    assert encoder_change(frozen) == 0
    lpft = finetune("lpft", 1)
    assert encoder_change(lpft) > 0


def test_linear_probe_benchmark_methods_are_valid_configs():
    from medmodal.experiments.endoscopy.benchmark import ENDOSCOPY_METHODS

    for name in ("mics-lp", "late-fusion-lp"):
        cfg = load_finetune_config(preset="mics_finetune_demo_cpu", overrides=list(ENDOSCOPY_METHODS[name].overrides))
        assert cfg.model.fusion == "late" and cfg.optim.freeze_encoders_epochs >= cfg.trainer.max_epochs
    assert ENDOSCOPY_METHODS["mics-lp"].pretrain == "full" and ENDOSCOPY_METHODS["late-fusion-lp"].pretrain is None


def test_fixmatch_and_single_modality(tiny_pairs, tmp_path):
    from medmodal.engine.endoscopy import run_finetune

    cfg = load_finetune_config(preset="mics_finetune_demo_cpu", overrides=TINY_ENCODER + [
        f"data.root={tiny_pairs}", "data.label_fraction=0.2", "method=fixmatch", "fixmatch.mu=1",
        "fixmatch.threshold=0.0"])
    cfg.out_dir = str(tmp_path / "fm")
    result = run_finetune(cfg)
    assert result["method"] == "fixmatch" and result["counts"]["unlabelled"] > 0
    logs = (tmp_path / "fm" / "logs" / "metrics.csv").read_text()
    assert "train/loss_unlabelled" in logs and "train/mask_rate" in logs

    cfg = load_finetune_config(preset="mics_finetune_demo_cpu", overrides=TINY_ENCODER + [
        f"data.root={tiny_pairs}", "model.modalities=[nbi]", "modality_dropout=0"])
    cfg.out_dir = str(tmp_path / "nbi")
    result = run_finetune(cfg)
    assert "test_wli" not in result and result["modalities"] == ["nbi"]
    # as the how-to says: a single-modality run tests once (one results.csv row, no confusion_wli.png), and its
    # fusion / shift columns name what it trained (fusion blocks without a second stream, the DSU shift)
    rows = list(csv.DictReader((tmp_path / "nbi" / "results.csv").open()))
    assert len(rows) == 1 and rows[0]["test_modalities"] == "all" and rows[0]["model_modalities"] == "nbi"
    assert not (tmp_path / "nbi" / "confusion_wli.png").exists() and (tmp_path / "nbi" / "confusion.png").is_file()

    # predicting with a modality the model has no stream for is an error naming the model's modalities
    # (it used to write rows with used=none and exit 0)
    images = tmp_path / "wli_images"
    images.mkdir()
    for f in sorted((tiny_pairs / "polyps_WLI").glob("*.png"))[:2]:
        (images / f.name).write_bytes(f.read_bytes())
    res = runner.invoke(app, ["endoscopy", "predict", "-i", str(images), "-o", str(tmp_path / "p.csv"),
                              "-m", str(tmp_path / "nbi"), "--modalities", "wli"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "--modalities wli" in res.output and "its modalities: nbi" in res.output
    assert not (tmp_path / "p.csv").exists()


def test_predict_device_cuda_without_gpu_is_one_line(tiny_pairs, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = runner.invoke(app, ["endoscopy", "predict", "-i", str(tiny_pairs / "polyps_WLI"), "-o",
                              str(tmp_path / "p.csv"), "-m", str(tmp_path), "--device", "cuda"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert res.output.startswith("error:") and "no CUDA GPU is available" in res.output
    for name in ("mps", "gpu", "foo"):  # torch would raise RuntimeError deep inside
        res = runner.invoke(app, ["endoscopy", "predict", "-i", str(tiny_pairs / "polyps_WLI"), "-o",
                                  str(tmp_path / "p.csv"), "-m", str(tmp_path), "--device", name])
        assert res.exit_code == 1 and "Traceback" not in res.output, res.output
        assert f"device '{name}': choose auto, cpu, cuda or cuda:<index>" in res.output


def test_finetune_cli_bad_data_is_one_line(tmp_path):
    res = runner.invoke(app, ["endoscopy", "finetune", "--preset", "mics_finetune_demo_cpu", "--data",
                              str(tmp_path / "missing")])
    assert res.exit_code == 1 and "not found" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("cmd", ["pretrain-endoscopy", "finetune-endoscopy", "predict-endoscopy", "demo-endoscopy"])
def test_help(cmd):
    res = runner.invoke(app, [cmd, "--help"])
    assert res.exit_code == 0 and "Usage" in res.output


def test_benchmark_unknown_suite_and_method(tmp_path):
    res = runner.invoke(app, ["benchmark", "--suite", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "--suite" in res.output
    res = runner.invoke(app, ["benchmark", "--suite", "endoscopy", "--methods", "magic", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "unknown methods" in res.output


def test_queue_size_warning_names_the_fix():
    from medmodal.engine.endoscopy.train import queue_size_warning

    assert queue_size_warning(64, 252, 32) is None
    line = queue_size_warning(256, 252, 32)
    assert "model.queue_size=256" in line and "252 training pairs" in line and "<= 220" in line
    assert load_pretrain_config(preset="mics_pretrain_demo_cpu").model.queue_size <= 252 - 32


@pytest.mark.parametrize("pairs,batch", [(6, 32), (6, 6), (10, 9), (3, 8), (12, 4), (252, 32)])
def test_queue_size_warning_never_suggests_a_value_that_warns_again(pairs, batch):
    """6 training pairs with a batch of 32 used to suggest 'model.queue_size <= 0 (e.g. 1)': 0 crashed and 1
    warned again. The suggested (batch size, queue size) must be quiet."""
    import re

    from medmodal.engine.endoscopy.train import queue_size_warning

    line = queue_size_warning(64 * pairs, pairs, batch)
    assert line and "<= 0" not in line and "<= -" not in line
    new_batch = int(m.group(1)) if (m := re.search(r"data.batch_size=(\d+) with", line)) else batch
    queue = int(re.search(r"model.queue_size(?:=| <= \d+ \(e.g. )(\d+)\)?$", line).group(1))
    assert queue >= 1 and queue_size_warning(queue, pairs, new_batch) is None, line
    if batch >= pairs:
        assert "lower data.batch_size" in line and f"batch of {pairs}" in line


def test_queue_size_two_pairs_says_why_no_value_helps():
    from medmodal.engine.endoscopy.train import queue_size_warning

    line = queue_size_warning(1, 2, 32)
    assert "too few for a queue" in line and "<= 0" not in line


@pytest.mark.parametrize("value", ["0", "-3"])
def test_queue_size_below_one_is_a_config_error(value):
    from medmodal.errors import ConfigError

    with pytest.raises(ConfigError, match="model.queue_size must be >= 1"):
        load_pretrain_config(preset="mics_pretrain_demo_cpu", overrides=[f"model.queue_size={value}"])


def test_pretrain_queue_warning_is_printed_once(tiny_pairs, tmp_path):
    """A queue larger than the training pairs: one 'warning:' line at the start (not again as a note after
    training), kept in metrics.json under 'warnings'."""
    res = runner.invoke(app, ["endoscopy", "pretrain", "--preset", "mics_pretrain_demo_cpu", "--data", str(tiny_pairs),
                              "--out", str(tmp_path / "pre"), *[a for o in PRE if "queue_size" not in o
                                                               for a in ("--set", o)],
                              "--set", "model.queue_size=4096"])
    assert res.exit_code == 0, res.output
    assert res.output.count("model.queue_size=4096 exceeds") == 1, res.output
    assert "warning: model.queue_size=4096 exceeds" in res.output
    assert ", 1 epoch: " in res.output  # not '1 epochs'
    metrics = json.loads((tmp_path / "pre" / "metrics.json").read_text())
    assert len(metrics["warnings"]) == 1 and not any("queue_size" in n for n in metrics["notes"])


def test_format_result_says_percent_of_labels_and_pluralises():
    from medmodal.engine.endoscopy.train import format_result

    scores = {"accuracy": 0.5, "f1": 0.25}
    line = format_result({"label_fraction": 1.0, "counts": {"test": 1}, "test": scores})
    assert line.startswith("test at 100 % labels, 1 test sample - all modalities: accuracy 0.500"), line
    line = format_result({"label_fraction": 0.05, "counts": {"test": 12}, "test": scores, "test_wli": scores})
    assert line.startswith("test at 5 % labels, 12 test samples - ") and "WLI only" in line, line
    # on a dozen pairs 5 % becomes one image per class: the line says what the fraction became
    line = format_result({"label_fraction": 0.05, "counts": {"test": 3, "train": 3, "unlabelled": 3}, "test": scores})
    assert line.startswith("test at 5 % labels (3 of 6 training samples labelled), 3 test samples - "), line
    line = format_result({"label_fraction": 1.0, "counts": {"test": 2}, "test": scores, "modalities": ["wli"]})
    assert "- WLI (the model's only stream): accuracy 0.500" in line, line


def test_no_validation_split_is_one_note_not_lightning_warnings(tiny_pairs, tmp_path):
    """data.fractions without a validation part: Lightning warned 'Total length of DataLoader across ranks is
    zero' (and, fine-tuning, that ModelCheckpoint found no val/accuracy); now one medmodal note says what happens."""
    from medmodal.engine.endoscopy import run_finetune, run_pretrain

    no_val = ["data.fractions=[0.8,0,0.2]"]
    pre_cfg = load_pretrain_config(preset="mics_pretrain_demo_cpu",
                                   overrides=PRE + no_val + [f"data.root={tiny_pairs}"])
    pre_cfg.out_dir = str(tmp_path / "pre")
    cfg = load_finetune_config(preset="mics_finetune_demo_cpu", overrides=TINY_ENCODER + no_val + [
        f"data.root={tiny_pairs}", "trainer.patience=2"])
    cfg.out_dir = str(tmp_path / "ft")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pre = run_pretrain(pre_cfg)
        result = run_finetune(cfg)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "Total length of `DataLoader`" in m or "monitored key" in m], messages
    assert any("no validation pairs" in n and "training losses" in n for n in pre["notes"])
    assert any("no validation pairs" in n and "last epoch is tested" in n and "trainer.patience unused" in n
               for n in result["notes"])
    assert result["val_accuracy"] is None and (tmp_path / "ft" / "model.safetensors").is_file()
