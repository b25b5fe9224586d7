"""The objective contract: every method's losses behind one interface, built by name from config.

An :class:`Objective` is an ``nn.Module`` (it may own parameters, e.g. DMAF-Net's distillation
heads) with::

    out = objective(inputs, context)   # {"loss": total (differentiable scalar), <term>: ..., ...}

* ``inputs``: what the paradigm's step produces: segmentation: the model's ``forward_train`` dict
  (``logits``, ``modality_mask``, auxiliary outputs); image-text: the batch dict; paired views: the
  views dict (``{"wli": [B, 3, S, S], "nbi": ...}``).
* ``context``: a :class:`StepContext`, the few per-step facts an objective may need beyond the inputs
  (the target, per-sequence weights, the pre-training stage, whether state may move, sample ids, and
  the model whose parts the objective uses: the model stays the engine's, so its parameters and
  state-dict keys are not duplicated under the objective).

Besides ``"loss"``, the returned terms are detached scalars for logging unless a subclass documents
otherwise (DMAF-Net adds ``"gaps"`` ``[M]``, the training monitor's per-sequence signal).

Objectives register under a name (:func:`register_objective`) and are built with
:func:`build_objective` from a config's ``loss`` section (``loss.name``; each engine has a default,
so configs and run folders without a name load unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import nn

from medmodal.errors import ConfigError

__all__ = ["Objective", "StepContext", "register_objective", "build_objective", "list_objectives",
           "get_objective_class", "split_objective_config", "unregister_objective"]


@dataclass
class StepContext:
    """Per-step facts an :class:`Objective` may need beyond its inputs (all optional).

    Attributes:
        target: supervised labels (segmentation: ``[B, *S]`` class indices).
        sequence_weights: ``[M]`` per-sequence loss weights (DMAF-Net's training monitor), ``None`` = ones.
        stage: the paradigm's stage (image-text pre-training: 1 or 2).
        update: whether state may move this step (EMA teacher, queues, cluster centroids): ``True`` in
            training, ``False`` in validation; ``None``: the objective's default (``model.training``).
        sample_ids: ``[B]`` int64 stable sample ids (id-aware queues), ``None`` = unknown.
        model: the network whose parts the objective uses (image-text, paired views).
        extra: anything a new paradigm needs (e.g. a teacher's outputs).
    """

    target: torch.Tensor | None = None
    sequence_weights: torch.Tensor | None = None
    stage: int | str | None = None
    update: bool | None = None
    sample_ids: torch.Tensor | None = None
    model: nn.Module | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Objective(nn.Module):
    """Base class of every training objective (module docstring); subclasses implement :meth:`forward`."""

    #: the registry name (set by :func:`register_objective`)
    name: str = ""

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None, **sizes: Any) -> "Objective":
        """Build from a config's ``loss`` options (``name`` already removed) and what the engine knows of
        the model (segmentation: ``feature_channels``, ``num_modalities``, ``num_classes``, ``model_name``).
        Default: ``cls(**options)``, the sizes ignored; an objective that needs them overrides this."""
        return cls(**dict(options or {}))

    def forward(self, inputs: Any, context: StepContext) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError


_OBJECTIVES: dict[str, Callable[..., Objective]] = {}
O = TypeVar("O", bound=Callable[..., Objective])


def register_objective(name: str) -> Callable[[O], O]:
    """Class / function decorator registering an objective factory under ``name`` (case-insensitive).

    Raises:
        ValueError: empty name, or the name is taken by another object.
    """
    key = name.strip().lower()
    if not key:
        raise ValueError("objective name must be a non-empty string")

    def decorator(factory: O) -> O:
        existing = _OBJECTIVES.get(key)
        if existing is not None and f"{existing.__module__}.{existing.__qualname__}" != \
                f"{factory.__module__}.{factory.__qualname__}":
            raise ValueError(f"objective name {key!r} is already registered")
        _OBJECTIVES[key] = factory
        if isinstance(factory, type):
            factory.name = key
        return factory

    return decorator


def unregister_objective(name: str) -> None:
    """Undo :func:`register_objective` (tests and plug-ins); an unknown name does nothing."""
    _OBJECTIVES.pop(str(name).strip().lower(), None)


def list_objectives() -> list[str]:
    """Sorted names of the registered objectives."""
    return sorted(_OBJECTIVES)


def get_objective_class(name: str) -> Callable[..., Objective]:
    """The factory registered as ``name``.

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    key = str(name).strip().lower()
    if key not in _OBJECTIVES:
        raise ConfigError(f"unknown loss.name {name!r}; known objectives: {', '.join(list_objectives()) or '(none)'}")
    return _OBJECTIVES[key]


def split_objective_config(section: Mapping[str, Any] | None, default: str) -> tuple[str, dict[str, Any]]:
    """``(name, options)`` of a config's ``loss`` section: ``name`` popped (``default`` when absent or
    empty), the other keys the objective's options."""
    options = dict(section or {})
    name = options.pop("name", None) or default
    return str(name), options


def build_objective(name: str, **kwargs) -> Objective:
    """Build the objective registered as ``name`` with ``kwargs``.

    Raises:
        ConfigError: unknown ``name``.
    """
    return get_objective_class(name)(**kwargs)
