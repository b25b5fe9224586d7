"""The toy family's objective, registered by name (``loss.name: toy_ce``) in :mod:`medmodal.losses.base`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medmodal.losses.base import Objective, StepContext, register_objective

__all__ = ["ToyCrossEntropy"]


@register_objective("toy_ce")
class ToyCrossEntropy(Objective):
    """Cross-entropy of ``inputs["logits"]`` ``[B, K]`` against ``context.target`` ``[B]``.

    Returns ``{"loss", "accuracy"}`` (``accuracy`` detached, for logging). Options (``loss:`` section):
    ``label_smoothing`` (default 0).
    """

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = float(label_smoothing)

    def forward(self, inputs: dict, context: StepContext) -> dict[str, torch.Tensor]:
        logits, target = inputs["logits"], context.target
        loss = F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        return {"loss": loss, "accuracy": (logits.argmax(1) == target).float().mean().detach()}
