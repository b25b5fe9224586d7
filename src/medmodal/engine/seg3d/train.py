"""``medmodal seg train`` with ``task: 3d``: one-channel volumes (LA2018, BHSD-style CT, a NIfTI folder), patch
training, fully or semi-supervised, the best validation checkpoint, every validation and test case scored.

Splits: the layout's lists (LA2018: 80 train / 20 test; UA-MT validates on nothing) with ``data.val_fraction`` of
the training cases held out for validation by ``data.split_seed`` (never scored as test, never trained on), the
other splits as :func:`medmodal.engine.seg2d.train.case_splits` draws them. Labelled budget: the first
``semi.labelled_patients`` cases of the layout's training list (UA-MT's ``labeled_idxs = range(16)``), the rest
unlabelled; images without a label (``unlabelled/``, BHSD images without a mask) join the unlabelled part.

Run folder (``out_dir``): ``config.yaml``, ``splits.json``, ``checkpoints/`` (``best.ckpt`` by ``val/dice``,
``last.ckpt``), ``logs/``, ``model/`` (the bundle, ``image_kind: 3d``), ``per_case.csv`` and ``metrics.json``
(Dice, Jaccard, HD95, ASD per class, means over cases; empty predictions counted, their distances left out).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import lightning as L

from medmodal.config import config_to_dict, save_config
from medmodal.data.seg3d import Seg3DSet, read_seg3d
from medmodal.distributed import is_global_zero
from medmodal.engine.run import (RunResult, finished_result, fit, json_finite, refuse_run_dir_in_data,
                                 removes_new_files_on_input_error, restore_best)
from medmodal.engine.seg2d.train import _SetEpoch, semi_partition
from medmodal.engine.seg3d.config import Seg3DRunConfig
from medmodal.engine.seg3d.data import Seg3DDataModule, load_scaled
from medmodal.engine.seg3d.module import Seg3DModule, predict_volume
from medmodal.engine.trainer import fit_time_seconds, make_trainer, quiet_lightning
from medmodal.evaluation.seg2d import summarise
from medmodal.evaluation.seg3d import metric_columns, volume_metrics
from medmodal.io import atomic_write_json, atomic_write_text, ensure_writable_dir
from medmodal.models.bundles import save_bundle

__all__ = ["run_seg3d", "score_volumes", "METRICS_FILE"]

METRICS_FILE = "metrics.json"


def score_volumes(model, dataset: Seg3DSet, cases, cfg: Seg3DRunConfig) -> list[dict]:
    """One row per case (``case`` and :func:`medmodal.evaluation.seg3d.volume_metrics`) on the scaled grid."""
    rows = []
    for case in cases:
        vol = load_scaled(dataset, case, float(cfg.data.scale))
        pred = predict_volume(model, vol["image"], cfg.data.patch, cfg.eval.overlap, cfg.eval.sw_batch_size)
        rows.append({"case": case.id, **volume_metrics(pred.numpy(), vol["label"].numpy(), dataset.classes,
                                                       vol["spacing"], cfg.eval.surface)})
    return rows


def _bundle_meta(cfg: Seg3DRunConfig, dataset: Seg3DSet) -> dict:
    kwargs = {k: v for k, v in dict(cfg.model.kwargs or {}).items() if k != "weights_path"}
    return {"model_name": cfg.model.name, "modalities": list(dataset.channels), "num_classes": len(dataset.classes),
            "model_kwargs": kwargs, "image_kind": "3d", "classes": list(dataset.classes), "dataset": dataset.dataset,
            "patch": list(cfg.data.patch), "scale": float(cfg.data.scale),
            "eval": {"overlap": cfg.eval.overlap, "surface": cfg.eval.surface},
            "trained_on": {"root": Path(dataset.root).resolve().name, "layout": dataset.layout}}


@removes_new_files_on_input_error
def run_seg3d(cfg: Seg3DRunConfig, resume: str | None = "auto") -> RunResult:
    """Train on the training volumes of ``cfg.data.root``, keep the best ``val/dice`` checkpoint, score the
    validation and test volumes (module docstring). ``resume`` as in :mod:`medmodal.engine.run`.

    Raises:
        ConfigError: a bad config; a semi-supervised method without unlabelled cases. LayoutError / DataError:
            unreadable data (one line naming the file).
    """
    cfg.validate()
    cfg.data.root = str(Path(cfg.data.root).expanduser().absolute())
    run_dir = Path(cfg.out_dir)
    done = finished_result(run_dir, resume, METRICS_FILE, cfg=cfg, artefacts={"model": str(run_dir / "model")})
    if done is not None:
        return done
    quiet_lightning()
    d, t = cfg.data, cfg.trainer
    refuse_run_dir_in_data(run_dir, [d.root])
    dataset = read_seg3d(d.root, d.layout, binary=d.binary)
    parts = semi_partition(cfg, dataset, unit="volumes")
    splits, notes, (train, val, test, unlabelled) = parts.splits, parts.notes, parts.cases
    if is_global_zero():
        ensure_writable_dir(run_dir)
        save_config(cfg, run_dir / "config.yaml")
        atomic_write_json(run_dir / "splits.json", splits)
    L.seed_everything(t.seed, workers=True, verbose=False)
    meta = _bundle_meta(cfg, dataset)
    module = Seg3DModule({**config_to_dict(cfg), "bundle": meta})
    data = Seg3DDataModule(cfg, dataset, train, val, unlabelled)
    if data.workers_note:
        notes.append(data.workers_note)
    validate = bool(val)
    if not validate:
        notes.append("no validation cases: the last checkpoint is evaluated")
    manual = not module.automatic_optimization
    trainer = make_trainer(run_dir, t, monitor="val/dice" if validate else None, mode="max",
                           grad_clip=None if manual else cfg.optim.grad_clip, validate=validate,
                           extra_callbacks=[_SetEpoch(*data.epoch_targets())])
    fit(trainer, module, data, run_dir, resume, existing_checkpoints_expected=True)
    ckpt, best_val = restore_best(trainer, module, run_dir, validate)
    columns = metric_columns(dataset.classes, cfg.eval.surface)
    results, table = {}, []
    for name, cases in (("val", val), ("test", test)):
        rows = score_volumes(module.model, dataset, cases, cfg)
        empties = {c: sum(1 for r in rows if r.get(f"empty_{c}") == "prediction") for c in dataset.classes[1:]}
        results[name] = {"cases": len(rows), "scores": summarise(rows, columns), "empty_predictions": empties}
        table += [{"split": name, **r} for r in rows]
        if any(empties.values()):
            notes.append(f"{name}: empty prediction(s) {empties}; their HD95 / ASD are left out of the means")
    metrics = {"run_dir": str(run_dir), "checkpoint": str(ckpt), "model_name": cfg.model.name,
               "best_val_dice": best_val, "epochs": int(trainer.current_epoch),
               "train_seconds": fit_time_seconds(trainer), "protocol": "seg3d",
               "distance_unit": "voxels (LA2018 stores no spacing)" if dataset.layout == "la2018" else "mm",
               "classes": list(dataset.classes), "dataset": dataset.dataset, "layout": dataset.layout,
               "splits": results, "notes": notes, "labelled_volumes": int(data.labelled_volumes),
               "train_volumes": int(len(data.train_set.volumes)),
               "semi": {"method": cfg.semi.method, "labelled_patients": cfg.semi.labelled_patients}}
    bundle_dir = run_dir / "model"
    if is_global_zero():
        save_bundle(bundle_dir, module.model, meta)
        buf = io.StringIO()
        fields = ["split", "case", *columns, *[f"empty_{c}" for c in dataset.classes[1:]]]
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table)
        atomic_write_text(run_dir / "per_case.csv", buf.getvalue())
        atomic_write_json(run_dir / METRICS_FILE, json_finite(metrics))
    return RunResult.from_dict(metrics, {"checkpoint": str(ckpt), "model": str(bundle_dir)})

