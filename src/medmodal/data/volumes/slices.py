"""2-D slice-wise training data (MyoPS 2020 and other thick-slice stacks).

Cases are preprocessed and cached exactly as for 3-D training (:class:`PreprocessedCache`); for
a spec with ``normalization="volume"`` (MyoPS) that means: crop to the box of voxels non-zero
in any present sequence (the whole grid for real cardiac MR), then z-score each present sequence
over *every* voxel of its stack (all slices together: there is no brain mask, and per-slice
statistics would change with the amount of lung or liver in a slice). Missing sequences stay 0.

:class:`SliceDataset` yields random 2-D training samples in the item format of
:class:`medmodal.data.volumes.dataset.CropDataset` (``image`` ``[M, H, W]``, ``label`` ``[H, W]``,
``modality_mask`` ``[M]``, ``case_id``) plus ``slice_index``. Slices are taken along
``slice_axis`` of the spatial grid (default 2: the NIfTI third axis, the short-axis slice index
of MyoPS files). Every random draw is a function of ``(seed, epoch, index)`` as in
``CropDataset``, so runs and resumed runs are reproducible with any number of workers.

Whole cases for validation / test stay volumes (:class:`medmodal.data.volumes.dataset.CaseDataset`);
:func:`medmodal.inference.segmentation.sliding_window` predicts them slice by slice (a 2-D window on a
volume windows the slices along the last axis as one batch).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from medmodal.data.volumes.dataset import MissingProtocol, training_transforms
from medmodal.data.volumes.layouts import Case
from medmodal.data.volumes.preprocess import PreprocessedCache
from medmodal.errors import CaseError, ConfigError, DataError

__all__ = ["SliceDataset"]


class SliceDataset(torch.utils.data.Dataset):
    """Random 2-D training slices of preprocessed cases.

    Each item: ``image`` ``[M, H, W]`` float32 (missing sequences zeroed), ``label`` ``[H, W]``
    int64 (internal classes), ``modality_mask`` ``[M]`` bool, ``case_id`` str and
    ``slice_index`` int (index along ``slice_axis`` in the cropped grid). ``(H, W)`` is
    ``crop_size``: slices are padded (with 0) to at least that size, then cropped, centred on a
    foreground class with probability ``foreground_ratio`` (shared equally by the foreground
    classes, as in ``CropDataset``), and augmented with random flips on both axes and a small
    intensity scale/shift when ``augment``.

    One epoch = ``samples_per_epoch`` items (default: one per slice), cycling over the slices of
    all cases in order ``(case, slice)``. ``index`` may run past ``len(self)``:
    ``epoch, i = divmod(index, len(self))`` (see :class:`medmodal.data.sampler.EpochSampler`).

    Args:
        cache: preprocessed-case cache (its ``spec`` gives the number of classes).
        cases: training cases (each needs a label).
        crop_size: ``(H, W)`` of the samples.
        missing: which sequences each sample keeps (per case / per sample, see ``MissingProtocol``).
        augment: flips and intensity augmentation.
        samples_per_epoch: items per epoch; default the number of slices.
        seed: base seed.
        foreground_ratio: share of samples centred on a foreground class.
        slice_axis: spatial axis (0, 1 or 2) along which slices are taken.
        skip_empty: leave out slices whose label is all background.
    """

    def __init__(self, cache: PreprocessedCache, cases: Sequence[Case], crop_size: Sequence[int],
                 missing: MissingProtocol, augment: bool = True, samples_per_epoch: int | None = None,
                 seed: int = 0, foreground_ratio: float = 0.5, slice_axis: int = 2, skip_empty: bool = False):
        if not cases:
            raise DataError("no training cases")
        crop_size = tuple(int(c) for c in crop_size)
        if len(crop_size) != 2 or min(crop_size) < 1:
            raise ConfigError(f"crop_size must be 2 positive ints (H, W) for slices, got {crop_size}")
        if slice_axis not in (0, 1, 2, -1):
            raise ConfigError(f"slice_axis must be 0, 1 or 2, got {slice_axis}")
        self.cache, self.cases, self.missing = cache, list(cases), missing
        self.slice_axis = slice_axis % 3
        self.crop_size = crop_size
        spec = getattr(cache, "spec", None)
        self.transforms = training_transforms(crop_size, augment, foreground_ratio,
                                              num_classes=spec.num_classes if spec is not None else None)
        self.slices: list[tuple[int, int]] = []
        for ci, case in enumerate(self.cases):
            pre = cache.get(case)
            if pre.label is None:
                raise CaseError(f"case {case.case_id}: training needs a label file")
            for k in range(pre.label.shape[self.slice_axis]):
                if skip_empty and not np.take(pre.label, k, axis=self.slice_axis).any():
                    continue
                self.slices.append((ci, k))
        if not self.slices:
            raise DataError("no training slices (every slice is empty and skip_empty=True)")
        self.samples_per_epoch = samples_per_epoch or len(self.slices)
        self.seed = seed

    @property
    def num_slices(self) -> int:
        return len(self.slices)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> dict:
        epoch, index = divmod(int(index), self.samples_per_epoch)
        case_index, k = self.slices[index % len(self.slices)]
        case = self.cases[case_index]
        pre = self.cache.get(case)
        rng = np.random.default_rng([self.seed, epoch, index])
        mask = self.missing.mask(case.case_id, pre.present, rng)
        self.transforms.set_random_state(seed=int(rng.integers(2**31 - 1)))
        image = np.take(pre.image, k, axis=1 + self.slice_axis)                    # [M, H, W]
        label = np.take(pre.label, k, axis=self.slice_axis)                        # [H, W]
        sample = {"image": np.array(image, np.float32), "label": np.array(label)[None]}
        out = self.transforms(sample)[0]
        image_t = torch.as_tensor(np.asarray(out["image"]), dtype=torch.float32)
        image_t = image_t * torch.as_tensor(mask, dtype=torch.float32).view(-1, 1, 1)
        return {
            "image": image_t.contiguous(),
            "label": torch.as_tensor(np.asarray(out["label"]))[0].long(),
            "modality_mask": torch.as_tensor(mask, dtype=torch.bool),
            "case_id": case.case_id,
            "slice_index": int(k),
        }
