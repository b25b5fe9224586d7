"""Sliding-window inference for any subset of sequences (MONAI's sliding_window_inference).

A 2-D model (``spatial_dims=2``, e.g. MyoPS) predicts a 3-D volume slice by slice: when the
window has one axis fewer than the volume, the slices along the last axis are windowed as a
batch of 2-D images (:func:`sliding_window`). :func:`native_classes` maps probabilities on the
working grid back to a case's native grid (nnU-Net style: resample probabilities, then argmax).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from torch import nn

from medmodal.data.volumes.geometry import GridTransform, channel_argmax
from medmodal.data.volumes.preprocess import uncrop
from medmodal.data.volumes.spec import DatasetSpec
from medmodal.errors import ConfigError
from medmodal.inference.postprocess import postprocess_et


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"``: the GPU when there is one, else the CPU; otherwise ``cpu``, ``cuda`` or ``cuda:<index>``.

    Raises:
        ConfigError: another name (``mps``, ``gpu``, a typo), or CUDA asked for without a CUDA GPU.
    """
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {str(name)!r}: choose auto, cpu, cuda or cuda:<index>")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is available (use device 'cpu')")
    return device


def inference_precision(device: torch.device, precision: str = "auto"):
    """Autocast context for inference: ``"auto"`` = bf16 on CUDA, fp32 on CPU; or ``"bf16"`` / ``"fp32"``."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def sliding_window(image: torch.Tensor, roi_size: Sequence[int], predictor: Callable[[torch.Tensor], torch.Tensor],
                   overlap: float = 0.5, sw_batch_size: int = 2, mode: str = "gaussian") -> torch.Tensor:
    """MONAI sliding-window inference, slice-wise when the window is 2-D and the volume 3-D.

    Args:
        image: ``[1, M, *spatial]``.
        roi_size: window size; either ``len(spatial)`` values, or ``len(spatial) - 1`` for a 2-D
            model on a volume: the last spatial axis is then moved into the batch
            (``[Z, M, X, Y]``), each slice is windowed in 2-D and the result is moved back.
        predictor: ``[b, M, *roi] -> [b, C', *roi]`` logits.

    Returns:
        ``[1, C', *spatial]`` (in the predictor's dtype, as MONAI returns it). Images smaller than
        the window are padded by MONAI, so the network always sees ``roi_size``.
    """
    roi_size = tuple(int(r) for r in roi_size)
    spatial = image.ndim - 2
    if len(roi_size) == spatial:
        return sliding_window_inference(image, roi_size=roi_size, sw_batch_size=sw_batch_size, predictor=predictor,
                                        overlap=overlap, mode=mode)
    if len(roi_size) != spatial - 1 or spatial < 3 or image.shape[0] != 1:
        raise ConfigError(f"window {roi_size} does not fit an image of shape {tuple(image.shape)}: give one size "
                          f"per spatial axis, or one fewer for a 2-D model on a [1, M, X, Y, Z] volume")
    slices = image[0].movedim(-1, 0)  # [Z, M, X, Y]
    logits = sliding_window_inference(slices, roi_size=roi_size, sw_batch_size=sw_batch_size, predictor=predictor,
                                      overlap=overlap, mode=mode)  # [Z, C', X, Y]
    return logits.movedim(0, -1).unsqueeze(0)  # [1, C', X, Y, Z]


@torch.no_grad()
def predict_probabilities(model: nn.Module, image: torch.Tensor, modality_mask: torch.Tensor,
                          roi_size: Sequence[int], overlap: float = 0.5, sw_batch_size: int = 2,
                          mode: str = "gaussian") -> torch.Tensor:
    """Softmax probabilities of the fused prediction over a whole (cropped) volume.

    Args:
        model: ``forward(images [B,M,*roi], modality_mask [B,M]) -> logits [B,C,*roi]``, in eval mode.
        image: ``[1, M, *spatial]`` on the model's device; missing sequences are zeroed here.
        modality_mask: ``[M]`` or ``[1, M]`` bool.
        roi_size: window size; one value fewer than the spatial axes for a 2-D model on a
            volume (slice-wise along the last axis, see :func:`sliding_window`).
        overlap: fraction shared by neighbouring windows.

    Returns:
        ``[1, C, *spatial]`` float32 probabilities.
    """
    mask = modality_mask.reshape(1, -1).to(image.device, torch.bool)
    if not mask.any():
        raise ValueError("at least one sequence must be present")
    image = image * mask.view(1, -1, *[1] * (image.ndim - 2)).to(image.dtype)

    def predictor(window: torch.Tensor) -> torch.Tensor:
        return model(window, mask.expand(window.shape[0], -1))

    logits = sliding_window(image, roi_size, predictor, overlap, sw_batch_size, mode)
    return torch.softmax(logits.float(), dim=1)


def supports_shared_encoding(model: nn.Module) -> bool:
    """True when the model splits into ``encode(images)`` and ``decode(features, mask)``."""
    return callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))


@torch.no_grad()
def predict_probabilities_all_subsets(model: nn.Module, image: torch.Tensor, subsets: torch.Tensor,
                                      roi_size: Sequence[int], overlap: float = 0.5, sw_batch_size: int = 2,
                                      mode: str = "gaussian") -> torch.Tensor:
    """Probabilities for K subsets at once, encoding each sequence once per window.

    Sequence encoders do not depend on which other sequences are present, so each window is
    encoded once and fusion + decoder run for all K masks as one batch. Gives the same output as
    K calls of :func:`predict_probabilities` (the network masks absent sequences exactly).

    Args:
        image: ``[1, M, *spatial]``; subsets: ``[K, M]`` bool (each row non-empty).
        roi_size: as for :func:`predict_probabilities` (2-D window on a volume: slice-wise).
    Returns:
        ``[K, C, *spatial]`` float32 probabilities.
    """
    if not supports_shared_encoding(model):
        return torch.cat([predict_probabilities(model, image, s, roi_size, overlap, sw_batch_size, mode)
                          for s in subsets])
    masks = subsets.to(image.device, torch.bool)
    if not masks.any(dim=1).all():
        raise ValueError("every subset needs at least one sequence")
    k = masks.shape[0]

    def predictor(window: torch.Tensor) -> torch.Tensor:
        b = window.shape[0]
        features = [f.repeat_interleave(k, dim=0) for f in model.encode(window)]  # [b*K, M, C, ...]
        logits = model.decode(features, masks.repeat(b, 1))  # [b*K, C, ...]
        return logits.reshape(b, k * logits.shape[1], *logits.shape[2:])

    logits = sliding_window(image, roi_size, predictor, overlap, sw_batch_size, mode)  # [1, K*C, *spatial]
    logits = logits.reshape(k, -1, *logits.shape[2:])
    return torch.softmax(logits.float(), dim=1)


def native_classes(probs: np.ndarray, bbox, working_shape, grid: GridTransform | None, spec: DatasetSpec,
                   et_min_voxels: int = 0, keep_probabilities: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Class map (and probabilities) on the case's native grid from probabilities on the cropped working grid.

    nnU-Net's export: when the working grid differs from the files' grid (reoriented and / or
    resampled, see :mod:`medmodal.data.volumes.geometry`), the *probabilities* are placed back into
    the uncropped working grid (background 1 outside the crop), resampled (linear) to the native
    grid and reoriented back; the argmax is taken there. A grid that is the identity keeps the
    direct path (argmax on the crop, then uncrop), bit-identical to a pipeline without geometry.

    Args:
        probs: ``[C, *crop]`` float probabilities on the cropped working grid.
        bbox: crop box in the working grid; working_shape: its uncropped shape.
        grid: the case's :class:`GridTransform` (``None`` = identity).
        et_min_voxels: ET post-processing threshold in *working-grid* voxels (the model's setting);
            on a resampled grid it is converted to native voxels by the voxel-volume ratio.
        keep_probabilities: also return the ``[C, *native]`` probabilities (float16 on the identity
            path, as written by ``--save-probabilities``).

    Returns:
        ``(classes [*native] uint8, probabilities or None)``.
    """
    if grid is None or grid.identity:
        classes = postprocess_et(probs.argmax(0).astype(np.uint8), spec, min_voxels=et_min_voxels)
        classes = uncrop(classes, bbox, working_shape)
        full = None
        if keep_probabilities:
            full = uncrop(probs.astype(np.float16), bbox, working_shape)
            full[0][full.sum(0) == 0] = 1  # outside the brain box: background
        return classes, full
    full = np.zeros((probs.shape[0], *working_shape), np.float32)
    full[0] = 1.0  # outside the crop: background
    full[(slice(None), *(slice(lo, hi) for lo, hi in bbox))] = probs
    native = grid.probabilities_to_native(full) if keep_probabilities else None
    classes = channel_argmax(native) if keep_probabilities else grid.classes_to_native(full)
    classes = postprocess_et(classes, spec, min_voxels=round(et_min_voxels * grid.voxel_volume_ratio))
    return classes, (native.astype(np.float16) if keep_probabilities else None)
