"""DGSSA's structure step: the ``structure`` config section, the generator bundle, tree-density calibration
and the pix2pix branch of run_vessels on a tiny synthetic DRIVE twin."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from medmodal.bundle import FORMATS, bundle_format, save_bundle
from medmodal.config import dataclass_from_dict
from medmodal.data.fundus.synthetic import write_synthetic
from medmodal.data.fundus.vessel_tree import VesselTreeParams
from medmodal.engine.fundus import VesselRunConfig, run_vessels
from medmodal.engine.fundus.pix2pix import Pix2PixPair, Pix2PixSettings, train_pix2pix
from medmodal.engine.fundus.structure import (PIX2PIX_FORMAT, calibrate_tree_density, green_contrast,
                                              label_fraction, load_generator, save_generator, tree_fraction)
from medmodal.errors import CheckpointError, ConfigError
from medmodal.models.fundus.pix2pix import Pix2PixGenerator


# --------------------------------------------------------------------------- config

@pytest.mark.parametrize("key, value, message", [
    ("source", "gan", "structure.source"),
    ("ratio", 0.0, "structure.ratio must be a number in"),
    ("ratio", 1.0, "structure.ratio must be a number in"),
    ("steps", 0, "structure.steps must be an integer"),
    ("crop", 48, "structure.crop must be a multiple of 32"),
    ("tree", {"attractors": 10}, "structure.tree: vessel tree: unknown parameter"),
    ("tree", {"n_attractors": 0}, "structure.tree: vessel tree: n_attractors"),
    ("generator", "", "structure.generator must be a folder path"),
])
def test_bad_structure_settings_are_one_line(key, value, message):
    cfg = VesselRunConfig()
    setattr(cfg.structure, key, value)
    with pytest.raises(ConfigError, match=message) as info:
        cfg.validate()
    assert "\n" not in str(info.value)


def test_structure_section_from_yaml_and_synthetic_ratio_is_gone():
    cfg = dataclass_from_dict(VesselRunConfig, {"structure": {"source": "pix2pix", "ratio": 0.25,
                                                              "tree": {"n_attractors": 1500}}})
    cfg.validate()
    assert cfg.structure.source == "pix2pix" and cfg.structure.ratio == 0.25 and cfg.structure.calibrate
    assert VesselRunConfig().structure.source == "none"
    with pytest.raises(ConfigError, match="synthetic_ratio"):
        dataclass_from_dict(VesselRunConfig, {"data": {"synthetic_ratio": 0.3}})


# --------------------------------------------------------------------------- bundle

def _generator():
    torch.manual_seed(0)
    return Pix2PixGenerator(base_width=4, depth=3, upsample="resize", input_skip=True).eval()


def test_generator_bundle_round_trip(tmp_path):
    gen = _generator()
    save_generator(tmp_path / "structure", gen, {"seconds": 1.5})
    assert FORMATS[PIX2PIX_FORMAT] == ("generator.safetensors", "generator.json")
    assert bundle_format(tmp_path / "structure") == PIX2PIX_FORMAT
    back, meta = load_generator(tmp_path / "structure")
    assert meta["seconds"] == 1.5 and meta["generator"]["upsample"] == "resize"
    x = torch.rand(1, 2, 32, 32).round()
    assert torch.equal(back(x), gen(x))


def test_bad_generator_bundles_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not a model bundle"):
        load_generator(tmp_path / "missing")
    gen = _generator()
    save_generator(tmp_path / "g", gen, {})
    meta = json.loads((tmp_path / "g" / "generator.json").read_text())
    meta["generator"]["base_width"] = 8  # weights no longer fit
    (tmp_path / "g" / "generator.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit") as info:
        load_generator(tmp_path / "g")
    assert "\n" not in str(info.value)
    save_bundle(tmp_path / "seg", gen, {"model_name": "x"}, format="seg/model")
    (tmp_path / "seg" / "model.json").rename(tmp_path / "seg" / "generator.json")
    (tmp_path / "seg" / "model.safetensors").rename(tmp_path / "seg" / "generator.safetensors")
    with pytest.raises(CheckpointError, match="not fundus/pix2pix"):
        load_generator(tmp_path / "seg")


# --------------------------------------------------------------------------- density and contrast

def test_density_calibration_meets_the_target():
    shape, radius = (96, 96), 44.0
    sparse = tree_fraction(VesselTreeParams(n_attractors=300), shape, radius)
    dense = tree_fraction(VesselTreeParams(n_attractors=3000), shape, radius)
    assert sparse < dense
    target = (sparse + dense) / 2
    params, fraction = calibrate_tree_density(target, shape, radius, iterations=5)
    assert 300 < params.n_attractors < 3000
    assert abs(fraction - target) < 0.25 * (dense - sparse)
    with pytest.raises(ConfigError, match="target vessel fraction"):
        calibrate_tree_density(0.0, shape, radius)


def test_label_fraction_and_green_contrast():
    fov = np.zeros((10, 10), bool)
    fov[:, :5] = True
    vessel = np.zeros((10, 10), bool)
    vessel[:5, :2] = True
    pair = Pix2PixPair(np.zeros((10, 10, 3), np.float32), vessel, fov)
    assert label_fraction([pair]) == pytest.approx(0.2)
    image = np.full((10, 10, 3), 0.5, np.float32)
    image[vessel] = 0.3
    assert green_contrast([image], [vessel], [fov]) == pytest.approx(0.2 * 255, rel=1e-5)


def test_crops_train_on_grids_of_different_sizes():
    rng = np.random.default_rng(0)
    pairs = [Pix2PixPair(rng.random((h, 64, 3), dtype=np.float32), rng.random((h, 64)) > 0.8,
                         np.ones((h, 64), bool)) for h in (64, 48)]
    gen = train_pix2pix(pairs, Pix2PixSettings(steps=2, batch_size=2, base_width=4, disc_width=4, depth=4, crop=32,
                                               upsample="resize", input_skip=True, vessel_weight=5.0))
    assert gen(torch.zeros(1, 2, 64, 64)).shape == (1, 3, 64, 64)
    with pytest.raises(ConfigError, match="crop must be a multiple"):
        Pix2PixSettings(crop=40, depth=4).validate()


# --------------------------------------------------------------------------- run_vessels, pix2pix branch

def _cfg(root, out):
    cfg = VesselRunConfig(out_dir=str(out))
    cfg.data.root, cfg.data.diameter, cfg.data.crop, cfg.data.batch_size = str(root), 48, 32, 2
    cfg.data.val_fraction = 0.0
    cfg.structure.source, cfg.structure.ratio, cfg.structure.steps = "pix2pix", 0.5, 2
    cfg.structure.crop, cfg.structure.batch_size, cfg.structure.base_width = 32, 2, 4
    cfg.model.name = "unet_mobilenetv2"
    cfg.model.kwargs = {"decoder_channels": [16, 8, 8, 8, 8]}
    cfg.trainer.max_epochs, cfg.trainer.samples_per_epoch = 1, 4
    cfg.trainer.accelerator, cfg.trainer.log_every_n_steps = "cpu", 1
    return cfg


def test_pix2pix_structure_run_writes_generator_examples_and_record(tmp_path):
    root = write_synthetic(tmp_path / "DRIVE", "drive", n=4, size=64)
    cfg = _cfg(root, tmp_path / "run")
    run_vessels(cfg)
    folder = tmp_path / "run" / "structure"
    for name in ("generator.safetensors", "generator.json", "examples.png"):
        assert (folder / name).is_file(), name
    assert bundle_format(folder) == PIX2PIX_FORMAT
    sheet = np.asarray(Image.open(folder / "examples.png"))
    assert sheet.shape == (2 * 64, 4 * 64, 3)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    record = metrics["structure"]
    assert record["source"] == "pix2pix" and not record["reused"] and record["pix2pix_seconds"] > 0
    assert 0 < record["tree"]["target_fraction"] < 1 and "n_attractors" in record["tree"]["params"]
    assert set(record["green_contrast"]) == {"rendered", "real"}
    meta = json.loads((folder / "generator.json").read_text())
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert meta["train_ids"] == splits["source"]["train"]  # trained on the training split only

    (tmp_path / "run" / "metrics.json").unlink()  # an unfinished run: resuming reuses the saved generator
    again = run_vessels(cfg)
    assert again["structure"]["reused"] and again["structure"]["pix2pix_seconds"] == record["pix2pix_seconds"]

    other = _cfg(root, tmp_path / "other")
    other.structure.generator = str(folder)
    assert run_vessels(other)["structure"]["reused_from"] == str(folder)
