"""Data module of the MICS engine: samples, stratified split, label fraction, loaders.

Split protocol: one class-stratified train / val / test split (``data.split_seed``, fixed), so
pre-training (on the training split's pairs, labels unused) never sees a test image; the labelled
subset of the training split is drawn per training seed (:func:`label_fraction_subset`, nested
across fractions); the rest of the training split is the unlabelled pool (FixMatch). The split,
the labelled ids and the unlabelled ids are written to ``splits.json`` in the run folder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, RandomSampler
from torchvision.transforms import v2

from medmodal.data.endoscopy.dataset import PairedImageDataset, default_image_transform
from medmodal.data.endoscopy.images import DecodedImageCache
from medmodal.data.endoscopy.layouts import read_samples
from medmodal.data.endoscopy.samples import PairedSample, class_names
from medmodal.data.stratified import label_fraction_subset, stratified_splits
from medmodal.data.views import Cutout, TwoViewDataset
from medmodal.errors import ConfigError, DataError
from medmodal.io import atomic_write_json

__all__ = ["EndoscopyDataModule", "strong_image_transform"]


def strong_image_transform(ops: int = 2, magnitude: int = 10) -> v2.Transform:
    """FixMatch strong view (photometric part): RandAugment (``ops``, ``magnitude``) then the weak jitter."""
    return v2.Compose([v2.RandAugment(num_ops=ops, magnitude=magnitude), default_image_transform()])


class EndoscopyDataModule(L.LightningDataModule):
    """Loaders for pre-training (``mode="pretrain"``: paired training samples, labels unused) or
    fine-tuning (``mode="finetune"``: labelled subset, val, test; ``unlabelled=True`` adds the
    FixMatch two-view loader).

    Args:
        data (EndoscopyDataSettings): the ``data`` section of the run config.
        mode: ``pretrain`` or ``finetune``.
        seed: label-subset and augmentation seed.
        unlabelled: also build the FixMatch loader of the unlabelled training pairs.
        fixmatch (FixMatchSettings | None): the FixMatch settings, when ``unlabelled``.
        classes: class names in index order (default: the sorted labels of the data).

    Raises:
        ValueError: too few samples for the split, no pairs to pre-train on (one line each).
    """

    def __init__(self, data, mode: str = "finetune", seed: int = 0, unlabelled: bool = False, fixmatch=None,
                 classes: list[str] | None = None):
        super().__init__()
        if mode not in ("pretrain", "finetune"):
            raise ValueError(f"mode must be pretrain or finetune, got {mode!r}")
        self.data, self.mode, self.seed, self.unlabelled, self.fixmatch = data, mode, int(seed), unlabelled, fixmatch
        self.notes: list[str] = []
        samples = read_samples(data.root, data.layout, data.split_file)
        self.samples = {s.sample_id: s for s in samples}
        self.classes = list(classes) if classes is not None else class_names(samples)
        ids, labels = [s.sample_id for s in samples], [s.label for s in samples]
        self.splits = stratified_splits(ids, labels, tuple(data.fractions), data.split_seed)
        train = self.splits["train"]
        if mode == "pretrain":
            paired = [i for i in train if self.samples[i].paired]
            if len(paired) < 2:
                raise DataError(f"{data.root}: {len(paired)} WLI / NBI pairs in the training split; "
                                "pre-training needs at least 2 (simulate NBI with `medmodal endoscopy simulate-nbi`)")
            if len(paired) < len(train):
                self.notes.append(f"pre-training uses the {len(paired)} paired training samples; "
                                  f"{len(train) - len(paired)} single-modality samples left out")
            self.train_ids = paired
            self.val_ids = [i for i in self.splits["val"] if self.samples[i].paired]
            self.unlabelled_ids: list[str] = []
        else:
            if not self.classes:
                raise DataError(f"{data.root}: no labelled samples; fine-tuning needs class labels")
            lab = {i: self.samples[i].label for i in train}
            self.train_ids = label_fraction_subset(train, [lab[i] for i in train], data.label_fraction, self.seed)
            chosen = set(self.train_ids)
            self.unlabelled_ids = [i for i in train if i not in chosen]
            self.val_ids = self.splits["val"]
            if not self.splits["test"]:
                raise DataError(f"{data.root}: the test split is empty; more samples per class are needed")
        self.cache = DecodedImageCache(data.image_size, data.cache_dir)

    def split_payload(self) -> dict:
        return {"split_seed": self.data.split_seed, "label_fraction": self.data.label_fraction,
                "label_seed": self.seed, "classes": self.classes, **self.splits,
                "labelled": self.train_ids if self.mode == "finetune" else [],
                "unlabelled": self.unlabelled_ids}

    def write_splits(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.split_payload())

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train_ids), "unlabelled": len(self.unlabelled_ids), "val": len(self.val_ids),
                "test": len(self.splits["test"])}

    def dataset(self, ids, train: bool, seed_offset: int = 0, image_transform=None,
                hide_labels: bool = False) -> PairedImageDataset:
        samples: list[PairedSample] = [self.samples[i] for i in ids]
        if hide_labels or self.mode == "pretrain":
            samples = [PairedSample(s.sample_id, s.wli, s.nbi, None, s.split, s.source) for s in samples]
        return PairedImageDataset(samples, self.data.image_size, train=train, classes=self.classes, cache=self.cache,
                                  image_transform=image_transform, joint_geometry=self.data.joint_geometry,
                                  seed=self.seed * 1009 + seed_offset)

    def _loader(self, dataset, batch_size: int, shuffle: bool, draws: int | None = None) -> DataLoader:
        workers = int(self.data.num_workers)
        g = torch.Generator().manual_seed(self.seed + int(hashlib.sha1(str(len(dataset)).encode()).hexdigest()[:6], 16))
        sampler = RandomSampler(dataset, replacement=True, num_samples=draws, generator=g) if draws else None
        return DataLoader(dataset, batch_size=min(batch_size, max(1, draws or len(dataset))),
                          shuffle=shuffle and sampler is None, sampler=sampler, num_workers=workers,
                          persistent_workers=False, generator=g if shuffle and sampler is None else None,
                          drop_last=False)

    def labelled_draws(self) -> int | None:
        """Labelled samples per fine-tuning epoch (see ``EndoscopyDataSettings.labelled_draws``)."""
        if self.mode != "finetune" or self.data.labelled_draws == 0:
            return None
        return int(self.data.labelled_draws or len(self.splits["train"]))

    def train_dataloader(self):
        labelled = self._loader(self.dataset(self.train_ids, True), self.data.batch_size, True,
                                self.labelled_draws())
        if not (self.unlabelled and self.mode == "finetune"):
            return labelled
        if not self.unlabelled_ids:
            raise ConfigError("FixMatch needs unlabelled training pairs; at label fraction 1.0 there are none")
        fm = self.fixmatch
        weak = self.dataset(self.unlabelled_ids, True, 1, hide_labels=True)
        strong = self.dataset(self.unlabelled_ids, True, 2, hide_labels=True,
                              image_transform=strong_image_transform(fm.randaugment_ops, fm.randaugment_magnitude))
        views = TwoViewDataset(weak, strong, Cutout(fm.cutout, ("wli", "nbi"), seed=strong.seed))
        unl = self._loader(views, self.data.batch_size * fm.mu, True)
        from lightning.pytorch.utilities import CombinedLoader

        return CombinedLoader({"labelled": labelled, "unlabelled": unl}, mode="max_size_cycle")

    def _eval(self, ids) -> DataLoader:
        return self._loader(self.dataset(ids, False), self.data.eval_batch_size or self.data.batch_size, False)

    def val_dataloader(self):
        return self._eval(self.val_ids)

    def test_dataloader(self):
        return self._eval(self.splits["test"])
