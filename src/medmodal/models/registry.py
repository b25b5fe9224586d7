"""Model registry (timm / MONAI style) with open model contracts.

Every network is registered under a short name and a *contract* (the ``task`` tag), and built with
:func:`create_model`::

    from medmodal.models import create_model, list_models
    seg = create_model("dmafnet", modalities=("flair", "t1", "t1ce", "t2"), num_classes=4, widths=(8, 16, 32))
    cm = create_model("cmcgns", image_encoder="resnet18", image_size=128)   # contract "image_text"
    list_models(task="segmentation")                                           # ["dmafnet", "mmformer", ...]

A contract (:class:`ModelContract`) says how a factory is called (``build``) and what the registry
sweep test (``tests/models/test_contracts.py``) verifies for every model registered under it
(``check``). A family registers its own contract next to its models with :func:`register_contract`;
nothing here names a family. The contracts of this package:

* ``"segmentation"`` (:mod:`medmodal.models.segmentation.contract`; the default of
  :func:`register_model`): ``factory(modalities=..., num_classes=..., **kwargs)``;
  ``forward(images [B, M, *spatial], modality_mask [B, M] bool) -> logits [B, K, *spatial]`` for any
  non-empty subset of sequences, absent inputs never leak.
* ``"image_text"`` (:mod:`medmodal.models.image_text.contract`): ``factory(**kwargs)``;
  ``compute_losses(batch, stage=..., update_clusters=...) -> {"loss", ...}``, L2-normalised
  ``encode_image`` / ``encode_text``.
* ``"paired_views"`` (alias ``"endoscopy"``; :mod:`medmodal.models.endoscopy.contract`):
  ``factory(**kwargs)`` with ``modalities`` / ``num_classes`` passed on when given; classifiers take
  ``forward(images [B, M, 3, S, S], modality_mask [B, M] bool) -> logits [B, K]`` and predict from a
  single view; pre-training models expose one token encoder per view.
* ``"heads"`` (:mod:`medmodal.models.downstream.contract`): ``factory(encoder=DownstreamEncoder, **options)``;
  a task head (``linear_classifier``, ``unet_segmenter``, ``yolov3_detector``) on an exported image encoder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Callable, Mapping, Sequence, TypeVar

from torch import nn

from medmodal.errors import ConfigError, UnknownNameError, UnknownOptionError

__all__ = ["register_model", "create_model", "list_models", "get_model_factory", "get_model_task", "TASKS",
           "ModelContract", "register_contract", "get_contract", "list_contracts", "get_tiny_kwargs",
           "UnknownModelError", "model_config", "unregister_model", "unregister_contract"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_TASKS: dict[str, str] = {}
_TINY: dict[str, dict[str, Any]] = {}
_CONTRACTS: dict[str, "ModelContract"] = {}
_ALIASES: dict[str, str] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


class UnknownModelError(UnknownNameError):
    """An unknown model name: a user-input error (:class:`~medmodal.errors.ConfigError`, one line in
    the CLI) that is still a :class:`KeyError` for callers that caught the old error."""


C = TypeVar("C")


def model_config(cls: type[C], config: C | Mapping[str, Any] | None = None, **overrides) -> C:
    """The one constructor shape's config: ``cls`` (a dataclass) from ``config`` (an instance of it, or
    a mapping of its fields, or ``None``) with ``overrides`` on top.

    The options come from a user's config (``model.kwargs``, ``loss``), so what is wrong with them is
    an input error: one line on the command line.

    Raises:
        UnknownOptionError: a key that is not a field of ``cls`` (the message lists the known ones; also a
            ``TypeError``). ConfigError: the dataclass refuses a value (its ``__post_init__`` check).
    """
    base = asdict(config) if is_dataclass(config) and not isinstance(config, type) else dict(config or {})
    base.update(overrides)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(base) - known)
    if unknown:
        raise UnknownOptionError(f"unknown {cls.__name__} option(s) {unknown}; known: {sorted(known)}")
    try:
        return cls(**base)
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{cls.__name__}: {err}") from None


def _default_build(factory: Callable[..., nn.Module], name: str, modalities: Sequence[str] | None,
                   num_classes: int | None, **kwargs) -> nn.Module:
    extra = {k: v for k, v in (("modalities", modalities), ("num_classes", num_classes)) if v is not None}
    return factory(**extra, **kwargs)


@dataclass(frozen=True)
class ModelContract:
    """What a family promises about every model registered under it.

    Attributes:
        name: the contract (task) name, e.g. ``"segmentation"``.
        build: ``build(factory, name, modalities, num_classes, **kwargs) -> nn.Module``: how
            :func:`create_model` calls a registered factory (validation of ``modalities`` /
            ``num_classes`` included; raise :class:`ValueError` for bad arguments). Default: pass
            ``modalities`` / ``num_classes`` on when given.
        check: ``check(name, tiny_kwargs) -> None``: builds a tiny instance of the registered model
            ``name`` (``create_model(name, **tiny_kwargs)`` plus whatever the contract needs) and
            asserts the contract (``AssertionError`` otherwise). ``None`` makes the sweep test fail
            for every model registered under the contract.
        tiny: default keyword arguments for a CPU-cheap instance in ``check`` (a model's own
            ``register_model(..., tiny=...)`` is merged over them).
        aliases: other names accepted wherever a contract name is (old task tags).
        doc: one paragraph for users.
    """

    name: str
    build: Callable[..., nn.Module] = _default_build
    check: Callable[[str, Mapping[str, Any]], None] | None = None
    tiny: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    doc: str = ""


def register_contract(contract: ModelContract) -> ModelContract:
    """Register a model contract (and its aliases).

    Re-registering a contract of the same name replaces it only if its ``build`` is the same object
    (module reload); otherwise, or when a name / alias is taken by another contract, raises
    :class:`ValueError`.
    """
    key = contract.name.strip().lower()
    if not key:
        raise ValueError("contract name must be a non-empty string")
    existing = _CONTRACTS.get(key)
    if existing is not None and _qualname(existing.build) != _qualname(contract.build):
        raise ValueError(f"contract {key!r} is already registered")
    for alias in contract.aliases:
        taken = _ALIASES.get(alias, alias if alias in _CONTRACTS else None)
        if taken is not None and taken != key:
            raise ValueError(f"contract alias {alias!r} is already taken by {taken!r}")
    _CONTRACTS[key] = contract
    for alias in contract.aliases:
        _ALIASES[alias] = key
    return contract


def unregister_contract(name: str) -> None:
    """Undo :func:`register_contract` (tests and plug-ins that register a contract of their own): the
    contract, its aliases and every model registered under it. An unknown name does nothing."""
    key = _canonical_task(name)
    if key is None:
        return
    for model in [m for m, task in _TASKS.items() if task == key]:
        unregister_model(model)
    for alias in [a for a, target in _ALIASES.items() if target == key]:
        del _ALIASES[alias]
    del _CONTRACTS[key]


def _canonical_task(task: str) -> str | None:
    task = str(task).strip().lower()
    if task in _CONTRACTS:
        return task
    return _ALIASES.get(task)


def list_contracts() -> list[str]:
    """Sorted names of the registered contracts (aliases not included)."""
    return sorted(_CONTRACTS)


def get_contract(task: str) -> ModelContract:
    """The contract registered as ``task`` (or one of its aliases); :class:`ValueError` otherwise."""
    key = _canonical_task(task)
    if key is None:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(_known_task_names())}")
    return _CONTRACTS[key]


def _known_task_names() -> list[str]:
    return sorted([*_CONTRACTS, *_ALIASES])


def __getattr__(name: str):
    if name == "TASKS":  # old constant: the known task names, aliases included
        return tuple(_known_task_names())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_model(name: str, task: str = "segmentation", *, tiny: Mapping[str, Any] | None = None
                   ) -> Callable[[F], F]:
    """Class / function decorator registering a model factory under ``name`` (case-insensitive).

    Args:
        name: the registry name.
        task: a registered contract name or alias (:func:`list_contracts`); decides how
            :func:`create_model` builds the model and what the sweep test checks.
        tiny: keyword arguments for a CPU-cheap instance in the contract check (merged over the
            contract's ``tiny``).

    Re-registering the *same* object (e.g. on module reload) is allowed; registering a different
    object under a taken name, or an unknown task, raises :class:`ValueError`.
    """
    key = name.strip().lower()
    if not key:
        raise ValueError("model name must be a non-empty string")
    contract = get_contract(task).name if _canonical_task(task) is not None else None
    if contract is None:
        raise ValueError(f"unknown task {task!r} for model {key!r}; known tasks: {', '.join(_known_task_names())}")

    def decorator(factory: F) -> F:
        existing = _REGISTRY.get(key)
        if existing is not None and _qualname(existing) != _qualname(factory):
            raise ValueError(f"model name {key!r} is already registered to {_qualname(existing)}")
        _REGISTRY[key] = factory
        _TASKS[key] = contract
        if tiny is not None:
            _TINY[key] = dict(tiny)
        return factory

    return decorator


def unregister_model(name: str) -> None:
    """Undo :func:`register_model` for ``name`` (tests and plug-ins); an unknown name does nothing."""
    key = str(name).strip().lower()
    for table in (_REGISTRY, _TASKS, _TINY):
        table.pop(key, None)


def _qualname(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def list_models(task: str | None = None) -> list[str]:
    """Sorted names of the registered models, all of them or those of one ``task`` (contract name or alias).

    Raises:
        ValueError: ``task`` is not a registered contract.
    """
    if task is None:
        return sorted(_REGISTRY)
    key = get_contract(task).name
    return sorted(name for name in _REGISTRY if _TASKS.get(name) == key)


def get_model_task(name: str) -> str:
    """The contract a registered model was registered under (its canonical name, e.g.
    ``"paired_views"`` for a model registered as ``"endoscopy"``); :class:`UnknownModelError` for an unknown name."""
    get_model_factory(name)
    return _TASKS[str(name).strip().lower()]


def get_tiny_kwargs(name: str) -> dict[str, Any]:
    """Keyword arguments of a CPU-cheap instance of ``name`` for its contract check (contract defaults
    overridden by the model's own ``tiny``; a model's ``None`` drops a contract default its config lacks)."""
    contract = get_contract(get_model_task(name))
    merged = {**contract.tiny, **_TINY.get(str(name).strip().lower(), {})}
    return {k: v for k, v in merged.items() if v is not None}


def get_model_factory(name: str) -> Callable[..., nn.Module]:
    """The registered class / function for ``name``.

    Raises:
        UnknownModelError: (a :class:`~medmodal.errors.ConfigError` and a :class:`KeyError`) unknown
            name; the message lists the known names.
    """
    key = str(name).strip().lower()
    try:
        return _REGISTRY[key]
    except KeyError:
        known = ", ".join(list_models()) or "(none)"
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}") from None


def create_model(name: str, modalities: Sequence[str] | None = None, num_classes: int | None = None,
                 **kwargs) -> nn.Module:
    """Build the registered model ``name`` through its contract's ``build``.

    Args:
        name: registered model name (see :func:`list_models`).
        modalities: sequence / view names in input-channel order, e.g. ``("flair", "t1", "t1ce", "t2")``
            (required by the segmentation contract, optional for paired views, refused by image-text).
        num_classes: output classes (the same rules as ``modalities``).
        **kwargs: model-specific options (for DMAF-Net the fields of ``DMAFNetConfig``, for
            CM-CGNS those of ``CMCGNSConfig``).

    Raises:
        UnknownModelError: unknown ``name`` (the message lists the known names).
        ValueError: the contract's checks: segmentation: missing, empty or duplicate ``modalities``,
            ``num_classes`` missing or ``< 1``; image-text: ``modalities`` / ``num_classes`` given.
    """
    factory = get_model_factory(name)
    contract = get_contract(get_model_task(name))
    return contract.build(factory, name, modalities, num_classes, **kwargs)
