"""``medmodal seg train`` picks the run config class by the config's ``task`` key."""

import pytest

from medmodal.config.core import load_run_config
from medmodal.config.segmentation import SegmentationRunConfig
from medmodal.engine.fundus.config import VesselRunConfig
from medmodal.engine.segmentation.config import load_train_config
from medmodal.errors import ConfigError


def test_no_task_is_a_volume_run_and_the_old_presets_still_load():
    assert isinstance(load_train_config(), SegmentationRunConfig)
    cfg = load_train_config(preset="train_demo_cpu")
    assert isinstance(cfg, SegmentationRunConfig) and cfg.task == "volumes"
    assert cfg == load_run_config(SegmentationRunConfig, preset="seg/train_demo_cpu")


def test_vessel_preset_and_task_override_build_a_vessel_config():
    cfg = load_train_config(preset="train_vessels_demo_cpu", overrides=["data.crop=96"])
    assert isinstance(cfg, VesselRunConfig) and cfg.task == "vessels" and cfg.data.crop == 96
    assert isinstance(load_train_config(overrides=["task=vessels"]), VesselRunConfig)


def test_a_volume_config_file_without_task_key(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("out_dir: runs/x\ntrainer: {max_epochs: 3}\n")
    cfg = load_train_config(path)
    assert isinstance(cfg, SegmentationRunConfig) and cfg.trainer.max_epochs == 3


@pytest.mark.parametrize("overrides, message", [
    (["task=lesions"], r"unknown task 'lesions'; choose one of volumes, vessels"),
    (["task=vessels", "data.crop=100"], r"data.crop must be a multiple of 32"),
    (["task=vessels", "eval.hd95=true"], r"eval"),  # a volume key in a vessel config
])
def test_bad_task_configs_are_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_train_config(overrides=overrides)
    assert "\n" not in str(err.value)


def test_a_config_class_refuses_the_other_task():
    with pytest.raises(ConfigError, match="task: a vessel segmentation config has task 'vessels', got 'volumes'"):
        load_run_config(VesselRunConfig, overrides=["task=volumes"])
    with pytest.raises(ConfigError, match="task: a volume segmentation config"):
        load_run_config(SegmentationRunConfig, overrides=["task=vessels"])
