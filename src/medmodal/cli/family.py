"""The family registry of the command line: one :class:`Family` per method family, one list.

A family is what a user names first on the command line (``medmodal <family> <verb>``): ``seg``
(every segmentation method), ``cxr`` (chest X-ray image-report pre-training and the downstream
suite), ``endoscopy`` (paired white-light / narrow-band images). Each family owns one Typer app
holding its verbs, its data verbs included (``synth``, ``summary``, ``split``, ...), and names
its packaged presets, its benchmark and speed suites and its demo verb.

:func:`register_family` mounts a family on the root app and registers its old spellings as hidden
aliases; it may be called after import (a family defined in a test or a plug-in mounts itself the
same way as the built-in ones, see :mod:`medmodal.cli.main`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import typer

from medmodal.cli.common import app as root_app
from medmodal.cli.common import data_app, err_console

#: the registered families, in registration order (``medmodal --help`` lists them in this order)
FAMILIES: list["Family"] = []
_MOUNTED: dict[str, list] = {}  # key -> (registry list, entry) pairs register_family added to the Typer apps


@dataclass(frozen=True)
class Alias:
    """An old spelling kept for one release: ``old`` (``"train"``, ``"data synth-brats"``) runs ``func``
    and prints one ``note:`` line on stderr naming ``new`` (``"seg train"``; a callable gets the command's
    keyword arguments and returns the new spelling, for old commands that switched on an option)."""

    old: str
    func: Callable
    new: Union[str, Callable[[dict], str]]


@dataclass
class Family:
    """One method family of the command line.

    ``key``: the first word after ``medmodal``; ``app``: the Typer app with the family's verbs;
    ``presets``: packaged preset names of the family; ``benchmark`` / ``speed``: dotted module path of
    the family's benchmark / speed suite under :mod:`medmodal.experiments` (a string, so that ``--help``
    imports no torch), ``None`` when the family has none; ``demo``: the verb that runs the family's
    demo on built-in data (``None``: none); ``aliases``: old spellings kept for one release.

    What the family sweep (``tests/test_families_sweep.py``) needs, so that it names no family:

    * ``configs``: preset verb -> ``"module:Name"`` of that verb's run config: a ``*RunConfig`` class
      (a preset ``<verb>_<dataset|demo>.yaml`` is loaded with
      :func:`medmodal.config.load_run_config`) or a loader ``Name(path, preset, overrides)`` (a verb
      whose presets hold several config classes, e.g. the CXR fine-tuning tasks); e.g.
      ``{"train": "medmodal.config.segmentation:SegmentationRunConfig"}``. Strings, so that ``--help``
      imports no torch; :func:`load_family_preset` resolves them.
    * ``smoke``: command lines (word lists after ``medmodal``; ``{out}`` is an empty folder) that synthesise
      tiny data and train the demo preset one step on CPU, e.g. ``(("seg", "synth", "{out}/data", "-n", "3"),
      ("seg", "train", "--preset", "train_demo_cpu", "--data", "{out}/data", ...))``; the last one must print
      ``run folder:`` (:func:`medmodal.cli._run.print_result`).
    """

    key: str
    help: str
    app: typer.Typer
    presets: tuple[str, ...] = ()
    benchmark: Optional[str] = None
    speed: Optional[str] = None
    demo: Optional[str] = "demo"
    aliases: tuple[Alias, ...] = field(default_factory=tuple)
    configs: dict[str, str] = field(default_factory=dict)
    smoke: tuple[tuple[str, ...], ...] = ()


def load_family_preset(family: "Family", preset: str, overrides=()):
    """The validated run config of ``family``'s preset ``preset`` (``<verb>_<dataset|demo>``, with or
    without ``<family>/``), through ``family.configs[<verb>]``.

    Raises:
        KeyError: the family names no config for the preset's verb (a programming error of the family).
        ConfigError / FileNotFoundError: as :func:`medmodal.config.load_run_config`.
    """
    import importlib

    from medmodal.config.core import load_run_config

    name = preset.split("/", 1)[-1]
    verb = name.split("_", 1)[0]
    module, _, attr = family.configs[verb].partition(":")
    target = getattr(importlib.import_module(module), attr)
    preset = f"{family.key}/{name}"
    if isinstance(target, type):
        return load_run_config(target, None, preset, list(overrides))
    return target(None, preset, list(overrides))


def deprecation_note(old: str, new: str) -> str:
    """The one line an old spelling prints on stderr."""
    return f"note: 'medmodal {old}' is now 'medmodal {new}'; the old spelling goes in the next release"


def old_spelling(func: Callable, old: str, new: Union[str, Callable[[dict], str]]) -> Callable:
    """``func`` (same options, same help) printing :func:`deprecation_note` first."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        err_console.print(deprecation_note(old, new(kwargs) if callable(new) else new), markup=False,
                          highlight=False, soft_wrap=True)
        return func(*args, **kwargs)

    return wrapper


def family_app(key: str, help: str) -> typer.Typer:
    """A family's Typer app (help on no arguments, as the root app)."""
    return typer.Typer(name=key, help=help, no_args_is_help=True)


def register_family(family: Family, root: typer.Typer = root_app) -> Family:
    """Mount ``family.app`` as ``medmodal <family.key>`` and its old spellings as hidden aliases.

    Returns ``family``. Registering the same key twice raises ``ValueError`` (a programming error)
    unless it is the same :class:`Family` object (then nothing happens).
    """
    for known in FAMILIES:
        if known.key == family.key:
            if known is family:
                return family
            raise ValueError(f"a family {family.key!r} is already registered")
    root.add_typer(family.app, name=family.key, help=family.help)
    added = [(root.registered_groups, root.registered_groups[-1])]
    for alias in family.aliases:
        words = alias.old.split()
        target = data_app if words[0] == "data" and len(words) == 2 else root
        target.command(words[-1], hidden=target is root)(old_spelling(alias.func, alias.old, alias.new))
        added.append((target.registered_commands, target.registered_commands[-1]))
    FAMILIES.append(family)
    _MOUNTED[family.key] = added
    return family


def unregister_family(key: str) -> None:
    """Undo :func:`register_family` (for tests that register a family of their own)."""
    family = get_family(key)
    for registry, entry in _MOUNTED.pop(key, []):
        registry.remove(entry)
    FAMILIES.remove(family)


def get_family(key: str) -> Family:
    """The registered family ``key`` (``KeyError`` if none)."""
    for family in FAMILIES:
        if family.key == key:
            return family
    raise KeyError(key)
