"""Post-processing of predicted class maps (shared by inference and evaluation).

* :func:`postprocess_et` - a predicted enhancing tumour smaller than ``min_voxels`` voxels is
  relabelled (BraTS 2020: as necrosis), as nnU-Net's BraTS post-processing does. The threshold
  comes from the evaluation protocol (:func:`medmodal.evaluation.protocols.et_threshold`).
"""

from __future__ import annotations

import numpy as np
import torch

from medmodal.data.volumes.spec import DatasetSpec

__all__ = ["ArrayLike", "to_numpy", "postprocess_et"]

ArrayLike = np.ndarray | torch.Tensor


def to_numpy(array: ArrayLike) -> np.ndarray:
    """``array`` as a NumPy array (a tensor is detached and moved to the CPU)."""
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def postprocess_et(classes: ArrayLike, spec: DatasetSpec, min_voxels: int = 500) -> np.ndarray:
    """Relabel a too-small predicted enhancing tumour (nnU-Net's BraTS post-processing).

    If class ``spec.et_class`` covers fewer than ``min_voxels`` voxels of the whole volume,
    those voxels become ``spec.et_replacement``. No-op when ``spec.et_class`` is ``None`` or
    ``min_voxels <= 0``. The input is never modified.

    Args:
        classes: integer class map ``[*spatial]``.

    Returns:
        class map ``[*spatial]``, same dtype (a copy when anything was relabelled).
    """
    classes = to_numpy(classes)
    if spec.et_class is None or min_voxels <= 0:
        return classes
    et = classes == spec.et_class
    count = int(et.sum())
    if count == 0 or count >= min_voxels:
        return classes
    out = classes.copy()
    out[et] = spec.et_replacement
    return out
