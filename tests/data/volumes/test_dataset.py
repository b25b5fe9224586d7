import numpy as np
import torch

from medmodal.data.volumes.dataset import CaseDataset, CropDataset, MissingProtocol
from medmodal.data.volumes.layouts import discover_cases
from medmodal.data.volumes.preprocess import PreprocessedCache
from medmodal.data.volumes.spec import BRATS2020


def test_crop_dataset_items(brats2020_root, tmp_path):
    cases = discover_cases(brats2020_root)
    cache = PreprocessedCache(tmp_path / "cache", BRATS2020)
    ds = CropDataset(cache, cases, crop_size=(8, 8, 8), missing=MissingProtocol("balanced"), samples_per_epoch=12)
    assert len(ds) == 12
    item = ds[0]
    assert item["image"].shape == (4, 8, 8, 8) and item["label"].shape == (8, 8, 8)
    assert item["label"].dtype == torch.int64 and item["modality_mask"].dtype == torch.bool
    masks = torch.stack([ds[i]["modality_mask"] for i in range(12)])
    assert masks.any(1).all() and len({tuple(m.tolist()) for m in masks}) > 1
    for i in range(12):  # missing sequences are zero in the image
        it = ds[i]
        assert not it["image"][~it["modality_mask"]].any()
    # reproducible per (seed, epoch, index); another epoch draws differently
    assert torch.equal(ds[3]["image"], ds[3]["image"])
    assert not torch.equal(ds[3]["image"], ds[len(ds) + 3]["image"])  # epoch 1, same sample slot


def test_epoch_sampler_reproducible_and_epoch_encoded():
    from medmodal.data.sampler import EpochSampler

    s = EpochSampler(10, seed=1)
    first = list(s)
    assert sorted(first) == list(range(10)) and list(s) == first
    s.set_epoch(2)
    second = list(s)
    assert sorted(second) == list(range(20, 30)) and [i - 20 for i in second] != first


def test_crop_dataset_pads_small_cases_and_imbalanced_protocol(brats2020_root, tmp_path):
    cases = discover_cases(brats2020_root)
    cache = PreprocessedCache(tmp_path / "cache", BRATS2020)
    assignment = {c.case_id: (False, False, True, False) for c in cases}
    ds = CropDataset(cache, cases, crop_size=(32, 32, 32), missing=MissingProtocol("imbalanced", assignment))
    item = ds[1]
    assert item["image"].shape == (4, 32, 32, 32)
    assert item["modality_mask"].tolist() == [False, False, True, False]


def test_case_dataset(brats2020_root, tmp_path):
    cases = discover_cases(brats2020_root)
    ds = CaseDataset(PreprocessedCache(tmp_path / "cache", BRATS2020), cases)
    item = ds[0]
    assert item["image"].shape[0] == 4 and item["label"].shape == item["image"].shape[1:]
    assert item["present"].all() and item["original_shape"] == (16, 16, 16)
    assert set(np.unique(item["label"].numpy())) <= {0, 1, 2, 3}
