import pytest

from medmodal.config import config_to_dict, load_config, packaged_config, save_config


def test_defaults_are_the_paper_protocol():
    cfg = load_config()
    assert cfg.optim.optimizer == "adamw" and cfg.optim.lr == 2e-4 and cfg.optim.weight_decay == 1e-4
    assert cfg.optim.schedule == "poly" and cfg.optim.poly_power == 0.9
    assert cfg.trainer.max_epochs == 300 and cfg.data.batch_size == 1 and cfg.data.crop_size == (80, 80, 80)
    assert cfg.eval.overlap == 0.5 and cfg.eval.protocol == "auto" and cfg.eval.et_min_voxels is None
    from medmodal.data.volumes.spec import BRATS2020
    from medmodal.evaluation.protocols import et_threshold, get_protocol

    protocol = get_protocol(cfg.eval.protocol, BRATS2020)  # PASSION's evaluation, ET threshold 500 voxels
    assert protocol.name == "passion" and et_threshold(protocol, cfg.eval.et_min_voxels) == 500


def test_yaml_roundtrip_and_overrides(tmp_path):
    cfg = load_config(packaged_config("demo_cpu"), ["trainer.max_epochs=3", "data.crop_size=[16,16,16]"])
    assert cfg.trainer.max_epochs == 3 and cfg.data.crop_size == (16, 16, 16)
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert config_to_dict(again) == config_to_dict(cfg)


def test_unknown_key_is_an_error(tmp_path):
    (tmp_path / "bad.yaml").write_text("trainer:\n  max_epoch: 3\n")
    with pytest.raises(ValueError, match=r"unknown config keys \['max_epoch'\]"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(FileNotFoundError, match="available"):
        packaged_config("nonexistent")


def test_a_previous_release_preset_name_is_found_only_in_its_own_family():
    """demo_cpu was the segmentation demo: cxr / endoscopy verbs must not load it (unknown keys deep inside)."""
    from medmodal.config import packaged_config

    assert packaged_config("demo_cpu", family="seg").parent.name == "seg"
    assert packaged_config("mics_pretrain_demo_cpu", family="endoscopy").name == "pretrain_demo_cpu.yaml"
    for family in ("cxr", "endoscopy"):
        with pytest.raises(FileNotFoundError, match="no packaged config 'demo_cpu'"):
            packaged_config("demo_cpu", family=family)
    with pytest.raises(FileNotFoundError, match="not one of family 'cxr'"):
        packaged_config("seg/train_demo_cpu", family="cxr")


def test_yaml_syntax_error_is_one_line_with_its_place(tmp_path):
    from medmodal.config import read_yaml_mapping
    from medmodal.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  root: x\n  batch_size: : 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML \(mapping values are not allowed here, "
                                          r"line 3, column 15\)$") as info:
        read_yaml_mapping(bad)
    assert "\n" not in str(info.value)


def test_config_values_are_type_checked_naming_the_key():
    from medmodal.config import load_run_config
    from medmodal.engine.segmentation.config import SegmentationRunConfig
    from medmodal.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train_demo_cpu.yaml: data.batch_size: expected an integer, got 'abc'"):
        load_run_config(SegmentationRunConfig, None, "train_demo_cpu", ["data.batch_size=abc"])
    with pytest.raises(ConfigError, match=r"trainer.progress_bar: expected true / false, got 3"):
        load_run_config(SegmentationRunConfig, None, "train_demo_cpu", ["trainer.progress_bar=3"])
    with pytest.raises(ConfigError, match=r"trainer.max_epochs must be >= 1, got 0"):
        load_run_config(SegmentationRunConfig, None, "train_demo_cpu", ["trainer.max_epochs=0"])
    assert load_run_config(SegmentationRunConfig, None, "train_demo_cpu", ["optim.lr=1"]).optim.lr == 1  # int ok
