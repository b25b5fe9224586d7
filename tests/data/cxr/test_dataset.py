"""The dataset / collator contract the image-text engine relies on."""

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from medmodal.data.cxr.dataset import ImageReportCollator, ImageReportDataset
from medmodal.data.cxr.images import ImageCache, load_image, resize_and_pad
from medmodal.data.cxr.iu import read_iu_annotation
from medmodal.data.cxr.records import Study

pytestmark = pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")


@pytest.fixture
def studies(r2gen_root):
    rows = read_iu_annotation(r2gen_root / "annotation.json").studies
    rows[0].labels = {"Cardiomegaly": 1, "Pleural Effusion": None}
    rows[1].labels = {"Pleural Effusion": -1}
    return rows


def test_item_contract(studies, tmp_path):
    ds = ImageReportDataset(studies, tmp_path / "cache", train=False)
    assert ds.label_names == ["Cardiomegaly", "Pleural Effusion"]
    item = ds[0]
    assert set(item) == {"image", "sentences", "study_id", "patient_id", "labels"}
    image = item["image"]
    assert image.shape == (3, 224, 224) and image.dtype == torch.float32
    assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
    grey = resize_and_pad(load_image(studies[0].image_path))[16:240, 16:240]  # CenterCrop(224) of 256
    assert torch.allclose(image[0], (torch.from_numpy(grey).float() / 255 - 0.5) / 0.5, atol=1e-6)
    assert item["sentences"] == studies[0].sentences and item["study_id"] == studies[0].study_id
    assert item["labels"][0] == 1 and math.isnan(item["labels"][1])
    assert ds[1]["labels"][1] == -1 and math.isnan(ds[1]["labels"][0])


def test_train_crops_vary_and_cache_is_used(studies, tmp_path):
    cache = ImageCache([s.image_path for s in studies], tmp_path / "cache")
    ds = ImageReportDataset(studies, cache, train=True)
    torch.manual_seed(0)
    crops = [ds[0]["image"] for _ in range(5)]
    assert any(not torch.equal(crops[0], c) for c in crops[1:])
    for _ in range(2):  # two epochs: each image decoded once in all
        for i in range(len(ds)):
            ds[i]
    assert cache.decodes == len(studies)


def test_collated_batch_contract(studies, tmp_path):
    ds = ImageReportDataset(studies, None, train=True)
    loader = DataLoader(ds, batch_size=3, collate_fn=ImageReportCollator(max_length=32, pad_to_multiple_of=8))
    batch = next(iter(loader))
    assert set(batch) == {"image", "input_ids", "attention_mask", "sentence_index", "num_sentences", "study_id",
                          "labels"}
    assert batch["image"].shape == (3, 3, 224, 224) and batch["image"].dtype == torch.float32
    length = batch["input_ids"].shape[1]
    assert length % 8 == 0 and length <= 32
    for key in ("input_ids", "attention_mask", "sentence_index", "num_sentences"):
        assert batch[key].dtype == torch.int64
    assert batch["labels"].shape == (3, 2) and batch["study_id"] == [s.study_id for s in studies[:3]]
    index = batch["sentence_index"]
    assert (index[batch["attention_mask"] == 0] == -1).all() and (index[:, 0] == -1).all()
    assert torch.equal(batch["num_sentences"], index.max(1).values + 1)


def test_dataset_refuses_bad_rows(studies, tmp_path):
    with pytest.raises(ValueError, match="no image-report pairs"):
        ImageReportDataset([], None)
    empty = Study("s1", "p1", [studies[0].image_path], ["PA"], "", "", [])
    with pytest.raises(ValueError, match="s1.*no report sentence"):
        ImageReportDataset([empty], None)
    with pytest.raises(ValueError, match="exceeds the cached image size"):
        ImageReportDataset(studies, None, image_size=300)
    other = ImageCache([studies[0].image_path], None)
    with pytest.raises(KeyError, match="not in this image cache"):
        ImageReportDataset(studies, other)


def test_dataloader_workers_share_the_disk_cache(studies, tmp_path):
    cache = ImageCache([s.image_path for s in studies], tmp_path / "cache")
    loader = DataLoader(ImageReportDataset(studies, cache, train=False), batch_size=2, num_workers=2,
                        collate_fn=ImageReportCollator(max_length=16))
    first = torch.cat([b["image"] for b in loader])
    assert all(cache.is_filled(i) for i in range(len(studies)))  # rows written by the workers are on disk
    cache.loader = None  # a decode now would fail
    second = torch.cat([b["image"] for b in DataLoader(ImageReportDataset(studies, cache, train=False),
                                                         batch_size=2, collate_fn=ImageReportCollator())])
    assert torch.equal(first, second)
    assert np.array_equal(cache.get(0), resize_and_pad(load_image(studies[0].image_path)))


def test_the_how_to_embedding_recipe_is_the_evaluation_view(tmp_path):
    """docs/how-to/cxr.md 'Use the exported image encoder': load_image + resize_and_pad to the frame, centre
    crop, 3 channels, export mean / std (0.5) = ImageReportDataset(train=False), letterboxing included."""
    from PIL import Image
    from torchvision.transforms import v2

    path = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 90), dtype=np.uint8)).save(path)
    study = Study(study_id="1", patient_id="1", image_paths=[path], view_positions=["PA"], findings="x",
                  impression="", sentences=["x"], split="test", labels=None, source="t")
    size = 64
    frame = round(size * 256 / 224)
    want = ImageReportDataset([study], ImageCache([path], None, size=frame), train=False, image_size=size)[0]["image"]
    grey = torch.from_numpy(resize_and_pad(load_image(path), frame))[None]
    x = v2.CenterCrop(size)(grey).float().div(255).expand(3, -1, -1)
    got = (x - 0.5) / 0.5
    assert torch.allclose(got, want, atol=1e-6)
