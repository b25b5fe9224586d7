"""Pieces every training engine shares: atomic checkpoints, resume, quiet Lightning, the Trainer.

Used by every engine (``engine/*/train.py``); each engine passes its ``trainer`` settings and says
what it monitors. :mod:`medmodal.engine.run` builds the run result and the resume rule on top.

Run-folder conventions the trainer builds: ``checkpoints/best.ckpt`` (best value of the monitored
metric) and ``checkpoints/last.ckpt`` (every epoch, overwritten), both written atomically
(temporary file + rename); ``logs/metrics.csv`` (kept across resumed sessions) and
``logs/events.*`` (TensorBoard).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any, Sequence

import lightning as L
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint, Timer
from lightning.pytorch.loggers import TensorBoardLogger

from medmodal.config.common import TrainerSettings
from medmodal.engine.callbacks import RichProgressBarEveryN, TrainingSpeedMonitor
from medmodal.engine.loggers import KeepLogHistoryUntilResumePoint, ResumableCSVLogger
from medmodal.errors import DamagedFileError
from medmodal.io import atomic_path

__all__ = ["AtomicCheckpointIO", "TRAIN_TIME_FILE", "find_resume_checkpoint", "quiet_lightning", "make_trainer",
           "fit_time_seconds"]

#: ``{"train_seconds": ...}`` written into a run folder: fit wall time (training and its
#: validations), summed over interrupted and resumed sessions (Lightning ``Timer`` state).
TRAIN_TIME_FILE = "train_time.json"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints to a temporary file and rename: a crash never leaves a torn ``last.ckpt``.
    Loads with ``weights_only=True`` (no pickled code)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)

    def load_checkpoint(self, path, map_location=None, weights_only=True):
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


def find_resume_checkpoint(run_dir: Path, resume: str | None) -> str | None:
    """``resume``: None/"never" -> start fresh; "auto" -> ``last.ckpt`` if present; else a path.

    Raises:
        FileNotFoundError: ``resume`` is a path that does not exist.
        DamagedFileError: the checkpoint is truncated / damaged (checked before Lightning loads it).
    """
    from medmodal.io import check_torch_file

    if resume in (None, "", "never", "none"):
        return None
    if resume == "auto":
        last = Path(run_dir) / "checkpoints" / "last.ckpt"
        return str(check_torch_file(last)) if last.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint to resume from not found")
    return str(check_torch_file(path))


def finished_run(run_dir: Path, resume: str | None, name: str = "metrics.json") -> dict | None:
    """The stored result of a finished run in ``run_dir`` (``resume="auto"`` and ``name`` present), else ``None``.

    The result is reported for ``run_dir``, the folder asked for: a copied or moved run folder
    keeps the paths of the folder it was written in, so every path under the recorded ``run_dir``
    is rebased onto ``run_dir`` (``--out`` always wins). ``skipped`` is set to ``True``.

    Raises:
        DamagedFileError: the file is not valid JSON (names it).
    """
    from medmodal.io import read_json_file

    done = Path(run_dir) / name
    if resume != "auto" or not done.is_file():
        return None
    result = read_json_file(done)
    if not isinstance(result, dict):
        raise DamagedFileError(f"{done}: not a run result (a JSON object expected); delete it to train again")
    here = str(Path(run_dir))
    recorded = str(result.get("run_dir") or here)

    def rebase(value):
        if isinstance(value, str) and recorded != here and (value == recorded or value.startswith(recorded + "/")):
            return here + value[len(recorded):]
        if isinstance(value, dict):
            return {k: rebase(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rebase(v) for v in value]
        return value

    result = rebase(result)
    result["run_dir"], result["skipped"] = here, True
    return result


def quiet_lightning() -> None:
    """Silence Lightning's tips that are noise for this workflow (not errors or real warnings)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*The number of training batches.*")
    # Lightning's own use of a torch API that torch 2.13 deprecates: nothing a user can act on
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


#: The start of Lightning's ``PossibleUserWarning`` when modules are in eval mode as fit starts
#: (``lightning.pytorch.loops.fit_loop._warn_if_modules_in_eval_mode``, Lightning >= 2.5): "Found N
#: module(s) in eval mode at the start of training. ... If this is intentional, you can ignore this warning."
EVAL_MODE_WARNING = r"Found \d+ module\(s\) in eval mode at the start of training"


@contextlib.contextmanager
def expected_eval_mode_modules():
    """Silence exactly Lightning's "module(s) in eval mode at the start of training" warning, inside the block.

    For engines whose frozen parts stay in eval mode on purpose (a frozen, feature-caching text
    encoder; a frozen downstream encoder with fixed BatchNorm statistics): Lightning says the warning
    may be ignored when intentional. The filter is scoped to this message and category and to the
    block (``warnings.catch_warnings``); every other warning, and this one outside the block, is shown.
    """
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=EVAL_MODE_WARNING, category=PossibleUserWarning)
        yield


