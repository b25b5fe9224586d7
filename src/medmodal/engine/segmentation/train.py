"""Run a training job: run folder, loggers, checkpoints, resume, and the exported model bundle.

Run folder ``<out_dir>/``:
``config.yaml`` (resolved config), ``splits.json``, ``missing_sequences.csv`` (imbalanced
protocol), ``checkpoints/{last.ckpt,best.ckpt}`` (written atomically: temp file + rename),
``logs/`` (CSV + TensorBoard), ``model/`` (safetensors bundle for ``evaluate`` / ``predict``),
``train_time.json`` (fit wall time and epochs trained; with ``model/`` it marks a finished run).

``resume="auto"`` (:mod:`medmodal.engine.run`): a finished run (``model/`` and ``train_time.json``
recording ``trainer.max_epochs`` epochs) is returned as is with ``skipped=True``; an unfinished one
continues from ``checkpoints/last.ckpt``. Run folders written before ``train_time.json`` recorded
the epochs continue from ``last.ckpt`` (which re-exports the bundle), as they always did.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from medmodal.config import save_config
from medmodal.config.segmentation import SegmentationRunConfig
from medmodal.distributed import is_global_zero
from medmodal.engine.checkpoint import save_bundle
from medmodal.engine.run import RunResult, fit, removes_new_files_on_input_error, warn_config_changes
from medmodal.engine.segmentation.datamodule import SegmentationDataModule
from medmodal.engine.segmentation.module import SegmentationModule, bundle_meta
from medmodal.engine.trainer import (TRAIN_TIME_FILE, AtomicCheckpointIO, find_resume_checkpoint,  # noqa: F401
                                     fit_time_seconds, make_trainer, quiet_lightning)
from medmodal.io import atomic_write_json, ensure_writable_dir, load_torch_file, read_json_file

__all__ = ["run_training", "build_trainer", "export_bundle", "finished_training", "TRAIN_TIME_FILE", "MODEL_DIR"]

#: the model bundle folder inside a run folder (what ``evaluate`` / ``predict`` load)
MODEL_DIR = "model"


def build_trainer(cfg: SegmentationRunConfig, run_dir: Path, extra_callbacks=()) -> L.Trainer:
    """The shared trainer (:func:`medmodal.engine.trainer.make_trainer`); best.ckpt = best validation Dice.
    The engine's :class:`~medmodal.data.sampler.EpochSampler` shards the data under DDP itself."""
    return make_trainer(run_dir, cfg.trainer, monitor="val/dice_mean", mode="max", grad_clip=cfg.optim.grad_clip,
                        use_distributed_sampler=False, extra_callbacks=extra_callbacks)


def finished_training(run_dir: Path, cfg: SegmentationRunConfig, resume: str | None) -> RunResult | None:
    """The result of a finished run in ``run_dir`` (module docstring) when ``resume="auto"``, else ``None``."""
    run_dir = Path(run_dir)
    bundle, timing = run_dir / MODEL_DIR, run_dir / TRAIN_TIME_FILE
    finished = resume == "auto" and (bundle / "model.json").is_file() and timing.is_file()
    recorded = read_json_file(timing) if finished else None
    finished = (finished and isinstance(recorded, dict)
                and int(recorded.get("epochs", -1)) >= int(cfg.trainer.max_epochs))
    warn_config_changes(run_dir, cfg, resume, finished)
    if not finished:
        return None
    return RunResult(run_dir=str(run_dir), skipped=True, metrics=dict(recorded),
                     artefacts={"model": str(bundle)}, seconds=recorded.get("train_seconds"))


@removes_new_files_on_input_error
def run_training(cfg: SegmentationRunConfig, resume: str | None = "auto", extra_callbacks=(),
                 module_cls: type[SegmentationModule] = SegmentationModule) -> RunResult:
    """Train with ``cfg``; the result's ``run_dir`` then holds ``model/`` (``artefacts["model"]``).

    ``module_cls``: the training paradigm, :class:`SegmentationModule` or a subclass that overrides only
    what differs (e.g. a mean teacher); the bundle it writes is the same ``seg/model``, so ``evaluate``,
    ``score`` and ``predict`` serve it unchanged.

    Returns:
        :class:`~medmodal.engine.run.RunResult` with ``metrics`` ``{"train_seconds", "epochs"}``
        (``os.fspath(result)`` / ``result / "model"`` still read it as the run folder).
    """
    quiet_lightning()
    run_dir = ensure_writable_dir(cfg.out_dir)
    done = finished_training(run_dir, cfg, resume)
    if done is not None:
        return done
    if is_global_zero():  # every DDP process runs this function; one writes the run's files
        save_config(cfg, run_dir / "config.yaml")
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    datamodule = SegmentationDataModule(cfg.data, run_dir, seed=cfg.trainer.seed)
    module = module_cls.from_experiment(cfg, datamodule.geometry)  # the bundle records it
    trainer = build_trainer(cfg, run_dir, extra_callbacks)
    fit(trainer, module, datamodule, run_dir, resume)
    timing = {"train_seconds": round(fit_time_seconds(trainer), 1), "epochs": int(trainer.current_epoch)}
    if trainer.is_global_zero:
        export_bundle(run_dir, module, cfg)
        atomic_write_json(run_dir / TRAIN_TIME_FILE, timing)
    return RunResult(run_dir=str(run_dir), metrics=timing, artefacts={"model": str(run_dir / MODEL_DIR)},
                     seconds=timing["train_seconds"])


def export_bundle(run_dir: Path, module: SegmentationModule, cfg: SegmentationRunConfig) -> Path:
    """Write ``<run>/model`` from the best checkpoint (or the final weights when none was scored);
    ``model.json`` is the module's bundle description (training geometry included)."""
    best = run_dir / "checkpoints" / "best.ckpt"
    if best.is_file():
        state = load_torch_file(best)["state_dict"]
        module.load_state_dict(state)
    meta = module.bundle or bundle_meta(cfg)
    return save_bundle(run_dir / MODEL_DIR, module.model, meta)
