"""Run a training job: run folder, loggers, checkpoints, resume, and the exported model bundle.

Run folder ``<out_dir>/``:
``config.yaml`` (resolved config), ``splits.json``, ``missing_sequences.csv`` (imbalanced
protocol), ``checkpoints/{last.ckpt,best.ckpt}`` (written atomically: temp file + rename),
``logs/`` (CSV + TensorBoard), ``model/`` (safetensors bundle for ``evaluate`` / ``predict``).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, Timer
from lightning.pytorch.loggers import TensorBoardLogger

from medmodal.config import ExperimentConfig, save_config
from medmodal.engine.callbacks import RichProgressBarEveryN, TrainingSpeedMonitor
from medmodal.engine.checkpoint import save_bundle
from medmodal.engine.segmentation.datamodule import SegmentationDataModule
from medmodal.engine.loggers import KeepLogHistoryUntilResumePoint, ResumableCSVLogger
from medmodal.engine.segmentation.module import SegmentationModule, bundle_meta
from medmodal.io import atomic_path, atomic_write_json, ensure_writable_dir


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints to a temporary file and rename: a crash never leaves a torn ``last.ckpt``."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)

    def load_checkpoint(self, path, map_location=None, weights_only=True):
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


#: ``{"train_seconds": ...}`` written next to the run's model: fit wall time (training and its
#: validations), summed over interrupted and resumed sessions (Lightning ``Timer`` state).
TRAIN_TIME_FILE = "train_time.json"


def find_resume_checkpoint(run_dir: Path, resume: str | None) -> str | None:
    """``resume``: None/"never" -> start fresh; "auto" -> ``last.ckpt`` if present; else a path."""
    if resume in (None, "", "never", "none"):
        return None
    if resume == "auto":
        last = run_dir / "checkpoints" / "last.ckpt"
        return str(last) if last.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint to resume from not found")
    return str(path)


def build_trainer(cfg: ExperimentConfig, run_dir: Path, extra_callbacks=()) -> L.Trainer:
    t = cfg.trainer
    ckpt_dir = run_dir / "checkpoints"
    callbacks = [
        # best.ckpt: best validation Dice; last.ckpt: every epoch, overwritten (a separate unmonitored
        # callback: Lightning's save_last only refreshes last.ckpt when another checkpoint is saved)
        ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/dice_mean", mode="max", save_top_k=1,
                        enable_version_counter=False),
        ModelCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1, enable_version_counter=False),
        LearningRateMonitor(logging_interval="epoch"),
        Timer(),  # training wall time, kept in the checkpoints: the total over resumed sessions
        TrainingSpeedMonitor(),  # train/steps_per_s and train/epoch_seconds per epoch
        KeepLogHistoryUntilResumePoint(),  # a resumed run's metrics.csv keeps the epochs before it
        *extra_callbacks,
    ]
    if t.progress_bar:
        # the loss shown is read back from the GPU as often as the loggers read it, not every step
        callbacks.append(RichProgressBarEveryN(metrics_every_n_steps=t.log_every_n_steps, leave=True))
    loggers = [ResumableCSVLogger(run_dir, name="logs", version=""), TensorBoardLogger(run_dir, name="logs", version="")]
    return L.Trainer(
        default_root_dir=run_dir, max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices,
        num_nodes=t.num_nodes, precision=t.precision, callbacks=callbacks, logger=loggers,
        check_val_every_n_epoch=t.val_every_n_epochs, log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.progress_bar, deterministic=t.deterministic, gradient_clip_val=cfg.optim.grad_clip,
        plugins=[AtomicCheckpointIO()], use_distributed_sampler=False, num_sanity_val_steps=0,
        enable_model_summary=False,
    )


def quiet_lightning() -> None:
    """Silence Lightning's tips that are noise for this workflow (not errors or real warnings)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*The number of training batches.*")
    # Lightning's own use of a torch API that torch 2.13 deprecates: nothing a user can act on
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


def run_training(cfg: ExperimentConfig, resume: str | None = "auto", extra_callbacks=()) -> Path:
    """Train with ``cfg``; returns the run folder (which then holds ``model/``)."""
    quiet_lightning()
    run_dir = ensure_writable_dir(cfg.out_dir)
    save_config(cfg, run_dir / "config.yaml")
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    datamodule = SegmentationDataModule(cfg.data, run_dir, seed=cfg.trainer.seed)
    module = SegmentationModule.from_experiment(cfg, datamodule.geometry)  # the bundle records it
    trainer = build_trainer(cfg, run_dir, extra_callbacks)
    ckpt_path = find_resume_checkpoint(run_dir, resume)
    with warnings.catch_warnings():
        if ckpt_path is not None:  # resuming: checkpoints/ is expected to hold the run's checkpoints
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    if trainer.is_global_zero:
        export_bundle(run_dir, module, cfg)
        timer = next(c for c in trainer.callbacks if isinstance(c, Timer))
        atomic_write_json(run_dir / TRAIN_TIME_FILE, {"train_seconds": round(timer.time_elapsed("train"), 1)})
    return run_dir


def export_bundle(run_dir: Path, module: SegmentationModule, cfg: ExperimentConfig) -> Path:
    """Write ``<run>/model`` from the best checkpoint (or the final weights when none was scored);
    ``model.json`` is the module's bundle description (training geometry included)."""
    best = run_dir / "checkpoints" / "best.ckpt"
    if best.is_file():
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    meta = module.bundle or bundle_meta(cfg)
    return save_bundle(run_dir / "model", module.model, meta)
