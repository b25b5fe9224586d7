"""The one shape of every family's benchmark and speed suite.

* :class:`Method`: one benchmark entry (a row of the report); each family reads the fields it needs.
* :class:`Profile`: the fields every benchmark profile has (name, seeds, note); a family's profile
  subclasses it with its own data size, budget and model size.
* :class:`BenchmarkSuite`: a family's methods, profiles and ``run(out, profile, methods, seeds, **options)
  -> report folder``.
* :class:`SpeedSuite`: a family's speed settings dataclass, ``run(settings, out) -> report dict`` and
  ``format_report(report) -> markdown``; timing goes through :mod:`medmodal.experiments.timing`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BenchmarkSuite", "Method", "Profile", "SpeedSuite"]


@dataclass(frozen=True)
class Method:
    """A benchmark entry. Fields a family does not use keep their defaults.

    Attributes:
        model: the registered model the entry trains (segmentation: the network; chest X-ray: the
            ``image_text`` model pre-trained before the downstream tasks). ``None``: none.
        model_kwargs: model overrides (segmentation ablations, e.g. ``{"fusion": "mean"}``).
        loss: loss-section overrides (segmentation: distillation / DTM switches).
        init: chest X-ray: encoder initialisation of an entry without pre-training (``"random"`` |
            ``"imagenet"``); ``None``: the encoder pre-trained as ``model``.
        pretrain: endoscopy: the pre-training variant the entry fine-tunes from (a key of
            ``PRETRAIN_VARIANTS``); ``None``: no pre-training.
        overrides: ``--set`` overrides of the entry's (fine-tuning) run config, in order.
        ablation: reported in the ablation table rather than the method comparison.
    """

    model: str | None = None
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    loss: Mapping[str, Any] = field(default_factory=dict)
    init: str | None = None
    pretrain: str | None = None
    overrides: tuple[str, ...] = ()
    ablation: bool = False


@dataclass(kw_only=True)
class Profile:
    """What every benchmark profile states; a family's profile adds its data, budget and model size.

    Attributes:
        seeds: training seeds run by default. name: the profile's name (reported). note: one line on
            what the profile is for (reported).
    """

    seeds: tuple[int, ...] = (0,)
    name: str = "custom"
    note: str = ""


@dataclass(frozen=True)
class BenchmarkSuite:
    """A family's benchmark: ``run(out, profile="cpu-quick", methods=None, seeds=None, *, data=None,
    on_run=None, **family options) -> Path`` (the report folder); ``profile``: a name of ``profiles``
    or a :class:`Profile`; ``methods``: names of ``methods`` (``None``: the profile's); ``data``: the
    user's own data set (``None``: built-in synthetic data in ``OUT/data``)."""

    family: str
    methods: Mapping[str, Method]
    profiles: Mapping[str, Profile]
    run: Callable[..., Path]


@dataclass(frozen=True)
class SpeedSuite:
    """A family's speed benchmark: ``settings`` (a dataclass of what is timed), ``run(settings, out) ->
    report dict`` (also written as JSON under ``out``) and ``format_report(report) -> str`` (markdown)."""

    family: str
    settings: type
    run: Callable[..., dict]
    format_report: Callable[[dict], str]
