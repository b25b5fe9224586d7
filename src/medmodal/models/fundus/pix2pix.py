"""A small pix2pix (Isola et al., CVPR 2017): U-Net generator and conditional PatchGAN discriminator.

DGSSA's structure augmentation renders pseudo-fundus photographs from synthetic vessel trees with an
"improved Pix2Pix" whose changes the paper does not describe; this is the original pix2pix, scaled
down for the CPU, with one change of ours (instance instead of batch normalisation, below).

* :class:`Pix2PixGenerator` - U-Net: ``depth`` encoder steps of 4x4 stride-2 convolutions (LeakyReLU
  0.2; no normalisation on the first), a mirrored decoder of 4x4 stride-2 transposed convolutions
  (ReLU) with a skip connection (concatenation) at every level, dropout 0.5 in the ``dropout_levels``
  innermost decoder steps, and a ``tanh`` output: **RGB in [-1, 1]** (``(x + 1) / 2`` gives [0, 1];
  :func:`medmodal.inference.pix2pix.render_pseudo_fundus` does it). Input: ``[B, C_in, H, W]``
  (vessel mask, FOV disc, both 0 / 1), ``H`` and ``W`` divisible by ``2 ** depth``.
* :class:`PatchDiscriminator` - conditional PatchGAN: the condition and an image concatenated on the
  channels, ``n_layers`` 4x4 stride-2 convolutions, one stride-1 convolution and a 1-channel stride-1
  output of real / fake *logits* per patch. ``n_layers=3`` is the paper's 70 x 70 receptive field
  (:meth:`PatchDiscriminator.receptive_field`).

Widths: the paper's 64-512 channels, here ``base_width * 2**level`` capped at ``max_width`` (32 / 256
by default; 16-32 base keeps a 128-160 px image at a few hundred ms per step on a CPU core).

Normalisation: the paper uses batch normalisation with batch sizes of 1-10 and batch statistics
at test time; we use affine instance normalisation (as pix2pixHD and CycleGAN do), which is the same
thing at batch size 1, has no running statistics and makes a rendered image independent of the
others in its batch.

Not registered in the model registry: no contract fits (``segmentation`` takes a modality subset and
returns class logits, ``image_text`` / ``paired_views`` / ``heads`` are pre-training and CXR
contracts), and the pair is only ever used by the pix2pix trainer
(:mod:`medmodal.engine.fundus.pix2pix`), so they stay plain modules with ``*Config`` dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medmodal.models.registry import model_config

#: decoder up-sampling kinds of :class:`Pix2PixGeneratorConfig`
UPSAMPLES = ("transpose", "resize")

__all__ = ["UPSAMPLES", "Pix2PixGeneratorConfig", "Pix2PixGenerator", "PatchDiscriminatorConfig", "PatchDiscriminator"]


def _width(base: int, level: int, cap: int) -> int:
    return min(base * 2 ** level, cap)


def _init_weights(module: nn.Module) -> None:
    """The paper's initialisation: convolution weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.InstanceNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
        if getattr(m, "bias", None) is not None and isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.InstanceNorm2d)):
            nn.init.zeros_(m.bias)


@dataclass
class Pix2PixGeneratorConfig:
    """Attributes: in_channels (vessel mask + FOV: 2), out_channels (RGB: 3), base_width, max_width,
    depth (down-sampling steps; sides must be divisible by ``2 ** depth``), dropout (probability in
    the ``dropout_levels`` innermost decoder steps; the paper's noise source), upsample
    (``"transpose"``: the paper's 4x4 stride-2 transposed convolutions; ``"resize"``: nearest x2
    up-sampling then a 3x3 convolution, no checkerboard artefacts), input_skip (the condition is
    concatenated to the outermost decoder step at full resolution, so one-pixel vessels reach the
    output layer directly rather than through a stride-2 encoder step; not in the paper)."""

    in_channels: int = 2
    out_channels: int = 3
    base_width: int = 32
    max_width: int = 256
    depth: int = 5
    dropout: float = 0.5
    dropout_levels: int = 2
    upsample: str = "transpose"
    input_skip: bool = False

    def __post_init__(self):
        if self.depth < 1 or self.base_width < 1 or self.in_channels < 1 or self.out_channels < 1:
            raise ValueError(f"bad Pix2PixGeneratorConfig {self}")
        if self.upsample not in UPSAMPLES:
            raise ValueError(f"Pix2PixGeneratorConfig upsample must be one of {UPSAMPLES}, got {self.upsample!r}")


