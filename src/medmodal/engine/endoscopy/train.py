"""Run a MICS pre-training or fine-tuning into a run folder.

Pre-training folder: ``config.yaml``, ``splits.json``, ``checkpoints/{best,last}.ckpt``, ``logs/``,
``encoders.safetensors`` + ``encoders.json`` (the WLI / NBI encoders and their architecture, what
``endoscopy finetune --init`` loads), ``metrics.json`` (written last: marks a finished run).

Fine-tuning folder: the same plus ``model.safetensors`` + ``model.json`` (the classifier of the
best validation checkpoint and its classes, what ``endoscopy predict`` loads), ``results.csv`` (one
row per test modality subset), ``per_class.csv``, ``confusion.png`` (all modalities) and
``confusion_<subset>.png``.
"""

from __future__ import annotations

import csv
import io
import time
import warnings
from pathlib import Path

import lightning as L
import torch

from medmodal.config import config_to_dict, save_config
from medmodal.distributed import is_global_zero
from medmodal.engine.endoscopy.config import MICSFinetuneRunConfig, MICSPretrainRunConfig
from medmodal.engine.endoscopy.data import EndoscopyDataModule
from medmodal.bundle import ENDOSCOPY_CLASSIFIER, ENDOSCOPY_ENCODERS, FORMATS, read_bundle, save_bundle
from medmodal.engine.endoscopy.modules import MICSClassificationTask, MICSPretrainTask, subset_name
from medmodal.engine.run import RunResult, finished_result, fit, removes_new_files_on_input_error
from medmodal.engine.trainer import TRAIN_TIME_FILE, fit_time_seconds, make_trainer, quiet_lightning
from medmodal.io import (atomic_write_json, atomic_write_text, ensure_writable_dir, load_safetensors_file,
                         read_json_file)
from medmodal.notices import warn as warn_input

__all__ = ["run_pretrain", "queue_size_warning", "run_finetune", "load_classifier", "load_pretrained_encoders",
           "format_result",
           "METRICS_FILE", "ENCODERS_FILE", "MODEL_FILE"]

METRICS_FILE = "metrics.json"
ENCODERS_FILE = FORMATS[ENDOSCOPY_ENCODERS][0]
MODEL_FILE = FORMATS[ENDOSCOPY_CLASSIFIER][0]


def _trainer(cfg, run_dir: Path, monitor: str | None, mode: str, validate: bool = True) -> L.Trainer:
    return make_trainer(run_dir, cfg.trainer, monitor=monitor, mode=mode, grad_clip=cfg.optim.grad_clip,
                        use_distributed_sampler=True, validate=validate)


def _no_validation_note(what: str) -> str:
    return f"no validation pairs (data.fractions gives none): {what}"


def _fit(trainer: L.Trainer, task, data, run_dir: Path, resume: str | None) -> None:
    # encoders frozen for the first fine-tuning epochs run in eval mode on purpose
    fit(trainer, task, data, run_dir, resume, eval_mode_expected=True, existing_checkpoints_expected=True)


