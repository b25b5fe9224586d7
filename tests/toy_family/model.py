"""The toy family's model contract ``toy_classifier`` and its one model ``toy_net``.

Contract (registered next to the models, as each family's ``models/<contract>/contract.py`` does):
built as ``factory(num_classes=K, **kwargs)`` (``modalities`` has no meaning: ``ValueError``);
``forward(images [B, 1, S, S] float) -> logits [B, K]``. :func:`check_toy_model` is what the registry
sweep (``tests/models/test_contracts.py``) runs for every model registered under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from medmodal.models.registry import ModelContract, create_model, model_config, register_contract, register_model

__all__ = ["CONTRACT", "ToyNetConfig", "ToyNet", "build_toy_model", "check_toy_model"]

CHECK_CLASSES = 3
CHECK_SIZE = 8


def build_toy_model(factory, name: str, modalities: Sequence[str] | None, num_classes: int | None,
                    **kwargs) -> nn.Module:
    """``factory(num_classes=K, **kwargs)``.

    Raises:
        ValueError: ``modalities`` given, ``num_classes`` missing or < 2 (programming errors: the engine
            passes the validated ``data.num_classes``).
    """
    if modalities is not None:
        raise ValueError(f"toy model {name!r} takes no modalities")
    if num_classes is None or int(num_classes) < 2:
        raise ValueError(f"toy model {name!r} needs num_classes >= 2, got {num_classes}")
    return factory(num_classes=int(num_classes), **kwargs)


def check_toy_model(name: str, tiny: Mapping[str, Any]) -> None:
    """Assert the contract: logits ``[B, K]``, finite, a gradient in every parameter; no ``num_classes`` raises."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=CHECK_CLASSES, **tiny).train()
    x = torch.randn(4, 1, CHECK_SIZE, CHECK_SIZE, generator=torch.Generator().manual_seed(1))
    logits = model(x)
    assert logits.shape == (4, CHECK_CLASSES) and torch.isfinite(logits).all(), logits.shape
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters()), f"{name}: a parameter gets no gradient"
    try:
        create_model(name, **tiny)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{name}: built without num_classes")


CONTRACT = register_contract(ModelContract(
    name="toy_classifier", build=build_toy_model, check=check_toy_model, tiny={"width": 4},
    doc="Toy image classifier: factory(num_classes=K, **kwargs); forward(images [B, 1, S, S]) -> logits [B, K]."))


@dataclass
class ToyNetConfig:
    """``width``: channels of the one conv layer."""

    width: int = 8


@register_model("toy_net", task="toy_classifier", tiny={"width": 2})
class ToyNet(nn.Module):
    """conv 3x3 -> ReLU -> global mean -> linear. One constructor shape: ``(num_classes, config=None, **overrides)``."""

    def __init__(self, num_classes: int, config: ToyNetConfig | Mapping[str, Any] | None = None, **overrides):
        super().__init__()
        self.config = model_config(ToyNetConfig, config, **overrides)
        self.num_classes = num_classes
        self.conv = nn.Conv2d(1, self.config.width, 3, padding=1)
        self.head = nn.Linear(self.config.width, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(images)).mean((2, 3)))
