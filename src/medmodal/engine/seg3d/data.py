"""Volumes in memory, random training patches and whole validation volumes for the 3-D task.

Every volume is loaded once (:func:`medmodal.data.seg3d.load_volume`), resampled by ``data.scale`` (images
trilinear, labels nearest), and kept as float32 / int64 tensors. A training item is a random patch of
``data.patch`` voxels (UA-MT's ``RandomCrop``: zero-padded where the volume is smaller, a uniform corner), rotated
by ``k * 90`` degrees in the first two spatial axes and flipped along one of them (UA-MT's ``RandomRotFlip``);
unlabelled volumes carry labels -1. Every draw is a function of ``(seed, epoch, index)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from medmodal.data.seg3d import Seg3DCase, Seg3DSet, load_volume
from medmodal.engine.semi import SemiDataModule
from medmodal.errors import DataError

__all__ = ["LoadedVolume", "load_scaled", "PatchTrainingSet", "Seg3DDataModule"]


class LoadedVolume(dict):
    """``{"id", "image" [C, *S] float32, "label" [*S] int64 or None, "spacing" (3 floats, of the scaled grid)}``."""


def load_scaled(dataset: Seg3DSet, case: Seg3DCase, scale: float, labelled: bool = True) -> LoadedVolume:
    """One case on the scaled grid.

    Raises:
        DataError: a labelled use of a case without a label (one line naming the file).
    """
    vol = load_volume(case, dataset)
    if labelled and vol.label is None:
        raise DataError(f"{case.image}: case {case.id} has no label")
    image = torch.from_numpy(np.ascontiguousarray(vol.image, dtype=np.float32))
    label = torch.from_numpy(np.asarray(vol.label, dtype=np.int64)) if (labelled and vol.label is not None) else None
    spacing = tuple(float(s) for s in vol.spacing)
    if scale != 1.0:
        size = [max(1, int(round(s * scale))) for s in image.shape[1:]]
        image = F.interpolate(image[None], size=size, mode="trilinear", align_corners=False)[0]
        if label is not None:
            label = F.interpolate(label[None, None].float(), size=size, mode="nearest-exact")[0, 0].long()
        spacing = tuple(s / scale for s in spacing)
    return LoadedVolume(id=case.id, image=image, label=label, spacing=spacing)


def _pad_to(x: torch.Tensor, patch: Sequence[int], value: float) -> torch.Tensor:
    pads = []
    for size, want in zip(reversed(x.shape[-3:]), reversed(list(patch))):
        extra = max(0, want - size)
        pads += [extra // 2, extra - extra // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


class PatchTrainingSet(Dataset):
    """Random patches of labelled volumes first, then of unlabelled ones (labels -1).

    Args:
        volumes: :class:`LoadedVolume` items, labelled first (their ``label`` set), unlabelled after (``None``).
        patch: ``[X, Y, Z]``. samples_per_epoch: items per epoch (``None``: one per volume). seed: base seed.
    """

    def __init__(self, volumes: list[LoadedVolume], patch: Sequence[int], samples_per_epoch: int | None = None,
                 seed: int = 0):
        self.volumes, self.patch, self.seed, self.epoch = volumes, tuple(int(p) for p in patch), int(seed), 0
        self.samples = int(samples_per_epoch or len(volumes))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> dict:
        vol = self.volumes[index % len(self.volumes)]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        image = _pad_to(vol["image"], self.patch, 0.0)
        if vol["label"] is None:     # an unlabelled volume: -1 everywhere, padding included
            label = _pad_to(torch.full((1, *vol["image"].shape[1:]), -1, dtype=torch.long), self.patch, -1)[0]
        else:
            label = _pad_to(vol["label"][None], self.patch, 0)[0]
        corner = [int(rng.integers(0, s - p + 1)) for s, p in zip(image.shape[1:], self.patch)]
        region = tuple(slice(c, c + p) for c, p in zip(corner, self.patch))
        image, label = image[(slice(None), *region)], label[region]
        k, axis = int(rng.integers(0, 4)), int(rng.integers(0, 2))
        if self.patch[0] == self.patch[1]:           # a quarter turn keeps the patch shape only when X == Y
            image, label = torch.rot90(image, k, (1, 2)), torch.rot90(label, k, (0, 1))
        image, label = torch.flip(image, (1 + axis,)), torch.flip(label, (axis,))
        return {"image": image.contiguous(), "label": label.contiguous()}


class _Volumes(Dataset):
    def __init__(self, volumes: list[LoadedVolume]):
        self.volumes = volumes

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, i: int) -> dict:
        v = self.volumes[i]
        return {"image": v["image"], "label": v["label"]}


class Seg3DDataModule(SemiDataModule):
    """Training patches (two-stream batches with a semi-supervised method) and whole validation volumes."""

    def __init__(self, cfg, dataset: Seg3DSet, train: list[Seg3DCase], val: list[Seg3DCase],
                 unlabelled: list[Seg3DCase] = ()):
        super().__init__()
        scale = float(cfg.data.scale)
        volumes = [load_scaled(dataset, c, scale) for c in train]
        self.labelled_volumes = len(volumes)
        semi = cfg.semi.method != "none" and bool(unlabelled)
        if semi:
            volumes += [load_scaled(dataset, c, scale, labelled=False) for c in unlabelled]
        self.train_set = PatchTrainingSet(volumes, cfg.data.patch, cfg.trainer.samples_per_epoch, cfg.trainer.seed)
        # draws index volumes (labelled first); every volume is reached even when an epoch is shorter than the set
        self.set_samplers(len(volumes), self.labelled_volumes, semi, cfg.data.batch_size, cfg.semi.labelled_batch,
                          cfg.trainer.seed)
        self.val_set = _Volumes([load_scaled(dataset, c, scale) for c in val]) if val else None
        self.batch_size = cfg.data.batch_size
        self.num_workers, self.workers_note = cfg.data.capped_workers()
