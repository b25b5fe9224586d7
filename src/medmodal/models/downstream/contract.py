"""The ``"heads"`` model contract: a task head on an exported image encoder (CXR downstream suite).

Built as ``factory(encoder=DownstreamEncoder, **options)`` (``modalities`` has no meaning and raises
:class:`ValueError`; ``num_classes`` is passed on when given, for heads that take it). The model has
``encoder`` (frozen, or trained with the encoder learning rate, by the engine) and ``head`` (always
trained); ``forward(images [B, 3, S, S])`` gives the task's raw outputs (a tensor or a list of
tensors, batch first).

:func:`check_head_model` (the sweep test's check) builds the head on a randomly initialised
``resnet18`` (:func:`~medmodal.models.encoder_export.load_image_encoder`, ``"random"``), runs a
64-pixel batch of 2 and checks finite, batch-first outputs whose gradient reaches the head.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from medmodal.models.downstream.encoder import DownstreamEncoder
from medmodal.models.encoder_export import load_image_encoder
from medmodal.models.registry import ModelContract, create_model, register_contract

__all__ = ["build_head_model", "check_head_model", "HEADS"]

#: input side of the check (divisible by 32: the U-Net and the YOLO pyramid need it)
CHECK_SIZE = 64


def build_head_model(factory, name: str, modalities: Sequence[str] | None, num_classes: int | None,
                     **kwargs) -> nn.Module:
    """``factory(**kwargs)`` (plus ``num_classes`` when given); :class:`ValueError` for ``modalities``."""
    if modalities is not None:
        raise ValueError(f"head {name!r} (task 'heads') takes no modalities; pass encoder=... and its options")
    extra = {"num_classes": num_classes} if num_classes is not None else {}
    return factory(**extra, **kwargs)


def check_head_model(name: str, tiny: Mapping[str, Any]) -> None:
    """Assert the heads contract for the registered model ``name`` (module docstring); ``tiny["arch"]``
    (default ``resnet18``) is the random encoder, the other keys go to the head."""
    options = dict(tiny)
    backbone, info = load_image_encoder("random", options.pop("arch", "resnet18"), seed=0)
    torch.manual_seed(0)
    model = create_model(name, encoder=DownstreamEncoder(backbone, info), **options).train()
    assert isinstance(model.encoder, nn.Module) and isinstance(model.head, nn.Module)
    x = torch.randn(2, 3, CHECK_SIZE, CHECK_SIZE, generator=torch.Generator().manual_seed(1))
    out = model(x)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    assert outs and all(o.shape[0] == 2 and torch.isfinite(o).all() for o in outs), [tuple(o.shape) for o in outs]
    sum(o.float().sum() for o in outs).backward()
    grads = [p.grad for p in model.head.parameters()]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), f"{name}: no gradient in the head"


HEADS = register_contract(ModelContract(
    name="heads", build=build_head_model, check=check_head_model, tiny={"arch": "resnet18"},
    doc="A task head on an exported image encoder: factory(encoder=..., **options); forward(images [B, 3, S, S]) "
        "-> the task's raw outputs; attributes encoder and head."))
