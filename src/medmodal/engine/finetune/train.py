"""Run one downstream fine-tuning job (``medmodal cxr finetune``): train, select, test, write the run folder.

Run folder ``<out_dir>/``::

    config.yaml          the resolved config (what ran)
    splits.json          sample ids per split (after the label fraction) and how they were drawn
    checkpoints/         best.ckpt (best monitored validation value), last.ckpt (every epoch; resume)
    logs/                metrics.csv (+ TensorBoard events)
    metrics.json         test metrics of the best checkpoint, the primary metric, encoder, counts, notes
    results.csv          the same as one row (header + row), for tables across runs
    train_time.json      fit wall time (summed over resumed sessions)

``resume="auto"`` (:mod:`medmodal.engine.run`): a folder that already holds ``metrics.json`` is a finished
run and is returned as is (``skipped=True``); one with ``checkpoints/last.ckpt`` continues from it.

Only the global rank 0 writes (:func:`medmodal.distributed.is_global_zero`); every DDP process
runs this function.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import time

import lightning as L

from medmodal.config import config_to_dict, save_config
from medmodal.distributed import is_global_zero
from medmodal.engine.finetune.config import FinetuneConfig, default_run_dir
from medmodal.engine.finetune.data import FinetuneDataModule
from medmodal.engine.finetune.metrics import nan_to_none
from medmodal.engine.finetune.modules import ClassificationTask, DetectionTask, FinetuneTask, SegmentationTask
from medmodal.engine.run import RunResult, finished_result, fit, removes_new_files_on_input_error
from medmodal.engine.trainer import TRAIN_TIME_FILE, fit_time_seconds, make_trainer, quiet_lightning
from medmodal.io import atomic_write_json, atomic_write_text, ensure_writable_dir

__all__ = ["run_finetune", "prepare_config", "build_task", "PRIMARY_METRICS", "METRICS_FILE", "RESULTS_FILE"]

METRICS_FILE = "metrics.json"
RESULTS_FILE = "results.csv"
#: dataset metric name (:data:`medmodal.data.cxr.downstream.METRICS`) -> the engine's test metric
PRIMARY_METRICS = {"auroc": "auroc", "accuracy": "accuracy", "dice": "dice", "map_40_75": "map"}


def prepare_config(cfg: FinetuneConfig) -> tuple[FinetuneConfig, list[str]]:
    """A copy of ``cfg`` with derived values filled in, and notes on what was changed.

    ``out_dir`` defaults to :func:`~medmodal.engine.finetune.config.default_run_dir`; an unfrozen
    encoder cannot use cached features, so classification switches to ``features: augmented``.
    """
    cfg = copy.deepcopy(cfg)
    notes = []
    if not cfg.out_dir:
        cfg.out_dir = default_run_dir(cfg)
    if cfg.task == "classification" and not cfg.encoder.freeze and cfg.classification.features == "cached":
        cfg.classification.features = "augmented"
        notes.append("the encoder is fine-tuned (--unfreeze): features cannot be cached; every epoch re-encodes "
                     "the augmented images (classification.features=augmented)")
    if cfg.encoder.init_seed is None:
        cfg.encoder.init_seed = cfg.trainer.seed
    return cfg, notes


def build_task(cfg: FinetuneConfig, data: FinetuneDataModule, encoder, hparams: dict) -> FinetuneTask:
    """The task's Lightning module around ``encoder`` (a :class:`DownstreamEncoder`)."""
    from medmodal.models.downstream import LinearClassifier, UNetSegmenter, YOLOv3Detector

    if cfg.task == "classification":
        names = data.descriptor.label_names
        cached = cfg.classification.features == "cached"
        model = LinearClassifier(None if cached else encoder, len(names), cfg.classification.dropout,
                                 num_features=encoder.num_features)
        return ClassificationTask(cfg, model, names, data.descriptor.label_kind, hparams)
    if cfg.task == "segmentation":
        return SegmentationTask(cfg, UNetSegmenter(encoder, cfg.segmentation.decoder_channels), hparams)
    s = cfg.detection
    classes = max(1, len(data.descriptor.box_label_names))
    model = YOLOv3Detector(encoder, classes, cfg.data.image_size, s.width)
    return DetectionTask(cfg, model, hparams)