@removes_new_files_on_input_error
def run_pretrain(cfg: MICSPretrainRunConfig, resume: str | None = "auto") -> RunResult:
    """Pre-train the MICS encoders on the training split's pairs (labels unused).

    Returns :class:`~medmodal.engine.run.RunResult` of the content of ``metrics.json`` (``run_dir``, last
    validation losses, ``train_seconds``); ``artefacts["encoders"]``.
    Raises ValueError / FileNotFoundError / LayoutError for bad input (one line).
    """
    from medmodal.models import create_model

    quiet_lightning()
    run_dir = ensure_writable_dir(cfg.out_dir)
    done = finished_result(run_dir, resume, METRICS_FILE, {"encoders": run_dir / ENCODERS_FILE}, cfg=cfg)
    if done is not None:
        return done
    started = time.perf_counter()
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    cfg.model.image_size = cfg.data.image_size
    data = EndoscopyDataModule(cfg.data, mode="pretrain", seed=cfg.trainer.seed)
    model = create_model("mics_pretrain", **config_to_dict(cfg.model))
    queue_note = queue_size_warning(cfg.model.queue_size, len(data.train_ids), cfg.data.batch_size)
    if queue_note and is_global_zero():
        # shown once, now: an InputWarning (the CLI prints it as one 'warning:' line); kept in metrics.json
        # under "warnings", not in "notes" (which the CLI prints again after training)
        warn_input(queue_note)
    if is_global_zero():
        save_config(cfg, run_dir / "config.yaml")
        data.write_splits(run_dir / "splits.json")
    task = MICSPretrainTask(cfg, model, {"config": config_to_dict(cfg)})
    monitor = "val/loss" if data.val_ids else "train/loss"
    trainer = _trainer(cfg, run_dir, monitor, "min", validate=bool(data.val_ids))
    notes = list(data.notes)
    if not data.val_ids:
        notes.append(_no_validation_note("the losses shown are training losses"))
    _fit(trainer, task, data, run_dir, resume)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("val/", "train/"))}
    result = {"run_dir": str(run_dir), "kind": "mics-pretrain", "epochs": int(trainer.current_epoch),
              "pairs": len(data.train_ids), "losses": logged, "notes": notes,
              "warnings": [queue_note] if queue_note else [],
              "train_seconds": round(fit_time_seconds(trainer), 2),
              "wall_seconds": round(time.perf_counter() - started, 2)}
    if trainer.is_global_zero:
        save_bundle(run_dir, model.encoder_state_dict(), {"arch": cfg.model.arch, "image_size": cfg.model.image_size,
                                                          "encoder_kwargs": cfg.model.encoder_kwargs,
                                                          "modalities": ["wli", "nbi"]}, format=ENDOSCOPY_ENCODERS)
        atomic_write_json(run_dir / TRAIN_TIME_FILE, {"train_seconds": result["train_seconds"]})
        atomic_write_json(run_dir / METRICS_FILE, result)
    return RunResult.from_dict(result, {"encoders": run_dir / ENCODERS_FILE})


