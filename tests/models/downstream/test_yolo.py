"""YOLOv3 head, targets, loss, decoding and NMS (MGCA / CM-CGNS detection protocol)."""

from __future__ import annotations

import math

import pytest
import torch

from medmodal.losses.yolo import YOLOv3Loss
from medmodal.models.downstream.yolo import (COCO_ANCHORS, YOLOv3Head, build_targets, decode_predictions,
                                             postprocess_detections, scaled_anchors)


def test_anchors_are_the_coco_anchors_scaled_to_the_input():
    anchors = scaled_anchors(224)
    assert anchors.shape == (3, 3, 2)
    assert torch.allclose(anchors[0, 0], torch.tensor([116.0, 90.0]) * 224 / 416)
    assert torch.allclose(anchors[2, 2], torch.tensor([33.0, 23.0]) * 224 / 416)


def test_targets_of_hand_made_boxes():
    # 64 px input, fine scale: 8 x 8 cells of 8 px; anchors (pixels) (8, 8), (16, 32), (40, 20)
    anchors = torch.tensor([[8.0, 8.0], [16.0, 32.0], [40.0, 20.0]])
    boxes = [torch.tensor([[20.0, 4.0, 36.0, 36.0]]),  # centre (28, 20), 16 x 32 px: anchor 1 exactly
             torch.zeros(0, 4),  # an image without objects
             torch.tensor([[54.0, 56.0, 64.0, 64.0]])]  # centre (59, 60), 10 x 8 px -> cell (7, 7)
    labels = [torch.tensor([0]), torch.zeros(0, dtype=torch.int64), torch.tensor([0])]
    t = build_targets(boxes, labels, (8, 8), (8.0, 8.0), anchors, num_classes=1)
    assert t["mask"].shape == (3, 3, 8, 8) and t["tcls"].shape == (3, 3, 8, 8, 1)
    assert t["mask"].sum() == 2 and t["mask"][0, 1, 2, 3] == 1 and t["mask"][2, 0, 7, 7] == 1
    assert t["tx"][0, 1, 2, 3] == pytest.approx(28 / 8 - 3)
    assert t["ty"][0, 1, 2, 3] == pytest.approx(20 / 8 - 2)
    assert t["tw"][0, 1, 2, 3] == pytest.approx(math.log(1 + 1e-16), abs=1e-6)  # box = anchor
    assert t["th"][0, 1, 2, 3] == pytest.approx(0.0, abs=1e-6)
    # second box: 1.25 x 1 cells vs anchor (1, 1): IoU 0.8 -> anchor 0; tw = log(1.25)
    assert t["tw"][2, 0, 7, 7] == pytest.approx(math.log(1.25), rel=1e-5)
    assert t["tcls"][0, 1, 2, 3, 0] == 1 and t["tcls"].sum() == 2
    # no-object mask: 0 at the positive and where the anchor shape IoU > 0.5, 1 everywhere else
    assert t["noobj"][0, :, 2, 3].tolist() == [1.0, 0.0, 1.0]  # IoU of (2, 4) with (1, 1) = 0.125, with (5, 2.5) = 0.18
    assert t["noobj"][1].min() == 1  # image without objects: every output is "no object"
    assert (t["noobj"] == 0).sum() == 2


def test_ignore_threshold_spares_other_good_anchors():
    anchors = torch.tensor([[16.0, 16.0], [18.0, 16.0], [64.0, 8.0]])  # two near-equal anchors
    t = build_targets([torch.tensor([[0.0, 0.0, 17.0, 16.0]])], [torch.tensor([0])], (4, 4), (16.0, 16.0), anchors, 1)
    assert t["mask"][0, :, 0, 0].tolist() in ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    assert t["noobj"][0, :, 0, 0].tolist() == [0.0, 0.0, 1.0]


def test_loss_is_finite_and_has_the_reference_no_object_term():
    torch.manual_seed(0)
    head = YOLOv3Head((32, 64, 128), num_classes=1, width=0.125)
    features = [torch.randn(2, 32, 8, 8), torch.randn(2, 64, 4, 4), torch.randn(2, 128, 2, 2)]
    outputs = head(features)
    assert [tuple(o.shape) for o in outputs] == [(2, 18, 2, 2), (2, 18, 4, 4), (2, 18, 8, 8)]
    anchors = scaled_anchors(64)
    criterion = YOLOv3Loss(num_classes=1)
    empty = [torch.zeros(0, 4)] * 2
    no_labels = [torch.zeros(0, dtype=torch.int64)] * 2
    loss, terms = criterion(outputs, empty, no_labels, anchors, (64, 64))
    expected = sum(0.5 * torch.nn.functional.softplus(o.view(2, 3, 6, *o.shape[-2:])[:, :, 4]).mean() for o in outputs)
    assert terms["xy"] == 0 and terms["wh"] == 0 and terms["cls"] == 0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)  # BCE(obj, 0) = softplus(logit)
    boxes = [torch.tensor([[10.0, 12.0, 30.0, 40.0]]), torch.tensor([[40.0, 40.0, 60.0, 50.0], [0.0, 0.0, 8.0, 8.0]])]
    labels = [torch.tensor([0]), torch.tensor([0, 0])]
    loss, terms = criterion(outputs, boxes, labels, anchors, (64, 64))
    assert torch.isfinite(loss) and all(v > 0 for v in terms.values())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters() if p.requires_grad)


def test_decode_and_nms_shapes_and_values():
    anchors = scaled_anchors(64)
    outputs = [torch.full((2, 18, s, s), -10.0) for s in (2, 4, 8)]
    # image 0: two near-identical confident boxes in neighbouring fine cells (NMS keeps one),
    # image 1: nothing above the threshold
    for cell in (3, 4):
        outputs[2][0, 0:6, 2, cell] = torch.tensor([0.0, 0.0, math.log(8.0), math.log(8.0), 5.0, 5.0])
    decoded = decode_predictions(outputs, anchors, (64, 64))
    assert decoded.shape == (2, 3 * (4 + 16 + 64), 6)
    assert torch.all((decoded[..., 4:] >= 0) & (decoded[..., 4:] <= 1))
    anchor = anchors[2, 0]  # (10, 13) * 64 / 416 pixels, times exp(log 8): 12.3 x 16 px boxes 8 px apart
    row = decoded[0][(decoded[0, :, 4] > 0.9)][0]
    assert row[:4].tolist() == pytest.approx([3.5 * 8, 2.5 * 8, 8 * anchor[0].item(), 8 * anchor[1].item()], rel=1e-5)
    results = postprocess_detections(decoded, conf_threshold=0.5, nms_iou=0.1)
    assert len(results) == 2
    assert results[0]["boxes"].shape == (1, 4) and results[0]["scores"].shape == (1,)
    assert results[0]["labels"].dtype == torch.int64
    assert results[1]["boxes"].shape == (0, 4)
    kept = postprocess_detections(decoded, conf_threshold=0.5, nms_iou=0.9)  # their IoU is 0.21
    assert kept[0]["boxes"].shape == (2, 4)


def test_head_widths_follow_the_reference():
    head = YOLOv3Head((512, 1024, 2048))
    assert head.embedding0.blocks[0].conv.in_channels == 2048 and head.embedding0.blocks[0].conv.out_channels == 512
    assert head.embedding0.out.in_channels == 1024 and head.embedding0.out.out_channels == 18
    assert head.embedding1.blocks[0].conv.in_channels == 1024 + 256
    assert head.embedding2.blocks[0].conv.in_channels == 512 + 128
    assert len(COCO_ANCHORS) == 3
