"""Image-text pre-training engine: the run folder, the export, bit-identical resume, stages and k-means."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from medmodal.engine.image_text.config import PRESETS, load_pretrain_config
from medmodal.engine.image_text.module import (ImageTextPretrainModule, freeze_parameters, stage_lr_factor,
                                               stage_of_epoch)
from medmodal.engine.image_text.train import run_pretraining
from tests.engine.image_text.conftest import TINY_MODEL


def test_presets_parse_and_keep_the_released_defaults():
    for name in PRESETS:
        load_pretrain_config(preset=name)
    paper = load_pretrain_config(preset="pretrain_mimic_cxr")
    assert (paper.trainer.stage1_epochs, paper.trainer.stage2_epochs) == (10, 20)
    assert (paper.optim.optimizer, paper.optim.lr, paper.optim.weight_decay) == ("adam", 1e-5, 1e-6)
    assert (paper.data.batch_size, paper.data.image_size, paper.trainer.seed) == (64, 224, 42)
    assert paper.model.kwargs["image_encoder"] == "resnet50"


@pytest.mark.parametrize("override, message", [
    ("model.name=dmafnet", "not a registered image_text model"),
    ("optim.optimizer=sgd", "optim.optimizer"),
    ("data.image_size=100", "multiple of 32"),
    ("trainer.stage1_epochs=0", "at least one epoch"),
    ("data.nope=1", "unknown config keys"),
])
def test_bad_configs_are_refused_with_one_line(override, message):
    extra = [override] + (["trainer.stage2_epochs=0"] if "stage1" in override else [])
    with pytest.raises(ValueError, match=message):
        load_pretrain_config(preset="pretrain_demo_cpu", overrides=extra)


def test_learning_rate_warms_up_and_restarts_at_stage_two():
    cfg = load_pretrain_config(preset="pretrain_mimic_cxr", overrides=["trainer.stage1_epochs=2",
                                                                       "trainer.stage2_epochs=2"])
    steps = 10  # per epoch
    lrs = [stage_lr_factor(s, steps, cfg) * cfg.optim.lr for s in range(40)]
    assert lrs[0] == pytest.approx(1e-7) and lrs[10] == pytest.approx(1e-5)  # one warm-up epoch
    assert lrs[19] < 1e-6  # cosine towards 0 at the end of stage I
    assert lrs[20] == pytest.approx(1e-7) and lrs[30] == pytest.approx(1e-5)  # stage II restarts
    assert [stage_of_epoch(e, 2) for e in range(4)] == [1, 1, 2, 2]


def test_freeze_names_unknown_prefixes(tiny_config):
    module = ImageTextPretrainModule.from_config(tiny_config())
    names = freeze_parameters(module.model, ["text_encoder.model.embeddings"])
    assert names and all(not p.requires_grad for n, p in module.model.named_parameters() if n in names)
    with pytest.raises(ValueError, match="no parameter"):
        freeze_parameters(module.model, ["no_such_module"])


def test_kmeans_is_updated_in_training_steps_only(tiny_config, synth_iu):
    from medmodal.engine.image_text.data import PretrainDataModule

    module = ImageTextPretrainModule.from_config(tiny_config())
    data = PretrainDataModule(module.cfg)
    batch = data.collator([data.dataset("train", train=True)[i] for i in range(8)])
    calls = []
    compute = module.model.compute_losses

    def spy(b, *, stage, update_clusters):
        calls.append((stage, update_clusters))
        return compute(b, stage=stage, update_clusters=update_clusters)

    module.model.compute_losses = spy
    module.validation_step(batch, 0)
    assert not module.model.kmeans.is_initialized  # validation never seeds nor moves the centroids
    module.training_step(batch, 0)
    assert module.model.kmeans.is_initialized
    before = module.model.kmeans.centroids.clone()
    module.validation_step(batch, 0)
    assert torch.equal(before, module.model.kmeans.centroids)
    assert calls == [(1, False), (1, True), (1, False)]


def test_run_folder_export_and_evaluation(tiny_config, tmp_path):
    import timm
    import torchvision
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    result = run_pretraining(tiny_config(), resume="auto")
    run = tmp_path / "run"
    for name in ("config.yaml", "splits.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "logs/metrics.csv",
                 "report.md", "metrics.json", "evaluation.png", "export/export.json",
                 "export/image_encoder/model.safetensors", "export/image_encoder/config.json",
                 "export/text_encoder/config.json", "export/text_encoder/tokenizer.json"):
        assert (run / name).is_file(), name
    assert result["epochs"] == 2
    metrics = json.loads((run / "metrics.json").read_text())
    for label in ("pretrained", "untrained"):
        retrieval = metrics["evaluation"][label]["retrieval"]
        assert set(retrieval["image_to_report"]) == {"R@1", "R@5", "R@10"}
        assert 0 <= retrieval["chance"]["R@1"] <= retrieval["chance"]["R@10"] <= 1
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert int(state["model.kmeans.initialized"]) == 1 and int(state["model.kmeans.num_updates"]) > 0
    # the exported image encoder: strict timm keys, torchvision keys, the fine-tuning loader
    weights = load_file(str(run / "export/image_encoder/model.safetensors"))
    timm.create_model("resnet18", num_classes=0).load_state_dict(weights, strict=True)
    tv = torchvision.models.resnet18()
    tv.fc = torch.nn.Identity()
    tv.load_state_dict(weights, strict=True)
    assert torch.equal(weights["conv1.weight"], state["model.image_encoder.backbone.conv1.weight"])
    from medmodal.models.encoder_export import load_image_encoder

    _, info = load_image_encoder(run)
    assert info.kind == "export" and info.architecture == "resnet18" and info.image_size == 64
    text = AutoModel.from_pretrained(str(run / "export/text_encoder"), local_files_only=True)
    AutoTokenizer.from_pretrained(str(run / "export/text_encoder"), local_files_only=True)
    assert torch.equal(text.state_dict()["encoder.layer.0.attention.self.query.weight"],
                       state["model.text_encoder.model.encoder.layer.0.attention.self.query.weight"])
    assert run_pretraining(tiny_config(), resume="auto")["skipped"]  # a finished run is not trained again


class StopAfterFirstEpoch(Callback):
    def on_train_epoch_end(self, trainer, module):
        trainer.should_stop = True


def test_resume_is_bit_identical_including_kmeans(tiny_config, tmp_path):
    quick = ["eval.enabled=false", "export=false", "trainer.stage1_epochs=2"]
    straight = tiny_config(*quick, out=tmp_path / "straight")
    run_pretraining(straight, resume="never")
    interrupted = tiny_config(*quick, out=tmp_path / "interrupted")
    run_pretraining(interrupted, resume="never", extra_callbacks=[StopAfterFirstEpoch()])
    last = tmp_path / "interrupted" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 0
    run_pretraining(interrupted, resume=str(last))
    a = torch.load(tmp_path / "straight/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(last, map_location="cpu", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    assert int(a["state_dict"]["model.kmeans.initialized"]) == 1
    different = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    assert not different, different[:5]
    opt_a, opt_b = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    assert opt_a.keys() == opt_b.keys() and all(torch.equal(opt_a[k]["exp_avg"], opt_b[k]["exp_avg"]) for k in opt_a)


def test_resnet50_export_loads_strictly_in_timm_and_torchvision(tmp_path):
    import timm
    import torchvision
    from safetensors.torch import load_file

    from medmodal.engine.image_text.export import export_model
    from medmodal.models import create_model
    from tests.engine.image_text.conftest import TINY_MODEL

    model = create_model("cmcgns", **{**TINY_MODEL, "image_encoder": "resnet50", "image_size": 64})
    out = export_model(model, tmp_path / "export", source="test", image_size=64)
    assert out["architecture"] == "resnet50"
    weights = load_file(str(tmp_path / "export/image_encoder/model.safetensors"))
    timm.create_model("resnet50", num_classes=0).load_state_dict(weights, strict=True)
    tv = torchvision.models.resnet50()
    missing = tv.load_state_dict(weights, strict=False)
    assert sorted(missing.missing_keys) == ["fc.bias", "fc.weight"] and not missing.unexpected_keys
    tv.fc = torch.nn.Identity()
    tv.load_state_dict(weights, strict=True)
    # a text model built from a config has no tokenizer of its own: the folder says so
    assert out["notes"] and (tmp_path / "export/text_encoder/config.json").is_file()


def test_ddp_strategy_tolerates_unused_parameters_only_with_several_processes():
    from medmodal.engine.image_text.module import ddp_strategy

    cfg = load_pretrain_config(preset="pretrain_demo_cpu")
    assert ddp_strategy(cfg) == "auto"  # one CPU process
    cfg.trainer.devices = 2
    assert ddp_strategy(cfg) == "ddp_find_unused_parameters_true"
    cfg.trainer.devices, cfg.trainer.num_nodes = 1, 2
    assert ddp_strategy(cfg) == "ddp_find_unused_parameters_true"


def test_data_module_reads_splits_and_keeps_the_field_of_view(tiny_config):
    from medmodal.engine.image_text.config import resolved_resize
    from medmodal.engine.image_text.data import PretrainDataModule

    cfg = tiny_config()
    data = PretrainDataModule(cfg)
    assert set(data.counts()) == {"train", "val", "test"} and sum(data.counts().values()) == 30
    assert resolved_resize(cfg) == 73 and data.image_cache.size == 73  # 64 px crops of a 73 frame (224 / 256)
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (8, 3, 64, 64) and batch["input_ids"].shape[1] <= 48
    assert batch["labels"].shape == (8, len(data.label_names)) and "Cardiomegaly" in data.label_names


def test_a_new_image_cache_is_named_in_the_notes(tiny_config, tmp_path):
    from medmodal.engine.image_text.data import PretrainDataModule

    first = PretrainDataModule(tiny_config(f"data.cache_dir={tmp_path / 'cache'}"))
    notes = [n for n in first.notes if n.startswith("image cache:")]
    assert len(notes) == 1 and str(tmp_path / "cache") in notes[0] and "data.cache_dir" in notes[0]
    again = PretrainDataModule(tiny_config(f"data.cache_dir={tmp_path / 'cache'}"))
    assert not [n for n in again.notes if n.startswith("image cache:")]


def test_a_training_split_smaller_than_a_batch_is_noted(tiny_config):
    from medmodal.engine.image_text.data import PretrainDataModule

    assert not any("fewer than data.batch_size" in n for n in PretrainDataModule(tiny_config()).notes)
    data = PretrainDataModule(tiny_config("data.batch_size=64"))
    n = data.counts()["train"]
    assert (f"the training split 'train' has {n} rows ({n} studies), fewer than data.batch_size 64: each epoch is "
            f"one batch of {n}, and the contrastive losses have few negatives") in data.notes


def test_untrained_reference_reuses_the_frozen_text_cache_only_when_identical():
    from types import SimpleNamespace

    from medmodal.engine.image_text.train import _share_frozen_text_cache
    from medmodal.models.image_text.encoders import TextEncoder

    trained = SimpleNamespace(text_encoder=TextEncoder(cache_features=True))  # the shipped MiniLM, frozen
    trained.text_encoder.cache[b"report"] = torch.zeros(1, 384)
    same = SimpleNamespace(text_encoder=TextEncoder(cache_features=True))
    _share_frozen_text_cache(trained, same)
    assert same.text_encoder.cache is trained.text_encoder.cache
    trainable = SimpleNamespace(text_encoder=TextEncoder(cache_features=False))  # trained text encoders differ
    _share_frozen_text_cache(trained, trainable)
    assert trainable.text_encoder.cache == {}


def test_pretrain_start_emits_no_eval_mode_warning_only_that_one_is_silenced(tiny_config):
    """The frozen, feature-caching text encoder stays in eval mode on purpose: Lightning's "module(s) in
    eval mode" warning is not shown at the start of pre-training; other warnings still are."""
    import warnings

    from lightning.fabric.utilities.warnings import PossibleUserWarning

    from medmodal.engine.trainer import expected_eval_mode_modules

    kwargs = json.dumps({**TINY_MODEL, "cache_text_features": True})
    cfg = tiny_config(f"model.kwargs={kwargs}", "trainer.stage2_epochs=0", "eval.enabled=false", "export=false")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_pretraining(cfg, resume="never")
    assert not [w for w in caught if "in eval mode" in str(w.message)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with expected_eval_mode_modules():
            warnings.warn("Found 3 module(s) in eval mode at the start of training. ...", PossibleUserWarning)
            warnings.warn("The dataloader does not have many workers", PossibleUserWarning)
            warnings.warn("Found 3 module(s) in eval mode at the start of training.", UserWarning)
        warnings.warn("Found 3 module(s) in eval mode at the start of training. ...", PossibleUserWarning)
    assert [str(w.message)[:30] for w in caught] == ["The dataloader does not have m", "Found 3 module(s) in eval mode",
                                                   "Found 3 module(s) in eval mode"]


def test_the_reader_field_names_every_key_each_layout_takes():
    """data.reader is a free mapping: its description (the config reference) lists the accepted keys."""
    import inspect

    import medmodal.data.cxr.readers  # noqa: F401  (registers the layouts)
    from medmodal.data.layouts import layout_reader
    from medmodal.engine.image_text.config import PretrainDataSettings

    text = inspect.getdoc(PretrainDataSettings).split("reader:", 1)[1].split("split_seed:", 1)[0]
    for layout in ("mimic", "iu", "openi", "csv"):
        for key in list(inspect.signature(layout_reader("cxr", layout).read).parameters)[1:]:
            assert f"``{key}``" in text, (layout, key)