def queue_size_warning(queue_size: int, pairs: int, batch_size: int) -> str | None:
    """One line when the contrastive queue holds more keys than there are *other* training pairs
    (``queue_size > pairs - batch``, with ``batch = min(batch_size, pairs)``: the loader never draws a
    batch larger than the data), else ``None``.

    Such a queue holds several stale keys of the same pairs; a pair's own older keys are masked out of its
    negatives (:meth:`MICSPretrainer.contrastive_loss`), but MoCo / ALBEF keep the queue far below the
    dataset size. Pre-training runs anyway (a warning, not an error). The line suggests values that do not
    warn again: a smaller queue, or, when a batch already holds every pair, a smaller ``data.batch_size``
    with a queue that fits.
    """
    batch = min(batch_size, pairs)
    room = pairs - batch
    if queue_size <= room:
        return None
    head = (f"model.queue_size={queue_size} exceeds the {pairs} training pairs minus a batch of {batch}"
            + (f" (data.batch_size={batch_size} is capped at the {pairs} pairs)" if batch_size > pairs else "")
            + ": the queue repeats keys of the same pairs; ")
    if room >= 1:
        return head + f"use model.queue_size <= {room} (e.g. {max(1, min(room, pairs // 4))})"
    smaller = max(2, pairs // 2)
    if pairs - smaller >= 1:
        return head + (f"a batch holds every pair, so lower data.batch_size too (e.g. data.batch_size={smaller} "
                       f"with model.queue_size={max(1, min(pairs - smaller, pairs // 4))})")
    return head + (f"{pairs} training pairs are too few for a queue of other pairs' keys (the smallest batch is 2); "
                   "the contrastive term uses the other pairs of the batch only")


def load_pretrained_encoders(init: str | Path) -> tuple[dict, dict]:
    """``(state, spec)`` from a pre-training run folder or its ``encoders.safetensors``.

    Raises:
        FileNotFoundError: no encoders file (an unfinished run names itself).
    """
    path = Path(init)
    file = path / ENCODERS_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no {ENCODERS_FILE} (is it a finished `medmodal endoscopy pretrain` run?)")
    spec_file = file.with_name("encoders.json")
    if not spec_file.is_file():
        raise FileNotFoundError(f"{spec_file}: missing (the architecture of {file.name})")
    return load_safetensors_file(file), read_json_file(spec_file)


def _encoders_spec(init: str | Path) -> dict | None:
    """The architecture (``encoders.json``) of a pre-training run, ``None`` when absent (the full load names it)."""
    path = Path(init)
    spec_file = (path / ENCODERS_FILE if path.is_dir() else path).with_name("encoders.json")
    return read_json_file(spec_file) if spec_file.is_file() else None


def _use_encoders_spec(cfg: MICSFinetuneRunConfig, spec: dict) -> list[str]:
    """Take the architecture and image size of the pre-training run; the note when the image size changed."""
    cfg.model.arch, cfg.model.encoder_kwargs = spec["arch"], dict(spec["encoder_kwargs"])
    if int(spec["image_size"]) == cfg.data.image_size:
        return []
    note = f"image size {spec['image_size']} of the pre-training used (data.image_size was {cfg.data.image_size})"
    cfg.data.image_size = cfg.model.image_size = int(spec["image_size"])
    return [note]


@removes_new_files_on_input_error
def run_finetune(cfg: MICSFinetuneRunConfig, resume: str | None = "auto") -> RunResult:
    """Fine-tune the MICS classifier (or a baseline), test the best checkpoint, write the run folder.

    Returns :class:`~medmodal.engine.run.RunResult` of the content of ``metrics.json``: ``test`` (all
    modalities) and ``test_<subset>`` dicts of accuracy / precision / recall / f1 (macro), ``per_class``,
    ``counts``, ``notes`` ...; ``artefacts["model"]``.
    """
    from medmodal.models import create_model

    quiet_lightning()
    cfg.validate()
    run_dir = ensure_writable_dir(cfg.out_dir)
    notes: list[str] = []
    initialised = cfg.init not in ("", "none", None)
    spec = _encoders_spec(cfg.init) if initialised else None
    if spec is not None:  # fill in what --init decides first, so a finished run is compared like with like
        notes += _use_encoders_spec(cfg, spec)
    # model.num_classes comes from the data (filled in below), never from the requested config
    done = finished_result(run_dir, resume, METRICS_FILE, {"model": run_dir / MODEL_FILE}, cfg=cfg,
                           not_compared=("model.num_classes",))
    if done is not None:
        return done
    started = time.perf_counter()
    state = None
    if initialised:
        state, spec = load_pretrained_encoders(cfg.init)
        notes += _use_encoders_spec(cfg, spec)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    data = EndoscopyDataModule(cfg.data, mode="finetune", seed=cfg.trainer.seed,
                               unlabelled=cfg.method == "fixmatch", fixmatch=cfg.fixmatch)
    cfg.model.num_classes = len(data.classes)
    model = create_model("mics", **config_to_dict(cfg.model))
    if state is not None:
        loaded = model.load_encoders(state)
        notes.append(f"encoders {', '.join(m.upper() for m in loaded)} initialised from {cfg.init}")
    if is_global_zero():
        save_config(cfg, run_dir / "config.yaml")
        data.write_splits(run_dir / "splits.json")
    hparams = {"config": config_to_dict(cfg), "classes": data.classes, "pretrained_encoders": state is not None}
    task = MICSClassificationTask(cfg, model, hparams,
                                  data.classes, cfg.test_modalities)
    if not data.val_ids:  # best.ckpt then holds the last epoch (no score to choose by)
        notes.append(_no_validation_note("the model of the last epoch is tested"
                                         + (", trainer.patience unused" if cfg.trainer.patience is not None else "")))
    trainer = _trainer(cfg, run_dir, "val/accuracy" if data.val_ids else None, "max", validate=bool(data.val_ids))
    _fit(trainer, task, data, run_dir, resume)
    best = run_dir / "checkpoints" / "best.ckpt"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
        trainer.test(task, datamodule=data, ckpt_path=str(best) if best.is_file() else None, verbose=False,
                     weights_only=True)
    scores = {key: {k: float(v) for k, v in m.items() if v.dim() == 0} for key, m in task.results.items()
              if key.startswith("test")}
    best_val = next((c.best_model_score for c in trainer.checkpoint_callbacks
                     if c.monitor == "val/accuracy" and c.best_model_score is not None), None)
    full = task.results["test"]
    per_class = [{"class": c, "precision": float(full["per_class_precision"][i]),
                  "recall": float(full["per_class_recall"][i]), "f1": float(full["per_class_f1"][i]),
                  "support": int(full["support"][i])} for i, c in enumerate(data.classes)]
    result = {"run_dir": str(run_dir), "kind": "mics-finetune", "method": cfg.method, "init": str(cfg.init),
              "fusion": cfg.model.fusion, "shift": cfg.model.shift, "modalities": list(cfg.model.modalities),
              "label_fraction": cfg.data.label_fraction, "seed": cfg.trainer.seed, "classes": data.classes,
              **scores,
              "val_accuracy": None if best_val is None else float(best_val), "per_class": per_class,
              "counts": data.counts(), "epochs": int(trainer.current_epoch),
              "train_seconds": round(fit_time_seconds(trainer), 2),
              "wall_seconds": round(time.perf_counter() - started, 2), "notes": notes}
    if trainer.is_global_zero:
        save_bundle(run_dir, task.model, {"model": "mics", "config": config_to_dict(cfg.model),
                                          "classes": data.classes}, format=ENDOSCOPY_CLASSIFIER)
        from medmodal.evaluation.plots import confusion_png

        for key, metrics in task.results.items():
            if key.startswith("test"):
                name = "confusion.png" if key == "test" else f"confusion_{key[5:]}.png"
                confusion_png(metrics["confusion"].numpy(), data.classes, run_dir / name,
                              title=f"{key.replace('_', ' ')}: accuracy {float(metrics['accuracy']):.3f}")
        atomic_write_text(run_dir / "per_class.csv", _csv(per_class))
        atomic_write_text(run_dir / "results.csv", _csv(results_rows(result)))
        atomic_write_json(run_dir / TRAIN_TIME_FILE, {"train_seconds": result["train_seconds"]})
        atomic_write_json(run_dir / METRICS_FILE, result)
    return RunResult.from_dict(result, {"model": run_dir / MODEL_FILE})


def results_rows(result: dict) -> list[dict]:
    """One row per scored modality subset (``all`` = every modality a sample has)."""
    rows = []
    for key in sorted(k for k in result if k == "test" or k.startswith("test_")):
        rows.append({"method": result["method"], "init": result["init"], "fusion": result["fusion"],
                     "shift": result["shift"], "model_modalities": subset_name(result["modalities"]),
                     "test_modalities": "all" if key == "test" else key[5:],
                     "label_fraction": result["label_fraction"], "seed": result["seed"],
                     **{k: result[key][k] for k in ("accuracy", "precision", "recall", "f1")},
                     "run_dir": result["run_dir"]})
    return rows


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def format_result(result: dict) -> str:
    """``accuracy / macro F1`` per scored subset, one line."""
    parts = []
    for key in sorted(k for k in result if k == "test" or k.startswith("test_")):
        streams = list(result.get("modalities", ()))
        if key != "test":
            name = f"{key[5:].upper()} only"
        else:  # a single-stream model (the WLI-only baseline) is tested on that stream alone
            name = f"{streams[0].upper()} (the model's only stream)" if len(streams) == 1 else "all modalities"
        parts.append(f"{name}: accuracy {result[key]['accuracy']:.3f}, macro F1 {result[key]['f1']:.3f}")
    counts = result["counts"]
    n = counts["test"]
    labels = f"{result['label_fraction'] * 100:g} % labels"
    if "train" in counts and counts.get("unlabelled") is not None:  # what the fraction became on this data
        labels += f" ({counts['train']} of {counts['train'] + counts['unlabelled']} training samples labelled)"
    return f"test at {labels}, {n} test sample{'s' * (n != 1)} - " + "; ".join(parts)


def load_classifier(run: str | Path, device: str = "cpu"):
    """``(model, classes)`` from a fine-tuning run folder (``model.safetensors`` + ``model.json``).

    Raises:
        FileNotFoundError: not a finished fine-tuning run.
    """
    from medmodal.models import create_model

    run = Path(run)
    spec_file, weights = run / "model.json", run / MODEL_FILE
    if not spec_file.is_file() or not weights.is_file():
        raise FileNotFoundError(f"{run}: no model.json / {MODEL_FILE} (is it a finished `medmodal "
                                "endoscopy finetune` run?)")
    state, spec = read_bundle(run, ENDOSCOPY_CLASSIFIER)
    model = create_model(spec["model"], **spec["config"])
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), list(spec["classes"])


