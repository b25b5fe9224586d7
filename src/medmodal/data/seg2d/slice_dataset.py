"""2-D training and evaluation items of :mod:`medmodal.data.seg2d` cases on the network grid.

Every slice (or photograph) is resized to the network grid ``(H, W)`` once, when the set is built: the
image bilinearly (with anti-aliasing when it shrinks), the label with nearest neighbour. TransUNet resizes with
``scipy.ndimage.zoom`` (order 3 for the image, 0 for the label, ``Beckschen/TransUNet``
``datasets/dataset_synapse.py``); bilinear interpolation in torch is the deviation (no overshoot outside
[0, 1], ten times faster), the label rule is the same.

Augmentation ``transunet`` is TransUNet's ``RandomGenerator``: with probability 0.5 a random ``rot90`` (k in
0..3) followed by a flip along a random axis; otherwise, with probability 0.5, a rotation by an angle drawn
in [-20, 20] degrees, nearest-neighbour for image and label alike (``ndimage.rotate(order=0)``, as the
release). ``flips``: random horizontal and vertical flips. Every draw is a function of ``(seed, epoch,
index)``, so a run and its resumed run see the same items with any number of workers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from medmodal.errors import DataError

__all__ = ["AUGMENTS", "resize_image", "resize_label", "SliceTrainingSet"]

#: ``data.augment`` choices
AUGMENTS = ("transunet", "flips", "none")


def resize_image(image: torch.Tensor | np.ndarray, size: Sequence[int]) -> torch.Tensor:
    """Images ``[N, C, H, W]`` -> float32 ``[N, C, *size]`` (bilinear; anti-aliased when shrinking)."""
    x = torch.as_tensor(np.asarray(image, np.float32) if isinstance(image, np.ndarray) else image).float()
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = x.shape[-2] > size[0] or x.shape[-1] > size[1]
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)


def resize_label(label: torch.Tensor | np.ndarray, size: Sequence[int]) -> torch.Tensor:
    """Label maps ``[N, H, W]`` (class indices) -> int64 ``[N, *size]`` (nearest neighbour)."""
    y = torch.as_tensor(np.asarray(label) if isinstance(label, np.ndarray) else label)
    if tuple(y.shape[-2:]) == tuple(size):
        return y.long()
    return F.interpolate(y[:, None].float(), size=tuple(size), mode="nearest-exact")[:, 0].long()


class SliceTrainingSet(Dataset):
    """Random training slices on the network grid.

    Args:
        images: float32 ``[N, C, H, W]`` slices already on the network grid (:func:`resize_image`).
        labels: int64 ``[N, H, W]`` class maps on the same grid.
        augment: one of :data:`AUGMENTS`.
        samples_per_epoch: items per epoch (``None``: ``N``); item ``j`` is slice ``j % N``.
        seed: base seed of the augmentation draws.

    Raises:
        DataError: no slices, or images and labels of different counts / grids.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: str = "transunet",
                 samples_per_epoch: int | None = None, seed: int = 0):
        if len(images) == 0:
            raise DataError("no training slices (the training split is empty)")
        if images.shape[0] != labels.shape[0] or images.shape[-2:] != labels.shape[-2:]:
            raise DataError(f"training images {tuple(images.shape)} and labels {tuple(labels.shape)} do not match")
        if augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
        self.images, self.labels, self.augment = images, labels, augment
        self.length = int(samples_per_epoch or len(images))
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, j: int) -> dict:
        i = j % len(self.images)
        image, label = self.images[i], self.labels[i]
        rng = np.random.default_rng([self.seed, self.epoch, j])
        if self.augment == "transunet":
            image, label = _transunet(image, label, rng)
        elif self.augment == "flips":
            for axis in (-1, -2):
                if rng.random() < 0.5:
                    image, label = image.flip(axis), label.flip(axis)
        return {"image": image.contiguous(), "label": label.contiguous()}


def _transunet(image: torch.Tensor, label: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """TransUNet's ``RandomGenerator`` (module docstring). A rot90 of a non-square grid would change its shape:
    there only the flip applies (the release trains on squares)."""
    if rng.random() > 0.5:
        k = int(rng.integers(0, 4))
        if image.shape[-1] == image.shape[-2]:
            image, label = torch.rot90(image, k, (-2, -1)), torch.rot90(label, k, (-2, -1))
        axis = -1 - int(rng.integers(0, 2))
        return image.flip(axis), label.flip(axis)
    if rng.random() > 0.5:
        angle = float(rng.uniform(-20, 20))
        image = TF.rotate(image, angle, interpolation=InterpolationMode.NEAREST)
        label = TF.rotate(label[None], angle, interpolation=InterpolationMode.NEAREST)[0]
    return image, label
