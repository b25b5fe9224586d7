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
