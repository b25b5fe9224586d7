"""Run a vessel segmentation training into a run folder and score it on every domain.

Sources: ``data.root`` is one data set (single-source) or a list of several (leave-one-domain-out): the
union of every source's train split is trained on and the union of their val splits (drawn from each
source's training images only, :func:`~medmodal.data.fundus.dataset.fundus_splits`) validated on; each
source's test split is scored as its own in-domain domain (role ``source``), every ``data.targets`` root
as a target (role ``target``, every image). Domains are named by their folder (``_`` appended to a repeated
name). Images of every source go to the same FOV diameter, whatever their native size.

Run folder: ``config.yaml``, ``splits.json`` (one source: ``source`` -> its train / val / test ids; several:
``sources`` -> the same per source domain name; and each target's test ids),
``checkpoints/{best,last}.ckpt`` (best: highest ``val/dice``; last without validation images),
``logs/`` (``metrics.csv``, TensorBoard), ``model/`` (the bundle; ``trained_on``: the source's folder name
and layout, lists of them for several sources), ``structure/`` (with ``structure.source: pix2pix``: the renderer
``generator.safetensors`` + ``generator.json`` and ``examples.png``, :mod:`medmodal.engine.fundus.structure`),
``per_image.csv`` (one row per test image and domain) and
``metrics.json`` (written last: marks a finished run) with, per domain, the mean and standard deviation
over images of every score of :func:`medmodal.evaluation.vessels.vessel_scores` and the reader's ``notes``
on that data set (e.g. a derived or unofficial FOV; also in the top-level ``notes``, followed by the domain's name)
(and ``structure``: what the structure augmentation used, when on).

Evaluation: each test image whole on the network grid, ``sigmoid`` probabilities mapped back with
:func:`~medmodal.data.fundus.geometry.to_native` and scored on the NATIVE grid against the first
observer's label inside the image's FOV, threshold 0.5.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from medmodal.config import config_to_dict, save_config
from medmodal.data.fundus.arrays import load_fov, load_image, load_label
from medmodal.data.fundus.dataset import FundusVesselDataset, SyntheticPairs, collate_fundus, fundus_splits
from medmodal.data.fundus.geometry import FundusGeometry, to_native, to_network
from medmodal.data.fundus.layouts import FundusSample, read_fundus
from medmodal.data.fundus.synthetic import synth_fundus
from medmodal.data.pixmix import PixMix
from medmodal.distributed import is_global_zero
from medmodal.engine.fundus.config import VesselRunConfig
from medmodal.engine.fundus.module import MODALITIES, VesselModule
from medmodal.engine.fundus.structure import prepare_structure
from medmodal.engine.run import (RunResult, finished_result, fit, json_finite, refuse_run_dir_in_data,
                                 removes_new_files_on_input_error, restore_best)
from medmodal.engine.trainer import fit_time_seconds, make_trainer, quiet_lightning
from medmodal.errors import ConfigError, DataError
from medmodal.evaluation.vessels import SCORES, summarise, vessel_scores
from medmodal.io import atomic_write_json, atomic_write_text, ensure_writable_dir

__all__ = ["run_vessels", "CropsPerEpoch", "VesselDataModule", "score_domain", "METRICS_FILE"]

METRICS_FILE = "metrics.json"


class CropsPerEpoch(Dataset):
    """``length`` training items per epoch from ``dataset`` (any training dataset with ``set_epoch``): item
    ``j`` is ``dataset[j % len(dataset)]`` drawn with its own generator ``(seed, epoch, j)``, so the repeats of
    an image within an epoch are different crops."""

    def __init__(self, dataset: FundusVesselDataset, length: int, seed: int = 0):
        self.dataset, self.length, self.seed, self.epoch = dataset, int(length), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, j: int) -> dict:
        base = self.dataset
        inner = base.dataset if isinstance(base, SyntheticPairs) else base
        i = j % len(base)
        if isinstance(base, SyntheticPairs) and base.is_synthetic(i):
            rng = np.random.default_rng([self.seed, self.epoch, j, 13])
            image, label, fov = base.make_pair(rng)
            item = inner.prepare(image, label, fov, rng, train=True)
            item["synthetic"] = torch.tensor(True)
            return item
        k = i - base._synthetic_before(i) if isinstance(base, SyntheticPairs) else i
        image, label, fov, _ = inner.network_arrays(k)
        item = inner.prepare(image, label, fov, np.random.default_rng([self.seed, self.epoch, j]), train=True)
        if isinstance(base, SyntheticPairs):
            item["synthetic"] = torch.tensor(False)
        return item


class _SetEpoch(L.Callback):
    def __init__(self, dataset: CropsPerEpoch):
        self.dataset = dataset

    def on_train_epoch_start(self, trainer, pl_module):
        self.dataset.set_epoch(trainer.current_epoch)


def _synthetic_maker(geometry: FundusGeometry, size: int):
    def make_pair(rng: np.random.Generator):
        image, label, _, fov = synth_fundus(size, int(rng.integers(2 ** 31)))
        (net_image, net_fov, net_label), _ = to_network(image, fov > 0, label > 0, geometry=geometry, name="synthetic")
        return net_image, net_label & net_fov, net_fov
    return make_pair


class VesselDataModule(L.LightningDataModule):
    """Training crops (:class:`CropsPerEpoch`) and whole validation images (batch 1) of the source."""

    def __init__(self, cfg: VesselRunConfig, train: list[FundusSample], val: list[FundusSample],
                 geometry: FundusGeometry, make_pair=None):
        """``make_pair``: the synthetic pair maker of ``structure.source=pix2pix`` (:func:`prepare_structure`);
        ``procedural`` builds its own, ``none`` mixes nothing in."""
        super().__init__()
        d, t, st = cfg.data, cfg.trainer, cfg.structure
        pixmix = PixMix() if d.pixmix else None
        base = FundusVesselDataset(train, geometry, train=True, crop=d.crop, augment=d.augment, pixmix=pixmix,
                                   seed=t.seed)
        if st.source == "procedural":
            make_pair = _synthetic_maker(geometry, 2 * d.crop)
        if st.source != "none":
            if make_pair is None:
                raise ValueError(f"structure.source={st.source} needs a pair maker")
            base = SyntheticPairs(base, make_pair, st.ratio, seed=t.seed)
        self.train_set = CropsPerEpoch(base, t.samples_per_epoch, seed=t.seed)
        self.val_set = FundusVesselDataset(val, geometry, train=False) if val else None
        self.batch_size, self.num_workers = d.batch_size, d.num_workers

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True,
                          num_workers=self.num_workers, collate_fn=collate_fundus,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=1, shuffle=False, num_workers=0, collate_fn=_collate_without_grid)


def _collate_without_grid(batch: list[dict]) -> dict:
    """:func:`collate_fundus` without the grids (frozen dataclasses Lightning cannot move to a device)."""
    return collate_fundus([{k: v for k, v in item.items() if k != "grid"} for item in batch])


@torch.no_grad()
def score_domain(model: torch.nn.Module, samples: list[FundusSample], geometry: FundusGeometry,
                 threshold: float = 0.5) -> list:
    """:class:`~medmodal.evaluation.vessels.VesselScores` of each sample, scored on its native grid."""
    dataset = FundusVesselDataset(samples, geometry, train=False)
    device = next(model.parameters()).device
    rows = []
    for index, sample in enumerate(samples):
        item = dataset[index]
        logits = model(item["image"][None].to(device))
        prob = torch.sigmoid(logits)[0, 0].float().cpu().numpy()
        native_prob = to_native(prob, item["grid"])
        image = load_image(sample)
        fov = load_fov(sample, image)
        label = load_label(sample, 0, image.shape[:2])
        rows.append(vessel_scores(native_prob, label, fov, threshold=threshold, name=sample.id))
    return rows


def _domain_name(root: str, taken: set) -> str:
    name = Path(root).resolve().name or "domain"
    while name in taken:
        name += "_"
    taken.add(name)
    return name


@removes_new_files_on_input_error
def run_vessels(cfg: VesselRunConfig, resume: str | None = "auto") -> RunResult:
    """Train on the training split of ``cfg.data.root`` (of every root, when it lists several), keep the best
    ``val/dice`` checkpoint, score each source's test split and every ``cfg.data.targets`` domain (module
    docstring). ``resume`` as in :mod:`medmodal.engine.run`.

    Raises:
        ConfigError: a bad config (one line). LayoutError / DataError: unreadable data.
    """
    cfg.validate()
    run_dir = Path(cfg.out_dir)
    done = finished_result(run_dir, resume, METRICS_FILE, cfg=cfg, artefacts={"model": str(run_dir / "model")})
    if done is not None:
        return done
    quiet_lightning()
    d, t = cfg.data, cfg.trainer
    geometry = FundusGeometry(target_diameter=d.diameter)
    roots = d.roots()
    refuse_run_dir_in_data(run_dir, [*roots, *d.targets])
    train, val, taken = [], [], set()
    domains, source_splits, layouts, data_notes = {}, {}, [], {}
    for root in roots:
        source = read_fundus(root, d.layout)
        splits = fundus_splits(source.samples, d.val_fraction, d.split_seed)
        by_id = {s.id: s for s in source.samples}
        if not splits["train"]:
            raise DataError(f"{root}: no training images in the source data set")
        train += [by_id[i] for i in splits["train"]]
        val += [by_id[i] for i in splits["val"]]
        name = _domain_name(root, taken)
        domains[name] = ("source", source.layout, [by_id[i] for i in splits["test"]])
        data_notes[name] = list(source.notes)
        source_splits[name] = splits
        layouts.append(source.layout)
    for root in d.targets:
        if not Path(root).expanduser().is_dir():
            raise ConfigError(f"data.targets: {root}: fundus data folder not found (the config's target data sets; "
                              f"give yours with --set data.targets=[FOLDER,...], or none with --set data.targets=[])")
        target = read_fundus(root, "auto")
        ids = fundus_splits(target.samples, target=True)["test"]
        tid = {s.id: s for s in target.samples}
        name = _domain_name(root, taken)
        domains[name] = ("target", target.layout, [tid[i] for i in ids])
        data_notes[name] = list(target.notes)

    # what the readers derived, guessed or found unofficial (e.g. CHASE_DB1's FOV): kept with the scores
    notes: list[str] = [f"{note} (data set {name})" for name, found in data_notes.items() for note in found]
    if is_global_zero():
        ensure_writable_dir(run_dir)
        save_config(cfg, run_dir / "config.yaml")
        # one source: {"source": {train, val, test}}; several: {"sources": {name: {train, val, test}}}
        recorded = ({"source": next(iter(source_splits.values()))} if len(roots) == 1
                    else {"sources": source_splits})
        atomic_write_json(run_dir / "splits.json", {
            **recorded, **{name: {"test": [s.id for s in v[2]]} for name, v in domains.items() if v[0] == "target"}})
    make_pair, structure = None, None
    if cfg.structure.source == "pix2pix":
        make_pair, structure = prepare_structure(cfg.structure, train, geometry, run_dir, seed=t.seed,
                                                 reuse=resume not in (None, "", "never", "none"),
                                                 write=is_global_zero())
    L.seed_everything(t.seed, workers=True, verbose=False)
    # what `seg predict -m` / `seg evaluate` load: <run>/model/model.json, and the same description in every
    # checkpoint (hyper_parameters.config.bundle), so `-m <run>/checkpoints/best.ckpt` works too
    kwargs = {k: v for k, v in dict(cfg.model.kwargs or {}).items() if k != "weights_path"}
    meta = {"model_name": cfg.model.name, "modalities": list(MODALITIES), "num_classes": 1, "model_kwargs": kwargs,
            "image_kind": "fundus", "geometry": {**geometry.to_dict(), "kind": "fundus"}, "threshold": 0.5,
            "normalisation": FundusVesselDataset([], geometry, train=False).normalize,
            "trained_on": ({"root": Path(roots[0]).resolve().name, "layout": layouts[0]} if len(roots) == 1 else
                           {"root": [Path(r).resolve().name for r in roots], "layout": layouts})}
    config = {**config_to_dict(cfg), "bundle": meta}
    module = VesselModule(config)
    data = VesselDataModule(cfg, train, val, geometry, make_pair)
    validate = bool(val)
    if not validate:
        notes.append("no validation images (data.val_fraction gives none): the last checkpoint is evaluated")
    trainer = make_trainer(run_dir, t, monitor="val/dice" if validate else None, mode="max",
                           grad_clip=cfg.optim.grad_clip, validate=validate,
                           extra_callbacks=[_SetEpoch(data.train_set)])
    fit(trainer, module, data, run_dir, resume, existing_checkpoints_expected=True)
    ckpt, best_val = restore_best(trainer, module, run_dir, validate)

    results, table = {}, []
    for name, (role, layout, samples) in domains.items():
        rows = score_domain(module.model, samples, geometry)
        summary = summarise(rows)
        results[name] = {"role": role, "layout": layout, "images": len(rows),
                         "scores": {k: {"mean": m, "std": s} for k, (m, s) in summary.items()},
                         "notes": data_notes[name]}
        table += [{"domain": name, "role": role, **r.as_dict()} for r in rows]
    metrics = {"run_dir": str(run_dir), "checkpoint": str(ckpt), "best_val_dice": best_val,
               "epochs": int(trainer.current_epoch), "train_seconds": fit_time_seconds(trainer),
               "threshold": 0.5, "geometry": geometry.to_dict(), "domains": results, "notes": notes}
    if cfg.structure.source != "none":
        metrics["structure"] = structure or {"source": cfg.structure.source, "ratio": cfg.structure.ratio}
    # --- model bundle (<run>/model, format seg/model): what `seg predict -m` / `seg evaluate` load ---------------
    bundle_dir = run_dir / "model"
    if is_global_zero():
        from medmodal.models.bundles import save_bundle

        save_bundle(bundle_dir, module.model, meta)
    # -------------------------------------------------------------------------------------------------------
    if is_global_zero():
        buf = io.StringIO()
        fields = ["domain", "role", "name", *SCORES]
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table)
        atomic_write_text(run_dir / "per_image.csv", buf.getvalue())
        atomic_write_json(run_dir / METRICS_FILE, json_finite(metrics))
    return RunResult.from_dict(metrics, {"checkpoint": str(ckpt), "model": str(bundle_dir)})
