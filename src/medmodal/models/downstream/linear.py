"""Linear classification on the image encoder (MGCA / CM-CGNS ``SSLFineTuner`` + ``SSLEvaluator``)."""

from __future__ import annotations

import torch
from torch import nn

from medmodal.models.downstream.encoder import DownstreamEncoder
from medmodal.models.registry import register_model

__all__ = ["LinearClassifier"]


@register_model("linear_classifier", task="heads", tiny={"num_outputs": 3})
class LinearClassifier(nn.Module):
    """Pooled encoder feature -> Dropout(p) -> Linear(D, K).

    ``forward(images [B, 3, S, S]) -> logits [B, K]``; :meth:`classify` takes pooled features
    ``[B, D]`` (the cached-feature path) through the same head. ``K``: 5 for CheXpert, 1 for RSNA
    (BCE), 3 for COVIDx (CE). Reference: ``SSLEvaluator(n_hidden=None, p=0)`` of MGCA / CM-CGNS.
    The ``encoder`` may be ``None`` when only cached features are classified.
    """

    def __init__(self, encoder: DownstreamEncoder | None, num_outputs: int, dropout: float = 0.0,
                 num_features: int | None = None):
        super().__init__()
        self.encoder = encoder
        features = num_features if num_features is not None else encoder.num_features
        self.head = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(features, num_outputs))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features.flatten(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.encoder is None:
            raise RuntimeError("this classifier was built for cached features (no encoder)")
        return self.classify(self.encoder(images))
