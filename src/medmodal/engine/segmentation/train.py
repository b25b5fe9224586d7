"""Run a training job: run folder, loggers, checkpoints, resume, and the exported model bundle.

Run folder ``<out_dir>/``:
``config.yaml`` (resolved config), ``splits.json``, ``missing_sequences.csv`` (imbalanced
protocol), ``checkpoints/{last.ckpt,best.ckpt}`` (written atomically: temp file + rename),
``logs/`` (CSV + TensorBoard), ``model/`` (safetensors bundle for ``evaluate`` / ``predict``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L

from medmodal.config import ExperimentConfig, save_config
from medmodal.distributed import is_global_zero
from medmodal.engine.checkpoint import save_bundle
from medmodal.engine.segmentation.datamodule import SegmentationDataModule
from medmodal.engine.segmentation.module import SegmentationModule, bundle_meta
from medmodal.engine.trainer import (TRAIN_TIME_FILE, AtomicCheckpointIO, find_resume_checkpoint,  # noqa: F401
                                     fit_time_seconds, make_trainer, quiet_lightning)
from medmodal.io import atomic_write_json, ensure_writable_dir, load_torch_file


def build_trainer(cfg: ExperimentConfig, run_dir: Path, extra_callbacks=()) -> L.Trainer:
    """The shared trainer (:func:`medmodal.engine.trainer.make_trainer`); best.ckpt = best validation Dice.
    The engine's :class:`~medmodal.data.sampler.EpochSampler` shards the data under DDP itself."""
    t = cfg.trainer
    return make_trainer(run_dir, monitor="val/dice_mean", mode="max", max_epochs=t.max_epochs,
                        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, precision=t.precision,
                        val_every_n_epochs=t.val_every_n_epochs, log_every_n_steps=t.log_every_n_steps,
                        progress_bar=t.progress_bar, deterministic=t.deterministic,
                        gradient_clip_val=cfg.optim.grad_clip, use_distributed_sampler=False,
                        extra_callbacks=extra_callbacks)


def run_training(cfg: ExperimentConfig, resume: str | None = "auto", extra_callbacks=()) -> Path:
    """Train with ``cfg``; returns the run folder (which then holds ``model/``)."""
    quiet_lightning()
    run_dir = ensure_writable_dir(cfg.out_dir)
    if is_global_zero():  # every DDP process runs this function; one writes the run's files
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
        atomic_write_json(run_dir / TRAIN_TIME_FILE, {"train_seconds": round(fit_time_seconds(trainer), 1)})
    return run_dir


def export_bundle(run_dir: Path, module: SegmentationModule, cfg: ExperimentConfig) -> Path:
    """Write ``<run>/model`` from the best checkpoint (or the final weights when none was scored);
    ``model.json`` is the module's bundle description (training geometry included)."""
    best = run_dir / "checkpoints" / "best.ckpt"
    if best.is_file():
        state = load_torch_file(best)["state_dict"]
        module.load_state_dict(state)
    meta = module.bundle or bundle_meta(cfg)
    return save_bundle(run_dir / "model", module.model, meta)
