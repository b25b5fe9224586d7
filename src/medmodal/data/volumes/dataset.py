"""PyTorch datasets over preprocessed cases.

:class:`CropDataset` yields random training crops with a missing-modality mask per sample;
:class:`CaseDataset` yields whole preprocessed cases for evaluation. Every random draw of
:class:`CropDataset` is a function of ``(seed, epoch, index)``, so runs (and resumed runs)
are reproducible whatever the number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from monai import transforms as T

from medmodal.data.volumes.layouts import Case
from medmodal.data.missing import random_subset_mask
from medmodal.data.volumes.preprocess import PreprocessedCache
from medmodal.errors import CaseError, ConfigError, DataError

MISSING_PROTOCOLS = ("full", "balanced", "imbalanced")


@dataclass
class MissingProtocol:
    """Which sequences a training sample keeps.

    * ``full``: every sequence the case has.
    * ``balanced``: a uniformly random non-empty subset of the case's sequences, per sample.
    * ``imbalanced``: the fixed per-case pattern of ``assignment`` (PASSION protocol), intersected
      with what the case has.
    """

    kind: str = "balanced"
    assignment: Mapping[str, Sequence[bool]] | None = None

    def __post_init__(self):
        if self.kind not in MISSING_PROTOCOLS:
            raise ConfigError(f"unknown missing protocol {self.kind!r}; choose one of {', '.join(MISSING_PROTOCOLS)}")
        if self.kind == "imbalanced" and self.assignment is None:
            raise ConfigError("the imbalanced protocol needs a per-case assignment (missing-rate CSV)")

    def mask(self, case_id: str, present: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``[M]`` bool presence mask for one sample."""
        present = np.asarray(present, bool)
        if self.kind == "full":
            return present.copy()
        if self.kind == "balanced":
            return random_subset_mask(present.size, rng, available=present)
        if case_id not in self.assignment:
            raise DataError(f"case {case_id} is not in the missing-rate assignment")
        mask = present & np.asarray(self.assignment[case_id], bool)
        return mask if mask.any() else present.copy()


def training_transforms(crop_size: Sequence[int], augment: bool = True, foreground_ratio: float = 0.5,
                        num_classes: int | None = None) -> T.Compose:
    """Pad to at least ``crop_size``, crop (foreground-centred with prob. ``foreground_ratio``), augment.

    With ``num_classes`` (> 2) the foreground share is split equally over the foreground
    classes (MONAI ``RandCropByLabelClassesd``, nnU-Net-style oversampling): a crop is centred
    on necrosis / edema / enhancing tumour equally often, so the small sub-regions are seen.
    Classes a case lacks are skipped. Without it, crops are centred on any label > 0.

    Works on dicts with ``image`` ``[M, x, y, z]`` and ``label`` ``[1, x, y, z]``.
    Augmentations (RFNet/mmFormer style): random flips on every axis, intensity scale/shift.
    """
    keys = ["image", "label"]
    if num_classes and num_classes > 2:
        share = foreground_ratio / (num_classes - 1)
        crop = T.RandCropByLabelClassesd(keys, label_key="label", spatial_size=crop_size, num_classes=num_classes,
                                         ratios=[1 - foreground_ratio] + [share] * (num_classes - 1), num_samples=1,
                                         allow_smaller=False, warn=False)
    else:
        crop = T.RandCropByPosNegLabeld(keys, label_key="label", spatial_size=crop_size, pos=foreground_ratio,
                                        neg=1 - foreground_ratio, num_samples=1, allow_smaller=False)
    ops: list = [T.SpatialPadd(keys, spatial_size=crop_size, mode="constant"), crop]
    if augment:
        ops += [T.RandFlipd(keys, prob=0.5, spatial_axis=axis) for axis in range(len(crop_size))]
        ops += [T.RandScaleIntensityd("image", factors=0.1, prob=0.5, channel_wise=True),
                T.RandShiftIntensityd("image", offsets=0.1, prob=0.5, channel_wise=True)]
    return T.Compose(ops)


class CropDataset(torch.utils.data.Dataset):
    """Random training crops.

    Each item: ``image`` ``[M, *crop]`` float32 (missing sequences zeroed), ``label`` ``[*crop]``
    int64, ``modality_mask`` ``[M]`` bool, ``case_id``. One epoch = ``samples_per_epoch`` items
    (default: one per case), cycling over the cases.
    """

    def __init__(self, cache: PreprocessedCache, cases: Sequence[Case], crop_size: Sequence[int],
                 missing: MissingProtocol, augment: bool = True, samples_per_epoch: int | None = None,
                 seed: int = 0, foreground_ratio: float = 0.5):
        if not cases:
            raise DataError("no training cases")
        self.cache, self.cases, self.missing = cache, list(cases), missing
        spec = getattr(cache, "spec", None)
        self.transforms = training_transforms(crop_size, augment, foreground_ratio,
                                              num_classes=spec.num_classes if spec is not None else None)
        self.samples_per_epoch = samples_per_epoch or len(self.cases)
        self.seed = seed

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> dict:
        """``index`` may run past ``len(self)``: ``epoch, i = divmod(index, len(self))`` (see EpochSampler)."""
        epoch, index = divmod(int(index), self.samples_per_epoch)
        case = self.cases[index % len(self.cases)]
        pre = self.cache.get(case)
        if pre.label is None:
            raise CaseError(f"case {case.case_id}: training needs a label file")
        rng = np.random.default_rng([self.seed, epoch, index])
        mask = self.missing.mask(case.case_id, pre.present, rng)
        self.transforms.set_random_state(seed=int(rng.integers(2**31 - 1)))
        sample = {"image": np.array(pre.image), "label": np.array(pre.label)[None]}
        out = self.transforms(sample)[0]
        image = torch.as_tensor(np.asarray(out["image"]), dtype=torch.float32)
        image = image * torch.as_tensor(mask, dtype=torch.float32).view(-1, *[1] * (image.ndim - 1))
        return {
            "image": image.contiguous(),
            "label": torch.as_tensor(np.asarray(out["label"]))[0].long(),
            "modality_mask": torch.as_tensor(mask, dtype=torch.bool),
            "case_id": case.case_id,
        }


class CaseDataset(torch.utils.data.Dataset):
    """Whole preprocessed cases: ``image`` ``[M, x, y, z]``, ``label`` ``[x, y, z]`` (or absent),
    ``present`` ``[M]`` bool, plus ``case_id``, ``bbox``, ``original_shape``, ``spacing`` (all on the
    working grid of the training geometry).

    ``native=True`` (evaluation) adds ``grid`` (:class:`medmodal.data.volumes.geometry.GridTransform`)
    and, when the working grid differs from the files' grid, ``native_label`` ``[X, Y, Z]``: scores
    are then computed on the native grid. Validation during training scores on the working grid.
    """

    def __init__(self, cache: PreprocessedCache, cases: Sequence[Case], native: bool = False):
        self.cache, self.cases, self.native = cache, list(cases), native

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict:
        pre = self.cache.get(self.cases[index])
        item = {
            "case_id": pre.case_id, "image": torch.from_numpy(np.array(pre.image)),
            "present": torch.from_numpy(pre.present.copy()), "bbox": pre.bbox,
            "original_shape": pre.original_shape, "spacing": pre.spacing,
        }
        if pre.label is not None:
            item["label"] = torch.from_numpy(np.array(pre.label)).long()
        if self.native:
            item["grid"] = pre.grid
            item["skipped"] = dict(pre.skipped or {})
            if pre.native_label is not None:
                item["native_label"] = torch.from_numpy(np.array(pre.native_label)).long()
        return item
