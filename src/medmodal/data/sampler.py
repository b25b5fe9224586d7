"""A reproducible, DDP-aware epoch sampler.

Each epoch is a permutation drawn from ``(seed, epoch)``; index ``i`` of epoch ``e`` is yielded
as ``e * num_samples + i`` so the dataset knows the epoch without any state being copied into
worker processes (see :class:`medmodal.data.volumes.dataset.CropDataset`). Under DDP every rank takes
every ``world_size``-th index of the same permutation. Lightning calls ``set_epoch`` each epoch;
a resumed run therefore replays exactly the crops an uninterrupted run would draw.
"""

from __future__ import annotations

import numpy as np
import torch


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochSampler(torch.utils.data.Sampler[int]):
    def __init__(self, num_samples: int, seed: int = 0, shuffle: bool = True):
        self.num_samples, self.seed, self.shuffle, self.epoch = int(num_samples), int(seed), shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)

    def __iter__(self):
        rank, world = _rank_and_world()
        order = self._order()
        order = order[: len(order) - len(order) % world] if world > 1 else order
        offset = self.epoch * self.num_samples
        return iter((offset + int(i)) for i in order[rank::world])

    def __len__(self) -> int:
        _, world = _rank_and_world()
        return self.num_samples // world


class TwoStreamBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of ``labelled_batch`` labelled items then ``batch_size - labelled_batch`` unlabelled ones (the
    semi-supervised two-stream batches of UA-MT / SSL4MIS ``TwoStreamBatchSampler``), reproducible per epoch.

    The data set holds ``num_labelled`` labelled items first, then ``num_total - num_labelled`` unlabelled ones.
    Each stream is drawn as successive permutations from ``(seed, epoch, stream)``; draw ``d`` of item ``i`` is
    yielded as ``d * num_total + i`` (a dataset indexing modulo its length then sees a different index, hence
    different augmentation, for each repeat of an item). Lightning calls :meth:`set_epoch` (single process:
    the two streams are not sharded under DDP).

    Args:
        num_labelled: labelled items (indices ``0 .. num_labelled - 1``). num_total: all items.
        batch_size: items per batch. labelled_batch: labelled items per batch.
        batches: batches per epoch. seed: base seed.

    Raises:
        ValueError: no labelled or no unlabelled item, or a batch split outside ``[1, batch_size - 1]``.
    """

    def __init__(self, num_labelled: int, num_total: int, batch_size: int, labelled_batch: int, batches: int,
                 seed: int = 0):
        if not 0 < num_labelled < num_total:
            raise ValueError(f"two streams need labelled and unlabelled items, got {num_labelled} of {num_total}")
        if not 0 < labelled_batch < batch_size:
            raise ValueError(f"labelled_batch must be in [1, {batch_size - 1}], got {labelled_batch}")
        self.num_labelled, self.num_total = int(num_labelled), int(num_total)
        self.batch_size, self.labelled_batch = int(batch_size), int(labelled_batch)
        self.batches, self.seed, self.epoch = max(1, int(batches)), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.batches

    def _stream(self, offset: int, size: int, count: int, stream: int) -> list[int]:
        return permutation_draws(self.seed, self.epoch, stream, offset, size, count, self.num_total)

    def __iter__(self):
        lb, ub = self.labelled_batch, self.batch_size - self.labelled_batch
        labelled = self._stream(0, self.num_labelled, lb * self.batches, 0)
        unlabelled = self._stream(self.num_labelled, self.num_total - self.num_labelled, ub * self.batches, 1)
        for b in range(self.batches):
            yield labelled[b * lb:(b + 1) * lb] + unlabelled[b * ub:(b + 1) * ub]


def permutation_draws(seed: int, epoch: int, stream: int, offset: int, size: int, count: int,
                      total: int) -> list[int]:
    """``count`` draws from successive permutations of the items ``offset .. offset + size - 1`` (every item once
    before any twice), seeded by ``(seed, epoch, stream)``; draw ``d`` of item ``i`` is ``d * total + i`` (a data set
    indexing modulo ``total`` sees a distinct index, hence a distinct augmentation, for each repeat)."""
    rng = np.random.default_rng([seed, epoch, stream])
    out, draw = [], 0
    while len(out) < count:
        out += [draw * total + offset + int(i) for i in rng.permutation(size)]
        draw += 1
    return out[:count]


class DrawSampler(torch.utils.data.Sampler[int]):
    """``draws`` items per epoch from successive permutations of ``num_items`` (:func:`permutation_draws`): with
    fewer draws than items each epoch sees a different subset and every item is reached over the epochs; with more,
    every item at least ``draws // num_items`` times. The single-stream companion of :class:`TwoStreamBatchSampler`
    (a data set of ``num_items`` items indexed modulo ``num_items``); Lightning calls :meth:`set_epoch`.

    Raises:
        ValueError: no item or no draw.
    """

    def __init__(self, num_items: int, draws: int, seed: int = 0):
        if num_items < 1 or draws < 1:
            raise ValueError(f"a draw sampler needs items and draws, got {num_items} and {draws}")
        self.num_items, self.draws, self.seed, self.epoch = int(num_items), int(draws), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.draws

    def __iter__(self):
        return iter(permutation_draws(self.seed, self.epoch, 0, 0, self.num_items, self.draws, self.num_items))
