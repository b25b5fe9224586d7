"""What every family's run function shares: the run result and the one meaning of ``resume``.

Every ``run_<verb>(cfg, resume="auto")`` of an engine (``engine/*/train.py``) returns a
:class:`RunResult`. ``resume`` means the same everywhere:

* ``"auto"``: a *finished* run in the folder is not trained again: its stored result is returned with
  ``skipped=True``; an unfinished one continues from ``checkpoints/last.ckpt`` (bit-identically);
  an empty folder starts fresh.
* ``"never"``: train from scratch into the folder.
* a path: continue from that Lightning checkpoint.

A run is *finished* when its completion marker is present: ``metrics.json`` (written last) for the
CXR pre-training / fine-tuning and MICS engines; for the segmentation engine the model bundle
``model/`` and ``train_time.json`` recording as many epochs as ``trainer.max_epochs`` asks (so raising
``max_epochs`` continues the run).

Either way the run's stored ``config.yaml`` is compared with the config asked for
(:func:`warn_config_changes`): a finished run reported, or an unfinished one continued, under another
config is named in one :class:`~medmodal.notices.InputWarning` with the keys that differ, never silently.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import lightning as L
import torch
import yaml

from medmodal.config import config_to_dict
from medmodal.distributed import is_global_zero
from medmodal.engine.trainer import expected_eval_mode_modules, find_resume_checkpoint, finished_run
from medmodal.errors import ConfigError, InputError
from medmodal.notices import warn

__all__ = ["RunResult", "finished_result", "fit", "config_changes", "warn_config_changes",
           "removes_new_files_on_input_error", "refuse_run_dir_in_data", "json_finite", "restore_best"]

#: keys whose change does not make another run (where it goes, how it is shown)
_NOT_COMPARED = ("out_dir", "trainer.progress_bar", "trainer.log_every_n_steps", "data.num_workers")

_FIELDS = ("run_dir", "skipped", "notes")


@dataclass
class RunResult(Mapping):
    """The outcome of one run.

    Attributes:
        run_dir: the run folder.
        skipped: a finished run was found (``resume="auto"``) and not trained again.
        notes: lines for the user (what was derived, changed or skipped), printed by the CLI.
        metrics: everything else the engine reports (the content of its ``metrics.json``: test
            metrics, counts, epochs, ``train_seconds`` ...).
        artefacts: name -> path of what the run wrote for later use (``model``, ``export``,
            ``encoders`` ...), see :mod:`medmodal.bundle`.
        seconds: training wall time (``train_seconds``; summed over resumed sessions), if known.

    A ``RunResult`` reads like the dicts the run functions returned before (``result["notes"]``,
    ``result["test"]``, ``result.get("skipped")``, ``{**result}``: ``run_dir``, ``skipped``,
    ``notes``, then the metrics), and like the run folder the segmentation engine returned
    (``os.fspath(result)``, ``result / "model"``).
    """

    run_dir: str
    skipped: bool = False
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    artefacts: dict[str, str] = field(default_factory=dict)
    seconds: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping, artefacts: Mapping | None = None) -> "RunResult":
        """From an engine's flat result (``run_dir``, ``notes``, ``skipped`` and any metrics)."""
        data = dict(data)
        run_dir = str(data.pop("run_dir"))
        skipped = bool(data.pop("skipped", False))
        notes = list(data.pop("notes", []) or [])
        seconds = data.get("train_seconds")
        return cls(run_dir=run_dir, skipped=skipped, notes=notes, metrics=data,
                   artefacts={k: str(v) for k, v in (artefacts or {}).items()},
                   seconds=None if seconds is None else float(seconds))

    @property
    def path(self) -> Path:
        """The run folder as a ``Path``."""
        return Path(self.run_dir)

    def to_dict(self) -> dict[str, Any]:
        """The flat form: ``run_dir``, ``skipped``, ``notes`` and the metrics."""
        return {"run_dir": self.run_dir, "skipped": self.skipped, "notes": self.notes, **self.metrics}

    # ------------------------------------------------------------------ dict-style reading
    def __getitem__(self, key: str) -> Any:
        if key in _FIELDS:
            return getattr(self, key)
        return self.metrics[key]

    def __iter__(self) -> Iterator[str]:
        yield from _FIELDS
        yield from (k for k in self.metrics if k not in _FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS) + sum(1 for k in self.metrics if k not in _FIELDS)

    # ------------------------------------------------------------------ path-style reading
    def __fspath__(self) -> str:
        return self.run_dir

    def __truediv__(self, other: str | os.PathLike) -> Path:
        return self.path / other


