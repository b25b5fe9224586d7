"""Torch datasets of downstream samples: classification, segmentation, detection (layouts in the
package docstring).

All three read images through one :class:`~medmodal.data.cxr.images.ImageCache` (decoded once,
longer side resized to 256 and zero-padded, the reference's ``resize_img``), replicate grey to 3
channels and apply a v2 transform from :mod:`~medmodal.data.cxr.downstream.transforms`. Masks
are drawn at the original size from the sample's :class:`~.base.MaskSource` and moved into the
256 frame with the image's own geometry (:func:`~medmodal.data.cxr.images.resize_and_pad_mask`);
boxes likewise (:func:`~medmodal.data.cxr.images.boxes_to_resized_frame`). The original
``(height, width)`` comes from the sample, else from the file header (read once per image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from medmodal.data.cxr.downstream.base import DownstreamDataset, DownstreamSample
from medmodal.data.cxr.downstream.transforms import (classification_transform, detection_transform,
                                                     segmentation_transform)
from medmodal.data.cxr.images import (DEFAULT_RESIZE, ImageCache, boxes_to_resized_frame, read_image_size,
                                      resize_and_pad_mask, resize_pad_geometry)
from medmodal.errors import ConfigError, DataError

DEFAULT_SIZE = 224
DETECTION_GEOMETRIES = ("pad", "stretch")


class _DownstreamImages(Dataset):
    """Samples + their cached 256 x 256 grey images + original sizes."""

    def __init__(self, samples: Sequence[DownstreamSample], image_cache: ImageCache | str | Path | None,
                 image_size: int):
        self.samples = list(samples)
        if not self.samples:
            raise DataError("no downstream samples to build a dataset from")
        if not isinstance(image_cache, ImageCache):
            image_cache = ImageCache([s.image_path for s in self.samples], image_cache, size=DEFAULT_RESIZE)
        self.image_cache = image_cache
        self.rows = [image_cache.position(s.image_path) for s in self.samples]
        if image_size > image_cache.size:
            raise ValueError(f"image_size {image_size} exceeds the cached image size {image_cache.size}")
        self.image_size = int(image_size)
        self._sizes: dict[int, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def grey(self, index: int):
        """``tv_tensors.Image`` uint8 ``[3, 256, 256]`` (grey replicated) of sample ``index``."""
        from torchvision import tv_tensors

        grey = torch.from_numpy(self.image_cache.get(self.rows[index]).copy())
        return tv_tensors.Image(grey[None].expand(3, -1, -1).contiguous())

    def original_size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of the original image (the sample's, else its header's)."""
        sample = self.samples[index]
        if sample.image_size is not None:
            return sample.image_size
        if index not in self._sizes:
            self._sizes[index] = read_image_size(sample.image_path)
        return self._sizes[index]

    def _ids(self, index: int) -> dict:
        s = self.samples[index]
        return {"sample_id": s.sample_id, "patient_id": s.patient_id}


class ClassificationDataset(_DownstreamImages):
    """Image-level targets for the linear probe / fine-tuning.

    Item::

        {"image": float32 [3, S, S],        # normalised (x / 255 - 0.5) / 0.5
         "target": float32 [K]              # multi-label (K = len(label_names)); NaN = ignore
                 | int64 []                 # multi-class: class index
         "sample_id": str, "patient_id": str}

    Args:
        samples: reader samples (``labels`` or ``class_index`` set on every one).
        dataset: the descriptor (label kind, default augmentation); ``None`` infers the kind.
        image_cache: an :class:`ImageCache`, a cache folder, or ``None`` (in-memory per process).
        train: training augmentation vs. centre crop.
        image_size: ``S`` (reference 224).
        augment: ``crop`` | ``moco2`` | ``none`` (default: ``dataset.classification_augment``).

    Raises:
        ValueError: no samples, a sample without a label, mixed label kinds, a bad augmentation.
    """

    def __init__(self, samples: Sequence[DownstreamSample], dataset: DownstreamDataset | None = None,
                 image_cache: ImageCache | str | Path | None = None, train: bool = True,
                 image_size: int = DEFAULT_SIZE, augment: str | None = None):
        super().__init__(samples, image_cache, image_size)
        kinds = {"multiclass" if s.class_index is not None else "multilabel" if s.labels is not None else None
                 for s in self.samples}
        if None in kinds:
            bad = next(s for s in self.samples if s.class_index is None and s.labels is None)
            raise DataError(f"{bad.sample_id} ({bad.source}): no image label")
        if len(kinds) > 1:
            raise DataError("samples mix multi-label and multi-class targets")
        self.label_kind = kinds.pop()
        if dataset is not None and dataset.label_kind != self.label_kind:
            raise ValueError(f"{dataset.name} is {dataset.label_kind}, the samples are {self.label_kind}")
        self.dataset = dataset
        self.augment = augment or (dataset.classification_augment if dataset is not None else "crop")
        self.train = train
        self.transform = classification_transform(self.augment, train, self.image_size)

    def __getitem__(self, index: int) -> dict:
        s = self.samples[index]
        image = self.transform(self.grey(index)).as_subclass(torch.Tensor)
        if self.label_kind == "multiclass":
            target = torch.tensor(s.class_index, dtype=torch.int64)
        else:
            target = torch.tensor(s.labels, dtype=torch.float32)
        return {"image": image, "target": target, **self._ids(index)}


