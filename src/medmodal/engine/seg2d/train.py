"""Run a 2-D segmentation training (``task: 2d``) into a run folder and score it on its test cases.

Splits (by case; ACDC frames of one patient always together): the layout's own (ACDC's SSL4MIS lists
70 / 10 / 20 patients, TransUNet's Synapse 18 / 12 cases); a layout without a validation split holds
``data.val_fraction`` of its training cases (patients) out for validation; a layout without any split
(the polyp sets) is split ``train / val / test`` with ``data.val_fraction`` and ``data.test_fraction``,
drawn with ``data.split_seed``. Cases outside the layout's split (e.g. ACDC ``testing/`` patients
without the SSL4MIS split) are not used and said so in ``notes``.

Run folder: ``config.yaml``, ``splits.json`` (case ids per split), ``checkpoints/{best,last}.ckpt`` (best:
highest ``val/dice``, the mean foreground Dice of the validation cases on their native grid),
``logs/``, ``model/`` (the bundle, ``image_kind: 2d``: what ``seg predict`` / ``seg evaluate`` load),
``per_case.csv`` (one row per validation and test case) and ``metrics.json`` (written last: marks a
finished run) with, per split, the mean and standard deviation over cases of every score
(:mod:`medmodal.evaluation.seg2d`: per-class Dice / HD95 in voxels under ``transunet`` for volumes, Dice /
IoU / precision / recall under ``polyp`` for photographs) and the reader's ``notes``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset

from medmodal.config import config_to_dict, save_config
from medmodal.data.seg2d import Seg2DCase, Seg2DSet, case_patient, load_case, read_seg2d
from medmodal.data.seg2d.slice_dataset import SliceTrainingSet, resize_image, resize_label
from medmodal.distributed import is_global_zero
from medmodal.engine.run import (RunResult, finished_result, fit, json_finite, refuse_run_dir_in_data,
                                 removes_new_files_on_input_error, restore_best)
from medmodal.engine.seg2d.config import Seg2DRunConfig
from medmodal.engine.seg2d.module import Seg2DModule
from medmodal.engine.semi import SemiDataModule
from medmodal.engine.trainer import fit_time_seconds, make_trainer, quiet_lightning
from medmodal.errors import ConfigError, DataError
from medmodal.evaluation.seg2d import polyp_scores, resolve_protocol, score_columns, summarise, volume_scores
from medmodal.inference.planar import predict_stack
from medmodal.io import atomic_write_json, atomic_write_text, ensure_writable_dir
from medmodal.models.bundles import save_bundle

__all__ = ["run_seg2d", "snapshot_callback", "semi_partition", "SemiPartition", "case_splits", "score_cases", "bundle_meta", "with_classes", "labelled_cases", "METRICS_FILE"]

METRICS_FILE = "metrics.json"
#: how each data set's intensities reach [0, 1] (recorded in the bundle; predict applies the same)
INTENSITY = {"synapse": "ct_window", "acdc": "minmax", "polyp": "rgb255", "meniscus": "percentile",
             "folder2d": "rgb255"}


def case_splits(dataset: Seg2DSet, val_fraction: float, test_fraction: float, seed: int,
                keep: frozenset = frozenset()) -> tuple[dict, list[str]]:
    """``({"train", "val", "test"}: case ids, notes)`` (module docstring). Groups (patients) never straddle splits.

    Raises:
        DataError: no training case.
    """
    notes: list[str] = []
    by_split: dict[str | None, list[Seg2DCase]] = {}
    for case in dataset.cases:
        by_split.setdefault(case.split, []).append(case)
    rng = np.random.default_rng(seed)

    def hold_out(cases: list[Seg2DCase], fraction: float) -> tuple[list[Seg2DCase], list[Seg2DCase]]:
        # patients in ``keep`` (the labelled budget) are never held out
        groups = sorted({case_patient(c) for c in cases} - set(keep))
        n = int(round(fraction * len(groups)))
        if fraction > 0 and len(groups) > 1:
            n = min(max(n, 1), len(groups) - (0 if keep else 1))
        chosen = set(rng.permutation(groups)[:n].tolist()) if n else set()
        return [c for c in cases if case_patient(c) not in chosen], [c for c in cases if case_patient(c) in chosen]

    if set(by_split) == {None}:
        rest, test = hold_out(by_split[None], test_fraction)
        train, val = hold_out(rest, val_fraction / max(1e-9, 1 - test_fraction))
        notes.append(f"{dataset.layout}: no official split; cases drawn into train / val / test "
                     f"({len(train)} / {len(val)} / {len(test)}) with data.split_seed={seed}")
    else:
        unused = by_split.pop(None, [])
        if unused:
            names = ", ".join(c.id for c in unused[:3]) + (", ..." if len(unused) > 3 else "")
            notes.append(f"{len(unused)} case(s) outside the layout's split not used: {names}")
        train, val, test = by_split.get("train", []), by_split.get("val", []), by_split.get("test", [])
        if not val:
            train, val = hold_out(train, val_fraction)
            notes.append(f"{dataset.layout}: no validation split; {len(val)} of the training cases held out for "
                         f"validation (data.val_fraction={val_fraction}, data.split_seed={seed})")
    if not train:
        raise DataError(f"{dataset.root}: no training cases")
    return {"train": [c.id for c in train], "val": [c.id for c in val], "test": [c.id for c in test]}, notes


def with_classes(dataset: Seg2DSet, classes: list[str] | None) -> Seg2DSet:
    """``dataset`` with ``data.classes`` as its classes (``None``: unchanged).

    Raises:
        ConfigError: ``synapse_raw`` (BTCV labels mapped to TransUNet's organs) or a polyp layout with other than two.
    """
    if not classes or list(classes) == list(dataset.classes):
        return dataset
    if dataset.layout == "synapse_raw":
        raise ConfigError(f"data.classes: {dataset.root} is read in the synapse_raw layout, whose BTCV labels are "
                          f"mapped to TransUNet's 8 organs; remove data.classes")
    if dataset.dataset == "polyp" and len(classes) != 2:
        raise ConfigError(f"data.classes: {dataset.root} holds binary masks ({dataset.layout}); give two names")
    return replace(dataset, classes=tuple(classes),
                   notes=[*dataset.notes, f"classes from data.classes: {', '.join(classes)} (the layout's: "
                                          f"{', '.join(dataset.classes)})"])


def labelled_cases(dataset: Seg2DSet, train: list[Seg2DCase], patients: int | None
                   ) -> tuple[list[Seg2DCase], list[Seg2DCase]]:
    """``(labelled, unlabelled)`` training cases: the first ``patients`` patients in the layout's training list order
    (:attr:`Seg2DSet.train_order`; SSL4MIS's 3- and 7-patient ACDC budgets), else in case order; ``None``: all
    labelled.

    Raises:
        ConfigError: ``patients`` is not below the number of training patients.
    """
    if patients is None:
        return train, []
    by_id = {c.id: c for c in train}
    order = [i for i in dataset.train_order if i in by_id] or [c.id for c in train]
    groups = list(dict.fromkeys(case_patient(by_id[i]) for i in order))
    if patients >= len(groups):
        raise ConfigError(f"semi.labelled_patients={patients}: the training split has {len(groups)} patients; "
                          f"choose fewer (or null: all labelled)")
    chosen = set(groups[:patients])
    return [c for c in train if case_patient(c) in chosen], [c for c in train if case_patient(c) not in chosen]


def _training_slices(dataset: Seg2DSet, cases: list[Seg2DCase], grid, labelled: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every slice of ``cases`` on the network grid: ``(images [N, C, H, W], labels [N, H, W] long)``; with
    ``labelled=False`` the labels are -1 (the unlabelled stream; files without a label are accepted)."""
    images, labels = [], []
    for case in cases:
        arrays = load_case(dataset, case)
        if labelled and arrays.label is None:
            raise DataError(f"{case.image[0]}: training case {case.id} has no label")
        image = resize_image(arrays.image, grid)
        images.append(image)
        labels.append(resize_label(arrays.label, grid).long() if labelled else
                      torch.full((image.shape[0], *image.shape[2:]), -1, dtype=torch.long))
    return torch.cat(images), torch.cat(labels)


class _Cases(Dataset):
    """Whole cases on their native grid (validation): ``{"image": [S, C, H, W], "label": [S, H, W]}``."""

    def __init__(self, dataset: Seg2DSet, cases: list[Seg2DCase]):
        self.items = []
        for case in cases:
            arrays = load_case(dataset, case)
            self.items.append({"image": torch.from_numpy(arrays.image), "label": torch.from_numpy(arrays.label)})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


class _SetEpoch(L.Callback):
    def __init__(self, *targets):
        self.targets = [t for t in targets if t is not None]

    def on_train_epoch_start(self, trainer, pl_module):
        for target in self.targets:
            target.set_epoch(trainer.current_epoch)


class Seg2DDataModule(SemiDataModule):
    """Training slices on the network grid (:class:`SliceTrainingSet`) and whole validation cases (one per batch)."""

    def __init__(self, cfg: Seg2DRunConfig, dataset: Seg2DSet, train: list[Seg2DCase], val: list[Seg2DCase],
                 unlabelled: list[Seg2DCase] = (), extra: tuple[torch.Tensor, torch.Tensor] | None = None):
        """``train``: the labelled training cases; ``unlabelled``: the cases whose labels are not used
        (``semi.method`` other than ``none``: two-stream batches; else they are left out); ``extra``: more labelled
        slices on the network grid (``[N, C, H, W]`` float, ``[N, H, W]`` long: pseudo-labels of self-training)."""
        super().__init__()
        images, labels = _training_slices(dataset, train, cfg.data.grid())
        if extra is not None:
            images, labels = torch.cat([images, extra[0].to(images)]), torch.cat([labels, extra[1].to(labels)])
        self.labelled_slices = len(images)
        semi = cfg.semi.method != "none" and bool(unlabelled)
        if semi:
            more, unknown = _training_slices(dataset, unlabelled, cfg.data.grid(), labelled=False)
            images, labels = torch.cat([images, more]), torch.cat([labels, unknown])
        self.train_set = SliceTrainingSet(images, labels, cfg.data.augment, cfg.trainer.samples_per_epoch,
                                          seed=cfg.trainer.seed)
        self.set_samplers(len(images), self.labelled_slices, semi, cfg.data.batch_size, cfg.semi.labelled_batch,
                          cfg.trainer.seed)
        self.val_set = _Cases(dataset, val) if val else None
        self.batch_size = cfg.data.batch_size
        self.num_workers, self.workers_note = cfg.data.capped_workers()


@torch.no_grad()
def score_cases(model: torch.nn.Module, dataset: Seg2DSet, cases: list[Seg2DCase], grid, protocol: str,
                hd95: bool = True) -> list[dict]:
    """One row per case (``case``, ``slices`` and the scores of :func:`score_columns`), scored on the native grid."""
    rows = []
    for case in cases:
        arrays = load_case(dataset, case)
        if arrays.label is None:
            raise DataError(f"{case.image[0]}: case {case.id} has no label to score against")
        pred = predict_stack(model, arrays.image, grid)
        if protocol == "polyp":
            scores = polyp_scores(pred, arrays.label)
        else:
            scores = volume_scores(pred, arrays.label, dataset.classes, hd95=hd95, protocol=protocol)
        rows.append({"case": case.id, "slices": int(arrays.image.shape[0]), **scores})
    return rows


def bundle_meta(cfg: Seg2DRunConfig, dataset: Seg2DSet, protocol: str) -> dict:
    """The model description saved in the bundle and in every checkpoint (``hyper_parameters.config.bundle``)."""
    kwargs = {k: v for k, v in dict(cfg.model.kwargs or {}).items() if k != "weights_path"}
    return {"model_name": cfg.model.name, "modalities": list(dataset.channels), "num_classes": len(dataset.classes),
            "model_kwargs": kwargs, "image_kind": "2d", "classes": list(dataset.classes),
            "dataset": dataset.dataset, "grid": list(cfg.data.grid()),
            "intensity": INTENSITY.get(dataset.dataset, "as_stored"),
            "eval": {"protocol": protocol, "hd95": bool(cfg.eval.hd95)},
            "trained_on": {"root": Path(dataset.root).resolve().name, "layout": dataset.layout}}


def snapshot_callback(run_dir: Path, max_epochs: int, snapshots: int) -> L.Callback:
    """Keeps the student every ``max_epochs // snapshots`` epochs in ``RUN/snapshots/epochNNN.ckpt`` (ERANet's
    conditional self-training compares stage-1 checkpoints at evenly spaced epochs: 20/40/60/80/100 of 100)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    class Snapshots(ModelCheckpoint):
        @property
        def state_key(self) -> str:   # unique beside the best / last checkpoint callback
            return "seg2d_snapshots"

    return Snapshots(dirpath=Path(run_dir) / "snapshots", filename="epoch{epoch:03d}", monitor=None,
                           every_n_epochs=max(1, int(max_epochs) // int(snapshots)), save_top_k=-1,
                           save_weights_only=True, auto_insert_metric_name=False, save_last=False)


@dataclass
class SemiPartition:
    """What :func:`semi_partition` returns: ``splits`` (``splits.json``: train / val / test ids, plus ``labelled``
    and ``unlabelled`` when used), ``notes`` (the reader's and the split's), ``cases`` ``(train, val, test,
    unlabelled)`` records (train = the labelled training cases)."""

    splits: dict
    notes: list
    cases: tuple


def semi_partition(cfg, dataset, unit: str = "patients", pseudo_labelled: bool = False) -> SemiPartition:
    """Splits and the labelled / unlabelled partition of a run's training cases, for the 2-D and 3-D tasks.

    Cases without a label (a folder's ``unlabelled/``) are never validation or test cases: they join the unlabelled
    stream (a semi-supervised method) or are left out and named (``semi.method: none``). ``semi.labelled_patients``
    takes the first patients of the layout's training list (:func:`labelled_cases`; UA-MT's ``labeled_idxs``), who
    are never drawn into a validation set held out of the training list. ``pseudo_labelled``: the other training
    cases are trained on with pseudo-labels (self-training's U3 / U4), as the note then says.

    Raises:
        ConfigError: a semi-supervised method with no unlabelled training case.
    """
    d = cfg.data
    no_label = [c for c in dataset.cases if not c.has_label]
    labelled_set = replace(dataset, cases=[c for c in dataset.cases if c.has_label]) if no_label else dataset
    # the budget is the first patients of the layout's training list: never drawn into a held-out validation set
    listed = [c for c in labelled_set.cases if c.split == "train"]
    n, budget = cfg.semi.labelled_patients, frozenset()
    if n is not None and n < len({case_patient(c) for c in listed}):
        budget = frozenset(case_patient(c) for c in labelled_cases(labelled_set, listed, n)[0])
    splits, split_notes = case_splits(labelled_set, d.val_fraction, d.test_fraction, d.split_seed, keep=budget)
    notes = [*dataset.notes, *split_notes]
    by_id = {c.id: c for c in dataset.cases}
    train, val, test = ([by_id[i] for i in splits[k]] for k in ("train", "val", "test"))
    train, unlabelled = labelled_cases(labelled_set, train, cfg.semi.labelled_patients)
    budget_unlabelled = len(unlabelled)
    if no_label:
        unlabelled = [*unlabelled, *no_label]
        splits["unlabelled"] = [c.id for c in no_label]
        notes.append(f"{len(no_label)} case(s) without a label: " + (
            "the unlabelled stream" if cfg.semi.method != "none" else "not used (semi.method none)"))
    if cfg.semi.method != "none" and not unlabelled:
        raise ConfigError(f"semi.method {cfg.semi.method} needs unlabelled training cases: set "
                          f"semi.labelled_patients (the labelled budget) or add unlabelled images to {d.root}")
    if cfg.semi.labelled_patients is not None:
        splits["labelled"] = [c.id for c in train]
        used = ("unlabelled" if cfg.semi.method != "none" else "pseudo-labelled (self-training)" if pseudo_labelled
                else "not used (supervised on the labelled part only)")
        notes.append(f"{cfg.semi.labelled_patients} labelled training {unit} ({len(train)} cases, the first of the "
                     f"training list); the other {budget_unlabelled} training cases {used}")
    return SemiPartition(splits, notes, (train, val, test, unlabelled))


@removes_new_files_on_input_error
def run_seg2d(cfg: Seg2DRunConfig, resume: str | None = "auto",
              extra: tuple[torch.Tensor, torch.Tensor] | None = None, extra_note: str | None = None) -> RunResult:
    """Train on the training cases of ``cfg.data.root``, keep the best ``val/dice`` checkpoint, score the validation
    and test cases (module docstring). ``resume`` as in :mod:`medmodal.engine.run`. ``extra``: labelled slices added
    to the training set on the network grid (self-training's pseudo-labels; ``extra_note`` says what they are).

    Raises:
        ConfigError: a bad config (one line). LayoutError / DataError: unreadable data.
    """
    cfg.validate()
    # stored absolute, so `seg evaluate RUN` works from any folder
    cfg.data.root = str(Path(cfg.data.root).expanduser().absolute())
    if cfg.semi.self_training:   # ERANet in full: stage 1, then U3 and U4 are three runs
        raise ConfigError("semi.self_training runs three trainings (ERANet's stage 1, U3, U4): call "
                          "medmodal.engine.seg2d.cst.train_2d (what `medmodal seg train` does)")
    run_dir = Path(cfg.out_dir)
    done = finished_result(run_dir, resume, METRICS_FILE, cfg=cfg, artefacts={"model": str(run_dir / "model")})
    if done is not None:
        return done
    quiet_lightning()
    d, t = cfg.data, cfg.trainer
    refuse_run_dir_in_data(run_dir, [d.root])
    dataset = with_classes(read_seg2d(d.root, d.layout), d.classes)
    parts = semi_partition(cfg, dataset, pseudo_labelled=extra is not None)
    splits, notes, (train, val, test, unlabelled) = parts.splits, parts.notes, parts.cases
    protocol = resolve_protocol(cfg.eval.protocol, [c.kind for c in dataset.cases], len(dataset.classes))
    if is_global_zero():
        ensure_writable_dir(run_dir)
        save_config(cfg, run_dir / "config.yaml")
        atomic_write_json(run_dir / "splits.json", splits)
    L.seed_everything(t.seed, workers=True, verbose=False)
    meta = bundle_meta(cfg, dataset, protocol)
    module = Seg2DModule({**config_to_dict(cfg), "bundle": meta})
    data = Seg2DDataModule(cfg, dataset, train, val, unlabelled, extra)
    if extra_note:
        notes.append(extra_note)
    if data.workers_note:
        notes.append(data.workers_note)
    labelled = data.train_set.labels[:data.labelled_slices]
    absent = [c for i, c in enumerate(dataset.classes) if i > 0 and not bool((labelled == i).any())]
    if absent:  # e.g. own organs read with ACDC's class names: a class no label holds would score 0 silently
        notes.append(f"class(es) {', '.join(absent)} appear in no labelled training slice of {d.root}; their scores "
                     f"say nothing (your own classes: data.classes)")
    validate = bool(val)
    if not validate:
        notes.append("no validation cases: the last checkpoint is evaluated")
    trainer = make_trainer(run_dir, t, monitor="val/dice" if validate else None, mode="max",
                           grad_clip=cfg.optim.grad_clip, validate=validate,
                           extra_callbacks=[_SetEpoch(*data.epoch_targets()),
                                            *([snapshot_callback(run_dir, t.max_epochs, cfg.semi.snapshots)]
                                              if cfg.semi.method == "eranet" else [])])
    fit(trainer, module, data, run_dir, resume, existing_checkpoints_expected=True)
    ckpt, best_val = restore_best(trainer, module, run_dir, validate)
    columns = score_columns(dataset.classes, protocol, cfg.eval.hd95)
    results, table = {}, []
    for name, cases in (("val", val), ("test", test)):
        rows = score_cases(module.model, dataset, cases, d.grid(), protocol, cfg.eval.hd95)
        results[name] = {"cases": len(rows), "scores": summarise(rows, columns)}
        table += [{"split": name, **r} for r in rows]
    metrics = {"run_dir": str(run_dir), "checkpoint": str(ckpt), "model_name": cfg.model.name, "best_val_dice": best_val,
               "epochs": int(trainer.current_epoch), "train_seconds": fit_time_seconds(trainer),
               "protocol": protocol, "hd95_unit": "voxels", "classes": list(dataset.classes),
               "dataset": dataset.dataset, "layout": dataset.layout, "splits": results, "notes": notes,
               "train_slices": int(len(data.train_set.images)), "labelled_slices": int(data.labelled_slices),
               "semi": {"method": cfg.semi.method, "labelled_patients": cfg.semi.labelled_patients}}
    bundle_dir = run_dir / "model"
    if is_global_zero():
        save_bundle(bundle_dir, module.model, meta)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["split", "case", "slices", *columns], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table)
        atomic_write_text(run_dir / "per_case.csv", buf.getvalue())
        atomic_write_json(run_dir / METRICS_FILE, json_finite(metrics))
    return RunResult.from_dict(metrics, {"checkpoint": str(ckpt), "model": str(bundle_dir)})
