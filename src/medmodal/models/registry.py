"""Model registry (timm / MONAI style), with a task tag per model.

Every network is registered under a short name and a task, and built with :func:`create_model`::

    from medmodal.models import create_model, list_models
    seg = create_model("dmafnet", modalities=("flair", "t1", "t1ce", "t2"), num_classes=4, widths=(8, 16, 32))
    cm = create_model("cmcgns", image_encoder="resnet18", image_size=128)   # task "image_text"
    list_models(task="segmentation")                                           # ["dmafnet", "mmformer", ...]

Tasks and their contracts:

``"segmentation"`` (default task; checked by the registry-driven tests in ``tests/models``):

* a plain :class:`torch.nn.Module` built as ``factory(modalities=..., num_classes=..., **kwargs)``;
* attributes ``modalities`` (tuple of sequence names, the channel order of its input) and
  ``num_classes``;
* ``forward(images [B, M, *spatial] float, modality_mask [B, M] bool) -> logits [B, num_classes, *spatial]``,
  where a sample may have any non-empty subset of sequences and a batch may mix subsets; a
  sample with no sequence raises :class:`ValueError`.

``"image_text"`` (image-report pre-training, :mod:`medmodal.models.image_text`): built as
``factory(**kwargs)`` (the fields of the model's config dataclass); the model offers
``compute_losses(batch, stage=..., update_clusters=...) -> dict`` of named losses with ``"loss"`` the
total, ``encode_image(images) -> [B, E]`` and ``encode_text(...) -> [B, E]`` (L2-normalised).

``"endoscopy"`` (MICS, :mod:`medmodal.models.endoscopy`): built as ``factory(**kwargs)``, with
``modalities`` / ``num_classes`` passed on when given; classifiers take
``forward(images [B, M, 3, S, S], modality_mask [B, M] bool) -> logits [B, K]``, pre-training models
offer ``compute_losses(wli, nbi) -> dict``.
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

from torch import nn

from medmodal.errors import UnknownNameError

__all__ = ["register_model", "create_model", "list_models", "get_model_factory", "get_model_task", "TASKS"]

#: the known tasks; each has its own construction contract (module docstring)
TASKS = ("segmentation", "image_text", "endoscopy")

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_TASKS: dict[str, str] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str, task: str = "segmentation") -> Callable[[F], F]:
    """Class / function decorator registering a model factory under ``name`` (case-insensitive).

    Args:
        name: the registry name.
        task: one of :data:`TASKS`; decides how :func:`create_model` builds the model.

    Re-registering the *same* object (e.g. on module reload) is allowed; registering a different
    object under a taken name, or an unknown task, raises :class:`ValueError`.
    """
    key = name.strip().lower()
    if not key:
        raise ValueError("model name must be a non-empty string")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r} for model {key!r}; known tasks: {', '.join(TASKS)}")

    def decorator(factory: F) -> F:
        existing = _REGISTRY.get(key)
        if existing is not None and _qualname(existing) != _qualname(factory):
            raise ValueError(f"model name {key!r} is already registered to {_qualname(existing)}")
        _REGISTRY[key] = factory
        _TASKS[key] = task
        return factory

    return decorator


def _qualname(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def list_models(task: str | None = None) -> list[str]:
    """Sorted names of the registered models, all of them or those of one ``task``.

    Raises:
        ValueError: ``task`` is not one of :data:`TASKS`.
    """
    if task is None:
        return sorted(_REGISTRY)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    return sorted(name for name in _REGISTRY if _TASKS.get(name) == task)


def get_model_task(name: str) -> str:
    """The task a registered model was registered under; :class:`KeyError` for an unknown name."""
    get_model_factory(name)
    return _TASKS[str(name).strip().lower()]


def get_model_factory(name: str) -> Callable[..., nn.Module]:
    """The registered class / function for ``name``; :class:`KeyError` listing known names otherwise."""
    key = str(name).strip().lower()
    try:
        return _REGISTRY[key]
    except KeyError:
        known = ", ".join(list_models()) or "(none)"
        raise UnknownNameError(f"unknown model {name!r}; known models: {known}") from None


def create_model(name: str, modalities: Sequence[str] | None = None, num_classes: int | None = None,
                 **kwargs) -> nn.Module:
    """Build the registered model ``name``.

    Args:
        name: registered model name (see :func:`list_models`).
        modalities: segmentation only (required there): sequence names in input-channel order,
            e.g. ``("flair", "t1", "t1ce", "t2")``.
        num_classes: segmentation only (required there): output classes including background.
        **kwargs: model-specific options (for DMAF-Net the fields of ``DMAFNetConfig``, for
            CM-CGNS those of ``CMCGNSConfig``).

    Raises:
        KeyError: unknown ``name`` (the message lists the known names).
        ValueError: segmentation: missing, empty or duplicate ``modalities``, ``num_classes`` missing
            or ``< 1``; image-text: ``modalities`` / ``num_classes`` given (they have no meaning there).
    """
    factory = get_model_factory(name)
    task = get_model_task(name)
    if task == "endoscopy":
        extra = {k: v for k, v in (("modalities", modalities), ("num_classes", num_classes)) if v is not None}
        return factory(**extra, **kwargs)
    if task != "segmentation":
        if modalities is not None or num_classes is not None:
            raise ValueError(f"model {name!r} (task {task!r}) takes no modalities / num_classes; "
                             "pass its config fields as keyword arguments")
        return factory(**kwargs)
    if modalities is None or num_classes is None:
        raise ValueError(f"segmentation model {name!r} needs modalities=... and num_classes=...")
    modalities = tuple(str(m) for m in modalities)
    if not modalities:
        raise ValueError("a model needs at least one input sequence (modalities is empty)")
    if len(set(modalities)) != len(modalities):
        raise ValueError(f"duplicate sequence names in modalities: {list(modalities)}")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return factory(modalities=modalities, num_classes=int(num_classes), **kwargs)