def finished_result(run_dir: Path, resume: str | None, marker: str = "metrics.json",
                    artefacts: Mapping | None = None, cfg: Any = None,
                    not_compared: Iterable[str] = ()) -> RunResult | None:
    """The stored result of a finished run (``resume="auto"`` and ``marker`` present), else ``None``
    (see :func:`medmodal.engine.trainer.finished_run`: paths are rebased onto ``run_dir``). With ``cfg``,
    a stored config that differs is warned about (:func:`warn_config_changes`); ``not_compared`` names keys
    the run fills in itself later (from the data), which the requested ``cfg`` cannot hold yet."""
    done = finished_run(run_dir, resume, marker)
    if cfg is not None:
        warn_config_changes(run_dir, cfg, resume, finished=done is not None, not_compared=not_compared)
    return None if done is None else RunResult.from_dict(done, artefacts)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def config_changes(run_dir: str | os.PathLike, cfg: Any, not_compared: Iterable[str] = ()) -> list[str]:
    """The dotted keys whose value in ``cfg`` differs from the run's stored ``config.yaml`` (keys only one
    side has included; where the run goes and how it is shown, and the keys ``not_compared``, are not
    compared); ``[]`` without a stored config. An unreadable stored config counts as ``["config.yaml"]``."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return []
    try:
        stored = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return ["config.yaml"]
    old, new = _flat(stored), _flat(config_to_dict(cfg))
    skip = set(_NOT_COMPARED) | set(not_compared)
    return sorted(key for key in set(old) | set(new)
                  if key not in skip and old.get(key, "<absent>") != new.get(key, "<absent>"))


def warn_config_changes(run_dir: str | os.PathLike, cfg: Any, resume: str | None, finished: bool,
                        not_compared: Iterable[str] = ()) -> None:
    """One :class:`~medmodal.notices.InputWarning` when ``resume="auto"`` reports a finished run, or continues
    an unfinished one from ``last.ckpt``, whose stored config differs from ``cfg`` (the keys named)."""
    if resume != "auto":
        return
    if not finished and not (Path(run_dir) / "checkpoints" / "last.ckpt").is_file():
        return
    changed = config_changes(run_dir, cfg, not_compared)
    if not changed:
        return
    shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
    if finished:
        warn(f"{run_dir}: the finished run there was trained with another config (differs: {shown}); it is "
             f"reported, not retrained: give another output folder, or --resume never to train it again")
    else:
        warn(f"{run_dir}: continuing from checkpoints/last.ckpt of a run with another config (differs: {shown}); "
             f"give another output folder, or --resume never to start again")


def fit(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule, run_dir: Path,
        resume: str | None, *, eval_mode_expected: bool = False, existing_checkpoints_expected: bool = False) -> None:
    """``trainer.fit`` from the checkpoint ``resume`` names (:func:`find_resume_checkpoint`).

    Args:
        eval_mode_expected: the module keeps frozen parts in eval mode on purpose: Lightning's warning
            about it is silenced (:func:`medmodal.engine.trainer.expected_eval_mode_modules`).
        existing_checkpoints_expected: silence Lightning's "Checkpoint directory exists" warning also
            when not resuming (it is always silenced when resuming: the folder holds the run's own).
    """
    ckpt_path = find_resume_checkpoint(run_dir, resume)
    with warnings.catch_warnings():
        if ckpt_path is not None or existing_checkpoints_expected:
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        if eval_mode_expected:
            with expected_eval_mode_modules():
                trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        else:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)


def _remove_new_files(run_dir: Path, started: float, existed: bool | None) -> None:
    """Remove what a run that failed before training wrote into ``run_dir`` (entries modified since
    ``started``), then the folder itself when it is empty and was made by the run. Nothing is removed
    once ``checkpoints/`` exists: a run that has trained keeps its files to continue from."""
    if not run_dir.is_dir() or (run_dir / "checkpoints").exists():
        return
    for entry in run_dir.iterdir():
        if entry.lstat().st_mtime >= started:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    made_by_run = existed is False or (existed is None and run_dir.stat().st_ctime >= started)
    if made_by_run and not any(run_dir.iterdir()):
        run_dir.rmdir()


def removes_new_files_on_input_error(run):
    """Decorator of a family's ``run_<verb>(cfg, ...)``: bad input met before training (a missing folder, a
    truncated image, a refused option) leaves no half-made run folder behind (no ``config.yaml``,
    ``splits.json`` or ``logs/`` of a run that never trained; the folder goes too when the run made it).
    The error is re-raised unchanged; anything else (a bug, an interrupt) leaves the folder as it is."""

    @functools.wraps(run)
    def wrapper(cfg, *args, **kwargs):
        started = time.time() - 0.01  # file times may be a little coarser than the clock
        given = getattr(cfg, "out_dir", None)
        existed = Path(given).exists() if given else None
        try:
            return run(cfg, *args, **kwargs)
        except (InputError, OSError):
            out_dir = getattr(cfg, "out_dir", None)
            if out_dir and is_global_zero():
                _remove_new_files(Path(out_dir), started, existed)
            raise

    return wrapper


def refuse_run_dir_in_data(run_dir: Path, data_roots: Iterable) -> None:
    """Raises ConfigError: the run folder is one of the data set roots (sources, targets) or inside one."""
    out = Path(os.path.abspath(run_dir))
    for root in data_roots:
        root = Path(os.path.abspath(Path(root).expanduser()))
        if out == root or root in out.parents:
            raise ConfigError(f"{out}: the run folder is {'the' if out == root else 'inside the'} data set {root}; "
                              f"choose another --out (out_dir)")


def json_finite(value):
    """``value`` (nested dicts / lists) with NaN (an undefined score) as ``None``, for JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_finite(v) for v in value]
    return value


def restore_best(trainer: L.Trainer, module: L.LightningModule, run_dir: Path, validate: bool,
                 monitor: str = "val/dice") -> tuple[Path, float | None]:
    """Load the checkpoint a run is scored with into ``module`` (eval mode): ``checkpoints/best.ckpt`` when the run
    validated and wrote it, else ``checkpoints/last.ckpt``. Returns ``(that checkpoint, best monitored value or
    None)``; the checkpoint is read with ``weights_only=True``."""
    best = Path(run_dir) / "checkpoints" / "best.ckpt"
    ckpt = best if validate and best.is_file() else Path(run_dir) / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    module.eval()
    score = None
    for cb in trainer.checkpoint_callbacks:
        if getattr(cb, "monitor", None) == monitor and cb.best_model_score is not None:
            score = float(cb.best_model_score)
    return ckpt, score
