"""PyTorch dataset over WLI / NBI pairs, with the augmentation applied per pair.

Each item is a dict:

* ``"wli"``, ``"nbi"``: ``float32 [3, S, S]``, normalised with the ImageNet mean / std (the
  statistics timm / torchvision ImageNet weights expect; the MICS authors feed ``ToTensor()``
  values in ``[0, 1]`` instead: pass ``mean=(0, 0, 0), std=(1, 1, 1)`` for that). An absent image
  is all zeros.
* ``"present"``: ``bool [2]``, (WLI, NBI).
* ``"label"``: ``int64`` class index, ``-1`` for unlabelled.
* ``"sample_id"``: ``str``.

Training augmentation (torchvision transforms v2):

* geometric (``RandomResizedCrop(S, scale=(0.5, 1))``, horizontal and vertical flips, which carry
  no meaning in endoscopy): with ``joint_geometry=True`` both images of a pair get the *same*
  crop and flips. That keeps simulated pairs (NBI computed from the WLI image,
  :mod:`medmodal.data.endoscopy.nbi`) pixel-aligned; real pairs are NOT pixel-registered (separate
  crops of the same lesion), so for them joint geometry matters little and
  ``joint_geometry=False`` (independent draws) is a valid choice.
* photometric (``ColorJitter(brightness=0.2, contrast=0.2, saturation=0.1)``, no hue jitter: hue
  carries redness in WLI and the NBI palette), drawn independently per image.

Every random draw is a function of ``(seed, epoch, index)`` (as in
:class:`medmodal.data.volumes.dataset.CropDataset`), so runs are reproducible whatever the number
of DataLoader workers; call :meth:`PairedImageDataset.set_epoch` each epoch.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from medmodal.data.endoscopy.images import DecodedImageCache
from medmodal.data.endoscopy.samples import MODALITIES, PairedSample, class_names
from medmodal.errors import ConfigError, DataError

#: ImageNet channel statistics (RGB, for values in [0, 1]); torchvision / timm defaults.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the MICS authors' input size.
AUTHORS_IMAGE_SIZE = 384


def default_pair_transform(image_size: int, scale: tuple[float, float] = (0.5, 1.0)) -> v2.Transform:
    """Geometric training augmentation; called as ``t(wli, nbi)`` it draws one set of parameters."""
    return v2.Compose([
        v2.RandomResizedCrop(image_size, scale=scale, antialias=True),
        v2.RandomHorizontalFlip(0.5),
        v2.RandomVerticalFlip(0.5),
    ])


def default_image_transform() -> v2.Transform:
    """Photometric training augmentation, drawn per image (no hue jitter)."""
    return v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.1)


class PairedImageDataset(Dataset):
    """WLI / NBI pairs as normalised tensors (see the module docstring for the item format).

    Args:
        samples: from :func:`medmodal.data.endoscopy.layouts.read_samples`.
        image_size: edge length ``S`` (the authors use 384; CPU presets 64-128).
        train: apply the training augmentation.
        classes: class names, index = position; default: sorted labels of ``samples``. A sample
            whose label is not in ``classes`` raises ``ValueError``.
        cache: a :class:`DecodedImageCache` of size ``image_size`` (default: an in-memory one).
        pair_transform: geometric augmentation called as ``t(wli, nbi)`` on ``uint8`` tv_tensors
            (default :func:`default_pair_transform`); ``None`` with ``train`` uses the default.
        image_transform: photometric augmentation called per image (default
            :func:`default_image_transform`).
        joint_geometry: one geometric draw per pair (True) or one per image (False).
        modalities: modalities used; the others are given as absent (e.g. ``("wli",)`` to test with
            white light only).
        mean: normalisation mean per RGB channel (default ImageNet).
        std: normalisation standard deviation per RGB channel (default ImageNet).
        seed: base seed of the augmentation draws.
    """

    def __init__(self, samples: Sequence[PairedSample], image_size: int = AUTHORS_IMAGE_SIZE, train: bool = False,
                 classes: Sequence[str] | None = None, cache: DecodedImageCache | None = None,
                 pair_transform: Callable | None = None, image_transform: Callable | None = None,
                 joint_geometry: bool = True, modalities: Sequence[str] = MODALITIES,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, seed: int = 0):
        self.samples = list(samples)
        self.image_size = int(image_size)
        self.train = train
        self.classes = list(classes) if classes is not None else class_names(self.samples)
        self.class_to_index = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted({s.label for s in self.samples if s.label is not None and s.label not in self.class_to_index})
        if unknown:
            raise DataError(f"labels not among the classes {self.classes}: {unknown}")
        bad = [m for m in modalities if m not in MODALITIES]
        if bad or not modalities:
            raise ConfigError(f"modalities must be a non-empty subset of {MODALITIES}, got {list(modalities)}")
        self.use = tuple(m in modalities for m in MODALITIES)
        self.cache = cache if cache is not None else DecodedImageCache(self.image_size)
        if self.cache.image_size != self.image_size:
            raise ValueError(f"cache image size {self.cache.image_size} != dataset image size {self.image_size}")
        self.pair_transform = pair_transform or default_pair_transform(self.image_size)
        self.image_transform = image_transform or default_image_transform()
        self.joint_geometry = joint_geometry
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def labels(self) -> np.ndarray:
        """``int64 [N]`` class index per sample (-1 unlabelled)."""
        return np.array([self.class_to_index[s.label] if s.label is not None else -1 for s in self.samples], np.int64)

    def _uint8(self, sample: PairedSample) -> list[torch.Tensor | None]:
        out = []
        for use, path in zip(self.use, (sample.wli, sample.nbi)):
            if use and path is not None:
                out.append(tv_tensors.Image(torch.from_numpy(np.array(self.cache.get(path))).permute(2, 0, 1)))
            else:
                out.append(None)
        return out

    def _augment(self, images: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
        present = [im for im in images if im is not None]
        if self.joint_geometry and len(present) == 2:
            present = list(self.pair_transform(*present))
        else:
            present = [self.pair_transform(im) for im in present]
        present = [self.image_transform(im) for im in present]
        it = iter(present)
        return [next(it) if im is not None else None for im in images]

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        images = self._uint8(sample)
        if self.train:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFF_FFFF_FFFF_FFFF)
                images = self._augment(images)
        item = {}
        for mod, im in zip(MODALITIES, images):
            if im is None:
                item[mod] = torch.zeros(3, self.image_size, self.image_size, dtype=torch.float32)
            else:
                item[mod] = (im.as_subclass(torch.Tensor).float() / 255.0 - self.mean) / self.std
        item["present"] = torch.tensor([im is not None for im in images], dtype=torch.bool)
        label = sample.label
        item["label"] = torch.tensor(self.class_to_index[label] if label is not None else -1, dtype=torch.int64)
        item["sample_id"] = sample.sample_id
        return item
