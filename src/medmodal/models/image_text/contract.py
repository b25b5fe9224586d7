"""The ``"image_text"`` model contract (image-report pre-training).

Built as ``factory(**kwargs)`` (the fields of the model's config dataclass; ``modalities`` /
``num_classes`` have no meaning there and raise :class:`ValueError`). The model offers
``compute_losses(batch, stage=..., update_clusters=...) -> dict`` of named losses with ``"loss"`` the
total, ``encode_image(images) -> [B, E]`` and ``encode_text(...) -> [B, E]`` (L2-normalised).

:func:`check_image_text_model` (the sweep test's check) builds a tiny instance (``"test_resnet"``
image encoder, a random 2-layer BERT from :data:`TINY_TEXT`, 64-pixel images) and runs it on
:func:`sample_batch`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from medmodal.models.registry import ModelContract, create_model, register_contract

__all__ = ["TINY_TEXT", "NUM_SENTENCES", "sample_batch", "build_image_text_model", "check_image_text_model",
           "IMAGE_TEXT"]

#: a random 2-layer BERT (no download)
TINY_TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100,
                 max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
#: sentences per report of :func:`sample_batch` (report 2 has a sentence cut off: index 3 has no token)
NUM_SENTENCES = (3, 2, 4, 1, 3)


def sample_batch(seed: int = 0, image_size: int = 64, length: int = 24) -> dict[str, torch.Tensor]:
    """5 reports with 1-4 sentences of 2-4 tokens, [CLS] first, padding after [SEP]; images in ``[-1, 1]``."""
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


def build_image_text_model(factory, name: str, modalities: Sequence[str] | None, num_classes: int | None,
                           **kwargs) -> nn.Module:
    """``factory(**kwargs)``; :class:`ValueError` when ``modalities`` / ``num_classes`` are given."""
    if modalities is not None or num_classes is not None:
        raise ValueError(f"model {name!r} (task 'image_text') takes no modalities / num_classes; "
                         "pass its config fields as keyword arguments")
    return factory(**kwargs)


def check_image_text_model(name: str, tiny: Mapping[str, Any]) -> None:
    """Assert the image-text contract for the registered model ``name`` (module docstring)."""
    torch.manual_seed(0)
    model = create_model(name, **tiny).train()
    batch = sample_batch(image_size=int(tiny.get("image_size", 64)))
    out = model.compute_losses(batch, stage=2, update_clusters=True)
    assert "loss" in out and out["loss"].ndim == 0 and torch.isfinite(out["loss"]), f"{name}: {out}"
    model.eval()
    with torch.no_grad():
        img = model.encode_image(batch["image"])
        txt = model.encode_text(batch["input_ids"], batch["attention_mask"], batch["sentence_index"],
                                batch["num_sentences"])
    n = len(NUM_SENTENCES)
    assert img.ndim == 2 and img.shape == txt.shape and img.shape[0] == n, (img.shape, txt.shape)
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(n))
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(n))


IMAGE_TEXT = register_contract(ModelContract(
    name="image_text", build=build_image_text_model, check=check_image_text_model,
    tiny={"image_encoder": "test_resnet", "image_size": 64, "text_model_config": TINY_TEXT, "embed_dim": 32},
    doc="Image-report pre-training: compute_losses(batch, stage, update_clusters) -> {'loss', ...}; "
        "L2-normalised encode_image / encode_text."))
