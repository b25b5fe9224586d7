"""The references' YOLOv3 loss (MGCA / CM-CGNS ``yolo_loss.YOLOLoss``), on the targets of
:func:`medmodal.models.downstream.yolo.build_targets`.

Per scale, with ``n`` = all ``B * A * h * w`` outputs of the scale (the reference's ``mean``
reductions run over every output, positives or not) and ``m`` the positive mask:

* ``xy = sum(m * BCE(sigmoid(x), tx)) / n + sum(m * BCE(sigmoid(y), ty)) / n``
* ``wh = sum(m * (w - tw)^2) / n + sum(m * (h - th)^2) / n``
* ``conf = sum(m * BCE(obj, 1)) / n + noobj_weight * sum(noobj * BCE(obj, 0)) / n`` (weight 0.5)
* ``cls = sum(m * BCE(cls, tcls)) / (n * C)``
* ``loss = lambda_xy * xy + lambda_wh * wh + lambda_conf * conf + lambda_cls * cls`` with
  ``lambda_xy = lambda_wh = 2.5``, ``lambda_conf = lambda_cls = 1``; summed over the three scales.

The reference multiplies probabilities by the mask and runs ``BCELoss`` on them (masked-out terms
are BCE(0, 0) = 0); here BCE is taken on the logits where the mask is 1, which is the same value
without the ``log`` clamp.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medmodal.models.downstream.yolo import build_targets

__all__ = ["YOLOv3Loss"]


class YOLOv3Loss(nn.Module):
    """``forward(outputs, boxes, labels, anchors, image_size) -> (loss, terms)``.

    Args (constructor): num_classes ``C``; lambda_xy / lambda_wh / lambda_conf / lambda_cls;
        noobj_weight (0.5); ignore_threshold (0.5, anchor-shape IoU above which a cell's other
        anchors are not pushed to "no object").
    Args (forward): outputs: per scale ``[B, A * (5 + C), h, w]``; boxes: per image ``[N_i, 4]``
        xyxy pixels; labels: per image ``[N_i]``; anchors ``[scales, A, 2]`` pixels;
        image_size ``(H, W)``.
    Returns: the scalar loss and ``terms`` (``xy``, ``wh``, ``conf``, ``cls``; detached, summed over scales).
    """

    def __init__(self, num_classes: int = 1, lambda_xy: float = 2.5, lambda_wh: float = 2.5,
                 lambda_conf: float = 1.0, lambda_cls: float = 1.0, noobj_weight: float = 0.5,
                 ignore_threshold: float = 0.5):
        super().__init__()
        self.num_classes = int(num_classes)
        self.lambdas = {"xy": lambda_xy, "wh": lambda_wh, "conf": lambda_conf, "cls": lambda_cls}
        self.noobj_weight = float(noobj_weight)
        self.ignore_threshold = float(ignore_threshold)

    def forward(self, outputs: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor],
                anchors: torch.Tensor, image_size: tuple[int, int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = {k: outputs[0].new_zeros((), dtype=torch.float32) for k in self.lambdas}
        for out, anchor in zip(outputs, anchors):
            b, ch, h, w = out.shape
            a = anchor.shape[0]
            p = out.float().view(b, a, ch // a, h, w).permute(0, 1, 3, 4, 2)
            t = build_targets(boxes, labels, (h, w), (image_size[0] / h, image_size[1] / w), anchor.to(out.device),
                              self.num_classes, self.ignore_threshold)
            m, n = t["mask"], float(t["mask"].numel())
            terms["xy"] = terms["xy"] + ((m * bce(p[..., 0], t["tx"])).sum() + (m * bce(p[..., 1], t["ty"])).sum()) / n
            terms["wh"] = terms["wh"] + ((m * (p[..., 2] - t["tw"]) ** 2).sum()
                                         + (m * (p[..., 3] - t["th"]) ** 2).sum()) / n
            obj = p[..., 4]
            positive = (m * bce(obj, torch.ones_like(obj))).sum()
            negative = (t["noobj"] * bce(obj, torch.zeros_like(obj))).sum()
            terms["conf"] = terms["conf"] + (positive + self.noobj_weight * negative) / n
            terms["cls"] = terms["cls"] + (m[..., None] * bce(p[..., 5:], t["tcls"])).sum() / (n * self.num_classes)
        loss = sum(self.lambdas[k] * v for k, v in terms.items())
        return loss, {k: v.detach() for k, v in terms.items()}


def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Element-wise BCE on logits."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none")
