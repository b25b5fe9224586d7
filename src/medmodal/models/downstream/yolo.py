"""YOLOv3-style detection on C3-C5 of the image encoder, as MGCA / CM-CGNS (hand-written: no library
ships this head; box operations and NMS are torchvision's).

Reference: MGCA / CM-CGNS ``ssl_detector.py`` (``ModelMain``), ``yolo_loss.py`` (``YOLOLoss``,
``get_target``) and ``detection_utils.py`` (``non_max_suppression``); the head follows YOLOv3
(Redmon & Farhadi, 2018).

**Head** (:class:`YOLOv3Head`): three scales, coarse to fine; each an "embedding" of six
conv-BN-LeakyReLU(0.1) blocks (1x1 c, 3x3 2c, 1x1 c, 3x3 2c, 1x1 c, 3x3 2c) + a 1x1 conv to
``A * (5 + C)`` outputs, with ``c`` = 512 (C5), 256 (C4), 128 (C3). The fifth block's output of a
scale goes through a 1x1 CBL (halving channels), nearest 2x upsampling and is concatenated with the
next finer backbone map (FPN-style). ``width`` scales every ``c`` (1.0 = the reference).

**Anchors** (:data:`COCO_ANCHORS`): YOLOv3's COCO anchors in pixels of a 416 input, per scale
(coarse: (116, 90), (156, 198), (373, 326); middle: (30, 61), (62, 45), (59, 119); fine: (10, 13),
(16, 30), (33, 23)), multiplied by ``image_size / 416`` (the references' ``* 224 / 416``).

**Targets** (:func:`build_targets`, the reference's ``get_target``), per scale and independently
(so every box is a positive at each of the three scales): a box with centre ``(gx, gy)`` and size
``(gw, gh)`` in grid cells goes to cell ``(int(gx), int(gy))`` and the scale's anchor whose SHAPE
(both centred at the origin) overlaps it most; there ``tx = gx - int(gx)``, ``ty`` alike,
``tw = log(gw / anchor_w + 1e-16)``, ``th`` alike, class one-hot; every anchor of that cell whose
shape IoU exceeds ``ignore_threshold`` (0.5) is removed from the no-object mask. Deviations, on
purpose: IoU is torchvision's continuous ``box_iou`` (the reference adds 1 "pixel" to widths that
are in grid cells, which inflates small boxes); the positive anchor itself is always removed from
the no-object mask (the reference keeps it when its shape IoU <= 0.5, asking that output to be
object and no-object at once); a centre on the far image edge is clamped into the last cell.

**Decoding** (:func:`decode_predictions`): ``cx = (sigmoid(tx) + i) * stride``, ``w = exp(tw) *
anchor_w``; objectness and class scores through a sigmoid. :func:`postprocess_detections`: keep
objectness >= ``conf_threshold`` (0.5), class = argmax of the class scores, score = objectness,
per-class NMS at IoU ``nms_iou`` (0.5) with :func:`torchvision.ops.batched_nms`; boxes are not
clipped to the image (as the reference).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medmodal.models.downstream.encoder import DownstreamEncoder
from medmodal.models.registry import register_model

__all__ = ["COCO_ANCHORS", "REFERENCE_INPUT", "scaled_anchors", "YOLOv3Head", "YOLOv3Detector", "build_targets",
           "decode_predictions", "postprocess_detections"]

#: YOLOv3 COCO anchors (width, height) in pixels of a 416 x 416 input; coarse (stride 32) to fine.
COCO_ANCHORS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((116, 90), (156, 198), (373, 326)),
    ((30, 61), (62, 45), (59, 119)),
    ((10, 13), (16, 30), (33, 23)),
)
REFERENCE_INPUT = 416
#: backbone stages feeding the head, fine to coarse (C3, C4, C5 of a ResNet)
PYRAMID_STAGES = (2, 3, 4)


def scaled_anchors(image_size: int, anchors=COCO_ANCHORS) -> torch.Tensor:
    """``[3, 3, 2]`` anchors (w, h) in pixels of an ``image_size`` input: ``anchors * image_size / 416``."""
    return torch.tensor(anchors, dtype=torch.float32) * (float(image_size) / REFERENCE_INPUT)


def _cbl(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    """conv (no bias) - BatchNorm - LeakyReLU(0.1), 'same' padding."""
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(c_in, c_out, kernel, stride=1, padding=(kernel - 1) // 2, bias=False)),
        ("bn", nn.BatchNorm2d(c_out)),
        ("relu", nn.LeakyReLU(0.1)),
    ]))


class _Embedding(nn.Module):
    """Six CBL blocks alternating 1x1 (``c``) and 3x3 (``2c``) + a 1x1 output conv; also returns the
    fifth block's output (the branch passed to the next scale)."""

    def __init__(self, c_in: int, c: int, c_out: int):
        super().__init__()
        self.blocks = nn.ModuleList([_cbl(c_in, c, 1), _cbl(c, 2 * c, 3), _cbl(2 * c, c, 1), _cbl(c, 2 * c, 3),
                                     _cbl(2 * c, c, 1), _cbl(c, 2 * c, 3)])
        self.out = nn.Conv2d(2 * c, c_out, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        branch = x
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == 4:
                branch = x
        return self.out(x), branch


class YOLOv3Head(nn.Module):
    """The YOLOv3 head on three backbone maps (module docstring).

    ``forward([c3, c4, c5]) -> [out_coarse, out_middle, out_fine]``, each ``[B, A * (5 + C), h, w]``
    (``h, w`` of C5, C4, C3), channels per anchor ``(tx, ty, tw, th, objectness, class_1..C)``.

    Args:
        in_channels: channels of C3, C4, C5 (ResNet-50: 512, 1024, 2048).
        num_classes: ``C`` (1 for RSNA pneumonia and Object-CXR foreign objects).
        num_anchors: ``A`` per scale (3).
        width: multiplier of the head's channels (1.0 = the reference's 512 / 256 / 128).
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int = 1, num_anchors: int = 3, width: float = 1.0):
        super().__init__()
        c3, c4, c5 = (int(c) for c in in_channels)
        w = [max(1, int(round(c * width))) for c in (512, 256, 128)]
        out = num_anchors * (5 + num_classes)
        self.num_classes, self.num_anchors = int(num_classes), int(num_anchors)
        self.embedding0 = _Embedding(c5, w[0], out)
        self.lateral1 = _cbl(w[0], w[1], 1)
        self.embedding1 = _Embedding(c4 + w[1], w[1], out)
        self.lateral2 = _cbl(w[1], w[2], 1)
        self.embedding2 = _Embedding(c3 + w[2], w[2], out)

    @staticmethod
    def _up_cat(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], 1)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        c3, c4, c5 = features
        out0, branch0 = self.embedding0(c5)
        out1, branch1 = self.embedding1(self._up_cat(self.lateral1(branch0), c4))
        out2, _ = self.embedding2(self._up_cat(self.lateral2(branch1), c3))
        return [out0, out1, out2]


@register_model("yolov3_detector", task="heads", tiny={"num_classes": 1, "image_size": 64, "width": 0.25})
class YOLOv3Detector(nn.Module):
    """Encoder C3-C5 + :class:`YOLOv3Head`.

    ``forward(images [B, 3, S, S]) -> [out_coarse, out_middle, out_fine]`` raw head outputs;
    :attr:`anchors` ``[3, 3, 2]`` pixels (``COCO_ANCHORS * S / 416``), in the same order.

    Raises:
        ValueError: an encoder without a C3-C5 pyramid (e.g. a ViT).
    """

    def __init__(self, encoder: DownstreamEncoder, num_classes: int = 1, image_size: int = 224, width: float = 1.0,
                 anchors=COCO_ANCHORS):
        super().__init__()
        self.encoder = encoder
        self.head = YOLOv3Head(encoder.stage_channels(PYRAMID_STAGES), num_classes, len(anchors[0]), width)
        self.register_buffer("anchors", scaled_anchors(image_size, anchors), persistent=False)
        self.image_size = int(image_size)
        self.num_classes = int(num_classes)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.head(self.encoder.pyramid(images, PYRAMID_STAGES))


def _split(output: torch.Tensor, num_anchors: int) -> torch.Tensor:
    """``[B, A * (5 + C), h, w] -> [B, A, h, w, 5 + C]``."""
    b, ch, h, w = output.shape
    return output.view(b, num_anchors, ch // num_anchors, h, w).permute(0, 1, 3, 4, 2)


def build_targets(boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], grid: tuple[int, int],
                  stride: tuple[float, float], anchors: torch.Tensor, num_classes: int,
                  ignore_threshold: float = 0.5) -> dict[str, torch.Tensor]:
    """YOLOv3 targets of one scale (rules in the module docstring).

    Args:
        boxes: per image ``[N_i, 4]`` xyxy in input pixels (``N_i = 0``: no object).
        labels: per image ``[N_i]`` class indices.
        grid: ``(h, w)`` cells of this scale. stride: ``(stride_y, stride_x)`` pixels per cell.
        anchors: ``[A, 2]`` (w, h) in pixels.

    Returns:
        ``mask`` / ``noobj`` ``[B, A, h, w]`` (1 = positive / counted as no-object), ``tx``, ``ty``,
        ``tw``, ``th`` ``[B, A, h, w]``, ``tcls`` ``[B, A, h, w, C]``; on ``anchors.device``.
    """
    from torchvision.ops import box_iou

    h, w = grid
    sy, sx = stride
    device = anchors.device
    n_img, n_anchor = len(boxes), anchors.shape[0]
    shape = (n_img, n_anchor, h, w)
    out = {k: torch.zeros(shape, device=device) for k in ("mask", "tx", "ty", "tw", "th")}
    out["noobj"] = torch.ones(shape, device=device)
    out["tcls"] = torch.zeros((*shape, num_classes), device=device)
    grid_anchors = anchors / torch.tensor([sx, sy], device=device)  # [A, 2] in cells
    anchor_boxes = torch.cat([torch.zeros_like(grid_anchors), grid_anchors], 1)
    for b, (bx, lab) in enumerate(zip(boxes, labels)):
        bx = bx.to(device=device, dtype=torch.float32).reshape(-1, 4)
        for (x0, y0, x1, y1), cls in zip(bx.tolist(), lab.tolist()):
            gw, gh = (x1 - x0) / sx, (y1 - y0) / sy
            if gw <= 0 or gh <= 0:
                continue
            gx, gy = (x0 + x1) / 2 / sx, (y0 + y1) / 2 / sy
            gi, gj = min(max(int(gx), 0), w - 1), min(max(int(gy), 0), h - 1)
            ious = box_iou(torch.tensor([[0.0, 0.0, gw, gh]], device=device), anchor_boxes)[0]
            out["noobj"][b, ious > ignore_threshold, gj, gi] = 0
            best = int(torch.argmax(ious))
            out["noobj"][b, best, gj, gi] = 0
            out["mask"][b, best, gj, gi] = 1
            out["tx"][b, best, gj, gi] = gx - gi
            out["ty"][b, best, gj, gi] = gy - gj
            out["tw"][b, best, gj, gi] = math.log(gw / float(grid_anchors[best, 0]) + 1e-16)
            out["th"][b, best, gj, gi] = math.log(gh / float(grid_anchors[best, 1]) + 1e-16)
            out["tcls"][b, best, gj, gi] = 0
            out["tcls"][b, best, gj, gi, int(cls)] = 1
    return out


def decode_predictions(outputs: Sequence[torch.Tensor], anchors: torch.Tensor,
                       image_size: tuple[int, int]) -> torch.Tensor:
    """Raw head outputs -> ``[B, N, 5 + C]`` (``cx, cy, w, h`` in input pixels, objectness, class
    scores; both after a sigmoid), ``N = sum over scales of A * h * w``.

    Args:
        outputs: per scale ``[B, A * (5 + C), h, w]``. anchors: ``[scales, A, 2]`` pixels.
        image_size: ``(H, W)`` of the input (strides = ``H / h``, ``W / w``).
    """
    decoded = []
    for out, anchor in zip(outputs, anchors):
        p = _split(out.float(), anchor.shape[0])
        _, _, h, w, _ = p.shape
        sy, sx = image_size[0] / h, image_size[1] / w
        ys, xs = torch.meshgrid(torch.arange(h, device=p.device), torch.arange(w, device=p.device), indexing="ij")
        cx = (torch.sigmoid(p[..., 0]) + xs) * sx
        cy = (torch.sigmoid(p[..., 1]) + ys) * sy
        bw = torch.exp(p[..., 2]) * anchor[:, 0].view(1, -1, 1, 1).to(p)
        bh = torch.exp(p[..., 3]) * anchor[:, 1].view(1, -1, 1, 1).to(p)
        rest = torch.sigmoid(p[..., 4:])
        decoded.append(torch.cat([torch.stack([cx, cy, bw, bh], -1), rest], -1).flatten(1, 3))
    return torch.cat(decoded, 1)


def postprocess_detections(decoded: torch.Tensor, conf_threshold: float = 0.5, nms_iou: float = 0.5,
                           max_detections: int | None = None) -> list[dict[str, torch.Tensor]]:
    """Confidence filter + per-class NMS (module docstring).

    Args:
        decoded: ``[B, N, 5 + C]`` from :func:`decode_predictions`.
        max_detections: keep at most this many per image (highest scores); ``None``: all.

    Returns:
        per image ``{"boxes": float [n, 4] xyxy pixels, "scores": float [n], "labels": int64 [n]}``.
    """
    from torchvision.ops import batched_nms, box_convert

    results = []
    for pred in decoded:
        keep = pred[:, 4] >= conf_threshold
        pred = pred[keep]
        boxes = box_convert(pred[:, :4], "cxcywh", "xyxy")
        scores = pred[:, 4]
        labels = pred[:, 5:].argmax(1) if pred.shape[1] > 5 else torch.zeros_like(scores, dtype=torch.int64)
        kept = batched_nms(boxes, scores, labels, nms_iou)
        if max_detections is not None:
            kept = kept[:max_detections]
        results.append({"boxes": boxes[kept], "scores": scores[kept], "labels": labels[kept].long()})
    return results
