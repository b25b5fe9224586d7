"""Model registry (timm / MONAI style).

Every segmentation network is registered under a short name and built with::

    from medmodal.models import create_model
    model = create_model("dmafnet", modalities=("flair", "t1", "t1ce", "t2"), num_classes=4, widths=(8, 16, 32))

Contract of a registered model (checked by the registry-driven tests in ``tests/models``):

* a plain :class:`torch.nn.Module` built as ``factory(modalities=..., num_classes=..., **kwargs)``;
* attributes ``modalities`` (tuple of sequence names, the channel order of its input) and
  ``num_classes``;
* ``forward(images [B, M, *spatial] float, modality_mask [B, M] bool) -> logits [B, num_classes, *spatial]``,
  where a sample may have any non-empty subset of sequences and a batch may mix subsets; a
  sample with no sequence raises :class:`ValueError`.
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

from torch import nn

__all__ = ["register_model", "create_model", "list_models", "get_model_factory"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[F], F]:
    """Class / function decorator registering a model factory under ``name`` (case-insensitive).

    Re-registering the *same* object (e.g. on module reload) is allowed; registering a different
    object under a taken name raises :class:`ValueError`.
    """
    key = name.strip().lower()
    if not key:
        raise ValueError("model name must be a non-empty string")

    def decorator(factory: F) -> F:
        existing = _REGISTRY.get(key)
        if existing is not None and _qualname(existing) != _qualname(factory):
            raise ValueError(f"model name {key!r} is already registered to {_qualname(existing)}")
        _REGISTRY[key] = factory
        return factory

    return decorator


def _qualname(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def list_models() -> list[str]:
    """Sorted names of all registered models."""
    return sorted(_REGISTRY)


def get_model_factory(name: str) -> Callable[..., nn.Module]:
    """The registered class / function for ``name``; :class:`KeyError` listing known names otherwise."""
    key = str(name).strip().lower()
    try:
        return _REGISTRY[key]
    except KeyError:
        known = ", ".join(list_models()) or "(none)"
        raise KeyError(f"unknown model {name!r}; known models: {known}") from None


def create_model(name: str, modalities: Sequence[str], num_classes: int, **kwargs) -> nn.Module:
    """Build the registered model ``name``.

    Args:
        name: registered model name (see :func:`list_models`).
        modalities: sequence names in input-channel order, e.g. ``("flair", "t1", "t1ce", "t2")``.
        num_classes: number of output classes including background.
        **kwargs: model-specific options (for DMAF-Net: the fields of ``DMAFNetConfig``).

    Raises:
        KeyError: unknown ``name`` (the message lists the known names).
        ValueError: empty or duplicate ``modalities``, ``num_classes < 1``.
    """
    factory = get_model_factory(name)
    modalities = tuple(str(m) for m in modalities)
    if not modalities:
        raise ValueError("a model needs at least one input sequence (modalities is empty)")
    if len(set(modalities)) != len(modalities):
        raise ValueError(f"duplicate sequence names in modalities: {list(modalities)}")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return factory(modalities=modalities, num_classes=int(num_classes), **kwargs)
