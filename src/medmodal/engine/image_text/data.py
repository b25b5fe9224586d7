"""Lightning data module of image-text pre-training over the chest X-ray data layer.

Reading (every process, before the model is built): :func:`medmodal.data.cxr.readers.read_studies`
(any layout: MIMIC-CXR-JPG + reports, IU R2Gen / flat names, Open-i CSV pair, generic CSV) ->
rows without an official split get a patient-level 70/10/20 split (``data.split_seed``) ->
:func:`~medmodal.data.cxr.splits.check_patient_splits` (a patient in two splits is refused).
The reader's notes, drops and skipped files are collected in :attr:`PretrainDataModule.notes`.

Images: one :class:`~medmodal.data.cxr.images.ImageCache` over every row (all splits) at the
``resize`` frame (256 for 224 inputs; ``round(S * 256 / 224)`` for other sizes ``S``, so a crop
keeps the references' field of view), in ``data.cache_dir`` (default ``<root folder>/.medmodal_cache``):
a second epoch never decodes a file. Datasets: :class:`~medmodal.data.cxr.dataset.ImageReportDataset`
(train: ``RandomCrop``; val / test: ``CenterCrop``), batches from
:class:`~medmodal.data.cxr.dataset.ImageReportCollator` (the model batch contract).

Training order: a :class:`torch.utils.data.DistributedSampler` seeded by ``trainer.seed`` and
the epoch (also with one process), so the order of an epoch does not depend on the global RNG
and a resumed run sees the same batches; the last incomplete batch is dropped (every process
must give the same batch size to the gathered global loss). Validation keeps every row (padded
shares under DDP); the evaluation after training runs on one process over the whole test split.
"""

from __future__ import annotations

import warnings

import lightning as L
from torch.utils.data import DataLoader, DistributedSampler

from medmodal.data.cxr.dataset import ImageReportCollator, ImageReportDataset, label_names_of
from medmodal.data.cache import cache_note, default_cache_dir
from medmodal.data.cxr.images import ImageCache
from medmodal.data.cxr.readers import read_studies
from medmodal.data.cxr.records import CXRDataWarning, Study
from medmodal.data.cxr.splits import assign_patient_splits, check_patient_splits, select_split
from medmodal.engine.image_text.config import PretrainConfig, resolved_resize
from medmodal.errors import DataError

__all__ = ["PretrainDataModule", "read_pretraining_studies", "default_cache_dir"]


def read_pretraining_studies(cfg: PretrainConfig) -> tuple[list[Study], list[str]]:
    """``(rows with a split, notes)``: read ``data.root``, give rows without a split a
    patient-level split, check that no patient is in two splits.

    Raises:
        CXRDataError / ValueError: bad input (one line naming the file), no row kept.
    """
    d = cfg.data
    options = dict(d.reader)
    options.setdefault("skip_bad", d.skip_bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CXRDataWarning)  # collected into notes below
        result = read_studies(d.root, d.layout, **options)
    notes = list(result.notes)
    if result.dropped:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(result.dropped.items()))
        notes.append(f"studies dropped by the reader's rules: {dropped}")
    if result.excluded:
        excluded = ", ".join(f"{k} {v}" for k, v in sorted(result.excluded.items()))
        notes.append(f"images excluded from kept studies by the reader's rules: {excluded}")
    notes += [f"skipped bad input: {problem}" for _, problem in result.skipped[:20]]
    if len(result.skipped) > 20:
        notes.append(f"skipped bad input: ... and {len(result.skipped) - 20} more")
    studies = result.studies
    if not studies:
        raise DataError(f"{d.root}: no image-report pair kept")
    if any(s.split is None for s in studies):
        studies = assign_patient_splits(studies, seed=d.split_seed)
        notes.append(f"rows without an official split got a patient-level split (70/10/20, seed {d.split_seed})")
    check_patient_splits(studies)
    return studies, notes


