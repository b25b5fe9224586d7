"""Frozen-encoder features computed once and cached on disk (the linear probe's fast path).

The references re-run the frozen backbone on every training and validation image in every epoch
(up to 100 epochs); with a frozen encoder and no training augmentation the features never
change, so they are computed once (with the evaluation transform: centre crop ``S`` of the
``resize`` frame) and the linear head is trained on them. What the cached path drops: the
training augmentation (``crop`` / ``moco2``); ``classification.features: augmented`` keeps it.

Cache layout (:class:`FeatureCache`): ``<cache_dir>/features<D>_<key>.npy``, a memory-mapped float32
array ``[N, D + 1]`` over the SAME image list as the run's :class:`~medmodal.data.cxr.images.ImageCache`
(every image of the dataset read, so all label fractions of a dataset share one file); the last
column is 1 once the row is filled. ``key`` hashes the encoder (:attr:`EncoderInfo.fingerprint`:
its weights), the image cache's key (files, sizes, modification times, frame size), the transform
(evaluation view, ``S``) and the precision. Rows are filled when first needed: an interrupted
extraction resumes, other fractions reuse them. Under DDP each process fills every
``world``-th missing row, then all wait at a barrier and read the whole file.
"""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from medmodal.data.cxr.downstream.base import DownstreamSample
from medmodal.errors import DamagedFileError
from medmodal.io import create_npy_once, ensure_writable_dir

__all__ = ["FeatureCache", "feature_cache_key", "extract_missing", "FeatureDataset", "classification_target"]

FEATURE_CACHE_VERSION = 1


def feature_cache_key(encoder_fingerprint: str, image_cache_file: str | Path, image_size: int, precision: str) -> str:
    """20 hex digits identifying (encoder weights, image list + frame, evaluation transform, precision)."""
    text = (f"v{FEATURE_CACHE_VERSION}|{encoder_fingerprint}|{Path(image_cache_file).name}|eval-centre-crop"
            f"|{int(image_size)}|{precision}")
    return hashlib.sha1(text.encode()).hexdigest()[:20]


class FeatureCache:
    """A memory-mapped ``[N, D + 1]`` float32 feature file (module docstring).

    Args:
        folder: where the file lives (created). key: from :func:`feature_cache_key`.
        num_rows: ``N`` (images of the image cache). dim: ``D``.

    Raises:
        ValueError: an existing file of another shape under the same name.
    """

    def __init__(self, folder: str | Path, key: str, num_rows: int, dim: int):
        self.folder = ensure_writable_dir(folder)
        self.num_rows, self.dim = int(num_rows), int(dim)
        self.file = self.folder / f"features{self.dim}_{key}.npy"
        self._array = None
        if not self.file.exists():
            self._create()
        shape = np.load(self.file, mmap_mode="r").shape
        if shape != (self.num_rows, self.dim + 1):
            raise DamagedFileError(f"{self.file}: feature cache of shape {shape}, expected {(self.num_rows, self.dim + 1)} "
                                   f"(delete the file)")

    def _create(self) -> None:
        create_npy_once(self.file, (self.num_rows, self.dim + 1), np.float32)

    def __getstate__(self):  # DataLoader workers re-open the map
        state = dict(self.__dict__)
        state["_array"] = None
        return state

    def _rows(self, writable: bool = False) -> np.ndarray:
        if self._array is None or (writable and not self._array.flags.writeable):
            self._array = np.load(self.file, mmap_mode="r+" if writable else "r")
        return self._array

    def missing(self, rows: Sequence[int]) -> list[int]:
        """The rows among ``rows`` not filled yet (sorted, unique)."""
        rows = np.unique(np.asarray(rows, np.int64))
        if rows.size == 0:
            return []
        filled = np.asarray(self._rows()[rows, -1]) == 1.0
        return rows[~filled].tolist()

    def write(self, rows: Sequence[int], features: np.ndarray) -> None:
        """Store ``features [len(rows), D]``; each row is marked filled after its values."""
        array = self._rows(writable=True)
        rows = np.asarray(rows, np.int64)
        array[rows, :-1] = np.asarray(features, np.float32)
        array[rows, -1] = 1.0
        array.flush()

    def read(self, rows: Sequence[int] | int) -> np.ndarray:
        """``[len(rows), D]`` (or ``[D]`` for one row), copied out of the map."""
        return np.array(self._rows()[rows, :-1])


def extract_missing(cache: FeatureCache, dataset: Dataset, rows: Sequence[int],
                    encode: Callable[[torch.Tensor], torch.Tensor], device: torch.device, batch_size: int,
                    num_workers: int = 0, rank: int = 0, world: int = 1, precision: str = "32-true") -> int:
    """Fill the missing cache rows of ``dataset`` items (item ``i`` belongs to cache row ``rows[i]``).

    Each process takes every ``world``-th missing item. ``encode``: images ``[B, 3, S, S]`` on
    ``device`` -> ``[B, D]``; run under ``torch.no_grad`` (and bf16 autocast for a ``bf16``
    precision on CUDA). Returns the number of rows this process computed.
    """
    rows = list(rows)
    todo_rows = set(cache.missing(rows))
    todo = [i for i, r in enumerate(rows) if r in todo_rows]
    seen, mine = set(), []
    for i in todo:  # one item per row (two samples may share an image)
        if rows[i] not in seen:
            seen.add(rows[i])
            mine.append(i)
    mine = mine[rank::world]
    if not mine:
        return 0
    loader = DataLoader(Subset(dataset, mine), batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision.startswith("bf16")
                and device.type == "cuda" else nullcontext())
    done = 0
    with torch.no_grad(), autocast:
        for batch in loader:
            features = encode(batch["image"].to(device, non_blocking=True)).float().cpu().numpy()
            cache.write([rows[i] for i in mine[done:done + len(features)]], features)
            done += len(features)
    return done


def classification_target(sample: DownstreamSample, label_kind: str) -> torch.Tensor:
    """float32 ``[K]`` (multi-label; NaN = ignore) or int64 ``[]`` (multi-class), as
    :class:`~medmodal.data.cxr.downstream.ClassificationDataset` gives."""
    if label_kind == "multiclass":
        return torch.tensor(sample.class_index, dtype=torch.int64)
    return torch.tensor(sample.labels, dtype=torch.float32)


class FeatureDataset(Dataset):
    """Cached features + targets: ``{"features": float32 [D], "target": ..., "sample_id", "patient_id"}``.

    Args:
        samples: the split's samples. rows: their cache rows. cache: a filled :class:`FeatureCache`.
        label_kind: ``multilabel`` | ``multiclass``.

    Raises:
        ValueError: a row that is not filled (the extraction did not run for it).
    """

    def __init__(self, samples: Sequence[DownstreamSample], rows: Sequence[int], cache: FeatureCache,
                 label_kind: str):
        self.samples, self.rows, self.cache, self.label_kind = list(samples), list(rows), cache, label_kind
        missing = cache.missing(self.rows)
        if missing:
            raise DamagedFileError(f"{cache.file}: {len(missing)} feature rows are not filled (extraction incomplete)")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        s = self.samples[index]
        return {"features": torch.from_numpy(self.cache.read(self.rows[index])),
                "target": classification_target(s, self.label_kind), "sample_id": s.sample_id,
                "patient_id": s.patient_id}
