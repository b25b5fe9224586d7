"""RandConv: random convolutions as a domain-generalisation augmentation (a domain-generalisation baseline of DGSSA).

Source: Xu, Liu, Yang, Raffel, Niethammer, ICLR 2021, "Robust and Generalizable Visual
Representation Learning via Random Convolutions" (reference code ``wildphoton/RandConv``; nothing
copied). A convolution with random weights is applied to the input image: it keeps local shape
(edges, vessels stay where they are: the kernel is centred and the padding keeps the size) and
randomises local texture and colour.

What this module does, and where it follows the paper:

* Kernel size drawn uniformly from ``{1, 3, 5, 7}`` (paper), once per batch.
* Weights ``[C, C, k, k]`` Kaiming-normal, ``N(0, 1 / (C k^2))`` (He init, gain 1, fan-in), re-drawn
  per batch (the paper re-draws them every iteration); no bias; zero padding ``k // 2``.
* Optional mixing with the original (the paper's RC_mix): ``out = (1 - w) x + w RC(x)`` with the
  conv weight ``w = 1 - alpha``, ``alpha ~ U(0, 1)`` per batch (paper). ``conv_weight`` fixes ``w``
  instead (0: identity, 1: RC_img without mixing).
* Deviation: the convolution's output is renormalised per image to the input image's range
  ``[min x, max x]`` (over channels and space) before mixing, so the output stays in the input's
  intensity range (the reference optionally clamps instead).
* Randomness from a ``torch.Generator`` owned by the module (``seed``), drawn on the CPU and moved to
  the input's device, so a run is reproducible on any device. Identity in eval mode.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RandConv"]


class RandConv(nn.Module):
    """Random convolution of a batch of images ``[B, C, H, W]`` -> ``[B, C, H, W]``, training only.

    Args:
        kernel_sizes: odd kernel sizes to draw from, once per batch (paper: ``(1, 3, 5, 7)``).
        mix: mix with the original, ``out = (1 - w) x + w RC(x)``, ``w ~ U(0, 1)`` per batch (paper's
            RC_mix, default True); False: ``w = 1``.
        conv_weight: a fixed ``w`` in ``[0, 1]`` instead of a random one (0 gives the input back).
        p: probability that a batch is transformed at all (default 1.0).
        seed: seed of the module's ``torch.Generator``.

    Raises:
        ValueError: an even or non-positive kernel size, ``conv_weight`` or ``p`` outside ``[0, 1]``.
    """

    def __init__(self, kernel_sizes: Sequence[int] = (1, 3, 5, 7), mix: bool = True,
                 conv_weight: Optional[float] = None, p: float = 1.0, seed: int = 0):
        super().__init__()
        sizes = tuple(int(k) for k in kernel_sizes)
        if not sizes or any(k < 1 or k % 2 == 0 for k in sizes):
            raise ValueError(f"RandConv kernel sizes must be odd and positive, got {kernel_sizes}")
        if conv_weight is not None and not 0 <= conv_weight <= 1:
            raise ValueError(f"conv_weight must be in [0, 1], got {conv_weight}")
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.kernel_sizes, self.mix, self.p = sizes, bool(mix), float(p)
        self.conv_weight = None if conv_weight is None else float(conv_weight)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.last_kernel_size: Optional[int] = None  # for inspection and tests

    def draw(self, channels: int) -> tuple[torch.Tensor, float]:
        """Draw one kernel ``[C, C, k, k]`` (CPU, float32) and the conv weight ``w``."""
        g = self.generator
        k = self.kernel_sizes[int(torch.randint(len(self.kernel_sizes), (1,), generator=g))]
        std = (1.0 / (channels * k * k)) ** 0.5
        weight = torch.randn(channels, channels, k, k, generator=g) * std
        if self.conv_weight is not None:
            w = self.conv_weight
        elif self.mix:
            w = 1.0 - float(torch.rand((), generator=g))
        else:
            w = 1.0
        return weight, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.dim() != 4:
            raise ValueError(f"RandConv takes images [B, C, H, W], got shape {tuple(x.shape)}")
        if self.p < 1 and float(torch.rand((), generator=self.generator)) >= self.p:
            return x
        weight, w = self.draw(x.shape[1])
        self.last_kernel_size = weight.shape[-1]
        if w == 0:
            return x
        k = weight.shape[-1]
        y = F.conv2d(x, weight.to(device=x.device, dtype=x.dtype), padding=k // 2)
        # renormalise each image's output to the input image's range
        lo_x, hi_x = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
        lo_y, hi_y = y.amin(dim=(1, 2, 3), keepdim=True), y.amax(dim=(1, 2, 3), keepdim=True)
        y = lo_x + (y - lo_y) / (hi_y - lo_y).clamp_min(1e-8) * (hi_x - lo_x)
        return (1 - w) * x + w * y
