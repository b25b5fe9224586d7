"""Fine-tuning configs: the references' defaults per task, presets, overrides, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmodal.engine.finetune.config import (ClassificationConfig, DetectionConfig, SegmentationConfig,
                                             load_finetune_config)

PRESETS = sorted(p.stem for p in (Path(__file__).parents[3] / "src" / "medmodal" / "configs").glob("finetune_*.yaml"))


def test_task_defaults_are_the_references():
    c, s, d = ClassificationConfig(), SegmentationConfig(), DetectionConfig()
    assert (c.optim.lr, c.optim.weight_decay, c.optim.t_max, c.trainer.max_epochs, c.data.batch_size,
            c.trainer.patience, c.trainer.monitor, c.trainer.seed) == (5e-4, 1e-6, 100, 100, 48, 10, "val/loss", 43)
    assert c.classification.features == "cached" and c.encoder.freeze
    assert (s.optim.lr, s.optim.weight_decay, s.optim.t_max, s.trainer.max_epochs, s.data.batch_size,
            s.segmentation.focal_weight, s.segmentation.focal_gamma) == (5e-4, 0.05, 50, 50, 16, 10.0, 2.0)
    assert (d.optim.weight_decay, d.optim.t_max, d.data.batch_size, d.data.geometry, d.trainer.monitor,
            d.trainer.mode, d.detection.conf_threshold, d.detection.nms_iou) == (1e-6, 50, 16, "stretch", "val/map",
                                                                                 "max", 0.5, 0.5)
    assert d.detection.iou_thresholds == pytest.approx((0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_loads(preset):
    tiny = "_tiny_" in preset
    cfg = load_finetune_config(preset=preset, dataset="rsna" if tiny else None)
    kind = preset.rsplit("_", 1)[1]
    assert cfg.task == {"linear": "classification"}.get(kind, kind)
    if not tiny:
        assert preset.startswith(f"finetune_{cfg.data.dataset.replace('-', '_')}_")
        assert cfg.data.image_size == 224 and cfg.encoder.freeze


def test_a_partial_section_keeps_the_tasks_other_defaults():
    cfg = load_finetune_config(task="segmentation", dataset="siim", overrides=["optim.lr=1e-3",
                                                                             "optim.encoder_lr=1e-5"])
    assert cfg.optim.lr == 1e-3 and cfg.optim.encoder_lr == 1e-5  # YAML reads 1e-3 as text: taken as the number
    assert cfg.optim.weight_decay == 0.05 and cfg.optim.t_max == 50
    with pytest.raises(ValueError, match="optim.lr: expected a number, got 'fast'"):
        load_finetune_config(task="segmentation", dataset="siim", overrides=["optim.lr=fast"])


def test_refusals_are_one_line():
    with pytest.raises(ValueError, match="no task: give the task"):
        load_finetune_config()
    with pytest.raises(ValueError, match="object-cxr has no classification task"):
        load_finetune_config(task="classification", dataset="object_cxr")
    with pytest.raises(ValueError, match="unknown downstream dataset 'mimic'"):
        load_finetune_config(task="classification", dataset="mimic")
    with pytest.raises(ValueError, match="data.fraction must be in"):
        load_finetune_config(task="classification", dataset="rsna", overrides=["data.fraction=2"])
    with pytest.raises(ValueError, match="classification.features must be one of cached, augmented"):
        load_finetune_config(task="classification", dataset="rsna", overrides=["classification.features=fast"])
    with pytest.raises(ValueError, match=r"unknown config keys \['detection'\]"):
        load_finetune_config(task="classification", dataset="rsna", overrides=["detection.width=1"])


def test_the_reader_field_names_every_key_each_reader_takes():
    """data.reader is a free mapping: its description (the config reference) lists the accepted keys."""
    import inspect

    from medmodal.data.cxr.downstream.registry import DATASETS
    from medmodal.engine.finetune.config import FinetuneDataSettings

    text = inspect.getdoc(FinetuneDataSettings).split("reader:", 1)[1].split("image_size:", 1)[0]
    for name, entry in DATASETS.items():
        for key in list(inspect.signature(entry.reader).parameters)[2:]:
            assert f"``{key}``" in text, (name, key)
