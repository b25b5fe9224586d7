"""medmodal.data.fundus.dataset: network-grid items, aligned augmentation, PixMix and synthetic hooks, splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medmodal.data.fundus import FundusGeometry, load_label, read_fundus, to_native
from medmodal.data.fundus.dataset import (FundusVesselDataset, SyntheticPairs, collate_fundus, fundus_splits,
                                          patient_of)
from medmodal.data.fundus.geometry import REDUCED_DIAMETER
from medmodal.data.fundus.synthetic import synth_fundus, write_synthetic
from medmodal.data.pixmix import MixingSet, PixMix
from medmodal.errors import ConfigError, DataError
from tests.conftest import REAL_DATA

GEOMETRY = FundusGeometry(48, margin=4, divisor=16)
DRIVE_REAL = REAL_DATA / "fundus-real" / "DRIVE"


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    root = write_synthetic(tmp_path_factory.mktemp("drive"), "drive", n=3, size=72)
    return read_fundus(root)


@pytest.fixture(scope="module")
def chase(tmp_path_factory):
    root = write_synthetic(tmp_path_factory.mktemp("chase"), "chase_db1", n=8, size=64)
    return read_fundus(root)


def small_pixmix() -> PixMix:
    return PixMix(MixingSet(n=4, size=32, seed=0), k=3)


def test_training_and_eval_items_have_the_documented_shapes(drive):
    train = FundusVesselDataset(drive.split("training"), GEOMETRY, train=True, crop=32, seed=1)
    item = train[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["label"].shape == (1, 32, 32) and item["fov"].shape == (1, 32, 32)
    assert set(item["label"].unique().tolist()) <= {0.0, 1.0} and set(item["fov"].unique().tolist()) <= {0.0, 1.0}
    assert item["fov"].sum() > 0  # the crop is centred on a FOV pixel
    assert item["sample_id"] == drive.split("training")[0].id and "grid" not in item
    whole = FundusVesselDataset(drive.split("training"), GEOMETRY, train=True, crop=None, seed=1)[0]
    assert whole["image"].shape[-2:] == (64, 64)  # the network grid, padded to the divisor
    ev = FundusVesselDataset(drive.split("test"), GEOMETRY, train=False)[0]
    assert ev["image"].shape == (3, 64, 64) and tuple(ev["grid"].network_shape) == (64, 64)
    batch = collate_fundus([ev, FundusVesselDataset(drive.split("test"), GEOMETRY, train=False)[1]])
    assert batch["image"].shape == (2, 3, 64, 64) and len(batch["grid"]) == 2


def test_crop_larger_than_the_grid_is_zero_padded(drive):
    item = FundusVesselDataset(drive.split("training"), GEOMETRY, train=True, crop=96, augment="none")[0]
    assert item["image"].shape == (3, 96, 96)
    assert item["fov"].sum() == FundusVesselDataset(drive.split("training"), GEOMETRY, train=False)[0]["fov"].sum()


def test_label_stays_aligned_with_the_image_under_random_geometry():
    # a known pattern: white blobs (the label) on black, an off-centre disc as FOV; grey, so colour
    # jitter cannot move the threshold between foreground and background
    rng = np.random.default_rng(0)
    h = w = 48
    yy, xx = np.mgrid[0:h, 0:w]
    fov = np.hypot(yy - 22, xx - 26) < 20
    label = np.zeros((h, w), bool)
    for cy, cx in rng.integers(8, 40, (8, 2)):
        label |= np.hypot(yy - cy, xx - cx) < 3
    label[10:14, 14:34] = True  # an asymmetric bar: flips and rotations are visible
    label &= fov
    image = np.repeat((label * 255).astype(np.uint8)[..., None], 3, -1)
    ds = FundusVesselDataset([], GEOMETRY, train=True, crop=None, normalize="none")
    moved = 0
    for seed in range(24):
        out = ds.prepare(image, label, fov, np.random.default_rng(seed))
        seen = out["image"].mean(0) > 0.5
        lab = out["label"][0] > 0.5
        iou = float((seen & lab).sum()) / float((seen | lab).sum())
        assert iou > 0.85, (seed, iou)  # bilinear image vs nearest label differ at blob edges only
        assert not (lab & (out["fov"][0] == 0)).any()
        moved += not torch.equal(lab, torch.from_numpy(label))
    assert moved >= 12  # the augmentation does move things


def test_fov_is_zero_outside_and_label_inside_fov(drive):
    ds = FundusVesselDataset(drive.split("training"), GEOMETRY, train=True, crop=40, pixmix=small_pixmix(), seed=3)
    for i in range(len(ds)):
        item = ds[i]
        outside = item["fov"][0] == 0
        assert outside.any()
        assert (item["image"][:, outside] == 0).all()
        assert (item["label"][0][outside] == 0).all()
        inside = item["image"][:, ~outside]
        assert torch.allclose(inside.mean(1), torch.zeros(3), atol=1e-4)  # z-score inside the FOV


def test_items_are_deterministic_by_seed_epoch_and_index_and_worker_safe(drive):
    def make(seed):
        return FundusVesselDataset(drive.split("training"), GEOMETRY, train=True, crop=32, seed=seed,
                                   pixmix=small_pixmix())

    a, b = make(5), make(5)
    for i in range(3):
        assert torch.equal(a[i]["image"], b[i]["image"]) and torch.equal(a[i]["label"], b[i]["label"])
    assert not torch.equal(a[0]["image"], make(6)[0]["image"])
    b.set_epoch(1)
    assert not torch.equal(a[0]["image"], b[0]["image"])
    loader = torch.utils.data.DataLoader(make(5), batch_size=1, num_workers=2, collate_fn=collate_fundus)
    for i, batch in enumerate(loader):
        assert torch.equal(batch["image"][0], a[i]["image"])


def test_eval_items_map_back_to_the_native_label(drive):
    samples = drive.split("test")
    ds = FundusVesselDataset(samples, GEOMETRY, train=False)
    for i, sample in enumerate(samples):
        item = ds[i]
        back = to_native(item["label"][0].numpy(), item["grid"])
        native = load_label(sample)
        assert back.shape == native.shape
        overlap = 2 * float(((back >= 0.5) & native).sum()) / float((back >= 0.5).sum() + native.sum())
        assert overlap > 0.6  # 72 px -> 48 px FOV diameter: thin synthetic vessels lose some pixels


def test_pixmix_changes_only_the_image_inside_the_fov(drive):
    kw = dict(samples=drive.split("training"), geometry=GEOMETRY, train=True, crop=40, seed=2, normalize="none")
    plain, mixed = FundusVesselDataset(**kw), FundusVesselDataset(**kw, pixmix=small_pixmix())
    changed = 0
    for i in range(len(plain)):
        p, m = plain[i], mixed[i]
        assert torch.equal(p["label"], m["label"]) and torch.equal(p["fov"], m["fov"])
        outside = p["fov"][0] == 0
        assert torch.equal(p["image"][:, outside], m["image"][:, outside])
        changed += not torch.equal(p["image"], m["image"])
    assert changed >= 1
    # evaluation never mixes
    ev_kw = dict(kw, train=False)
    assert torch.equal(FundusVesselDataset(**ev_kw)[0]["image"],
                       FundusVesselDataset(**ev_kw, pixmix=small_pixmix())[0]["image"])


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5])
def test_synthetic_pairs_respect_the_ratio(drive, ratio):
    calls = []

    def render(rng):
        calls.append(1)
        image, label, _, fov = synth_fundus(56, int(rng.integers(1 << 30)))
        return image, label, fov

    base = FundusVesselDataset(drive.split("training") * 2, GEOMETRY, train=True, crop=32)  # 6 real
    mixed = SyntheticPairs(base, render, ratio, seed=0)
    items = [mixed[i] for i in range(len(mixed))]
    synthetic = sum(bool(it["synthetic"]) for it in items)
    assert synthetic == len(calls)
    assert len(mixed) - synthetic == len(base)  # every real item once per epoch
    assert abs(synthetic / len(mixed) - ratio) <= 1 / len(mixed)
    for it in items:
        assert it["image"].shape == (3, 32, 32) and it["label"].shape == (1, 32, 32)
    if ratio:
        assert any(it["sample_id"].startswith("synthetic/") for it in items)
    assert torch.equal(mixed[1]["image"], SyntheticPairs(base, render, ratio, seed=0)[1]["image"])
    with pytest.raises(ConfigError):
        SyntheticPairs(base, render, 1.0)


def test_drive_splits_keep_the_official_test_and_draw_validation_from_training(drive):
    splits = fundus_splits(drive.samples, val_fraction=0.34, seed=0)
    training = {s.id for s in drive.split("training")}
    assert set(splits["test"]) == {s.id for s in drive.split("test")}
    assert splits["val"] and set(splits["val"]) <= training and set(splits["train"]) <= training
    assert set(splits["train"]) | set(splits["val"]) == training and not set(splits["train"]) & set(splits["val"])
    assert fundus_splits(drive.samples, 0.34, seed=0) == splits


def test_chase_splits_keep_both_eyes_of_a_child_together(chase):
    assert patient_of(chase.samples[0]) == patient_of(chase.samples[1])  # Image_01L, Image_01R
    for seed in range(5):
        splits = fundus_splits(chase.samples, val_fraction=0.34, seed=seed)
        where = {i: name for name, ids in splits.items() for i in ids}
        assert len(where) == len(chase.samples) and all(splits.values())
        for child in range(1, 5):
            assert where[f"Image_{child:02d}L"] == where[f"Image_{child:02d}R"]
        assert splits["test"] == ["Image_04L", "Image_04R"]  # the last children, whatever the seed


def test_a_target_domain_is_all_test(drive, chase):
    for data in (drive, chase):
        splits = fundus_splits(data.samples, target=True)
        assert splits["train"] == [] and splits["val"] == []
        assert sorted(splits["test"]) == sorted(s.id for s in data.samples)


def test_bad_arguments_are_refused(drive):
    with pytest.raises(ConfigError):
        FundusVesselDataset(drive.samples, GEOMETRY, augment="heavy")
    with pytest.raises(ConfigError):
        FundusVesselDataset(drive.samples, GEOMETRY, crop=4)
    with pytest.raises(ConfigError):
        fundus_splits(drive.samples, val_fraction=1.0)
    with pytest.raises(DataError):
        fundus_splits(drive.samples + drive.samples[:1])


@pytest.mark.realdata
@pytest.mark.skipif(not DRIVE_REAL.is_dir(), reason=f"real DRIVE not found at {DRIVE_REAL}")
def test_real_drive_training_through_the_dataset():
    data = read_fundus(DRIVE_REAL)
    splits = fundus_splits(data.samples, seed=0)
    assert len(splits["train"]) + len(splits["val"]) == 20 and len(splits["test"]) == 20
    geometry = FundusGeometry(REDUCED_DIAMETER)
    by_id = {s.id: s for s in data.samples}
    train = FundusVesselDataset([by_id[i] for i in splits["train"][:2]], geometry, train=True, crop=128,
                                pixmix=small_pixmix(), seed=0)
    item = train[0]
    assert item["image"].shape == (3, 128, 128) and item["fov"].sum() > 0
    ev = FundusVesselDataset([by_id[splits["val"][0]]], geometry, train=False)[0]
    assert ev["image"].shape[-2:] == tuple(ev["grid"].network_shape)
    vessel = float(ev["label"].sum() / ev["fov"].sum())
    assert 0.05 < vessel < 0.2, vessel  # DRIVE: ~12 % of FOV pixels are vessel (first observer)
    assert to_native(ev["label"][0].numpy(), ev["grid"]).shape == (584, 565)