def make_trainer(run_dir: Path, settings: TrainerSettings, *, monitor: str, mode: str,
                 grad_clip: float | None = None, precision: str | None = None, max_epochs: int | None = None,
                 use_distributed_sampler: bool = False, extra_callbacks: Sequence[Callback] = (),
                 strategy: Any = "auto", validate: bool = True) -> L.Trainer:
    """A Lightning ``Trainer`` writing into ``run_dir`` with the shared callbacks and loggers.

    Args:
        settings: the run's ``trainer`` section (:class:`medmodal.config.common.TrainerSettings` or a
            family subclass): accelerator, devices, num_nodes, precision, val_every_n_epochs,
            log_every_n_steps, progress_bar; and, when the section has them, ``max_epochs``,
            ``deterministic`` (default ``False``) and ``patience`` (validations without improvement of
            ``monitor`` before training stops; default ``None``: no early stopping).
        monitor / mode: the validation metric of ``best.ckpt`` (and of early stopping), ``min`` / ``max``.
        grad_clip: gradient-norm clipping (``optim.grad_clip``; ``None``: off).
        precision / max_epochs: override the settings' (e.g. a resolved ``precision: auto``).
        use_distributed_sampler: let Lightning shard plain samplers under DDP (an engine with its
            own DDP-aware sampler passes ``False``).
        extra_callbacks: appended after the shared ones.
        strategy: Lightning strategy (``auto``; e.g. ``ddp_find_unused_parameters_true`` for a
            model with parameters that some steps leave without gradient).
        validate: ``False`` when the run has no validation data: validation is switched off
            (``limit_val_batches=0``) instead of Lightning warning about an empty ``DataLoader``, and
            ``patience`` is unused (the caller says so).
    """
    t = settings
    max_epochs = int(t.max_epochs if max_epochs is None else max_epochs)
    precision = t.precision if precision is None else precision
    early_stopping_patience = getattr(t, "patience", None)
    log_every_n_steps, progress_bar = t.log_every_n_steps, t.progress_bar
    ckpt_dir = Path(run_dir) / "checkpoints"
    callbacks = [
        # best.ckpt: best monitored value; last.ckpt: every epoch, overwritten (a separate unmonitored
        # callback: Lightning's save_last only refreshes last.ckpt when another checkpoint is saved)
        ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, save_top_k=1,
                        enable_version_counter=False),
        # every epoch, validated or not (Lightning would save it only after a validation when validation
        # runs less often than every epoch): an interrupted run always has its last epoch to continue from
        ModelCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1, enable_version_counter=False,
                        save_on_train_epoch_end=True),
        LearningRateMonitor(logging_interval="epoch"),
        Timer(),  # training wall time, kept in the checkpoints: the total over resumed sessions
        TrainingSpeedMonitor(),  # train/steps_per_s and train/epoch_seconds per epoch
        KeepLogHistoryUntilResumePoint(),  # a resumed run's metrics.csv keeps the epochs before it
    ]
    if early_stopping_patience is not None and validate:  # without validation nothing to stop on
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=int(early_stopping_patience),
                                       min_delta=0.0, check_finite=False))
    callbacks.extend(extra_callbacks)
    if progress_bar:
        # the loss shown is read back from the GPU as often as the loggers read it, not every step
        callbacks.append(RichProgressBarEveryN(metrics_every_n_steps=log_every_n_steps, leave=True))
    loggers = [ResumableCSVLogger(run_dir, name="logs", version=""),
               TensorBoardLogger(run_dir, name="logs", version="")]
    return L.Trainer(
        default_root_dir=run_dir, max_epochs=max_epochs, accelerator=t.accelerator, devices=t.devices,
        num_nodes=t.num_nodes, strategy=strategy, precision=precision, callbacks=callbacks, logger=loggers,
        check_val_every_n_epoch=t.val_every_n_epochs, log_every_n_steps=log_every_n_steps,
        enable_progress_bar=progress_bar, deterministic=bool(getattr(t, "deterministic", False)),
        gradient_clip_val=grad_clip,
        plugins=[AtomicCheckpointIO()], use_distributed_sampler=use_distributed_sampler, num_sanity_val_steps=0,
        limit_val_batches=None if validate else 0,
        enable_model_summary=False,
    )


def fit_time_seconds(trainer: L.Trainer) -> float:
    """Training wall time of ``trainer`` so far (its ``Timer``; summed over resumed sessions)."""
    timer = next(c for c in trainer.callbacks if isinstance(c, Timer))
    return float(timer.time_elapsed("train"))
