"""The common run options of every training command (preset, config, ``--set``, out, seed, resume),
declared once here, and how a run's result is printed.

A training command declares its own flags plus these options::

    preset: Optional[str] = preset_option("cxr", "pretrain"),
    config: Optional[Path] = ConfigOpt,
    override: list[str] = SetOpt,
    out: Optional[Path] = out_option("runs/pretrain/<model>-<data>-seed<seed>"),
    seed: Optional[int] = seed_option("42"),
    resume: str = ResumeOpt,

and its body keeps only what its own flags do::

    cfg = run_config(load_pretrain_config, config, preset, override, out=out, seed=seed)
    cfg.data.root = ...                      # the command's own flags
    run_and_report(run_pretraining, cfg, resume, report=lambda result: ...)

:func:`run_and_report` validates the patched config, runs it, and prints (on the global rank 0
only) the run's notes, ``finished run found`` for a skipped run, the command's own summary, and the
run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import typer

from medmodal.cli.common import console
from medmodal.config import preset_names
from medmodal.config.core import legacy_preset_names

if TYPE_CHECKING:  # the engine (torch, Lightning) is imported when a command runs, not by --help
    from medmodal.engine.run import RunResult

__all__ = ["run_config", "run_and_report", "print_result", "RESUME_HELP", "ConfigOpt", "SetOpt", "ResumeOpt",
           "preset_option", "out_option", "seed_option"]

#: the help of every training command's ``--resume`` (the meaning: :mod:`medmodal.engine.run`)
RESUME_HELP = "auto (skip a finished run, else continue from last.ckpt) | never | PATH"

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config file (keys as in the presets; default: the "
                         "paper's defaults)")
SetOpt = typer.Option([], "--set", help="override a config value, e.g. --set optim.lr=1e-4 (repeatable; the "
                      "keys are those of the presets)")
ResumeOpt = typer.Option("auto", "--resume", help=RESUME_HELP)


def preset_option(family: str, verb: str):
    """``--preset``, its help listing the family's packaged presets of ``verb`` (``configs/<family>/<verb>_*``)."""
    names = [name.split("/", 1)[1] for name in preset_names(family) if name.split("/", 1)[1].startswith(f"{verb}_")]
    legacy = [old for old in legacy_preset_names(family, f"{verb}_") if old not in names]
    old = f" (deprecated names, still accepted: {', '.join(legacy)})" if legacy else ""
    return typer.Option(None, "--preset", help=f"packaged config: {' | '.join(names)}{old}")


def out_option(default: str):
    """``--out`` / ``-o``: the run folder, ``default`` saying where it goes otherwise."""
    return typer.Option(None, "--out", "-o", help=f"run folder (overrides out_dir; default {default})")


def seed_option(default: str):
    """``--seed``: ``trainer.seed`` (``default`` names the family's reference seed)."""
    return typer.Option(None, "--seed", help=f"training seed (trainer.seed; default {default})")


def run_config(load: Callable[..., Any], config: Optional[Path], preset: Optional[str], overrides: Sequence[str],
               *, out: Optional[Path] = None, seed: Optional[int] = None, **load_options) -> Any:
    """The run config from ``--preset`` or ``--config`` (else the defaults) with the ``--set`` items,
    then ``--out`` (``out_dir``) and ``--seed`` (``trainer.seed``) when given.

    ``load(path, preset, overrides, **load_options)`` is the family's loader (a call of
    :func:`medmodal.config.load_run_config`).
    """
    cfg = load(config, preset, list(overrides), **load_options)
    if seed is not None:
        cfg.trainer.seed = int(seed)
    if out is not None:
        cfg.out_dir = str(out)
    return cfg


def print_result(result: "RunResult", report: Optional[Callable[["RunResult"], None]] = None) -> None:
    """Notes, ``finished run found`` (a skipped run), the command's ``report``, the run folder."""
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    if result.skipped:
        console.print(f"finished run found (--resume never to train again): {result.run_dir}", highlight=False,
                      soft_wrap=True)
    if report is not None:
        report(result)
    console.print(f"run folder: {result.run_dir}", highlight=False, soft_wrap=True)


def run_and_report(run: Callable[..., "RunResult"], cfg: Any, resume: str,
                   report: Optional[Callable[["RunResult"], None]] = None) -> "RunResult":
    """``cfg.validate()``, ``run(cfg, resume=resume)`` and, on the global rank 0 (under DDP every process
    runs the command; one reports), :func:`print_result`."""
    from medmodal.distributed import is_global_zero

    cfg.validate()
    result = run(cfg, resume=resume)
    if is_global_zero():
        print_result(result, report)
    return result
