"""The ``"paired_views"`` model contract (alias ``"endoscopy"``: the old task tag): two co-registered
views of one site (MICS: white-light WLI and narrow-band NBI endoscopy).

Built as ``factory(**kwargs)``, with ``modalities`` / ``num_classes`` passed on when given.

* Classifiers (a ``num_classes`` attribute): ``forward(images [B, M, 3, S, S], modality_mask [B, M]
  bool) -> logits [B, K]``; a sample may have one view only, and then what sits in the other view's
  slot does not change its prediction.
* Pre-training models: ``encoders`` (one token encoder per view, ``[B, 3, S, S] -> [B, N, D]``) and
  ``encoder_state_dict()`` with keys ``"<view>.<encoder key>"`` (what a classifier loads). Their
  losses are an objective of :mod:`medmodal.losses.paired`.

:func:`check_paired_views_model` (the sweep test's check) builds a tiny ViT instance (32-pixel images,
8-pixel patches, one block).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from medmodal.models.registry import ModelContract, create_model, register_contract

__all__ = ["VIEWS", "check_paired_views_model", "PAIRED_VIEWS"]

#: the two views, in channel order
VIEWS = ("wli", "nbi")


def check_paired_views_model(name: str, tiny: Mapping[str, Any]) -> None:
    """Assert the paired-views contract for the registered model ``name`` (module docstring)."""
    torch.manual_seed(0)
    model = create_model(name, **tiny).eval()
    size = int(tiny.get("image_size", 32))
    g = torch.Generator().manual_seed(1)
    if hasattr(model, "num_classes"):
        x = torch.randn(3, len(VIEWS), 3, size, size, generator=g)
        mask = torch.tensor([[True, False], [False, True], [True, True]])
        other = x.clone()
        other[0, 1] = torch.randn(3, size, size, generator=g) * 5
        other[1, 0] = torch.randn(3, size, size, generator=g) * 5
        with torch.no_grad():
            a, b = model(x, mask), model(other, mask)
        assert a.shape == (3, model.num_classes) and torch.isfinite(a).all(), a.shape
        torch.testing.assert_close(a[:2], b[:2], rtol=1e-4, atol=1e-5)
        return
    assert set(model.encoders) == set(VIEWS), f"{name}: encoders {list(model.encoders)}"
    x = torch.randn(2, 3, size, size, generator=g)
    with torch.no_grad():
        for view in VIEWS:
            tokens = model.encoders[view](x)
            assert tokens.ndim == 3 and tokens.shape[0] == 2 and torch.isfinite(tokens).all(), tokens.shape
    keys = model.encoder_state_dict()
    assert keys and all(k.split(".", 1)[0] in VIEWS for k in keys)


PAIRED_VIEWS = register_contract(ModelContract(
    name="paired_views", check=check_paired_views_model, aliases=("endoscopy",),
    tiny={"arch": "vit_tiny_patch16_224", "image_size": 32,
          "encoder_kwargs": {"patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}},
    doc="Paired views (WLI / NBI): classifiers forward(images [B, M, 3, S, S], modality_mask [B, M]) -> "
        "logits [B, K] from any non-empty subset of views; pre-training models expose one encoder per view."))
