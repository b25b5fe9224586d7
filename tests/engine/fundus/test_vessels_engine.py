"""The vessel engine on tiny synthetic twins: a 1-epoch run writes its folder and scores both domains."""

import csv
import json
import re

import pytest

from medmodal.data.fundus.synthetic import write_synthetic
from medmodal.engine.fundus import VesselRunConfig, run_vessels
from medmodal.engine.fundus.evaluate import evaluate_vessel_run
from medmodal.errors import ConfigError


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    root = tmp_path_factory.mktemp("fundus")
    return (write_synthetic(root / "DRIVE", "drive", n=3, size=80, seed=1),
            write_synthetic(root / "CHASEDB1", "chase_db1", n=2, size=96, seed=2))


def _cfg(twins, out, **data):
    cfg = VesselRunConfig(out_dir=str(out))
    cfg.data.root, cfg.data.targets = str(twins[0]), (str(twins[1]),)
    cfg.data.diameter, cfg.data.crop, cfg.data.batch_size, cfg.data.val_fraction = 48, 32, 2, 0.34
    for key, value in data.items():
        setattr(cfg.data, key, value)
    cfg.model.name = "unet_mobilenetv2"
    cfg.model.kwargs = {"decoder_channels": [16, 8, 8, 8, 8]}
    cfg.trainer.max_epochs, cfg.trainer.samples_per_epoch = 1, 4
    cfg.trainer.accelerator, cfg.trainer.log_every_n_steps = "cpu", 1
    return cfg


def test_one_epoch_run_writes_folder_and_scores_both_domains(twins, tmp_path):
    cfg = _cfg(twins, tmp_path / "run")
    cfg.model.randconv = True
    result = run_vessels(cfg)
    run = tmp_path / "run"
    for name in ("config.yaml", "splits.json", "metrics.json", "per_image.csv", "checkpoints/best.ckpt",
                 "checkpoints/last.ckpt", "logs/metrics.csv"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["domains"]) == {"DRIVE", "CHASEDB1"}
    assert metrics["domains"]["DRIVE"]["role"] == "source" and metrics["domains"]["DRIVE"]["images"] == 3
    assert metrics["domains"]["CHASEDB1"]["images"] == 2
    dice = metrics["domains"]["CHASEDB1"]["scores"]["dice"]
    assert set(dice) == {"mean", "std"}
    rows = list(csv.DictReader((run / "per_image.csv").open()))
    assert len(rows) == 5 and {r["domain"] for r in rows} == {"DRIVE", "CHASEDB1"}
    assert metrics["best_val_dice"] is not None
    assert result["domains"]["DRIVE"]["images"] == 3 and not result.skipped
    splits = json.loads((run / "splits.json").read_text())
    assert len(splits["source"]["val"]) == 1 and len(splits["CHASEDB1"]["test"]) == 2

    again = run_vessels(cfg)  # resume="auto" on a finished run: its stored result
    assert again.skipped and again["domains"] == metrics["domains"]


def test_pixmix_synthetic_dsu_run(twins, tmp_path):
    cfg = _cfg(twins, tmp_path / "run", pixmix=True, val_fraction=0.0, crop=64)
    cfg.structure.source, cfg.structure.ratio = "procedural", 0.5
    cfg.model.kwargs = {**cfg.model.kwargs, "dsu_p": 0.5}
    result = run_vessels(cfg)
    assert set(result["domains"]) == {"DRIVE", "CHASEDB1"}
    assert any("no validation images" in n for n in result.notes)


@pytest.mark.parametrize("key, value, message", [
    ("crop", 40, "data.crop must be a multiple of 32"),
    ("augment", "heavy", "data.augment"),
    ("val_fraction", 1.0, "data.val_fraction"),
])
def test_bad_config_is_one_line(twins, tmp_path, key, value, message):
    cfg = _cfg(twins, tmp_path / "bad", **{key: value})
    with pytest.raises(ConfigError, match=message) as info:
        run_vessels(cfg)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "bad").exists()


def test_unknown_model_is_refused(twins, tmp_path):
    cfg = _cfg(twins, tmp_path / "bad")
    cfg.model.name = "dmafnet"
    with pytest.raises(ConfigError, match="model.name"):
        run_vessels(cfg)


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Three layouts of different image sizes: DRIVE (1 train, 1 val, 2 test), STARE (1 / 1 / 1), CHASE_DB1."""
    root = tmp_path_factory.mktemp("lodo")
    return (write_synthetic(root / "DRIVE", "drive", n=2, size=64, seed=1),
            write_synthetic(root / "STARE", "stare", n=3, size=72, seed=3),
            write_synthetic(root / "CHASEDB1", "chase_db1", n=2, size=80, seed=2))


def test_several_sources_train_on_their_union_and_score_each_test_split(three, tmp_path):
    drive, stare, chase = three
    cfg = _cfg((drive, chase), tmp_path / "run")
    cfg.data.root = [str(drive), str(stare)]
    result = run_vessels(cfg)
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert {name: (d["role"], d["images"]) for name, d in metrics["domains"].items()} == {
        "DRIVE": ("source", 2), "STARE": ("source", 1), "CHASEDB1": ("target", 2)}
    rows = list(csv.DictReader((run / "per_image.csv").open()))
    assert sorted((r["domain"], r["role"]) for r in rows) == [
        ("CHASEDB1", "target"), ("CHASEDB1", "target"), ("DRIVE", "source"), ("DRIVE", "source"),
        ("STARE", "source")]
    splits = json.loads((run / "splits.json").read_text())
    assert "source" not in splits and splits["sources"]["DRIVE"] == {
        "train": ["21_training"], "val": ["22_training"], "test": ["01_test", "02_test"]}
    assert splits["sources"]["STARE"]["test"] == ["im0003"] and len(splits["sources"]["STARE"]["val"]) == 1
    assert len(splits["CHASEDB1"]["test"]) == 2
    bundle = json.loads((run / "model" / "model.json").read_text())
    assert bundle["trained_on"] == {"root": ["DRIVE", "STARE"], "layout": ["drive", "stare"]}
    assert metrics["best_val_dice"] is not None and not result.skipped
    # the stored config (a YAML list) loads again: the finished run is found, not retrained
    assert run_vessels(cfg).skipped
    # seg evaluate: a source's recorded test split; no --data is refused (which source?)
    evaluation = evaluate_vessel_run(run, data=stare, split="test", out=tmp_path / "eval")
    assert [r.name for r in evaluation.rows] == ["im0003"]
    with pytest.raises(ConfigError, match="trained on 2 sources; give one data folder"):
        evaluate_vessel_run(run)


@pytest.mark.parametrize("root, targets, message", [
    ([], (), "data.root: give a source data set folder or a non-empty list of them, got []"),
    ("{drive}", ("{drive}",), "is also a source (data.root)"),
    (["{drive}", "{stare}"], ("{stare}",), "is also a source (data.root)"),
    (["{drive}", "{drive}"], (), "given more than once"),
])
def test_bad_sources_are_one_line(three, tmp_path, root, targets, message):
    drive, stare, _ = three

    def fill(text):
        return text.format(drive=drive, stare=stare)
    cfg = _cfg((drive, stare), tmp_path / "bad")
    cfg.data.root = fill(root) if isinstance(root, str) else [fill(r) for r in root]
    cfg.data.targets = tuple(fill(t) for t in targets)
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        run_vessels(cfg)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "bad").exists()
