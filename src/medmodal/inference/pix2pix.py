"""Render pseudo-fundus photographs from vessel masks with a trained pix2pix generator (DGSSA's structure
augmentation; :mod:`medmodal.models.fundus.pix2pix`, trained by :mod:`medmodal.engine.fundus.pix2pix`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["render_pseudo_fundus", "condition_tensor"]


def condition_tensor(masks: np.ndarray | Sequence, fovs: np.ndarray | Sequence | None = None) -> torch.Tensor:
    """The generator's input ``[N, C, H, W]`` float32 (0 / 1): vessel masks, then FOV discs when given.

    ``masks``: ``[N, H, W]`` (or ``[H, W]``) array, a sequence of ``[H, W]`` arrays, or of
    :class:`~medmodal.data.fundus.vessel_tree.VesselRaster` (their ``mask`` and ``fov`` are used, and
    ``fovs`` must then be ``None``).
    """
    if not isinstance(masks, np.ndarray) and len(masks) and hasattr(masks[0], "mask"):
        if fovs is not None:
            raise ValueError("condition_tensor: pass fovs only with plain mask arrays")
        masks, fovs = [r.mask for r in masks], [r.fov for r in masks]
    m = np.asarray(masks) > 0
    if m.ndim == 2:
        m = m[None]
    channels = [m]
    if fovs is not None:
        f = np.asarray(fovs) > 0
        f = f[None] if f.ndim == 2 else f
        if f.shape != m.shape:
            raise ValueError(f"condition_tensor: FOV shape {f.shape} differs from the masks' {m.shape}")
        channels.append(f)
    return torch.from_numpy(np.stack(channels, axis=1).astype(np.float32))


@torch.no_grad()
def render_pseudo_fundus(generator: nn.Module, masks, fovs=None, *, batch_size: int = 8, dropout: bool = False,
                         seed: int = 0, mask_outside_fov: bool = True) -> np.ndarray:
    """Pseudo-fundus images of vessel masks.

    Args:
        generator: a :class:`~medmodal.models.fundus.pix2pix.Pix2PixGenerator` (tanh output in [-1, 1]).
        masks, fovs: see :func:`condition_tensor`; the channels must match the generator's ``in_channels``
            (vessel mask + FOV for the default). Sides divisible by ``generator.divisor``.
        batch_size: images per forward pass.
        dropout: keep the generator's dropout on (the paper's noise at test time; varied renderings
            seeded by ``seed``); off by default, so the same mask always gives the same image.
        mask_outside_fov: set pixels outside the FOV to 0 (black, as in photographs).
    Returns:
        float32 ``[N, H, W, 3]`` RGB in [0, 1].
    """
    x = condition_tensor(masks, fovs)
    expected = getattr(getattr(generator, "config", None), "in_channels", x.shape[1])
    if x.shape[1] != expected:
        raise ValueError(f"render_pseudo_fundus: the generator takes {expected} channels, got {x.shape[1]} "
                         "(pass the FOV discs with the masks)")
    was_training = generator.training
    generator.train(dropout)
    device = next(generator.parameters()).device
    fork = torch.random.fork_rng(devices=[]) if dropout else None
    try:
        if fork is not None:
            fork.__enter__()
            torch.manual_seed(seed)
        out = [generator(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        if fork is not None:
            fork.__exit__(None, None, None)
        generator.train(was_training)
    images = ((torch.cat(out) + 1) / 2).clamp(0, 1)
    if mask_outside_fov and x.shape[1] > 1:
        images = images * x[:, 1:2]
    return images.permute(0, 2, 3, 1).contiguous().numpy()
