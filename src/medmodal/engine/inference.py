"""Sliding-window inference for any subset of sequences (MONAI's sliding_window_inference)."""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch
from monai.inferers import sliding_window_inference
from torch import nn


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"``: the GPU when there is one, else the CPU; otherwise ``torch.device(name)``."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA GPU is available (use --device cpu)")
    return device


def inference_precision(device: torch.device, precision: str = "auto"):
    """Autocast context for inference: ``"auto"`` = bf16 on CUDA, fp32 on CPU; or ``"bf16"`` / ``"fp32"``."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.no_grad()
def predict_probabilities(model: nn.Module, image: torch.Tensor, modality_mask: torch.Tensor,
                          roi_size: Sequence[int], overlap: float = 0.5, sw_batch_size: int = 2,
                          mode: str = "gaussian") -> torch.Tensor:
    """Softmax probabilities of the fused prediction over a whole (cropped) volume.

    Args:
        model: ``forward(images [B,M,*roi], modality_mask [B,M]) -> logits [B,C,*roi]``, in eval mode.
        image: ``[1, M, *spatial]`` on the model's device; missing sequences are zeroed here.
        modality_mask: ``[M]`` or ``[1, M]`` bool.
        roi_size: window size; ``overlap``: fraction shared by neighbouring windows.

    Returns:
        ``[1, C, *spatial]`` float32 probabilities.
    """
    mask = modality_mask.reshape(1, -1).to(image.device, torch.bool)
    if not mask.any():
        raise ValueError("at least one sequence must be present")
    image = image * mask.view(1, -1, *[1] * (image.ndim - 2)).to(image.dtype)

    def predictor(window: torch.Tensor) -> torch.Tensor:
        return model(window, mask.expand(window.shape[0], -1))

    # volumes smaller than the window are padded by MONAI, so the network always sees roi_size
    logits = sliding_window_inference(image, roi_size=tuple(roi_size), sw_batch_size=sw_batch_size, predictor=predictor,
                                      overlap=overlap, mode=mode)
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

    logits = sliding_window_inference(image, roi_size=tuple(roi_size), sw_batch_size=sw_batch_size,
                                      predictor=predictor, overlap=overlap, mode=mode)
    logits = logits.reshape(k, -1, *logits.shape[2:])
    return torch.softmax(logits.float(), dim=1)
