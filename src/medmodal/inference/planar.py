"""Slice-by-slice prediction of a 2-D segmentation model on a stack or a photograph, back on its native grid.

TransUNet's evaluation rule (``Beckschen/TransUNet`` ``utils.py`` ``test_single_volume``, used by MSLAU-Net
for Synapse and ACDC): each slice is resized to the network grid, the arg-max label map is resized back to
the slice's native size with nearest neighbour (``zoom(order=0)``), and the volume is scored on its native
grid. The same rule serves photographs (a stack of one).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medmodal.data.seg2d.slice_dataset import resize_image, resize_label

__all__ = ["predict_stack"]


@torch.no_grad()
def predict_stack(model: torch.nn.Module, image: np.ndarray | torch.Tensor, size: Sequence[int],
                  batch_size: int = 16, probabilities: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Label map of every slice of ``image``.

    Args:
        model: a ``segmentation``-contract model (``forward(images [B, C, h, w], modality_mask [B, C])``), in eval mode.
        image: float32 ``[S, C, H, W]`` on its native grid (intensities as the model was trained on).
        size: the network grid ``(h, w)``.
        batch_size: slices per forward pass.
        probabilities: also return the softmax probabilities resized bilinearly to the native grid.

    Returns:
        int64 ``[S, H, W]`` class indices (and float32 ``[S, K, H, W]`` probabilities when asked).
    """
    device = next(model.parameters()).device
    stack = torch.as_tensor(image).float()
    native = tuple(stack.shape[-2:])
    labels, probs = [], []
    for start in range(0, stack.shape[0], batch_size):
        x = resize_image(stack[start:start + batch_size], size).to(device)
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=device)
        logits = model(x, mask).float()
        labels.append(resize_label(logits.argmax(1).cpu(), native))
        if probabilities:
            p = F.interpolate(logits.softmax(1), size=native, mode="bilinear", align_corners=False)
            probs.append(p.cpu())
    label = torch.cat(labels).numpy()
    if probabilities:
        return label, torch.cat(probs).numpy()
    return label
