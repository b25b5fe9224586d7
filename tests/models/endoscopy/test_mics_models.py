"""MICS models: registry, shapes, masking of an absent modality (the pre-training terms: tests/losses/test_paired.py)."""

from __future__ import annotations

import pytest
import torch

from medmodal.models import create_model, list_models
from medmodal.models.endoscopy.blocks import patchify, random_patch_mask

TINY = {"arch": "vit_tiny_patch16_224", "image_size": 32,
        "encoder_kwargs": {"patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}}


def test_registered_under_endoscopy():
    assert {"mics", "mics_pretrain"} <= set(list_models(task="endoscopy"))


@pytest.mark.parametrize("fusion", ["cross_attention", "late"])
@pytest.mark.parametrize("modalities", [("wli", "nbi"), ("wli",), ("nbi",)])
def test_classifier_shapes_and_gradients(fusion, modalities):
    torch.manual_seed(0)
    model = create_model("mics", num_classes=4, modalities=modalities, fusion=fusion, fusion_depth=1, **TINY)
    x = torch.randn(3, len(modalities), 3, 32, 32)
    mask = torch.ones(3, len(modalities), dtype=torch.bool)
    logits = model(x, mask)
    assert logits.shape == (3, 4) and torch.isfinite(logits).all()
    logits.sum().backward()
    grads = [p.grad for p in model.encoders[modalities[0]].parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("fusion", ["cross_attention", "late"])
def test_absent_modality_is_masked(fusion):
    """A WLI-only sample's prediction does not depend on what sits in the NBI slot."""
    torch.manual_seed(0)
    model = create_model("mics", num_classes=3, fusion=fusion, fusion_depth=2, **TINY).eval()
    x = torch.randn(4, 2, 3, 32, 32)
    mask = torch.tensor([[True, False], [True, False], [True, True], [False, True]])
    other = x.clone()
    other[:2, 1] = torch.randn(2, 3, 32, 32) * 5
    a, b = model(x, mask), model(other, mask)
    assert torch.allclose(a[:2], b[:2], atol=1e-5)
    assert not torch.allclose(model(x, torch.ones(4, 2, dtype=torch.bool))[:2], a[:2], atol=1e-4)


def test_classifier_rejects_bad_input():
    model = create_model("mics", num_classes=3, fusion_depth=1, **TINY)
    with pytest.raises(ValueError, match="no modality"):
        model(torch.randn(2, 2, 3, 32, 32), torch.tensor([[True, True], [False, False]]))
    with pytest.raises(ValueError, match="images must be"):
        model(torch.randn(2, 3, 32, 32), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="modalities"):
        create_model("mics", num_classes=3, modalities=("nbi", "wli"), **TINY)
    with pytest.raises(ValueError, match="fusion"):
        create_model("mics", num_classes=3, fusion="sum", **TINY)


def test_mae_helpers():
    visible, masked = random_patch_mask(3, 16, 0.75)
    assert visible.shape == (3, 4) and masked.sum(1).tolist() == [12, 12, 12]
    assert not masked.gather(1, visible).any()
    img = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    p = patchify(img, 2)
    assert p.shape == (2, 4, 12) and p[0, 0, :3].tolist() == [0.0, 16.0, 32.0]
