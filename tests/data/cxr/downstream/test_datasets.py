"""Torch datasets: images, masks and boxes stay aligned through resize + pad and the augmentations."""

from pathlib import Path

import numpy as np
import pytest
import torch

from medmodal.data.cxr.downstream import (ClassificationDataset, DetectionDataset, DownstreamSample, MaskSource,
                                          SegmentationDataset, nan_safe_targets, read_downstream)
from medmodal.data.cxr.images import load_image, resize_and_pad
from tests.data.cxr.downstream.conftest import grey_picture

pytestmark = pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")


def bright_extent(image: torch.Tensor, threshold=0.5):
    """xyxy extent of the bright pixels of a normalised image [3, S, S] (pixel edges)."""
    ys, xs = np.nonzero(image[0].numpy() > threshold)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("shape, box", [((60, 100), (20, 10, 50, 30)), ((100, 60), (5, 40, 35, 90))])
@pytest.mark.parametrize("geometry", ["pad", "stretch"])
def test_detection_boxes_follow_the_image(tmp_path, shape, box, geometry):
    path = grey_picture(tmp_path / "x.png", *shape, boxes=[box])
    sample = DownstreamSample("x", "p", path, boxes=np.array([box], np.float32), box_labels=np.array([0]))
    item = DetectionDataset([sample], train=False, image_size=128, geometry=geometry)[0]
    assert item["orig_size"] == shape and item["boxes"].canvas_size == (128, 128)
    assert np.allclose(item["boxes"].numpy()[0], bright_extent(item["image"]), atol=2.0)


def test_segmentation_mask_follows_the_image_through_augmentation(tmp_path):
    box = (30, 20, 70, 45)
    path = grey_picture(tmp_path / "x.png", 64, 96, boxes=[box])
    sample = DownstreamSample("x", "p", path, mask=MaskSource(boxes=(box,)))
    torch.manual_seed(0)
    data = SegmentationDataset([sample], train=True, image_size=160)
    for _ in range(6):  # RandomAffine with p 0.5: both branches
        item = data[0]
        bright, mask = item["image"][0] > 0.5, item["mask"] > 0.5
        iou = (bright & mask).sum() / (bright | mask).sum()
        assert iou > 0.85 and set(item["mask"].unique().tolist()) <= {0.0, 1.0}


def test_classification_items(tmp_path):
    paths = [grey_picture(tmp_path / f"{i}.png", 300, 200, seed=i) for i in range(3)]
    rows = [DownstreamSample(f"s{i}", f"p{i}", p, labels=(1.0, float("nan"))) for i, p in enumerate(paths)]
    data = ClassificationDataset(rows, train=False, image_size=224)
    item = data[0]
    grey = resize_and_pad(load_image(paths[0]))[16:240, 16:240]
    assert torch.allclose(item["image"][0], torch.from_numpy(grey / 255.0 - 0.5).float() / 0.5, atol=1e-6)
    assert item["target"][0] == 1 and torch.isnan(item["target"][1])
    targets, known = nan_safe_targets(item["target"][None])
    assert targets.tolist() == [[1.0, 0.0]] and known.tolist() == [[True, False]]
    moco = ClassificationDataset(rows, train=True, augment="moco2")
    torch.manual_seed(1)
    first = moco[0]["image"]
    assert first.shape == (3, 224, 224) and not torch.equal(first, moco[0]["image"])
    with pytest.raises(ValueError, match="mix multi-label and multi-class"):
        ClassificationDataset(rows + [DownstreamSample("m", "p", paths[0], class_index=1)])
    with pytest.raises(ValueError, match="unknown classification augmentation 'simclr'"):
        ClassificationDataset(rows, augment="simclr")
    with pytest.raises(ValueError, match="no boxes"):
        DetectionDataset(rows)


def test_one_cache_for_every_task(twins, tmp_path):
    result = read_downstream("rsna", twins["rsna"], task="detection")
    samples = result.select("test")
    det = DetectionDataset(samples, image_cache=tmp_path / "cache", train=False)
    seg = SegmentationDataset(samples, image_cache=det.image_cache, train=False)
    det[0], seg[0]
    assert det.image_cache is seg.image_cache and det.image_cache.decodes == 1
    assert Path(det.image_cache.file).is_file()
