"""A finished run reported, or an unfinished one continued, under another config is named, never silent."""

import warnings

import pytest

from medmodal.config import load_run_config, save_config
from medmodal.engine.run import config_changes, warn_config_changes
from medmodal.engine.segmentation.config import SegmentationRunConfig
from medmodal.notices import InputWarning


def _cfg(*overrides):
    return load_run_config(SegmentationRunConfig, None, "train_demo_cpu", list(overrides))


def test_changed_keys_are_named_and_where_the_run_goes_is_not_compared(tmp_path):
    save_config(_cfg(), tmp_path / "config.yaml")
    assert config_changes(tmp_path, _cfg("out_dir=elsewhere", "trainer.progress_bar=false")) == []
    assert config_changes(tmp_path, _cfg("model.name=zero_unet", "trainer.max_epochs=3")) == [
        "model.name", "trainer.max_epochs"]
    assert config_changes(tmp_path / "empty", _cfg()) == []  # nothing stored: nothing to compare
    # keys a run fills in itself (from the data) are left out when asked
    assert config_changes(tmp_path, _cfg("model.name=zero_unet", "trainer.max_epochs=3"),
                          not_compared=("model.name",)) == ["trainer.max_epochs"]


def test_a_finished_run_under_another_config_is_warned_about(tmp_path):
    save_config(_cfg(), tmp_path / "config.yaml")
    with pytest.warns(InputWarning, match=r"finished run there was trained with another config \(differs: model.name\)"
                                          r".* or --resume never to train it again"):  # the CLI option's spelling
        warn_config_changes(tmp_path, _cfg("model.name=zero_unet"), "auto", finished=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_config_changes(tmp_path, _cfg(), "auto", finished=True)  # same config: no warning
        warn_config_changes(tmp_path, _cfg("model.name=zero_unet"), "never", finished=False)  # trains anew
        warn_config_changes(tmp_path, _cfg("model.name=zero_unet"), "auto", finished=False)  # no last.ckpt


def test_continuing_under_another_config_is_warned_about(tmp_path):
    save_config(_cfg(), tmp_path / "config.yaml")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.warns(InputWarning, match=r"continuing from checkpoints/last.ckpt of a run with another config "
                                          r"\(differs: data.root\)"):
        warn_config_changes(tmp_path, _cfg("data.root=other"), "auto", finished=False)