def input_class_mismatch(samples, classes) -> tuple[str | None, str | None]:
    """Compare the class names visible in a prediction input (class folders, a CSV ``label`` column) with
    the model's ``classes``.

    Returns:
        ``(warning, note)``: ``warning`` is one line when the input holds classes the model does not
        know (naming them, the model's classes the input lacks, and a likely counterpart: the same
        name in another case, or the Kvasir / HyperKvasir folder name of an authors' class); ``note``
        is one line when the input only lacks some of the model's classes; ``None`` otherwise
        (also for unlabelled input).
    """
    from medmodal.data.endoscopy.samples import KVASIR_TO_AUTHORS, class_names

    seen = class_names(samples)
    if not seen:
        return None, None
    known = set(classes)
    unknown = [c for c in seen if c not in known]
    missing = [c for c in classes if c not in set(seen)]
    if not unknown:
        note = (f"the input's labels cover {len(classes) - len(missing)} of the model's {len(classes)} classes "
                f"(absent: {', '.join(missing)})") if missing else None
        return None, note
    lower = {c.lower(): c for c in classes}
    hints = [f"{c!r} may be the model's {match!r}" for c in unknown
             for match in [lower.get(c.lower()) or (KVASIR_TO_AUTHORS.get(c) if KVASIR_TO_AUTHORS.get(c) in known
                                                    else None)] if match]
    warning = (f"{len(unknown)} input class(es) are not classes of the model: {', '.join(unknown)}; model classes "
               f"absent from the input: {', '.join(missing) or 'none'}"
               + (f" ({'; '.join(hints)})" if hints else "")
               + "; predictions are always model classes, so these samples cannot be scored as they are named")
    return warning, None