@removes_new_files_on_input_error
def run_finetune(cfg: FinetuneConfig, resume: str | None = "auto", extra_callbacks=()) -> RunResult:
    """Fine-tune, test the best checkpoint, write the run folder (module docstring).

    Returns:
        :class:`~medmodal.engine.run.RunResult` of the content of ``metrics.json`` (``run_dir``,
        ``metric``, ``value``, ``test``, ``notes`` ...).

    Raises:
        ValueError / FileNotFoundError / EncoderLoadError / CXRDataError: bad input (one line each).
    """
    from medmodal.models.downstream import DownstreamEncoder
    from medmodal.models.encoder_export import load_image_encoder

    quiet_lightning()
    cfg, notes = prepare_config(cfg)
    run_dir = ensure_writable_dir(cfg.out_dir)
    finished = run_dir / METRICS_FILE
    done = finished_result(run_dir, resume, METRICS_FILE, cfg=cfg)
    if done is not None:
        return done
    started = time.perf_counter()
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    backbone, info = load_image_encoder(cfg.encoder.source, cfg.encoder.arch, seed=int(cfg.encoder.init_seed))
    encoder = DownstreamEncoder(backbone, info)
    notes.extend(info.notes)
    if info.kind == "export" and int(info.image_size) != int(cfg.data.image_size):
        notes.append(f"the encoder was pre-trained at {info.image_size} px ({info.path}); this run feeds it "
                     f"{cfg.data.image_size} px images (data.image_size; --set data.image_size={info.image_size} "
                     f"to match)")
    cached = cfg.task == "classification" and cfg.classification.features == "cached"
    data = FinetuneDataModule(cfg, encoder=encoder if cached else None, cached_features=cached)
    notes.extend(data.notes)
    if is_global_zero():  # every DDP process runs this function; one writes the run's files
        save_config(cfg, run_dir / "config.yaml")
        data.write_splits(run_dir / "splits.json")
    hparams = {"config": config_to_dict(cfg), "encoder": info.to_dict(), "dataset": data.descriptor.name,
               "label_names": list(data.descriptor.label_names)}
    task = build_task(cfg, data, encoder, hparams)
    t = cfg.trainer
    trainer = make_trainer(run_dir, t, monitor=t.monitor, mode=t.mode, grad_clip=cfg.optim.grad_clip,
                           use_distributed_sampler=True, extra_callbacks=extra_callbacks)
    # a frozen encoder is kept in eval mode on purpose (BatchNorm statistics fixed)
    fit(trainer, task, data, run_dir, resume, eval_mode_expected=True)
    best = run_dir / "checkpoints" / "best.ckpt"
    epochs = int(trainer.current_epoch)
    tested = trainer.test(task, datamodule=data, ckpt_path=str(best) if best.is_file() else None,
                          verbose=False, weights_only=True)
    test = {k.split("/", 1)[1]: float(v) for k, v in (tested[0] if tested else {}).items() if k.startswith("test/")}
    metric = PRIMARY_METRICS[data.descriptor.metric(cfg.task)]
    result = {
        "run_dir": str(run_dir), "task": cfg.task, "dataset": data.descriptor.name,
        "fraction": float(cfg.data.fraction),
        "seed": int(t.seed), "encoder": info.to_dict(), "frozen": bool(cfg.encoder.freeze),
        "features": cfg.classification.features if cfg.task == "classification" else None,
        "metric": metric, "value": nan_to_none(test.get(metric, float("nan"))),
        "test": {k: nan_to_none(v) for k, v in sorted(test.items())},
        "checkpoint": str(best) if best.is_file() else None, "epochs": epochs,
        "train_seconds": round(fit_time_seconds(trainer), 2), "wall_seconds": round(time.perf_counter() - started, 2),
        "counts": data.counts(), "label_names": list(data.descriptor.label_names), "notes": notes,
    }
    if trainer.is_global_zero:
        atomic_write_json(run_dir / TRAIN_TIME_FILE, {"train_seconds": result["train_seconds"]})
        atomic_write_text(run_dir / RESULTS_FILE, results_csv(result))
        atomic_write_json(finished, result)  # written last: its presence marks a finished run
    return RunResult.from_dict(result)


def results_csv(result: dict) -> str:
    """One header line + one row: run identity, the primary metric, then every test metric."""
    row = {"dataset": result["dataset"], "task": result["task"], "fraction": result["fraction"],
           "encoder": result["encoder"]["source"], "encoder_kind": result["encoder"]["kind"],
           "architecture": result["encoder"]["architecture"], "frozen": result["frozen"],
           "features": result["features"] or "", "seed": result["seed"], "metric": result["metric"],
           "value": "" if result["value"] is None else result["value"], "epochs": result["epochs"],
           "train_seconds": result["train_seconds"]}
    row.update({f"test_{k}": ("" if v is None else v) for k, v in result["test"].items()})
    row["run_dir"] = result["run_dir"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(row), lineterminator="\n")
    writer.writeheader()
    writer.writerow(row)
    return buffer.getvalue()


def format_result(result: dict) -> str:
    """One line: ``dataset task fraction: metric value (n test images)``."""
    value = result["value"]
    shown = "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
    extra = {"dice": "dice_dataset", "map": "map_reference"}.get(result["metric"])
    more = ""
    if extra and result["test"].get(extra) is not None:
        more = f", {extra} {result['test'][extra]:.4f}"
    return (f"{result['dataset']} {result['task']} at {100 * result['fraction']:g} % labels: test {result['metric']} "
            f"{shown}{more} ({result['counts']['test']} test images, {result['epochs']} epochs)")
