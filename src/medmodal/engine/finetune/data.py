"""Lightning data module of the fine-tuning engine: read, split, sample the label fraction, load.

Reading (every process, before the model is built): :func:`~medmodal.data.cxr.downstream.read_downstream`
with the task's split protocol -> :func:`~medmodal.data.cxr.downstream.check_no_leakage` ->
:func:`~medmodal.data.cxr.downstream.sample_training_fraction` (training split only). The reader's
notes, what it dropped and what it skipped are collected in :attr:`FinetuneDataModule.notes`.

Images: one :class:`~medmodal.data.cxr.images.ImageCache` over every image of the read (all
splits, before the fraction; ``data.resize`` frame, default 256 for 224 inputs) in
``data.cache_dir`` (default ``<root>/.medmodal_cache``), shared by every task and fraction.

Per task: classification -> :class:`~medmodal.data.cxr.downstream.ClassificationDataset` (or, on
the cached-feature path, :class:`~medmodal.engine.finetune.features.FeatureDataset` filled in
:meth:`FinetuneDataModule.setup` on the trainer's device), segmentation ->
:class:`~medmodal.data.cxr.downstream.SegmentationDataset`, detection ->
:class:`~medmodal.data.cxr.downstream.DetectionDataset` (``collate_detection``).

Training batches: shuffled with a ``torch.Generator`` seeded by ``trainer.seed``, the last
incomplete batch dropped when the split holds at least one batch (the references' ``drop_last``);
under DDP Lightning shards them (``use_distributed_sampler``). Validation / test keep every image,
each scored once under DDP too (Lightning's ``UnrepeatedDistributedSampler``, no padding repeats).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from medmodal.data.cxr.downstream import (ClassificationDataset, DetectionDataset, SegmentationDataset,
                                          check_no_leakage, collate_detection, read_downstream,
                                          sample_training_fraction)
from medmodal.data.cache import cache_note, default_cache_dir
from medmodal.data.cxr.images import ImageCache
from medmodal.data.cxr.records import CXRDataWarning
from medmodal.distributed import is_distributed
from medmodal.engine.finetune.config import FinetuneConfig, resolved_resize
from medmodal.engine.finetune.features import FeatureCache, FeatureDataset, extract_missing, feature_cache_key
from medmodal.errors import DataError
from medmodal.io import atomic_write_json

__all__ = ["FinetuneDataModule", "default_cache_dir", "one_class_notes"]

SPLITS = ("train", "val", "test")


def one_class_notes(samples: dict[str, list], descriptor) -> list[str]:
    """Notes on training / test splits whose labels take one value only: a multi-class split of one
    class (its accuracy measures that class alone), a finding all positive or all negative in a
    multi-label split (nothing to learn; its test AUROC is undefined, reported n/a)."""
    notes = []
    names = descriptor.label_names
    for split in ("train", "test"):
        rows = samples.get(split) or []
        if not rows:
            continue
        if descriptor.label_kind == "multiclass":
            present = sorted({s.class_index for s in rows if s.class_index is not None})
            if len(present) == 1:
                effect = ("the classifier sees no other class" if split == "train" else
                          "test accuracy only counts how often that class is predicted; no other class is tested")
                notes.append(f"the {split} split holds one class only ({names[present[0]]}, {len(rows)} images): "
                             f"{effect}")
            continue
        single = {}
        for k, name in enumerate(names):
            values = {s.labels[k] for s in rows if s.labels is not None and s.labels[k] == s.labels[k]}
            if len(values) == 1:
                single[name] = "positive" if values == {1.0} else "negative"
        if single:
            which = ", ".join(f"{name} (all {value})" for name, value in single.items())
            effect = ("nothing to learn for it" if split == "train" else
                      "its test AUROC is undefined (n/a) and left out of the mean")
            notes.append(f"the {split} split holds one class only for {which}: {effect}")
    return notes


class FinetuneDataModule(L.LightningDataModule):
    """Splits, label fraction, datasets and loaders of one fine-tuning run.

    Args:
        cfg: the run's config.
        encoder: the frozen encoder, for the cached-feature path (``None`` otherwise).
        cached_features: classification on cached features.

    Attributes:
        result: the read (after the fraction); ``result.dataset`` the descriptor.
        samples: split -> samples. notes: lines a user should read (reader notes, drops, skips).

    Raises:
        ValueError / CXRDataError: bad input (one line), an empty split.
    """

    def __init__(self, cfg: FinetuneConfig, encoder=None, cached_features: bool = False):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.cached_features = cached_features
        self.notes: list[str] = []
        d = cfg.data
        options = dict(d.reader)
        if d.split_seed is not None:
            options["seed"] = d.split_seed
        if d.skip_bad:
            options["skip_bad"] = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CXRDataWarning)  # kept in result.notes and reported once
            full = read_downstream(d.dataset, d.root, task=cfg.task, **options)
            check_no_leakage(full.samples)
            self.result = sample_training_fraction(full, float(d.fraction), seed=d.fraction_seed)
        self.descriptor = self.result.dataset
        self.notes.extend(self.result.notes)
        for file, problem in self.result.skipped[:5]:
            self.notes.append(f"skipped: {problem}")
        if len(self.result.skipped) > 5:
            self.notes.append(f"skipped {len(self.result.skipped)} bad inputs in all (first 5 named above)")
        self.samples = {split: self.result.select(split) for split in SPLITS}
        empty = [split for split, rows in self.samples.items() if not rows]
        if empty:
            raise DataError(f"{d.root}: the {self.descriptor.name} {cfg.task} splits have no "
                            f"{' / '.join(empty)} images ({len(full.samples)} images read)")
        if cfg.task == "classification":
            self.notes.extend(one_class_notes(self.samples, self.descriptor))
        self.num_workers, capped = d.capped_workers()
        if capped:
            self.notes.append(capped)
        self.cache_dir = Path(d.cache_dir) if d.cache_dir else default_cache_dir(d.root)
        self.image_cache = ImageCache([s.image_path for s in full.samples], self.cache_dir, size=resolved_resize(cfg))
        if self.image_cache.created:
            self.notes.append(cache_note(self.image_cache.file, d.root, configured=bool(d.cache_dir)))
        self.datasets: dict[str, torch.utils.data.Dataset] = {}
        self.feature_cache: FeatureCache | None = None

    # ------------------------------------------------------------------ files
    def split_payload(self) -> dict:
        """What ``splits.json`` holds: the ids per split and how they were drawn."""
        d = self.cfg.data
        return {"dataset": self.descriptor.name, "task": self.cfg.task, "fraction": float(d.fraction),
                "fraction_seed": d.fraction_seed, "split_seed": d.split_seed,
                **{split: [s.sample_id for s in rows] for split, rows in self.samples.items()}}

    def write_splits(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.split_payload())

    def counts(self) -> dict[str, int]:
        return {split: len(rows) for split, rows in self.samples.items()}

    # --------------------------------------------------------------- datasets
    def _classification(self, split: str, train_view: bool) -> ClassificationDataset:
        d = self.cfg.data
        return ClassificationDataset(self.samples[split], self.descriptor, self.image_cache, train=train_view,
                                     image_size=d.image_size, augment=d.augment)

    def _build(self, split: str):
        d, task = self.cfg.data, self.cfg.task
        train = split == "train"
        if task == "classification":
            if self.cached_features:
                return FeatureDataset(self.samples[split], self._rows(split), self.feature_cache,
                                      self.descriptor.label_kind)
            train_view = train and self.cfg.classification.train_transform == "reference"
            return self._classification(split, train_view)
        if task == "segmentation":
            augment = d.augment or "shift_scale_rotate"
            return SegmentationDataset(self.samples[split], self.image_cache, train=train, image_size=d.image_size,
                                       augment=augment)
        return DetectionDataset(self.samples[split], self.image_cache, train=train, image_size=d.image_size,
                                geometry=d.geometry, augment=d.augment or "none")

    def _rows(self, split: str) -> list[int]:
        return [self.image_cache.position(s.image_path) for s in self.samples[split]]

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets; on the cached path first fill the feature rows (every process
        computes its share on its device, then all meet at a barrier)."""
        if self.cached_features and self.feature_cache is None:
            self._extract_features()
        for split in SPLITS:
            if split not in self.datasets:
                self.datasets[split] = self._build(split)

    def _extract_features(self) -> None:
        if self.encoder is None:
            raise ValueError("the cached-feature path needs the encoder (FinetuneDataModule(encoder=...))")
        d = self.cfg.data
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        precision = self.cfg.trainer.precision
        key = feature_cache_key(self.encoder.info.fingerprint, self.image_cache.file, d.image_size, str(precision))
        self.feature_cache = FeatureCache(self.cache_dir, key, len(self.image_cache), self.encoder.num_features)
        samples = [s for split in SPLITS for s in self.samples[split]]
        rows = [self.image_cache.position(s.image_path) for s in samples]
        if self.feature_cache.missing(rows):
            view = ClassificationDataset(samples, self.descriptor, self.image_cache, train=False,
                                         image_size=d.image_size, augment=d.augment)
            training = self.encoder.training
            self.encoder.to(device).eval()
            try:
                extract_missing(self.feature_cache, view, rows, self.encoder, device,
                                d.eval_batch_size or d.batch_size, self.num_workers, rank, world, str(precision))
            finally:
                self.encoder.train(training)
        if world > 1:  # every process passes here, whether it had rows to compute or not
            trainer.strategy.barrier("feature-cache")
        self.encoder.to("cpu")

    # ----------------------------------------------------------------- loaders
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        d = self.cfg.data
        dataset = self.datasets[split]
        batch = d.batch_size if shuffle else (d.eval_batch_size or d.batch_size)
        workers = 0 if self.cached_features else self.num_workers
        generator = torch.Generator().manual_seed(int(self.cfg.trainer.seed)) if shuffle else None
        sampler = None
        if not shuffle and is_distributed() and torch.distributed.get_world_size() > 1:
            # every image scored exactly once (Lightning's default sampler would pad with repeats)
            from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return DataLoader(dataset, batch_size=batch, shuffle=shuffle if sampler is None else None, sampler=sampler,
                          generator=generator, num_workers=workers, pin_memory=torch.cuda.is_available(),
                          drop_last=shuffle and len(dataset) >= batch, persistent_workers=workers > 0,
                          collate_fn=collate_detection if self.cfg.task == "detection" else None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