def predict_samples(model, classes, samples, image_size: int, modalities=("wli", "nbi"), batch_size: int = 32,
                    device: str = "cpu") -> list[dict]:
    """Class probabilities for ``samples`` using only ``modalities`` (an absent image is masked).

    Returns one row per sample with a usable image: ``sample_id``, ``used`` (e.g. ``wli``),
    ``prediction``, ``p_<class>``. Samples with none of ``modalities`` are returned with
    ``prediction`` empty and ``used`` ``none`` (named, never dropped).
    """
    from torch.utils.data import DataLoader

    from medmodal.data.endoscopy.dataset import PairedImageDataset
    from medmodal.data.endoscopy.samples import MODALITIES, PairedSample

    unlabelled = [PairedSample(s.sample_id, s.wli, s.nbi, None, s.split, s.source) for s in samples]
    ds = PairedImageDataset(unlabelled, image_size, train=False, classes=classes, modalities=modalities)
    index = [MODALITIES.index(m) for m in model.modalities]
    rows = []
    with torch.no_grad():
        for batch in DataLoader(ds, batch_size=batch_size):
            images = torch.stack([batch[m] for m in MODALITIES], 1)[:, index].to(device)
            mask = batch["present"][:, index].to(device)
            usable = mask.any(1)
            probs = torch.full((len(mask), len(classes)), float("nan"))
            if bool(usable.any()):
                probs[usable.cpu()] = model(images[usable], mask[usable]).softmax(1).float().cpu()
            for i, sid in enumerate(batch["sample_id"]):
                used = [m for m, on in zip(model.modalities, mask[i].tolist()) if on]
                row = {"sample_id": sid, "used": "+".join(used) or "none",
                       "prediction": classes[int(probs[i].argmax())] if used else ""}
                row.update({f"p_{c}": (round(float(probs[i, k]), 6) if used else "") for k, c in enumerate(classes)})
                rows.append(row)
    return rows
