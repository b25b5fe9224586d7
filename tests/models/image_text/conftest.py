"""Tiny CM-CGNS configurations and batches (no downloads: timm random init, a random BERT from a config)."""

from __future__ import annotations

import pytest
import torch

from medmodal.models import create_model

TINY_TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100,
                 max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
TINY = dict(image_size=64, text_model_config=TINY_TEXT, embed_dim=32, num_clusters=4, decoder_channels=(16, 8),
            decoder_layers=2, decoder_heads=4, decoder_ff_dim=32, decoder_dropout=0.0, text_pool_heads=4)
#: sentences per report of the tiny batch (one report has a sentence cut off: index 3 of report 2 has no token)
NUM_SENTENCES = (3, 2, 4, 1, 3)


def tiny_model(image_encoder: str = "test_resnet", seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return create_model("cmcgns", image_encoder=image_encoder, **{**TINY, **overrides})


def tiny_batch(seed: int = 0, image_size: int = 64, length: int = 24) -> dict[str, torch.Tensor]:
    """5 reports with 1-4 sentences of 2-4 tokens, [CLS] first, padding after [SEP]."""
    g = torch.Generator().manual_seed(seed)
    batch_size = len(NUM_SENTENCES)
    sentence_index = torch.full((batch_size, length), -1)
    for b, count in enumerate(NUM_SENTENCES):
        pos = 1
        for s in range(count):
            if (b, s) == (2, 3):
                continue  # truncated away: counted in num_sentences, no token
            n = 2 + (b + s) % 3
            sentence_index[b, pos:pos + n] = s
            pos += n
        sentence_index[b, pos] = -1  # [SEP]
    attention_mask = (sentence_index >= 0).long()
    attention_mask[:, 0] = 1
    attention_mask[torch.arange(batch_size), attention_mask.sum(1)] = 1  # [SEP]
    return {"image": torch.rand(batch_size, 3, image_size, image_size, generator=g) * 2 - 1,
            "input_ids": torch.randint(1, 100, (batch_size, length), generator=g) * attention_mask,
            "attention_mask": attention_mask, "sentence_index": sentence_index,
            "num_sentences": torch.tensor(NUM_SENTENCES)}


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    return tiny_batch()
