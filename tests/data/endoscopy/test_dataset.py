import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from medmodal.data.endoscopy.dataset import IMAGENET_MEAN, IMAGENET_STD, PairedImageDataset
from medmodal.data.endoscopy.layouts import read_samples
from medmodal.data.endoscopy.samples import PairedSample
from tests.data.endoscopy.conftest import REAL_PAIRS, requires_endoscopy_data


def _constant(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((20, 30, 3), value, np.uint8)).save(path)
    return path


def test_item_format_normalisation_and_absent_modality(tmp_path):
    samples = [PairedSample("a", _constant(tmp_path / "a_w.png", 255), _constant(tmp_path / "a_n.png", 0), "polyps"),
               PairedSample("b", _constant(tmp_path / "b_w.png", 128), None, None)]
    ds = PairedImageDataset(samples, image_size=16, classes=["normal-cecum", "polyps"])
    a, b = ds[0], ds[1]
    assert a["wli"].shape == (3, 16, 16) and a["wli"].dtype == torch.float32
    expect = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(a["wli"][:, 0, 0], expect, atol=1e-5)
    assert torch.allclose(a["nbi"][:, 5, 5], -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD), atol=1e-5)
    assert a["present"].tolist() == [True, True] and a["label"].item() == 1 and a["label"].dtype == torch.int64
    assert b["present"].tolist() == [True, False] and b["label"].item() == -1 and not b["nbi"].any()
    assert ds.labels().tolist() == [1, -1]
    wli_only = PairedImageDataset(samples, image_size=16, modalities=("wli",))
    assert wli_only[0]["present"].tolist() == [True, False] and not wli_only[0]["nbi"].any()
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["wli"].shape == (2, 3, 16, 16) and batch["sample_id"] == ["a", "b"]
    with pytest.raises(ValueError, match="not among the classes"):
        PairedImageDataset(samples, image_size=16, classes=["ulcer"])


def _gradient_pair(tmp_path):
    yy, xx = np.mgrid[0:32, 0:32]
    wli = np.stack([xx * 8, yy * 8, (xx + yy) * 4], -1).astype(np.uint8)
    Image.fromarray(wli).save(tmp_path / "w.png")
    Image.fromarray(255 - wli).save(tmp_path / "n.png")  # a "simulated" partner, pixel-aligned
    return [PairedSample("p", tmp_path / "w.png", tmp_path / "n.png", None)]


@pytest.mark.parametrize("joint", [True, False])
def test_geometric_augmentation_is_shared_by_the_pair_when_joint(tmp_path, joint):
    ds = PairedImageDataset(_gradient_pair(tmp_path), image_size=32, train=True, image_transform=lambda x: x,
                            mean=(0, 0, 0), std=(1, 1, 1), joint_geometry=joint, seed=3)
    aligned = []
    for epoch in range(6):
        ds.set_epoch(epoch)
        item = ds[0]
        # equal up to uint8 rounding when both images got the same crop and flips
        aligned.append(torch.allclose(item["wli"] + item["nbi"], torch.ones(3, 32, 32), atol=1.5 / 255))
    assert all(aligned) if joint else not all(aligned)


def test_augmentation_is_a_function_of_seed_epoch_index(tmp_path):
    ds = PairedImageDataset(_gradient_pair(tmp_path), image_size=32, train=True, seed=1)
    ds.set_epoch(2)
    a = ds[0]["wli"]
    assert torch.equal(a, ds[0]["wli"])
    ds.set_epoch(3)
    assert not torch.equal(a, ds[0]["wli"])
    plain = PairedImageDataset(_gradient_pair(tmp_path), image_size=32, train=False)
    assert torch.equal(plain[0]["wli"], plain[0]["wli"])


@requires_endoscopy_data
def test_real_pairs_through_the_dataset():
    samples = read_samples(REAL_PAIRS)
    ds = PairedImageDataset(samples, image_size=32, train=True)
    assert ds.classes == ["adenoma", "hyperplasic", "serrated"]
    batch = next(iter(DataLoader(ds, batch_size=12)))
    assert batch["wli"].shape == (12, 3, 32, 32) and batch["present"].all()
    assert torch.isfinite(batch["nbi"]).all() and sorted(batch["label"].tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    # real WLI is redder than real NBI (mean of the normalised red channel)
    assert batch["wli"][:, 0].mean() > batch["nbi"][:, 0].mean()
