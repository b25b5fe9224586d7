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
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import lightning as L

from medmodal.engine.trainer import expected_eval_mode_modules, find_resume_checkpoint, finished_run

__all__ = ["RunResult", "finished_result", "fit"]

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
                    artefacts: Mapping | None = None) -> RunResult | None:
    """The stored result of a finished run (``resume="auto"`` and ``marker`` present), else ``None``
    (see :func:`medmodal.engine.trainer.finished_run`: paths are rebased onto ``run_dir``)."""
    done = finished_run(run_dir, resume, marker)
    return None if done is None else RunResult.from_dict(done, artefacts)


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
