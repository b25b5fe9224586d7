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