class PretrainDataModule(L.LightningDataModule):
    """Splits, datasets and loaders of one pre-training run (module docstring).

    Args:
        cfg: the run's config.
        tokenizer: a Hugging Face tokenizer for the collator (normally the model's own,
            ``model.text_encoder.tokenizer``); ``None``: the shipped MiniLM tokenizer.
        studies: already read rows (skips reading; tests, the evaluation).

    Raises:
        ValueError: an empty training split, or a validation / test split name without rows.
    """

    def __init__(self, cfg: PretrainConfig, tokenizer=None, studies: list[Study] | None = None):
        super().__init__()
        self.cfg = cfg
        self.notes: list[str] = []
        if studies is None:
            studies, self.notes = read_pretraining_studies(cfg)
        d = cfg.data
        self.splits = {name: select_split(studies, name) for name in (d.train_split, d.val_split, d.test_split)}
        if d.max_studies is not None and len(self.splits[d.train_split]) > d.max_studies:
            self.notes.append(f"data.max_studies: training on the first {d.max_studies} of "
                              f"{len(self.splits[d.train_split])} training rows")
            self.splits[d.train_split] = self.splits[d.train_split][: d.max_studies]
        if not self.splits[d.train_split]:
            raise DataError(f"{d.root}: no row in the training split {d.train_split!r}")
        train = self.splits[d.train_split]
        if len(train) < d.batch_size:
            n_studies = len({s.study_id for s in train})
            self.notes.append(f"the training split {d.train_split!r} has {len(train)} row{'s' * (len(train) != 1)} "
                              f"({n_studies} stud{'ies' if n_studies != 1 else 'y'}), fewer than data.batch_size "
                              f"{d.batch_size}: each epoch is one batch of {len(train)}, and the contrastive "
                              f"losses have few negatives")
        self.num_workers, capped = d.capped_workers()
        if capped:
            self.notes.append(capped)
        self.label_names = label_names_of(studies)
        cache_dir = d.cache_dir or default_cache_dir(d.root)
        rows = [s for name in self.splits for s in self.splits[name]]
        self.image_cache = ImageCache([s.image_path for s in rows], cache_dir, size=resolved_resize(cfg))
        if self.image_cache.created:
            self.notes.append(cache_note(self.image_cache.file, d.root, configured=bool(d.cache_dir)))
        self.collator = ImageReportCollator(tokenizer, max_length=d.max_length, max_sentences=d.max_sentences)

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.splits.items()}

    def dataset(self, split: str, train: bool = False) -> ImageReportDataset:
        """The :class:`ImageReportDataset` of a split (``train``: random crops)."""
        rows = self.splits.get(split) or []
        if not rows:
            raise DataError(f"{self.cfg.data.root}: no row in split {split!r}")
        return ImageReportDataset(rows, self.image_cache, train=train, image_size=self.cfg.data.image_size,
                                  label_names=self.label_names)

    def train_dataloader(self) -> DataLoader:
        d = self.cfg.data
        dataset = self.dataset(d.train_split, train=True)
        world, rank = 1, 0
        if self.trainer is not None:
            world, rank = int(self.trainer.world_size), int(self.trainer.global_rank)
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                     seed=int(self.cfg.trainer.seed), drop_last=False)
        per_process = len(sampler)
        drop_last = per_process >= d.batch_size
        return DataLoader(dataset, batch_size=d.batch_size, sampler=sampler, collate_fn=self.collator,
                          num_workers=self.num_workers, drop_last=drop_last, persistent_workers=self.num_workers > 0)

    def eval_loader(self, split: str, shard: bool = False) -> DataLoader:
        """Loader over a whole split in file order.

        ``shard``: under DDP each process takes its share through a ``DistributedSampler`` that pads
        the shares to equal length (a few rows repeat), because the global loss gathers equal
        batches from every process; validation losses are therefore approximate under DDP.
        """
        d = self.cfg.data
        dataset = self.dataset(split, train=False)
        sampler = None
        if shard and self.trainer is not None and self.trainer.world_size > 1:
            sampler = DistributedSampler(dataset, num_replicas=self.trainer.world_size,
                                         rank=self.trainer.global_rank, shuffle=False)
        return DataLoader(dataset, batch_size=d.eval_batch_size or d.batch_size, shuffle=False, sampler=sampler,
                          collate_fn=self.collator, num_workers=self.num_workers)

    def val_dataloader(self):
        if not self.splits.get(self.cfg.data.val_split):
            return []
        return self.eval_loader(self.cfg.data.val_split, shard=True)
