"""Tiny CM-CGNS configurations and batches (no downloads: timm random init, a random BERT from a config)."""

from __future__ import annotations

import pytest
import torch

from medmodal.models import create_model
from medmodal.models.image_text.contract import NUM_SENTENCES, TINY_TEXT  # noqa: F401
from medmodal.models.image_text.contract import sample_batch as tiny_batch

TINY = dict(image_size=64, text_model_config=TINY_TEXT, embed_dim=32, num_clusters=4, decoder_channels=(16, 8),
            decoder_layers=2, decoder_heads=4, decoder_ff_dim=32, decoder_dropout=0.0, text_pool_heads=4)


def tiny_model(image_encoder: str = "test_resnet", seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return create_model("cmcgns", image_encoder=image_encoder, **{**TINY, **overrides})


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    return tiny_batch()