class Pix2PixGenerator(nn.Module):
    """U-Net generator (module docstring): ``forward(x [B, C_in, H, W]) -> RGB [B, 3, H, W]`` in [-1, 1]."""

    def __init__(self, config: Pix2PixGeneratorConfig | dict | None = None, **overrides):
        super().__init__()
        self.config = cfg = model_config(Pix2PixGeneratorConfig, config, **overrides)
        widths = [_width(cfg.base_width, level, cfg.max_width) for level in range(cfg.depth)]
        self.down = nn.ModuleList()
        prev = cfg.in_channels
        for level, width in enumerate(widths):
            layers: list[nn.Module] = [] if level == 0 else [nn.LeakyReLU(0.2)]
            innermost = level == cfg.depth - 1
            layers.append(nn.Conv2d(prev, width, 4, stride=2, padding=1, bias=level == 0 or innermost))
            if level > 0 and not innermost:  # the paper: no norm on the first layer nor the 1x1 bottleneck
                layers.append(nn.InstanceNorm2d(width, affine=True))
            self.down.append(nn.Sequential(*layers))
            prev = width
        self.up = nn.ModuleList()
        for level in reversed(range(cfg.depth)):
            innermost = level == cfg.depth - 1
            in_ch = widths[level] if innermost else 2 * widths[level]
            if level == 0:
                if cfg.input_skip:  # up-sample here; the condition joins before the output convolution
                    self.up.append(nn.Sequential(nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest")))
                    self.out = nn.Sequential(nn.Conv2d(in_ch + cfg.in_channels, cfg.out_channels, 3, 1, 1),
                                             nn.Tanh())
                else:
                    self.up.append(nn.Sequential(nn.ReLU(), _up(in_ch, cfg.out_channels, cfg.upsample, True),
                                                 nn.Tanh()))
                continue
            out_ch = widths[level - 1]
            layers = [nn.ReLU(), _up(in_ch, out_ch, cfg.upsample, False),
                      nn.InstanceNorm2d(out_ch, affine=True)]
            if cfg.depth - 1 - level < cfg.dropout_levels and cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            self.up.append(nn.Sequential(*layers))
        _init_weights(self)

    @property
    def divisor(self) -> int:
        """Input sides must be divisible by this (``2 ** depth``)."""
        return 2 ** self.config.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"Pix2PixGenerator expects [B, {self.config.in_channels}, H, W], got {tuple(x.shape)}")
        if x.shape[-2] % self.divisor or x.shape[-1] % self.divisor:
            raise ValueError(f"Pix2PixGenerator: sides {tuple(x.shape[-2:])} must be divisible by {self.divisor}")
        condition, skips = x, []
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck feeds the first decoder step directly
        for i, block in enumerate(self.up):
            if i > 0:
                x = torch.cat([x, skips.pop()], dim=1)
            x = block(x)
        if self.config.input_skip:
            x = self.out(torch.cat([x, condition], dim=1))
        return x


def _up(in_ch: int, out_ch: int, kind: str, bias: bool) -> nn.Module:
    """x2 up-sampling: a 4x4 stride-2 transposed convolution, or nearest resize + 3x3 convolution."""
    if kind == "transpose":
        return nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=bias)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=bias))


@dataclass
class PatchDiscriminatorConfig:
    """Attributes: in_channels (condition + image: 2 + 3), base_width, max_width, n_layers (stride-2
    convolutions; 3 = the paper's 70 x 70 PatchGAN)."""

    in_channels: int = 5
    base_width: int = 32
    max_width: int = 256
    n_layers: int = 3

    def __post_init__(self):
        if self.n_layers < 1 or self.base_width < 1 or self.in_channels < 1:
            raise ValueError(f"bad PatchDiscriminatorConfig {self}")


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: ``forward(condition [B, C_c, H, W], image [B, 3, H, W]) -> logits [B, 1, h, w]``
    (``h ~ H / 2**n_layers - 2``), one real / fake logit per overlapping patch."""

    def __init__(self, config: PatchDiscriminatorConfig | dict | None = None, **overrides):
        super().__init__()
        self.config = cfg = model_config(PatchDiscriminatorConfig, config, **overrides)
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, cfg.base_width, 4, 2, 1), nn.LeakyReLU(0.2)]
        prev = cfg.base_width
        for level in range(1, cfg.n_layers + 1):
            width = _width(cfg.base_width, level, cfg.max_width)
            stride = 2 if level < cfg.n_layers else 1
            layers += [nn.Conv2d(prev, width, 4, stride, 1, bias=False), nn.InstanceNorm2d(width, affine=True),
                       nn.LeakyReLU(0.2)]
            prev = width
        layers.append(nn.Conv2d(prev, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        _init_weights(self)

    def receptive_field(self) -> int:
        """Receptive field (pixels) of one output logit (70 for ``n_layers=3``)."""
        rf = 1
        for m in reversed([m for m in self.net if isinstance(m, nn.Conv2d)]):
            rf = (rf - 1) * m.stride[0] + m.kernel_size[0]
        return rf

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = torch.cat([condition, image], dim=1)
        if x.shape[1] != self.config.in_channels:
            raise ValueError(f"PatchDiscriminator expects {self.config.in_channels} channels (condition + image), "
                             f"got {x.shape[1]}")
        return self.net(x)