class SegmentationDataset(_DownstreamImages):
    """Image + binary mask, moved together.

    Item::

        {"image": float32 [3, S, S],
         "mask": float32 [S, S],   # 0 / 1, nearest-neighbour through every geometric step
         "sample_id": str, "patient_id": str}

    Masks: :meth:`MaskSource.rasterise` at the original size -> the image's resize + pad to 256
    (area average, >= 0.5) -> ``shift_scale_rotate`` (training, p 0.5) -> ``Resize(S)``.

    Raises:
        ValueError: no samples, a sample without a mask source, a bad augmentation.
    """

    def __init__(self, samples: Sequence[DownstreamSample], image_cache: ImageCache | str | Path | None = None,
                 train: bool = True, image_size: int = DEFAULT_SIZE, augment: str = "shift_scale_rotate"):
        super().__init__(samples, image_cache, image_size)
        missing = next((s for s in self.samples if s.mask is None), None)
        if missing is not None:
            raise DataError(f"{missing.sample_id} ({missing.source}): no mask source")
        self.train = train
        self.augment = augment
        self.transform = segmentation_transform(augment, train, self.image_size)

    def mask_256(self, index: int) -> np.ndarray:
        """uint8 ``[256, 256]`` 0 / 1 mask aligned with the cached image of sample ``index``."""
        height, width = self.original_size(index)
        try:
            mask = self.samples[index].mask.rasterise(height, width)
        except ValueError as err:
            s = self.samples[index]
            raise DataError(f"{s.source or s.sample_id}: {err}") from None
        return resize_and_pad_mask(mask, self.image_cache.size)

    def __getitem__(self, index: int) -> dict:
        from torchvision import tv_tensors

        mask = tv_tensors.Mask(torch.from_numpy(self.mask_256(index))[None])
        image, mask = self.transform(self.grey(index), mask)
        return {"image": image.as_subclass(torch.Tensor), "mask": mask.as_subclass(torch.Tensor)[0].float(),
                **self._ids(index)}


class DetectionDataset(_DownstreamImages):
    """Image + boxes in the ``S x S`` frame.

    Item::

        {"image": float32 [3, S, S],
         "boxes": tv_tensors.BoundingBoxes float32 [N, 4]  # XYXY pixels of the S x S frame
         "labels": int64 [N],                               # index into box_label_names
         "orig_size": (height, width),                      # of the original image
         "sample_id": str, "patient_id": str}

    Images without objects have ``N = 0`` (the references keep them: negatives).

    Args:
        geometry: ``pad`` (default): the 256 frame of every other task (longer side resized,
            zero-padded) resized to ``S``; ``stretch``: the reference's detection geometry, the
            image resized straight to ``S x S`` without padding (aspect not kept; taken from the
            un-padded region of the cached frame).
        augment: ``none`` (the reference has no detection augmentation).

    Raises:
        ValueError: no samples, a sample without boxes, an unknown geometry.
    """

    def __init__(self, samples: Sequence[DownstreamSample], image_cache: ImageCache | str | Path | None = None,
                 train: bool = True, image_size: int = DEFAULT_SIZE, geometry: str = "pad", augment: str = "none"):
        super().__init__(samples, image_cache, image_size)
        if geometry not in DETECTION_GEOMETRIES:
            raise ConfigError(f"unknown detection geometry {geometry!r}; "
                              f"choose one of {', '.join(DETECTION_GEOMETRIES)}")
        missing = next((s for s in self.samples if s.boxes is None), None)
        if missing is not None:
            raise DataError(f"{missing.sample_id} ({missing.source}): no boxes (not a detection dataset)")
        self.train = train
        self.geometry = geometry
        self.transform = detection_transform(augment, train, self.image_size)

    def __getitem__(self, index: int) -> dict:
        from torchvision import tv_tensors

        s = self.samples[index]
        height, width = self.original_size(index)
        frame = self.image_cache.size
        image = self.grey(index)
        boxes = boxes_to_resized_frame(s.boxes, height, width, frame)
        canvas = (frame, frame)
        if self.geometry == "stretch":
            new_h, new_w, top, left = resize_pad_geometry(height, width, frame)
            image = tv_tensors.wrap(image[:, top:top + new_h, left:left + new_w], like=image)
            boxes = boxes - np.array([left, top, left, top], np.float32)
            canvas = (new_h, new_w)
        boxes = tv_tensors.BoundingBoxes(torch.from_numpy(boxes), format="XYXY", canvas_size=canvas)
        labels = torch.as_tensor(s.box_labels if s.box_labels is not None else np.zeros(len(s.boxes)),
                                 dtype=torch.int64)
        image, boxes = self.transform(image, boxes)
        return {"image": image.as_subclass(torch.Tensor), "boxes": boxes, "labels": labels,
                "orig_size": (height, width), **self._ids(index)}


def collate_detection(items: Sequence[dict]) -> dict:
    """Batch detection items: images stacked ``[B, 3, S, S]``; ``boxes`` / ``labels`` /
    ``orig_size`` / ids as lists (one entry per image, ``N_i`` varies)."""
    return {"image": torch.stack([it["image"] for it in items]),
            "boxes": [it["boxes"].as_subclass(torch.Tensor) for it in items],
            "labels": [it["labels"] for it in items],
            "orig_size": [it["orig_size"] for it in items],
            "sample_id": [it["sample_id"] for it in items], "patient_id": [it["patient_id"] for it in items]}


def nan_safe_targets(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(targets with NaN -> 0, mask of known entries)`` for a masked BCE over multi-label targets."""
    known = ~torch.isnan(targets)
    return torch.where(known, targets, torch.zeros_like(targets)), known


__all__ = ["ClassificationDataset", "SegmentationDataset", "DetectionDataset", "collate_detection",
           "nan_safe_targets", "DETECTION_GEOMETRIES", "DEFAULT_SIZE"]
