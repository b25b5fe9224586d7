"""The SSL4MIS 2-D U-Net (``HiLab-git/SSL4MIS``, ``code/networks/unet.py``, class ``UNet``), built from MONAI.

A baseline of the 2-D segmentation comparison (MSLAU-Net, TransUNet, Swin-UNet), under the
``segmentation`` contract: ``forward(images [B, M, H, W], modality_mask [B, M] | None) -> logits
[B, num_classes, H, W]`` for ``H`` and ``W`` divisible by 16 (four 2x2 max-poolings; any aspect ratio).
Absent sequences are zero-filled before the network, as every 2-D model of the family does.

**Written by hand / from a library.** The network is MONAI's ``BasicUNet`` (``monai.networks.nets``)
with its last up-sampling block replaced by a MONAI ``UpCat`` and its head by a ``torch.nn.Conv2d``;
written here are only the configuration, the per-level dropout rates set on MONAI's dropout layers,
and the input check.

**The SSL4MIS network** (defaults of :class:`UNet2DConfig`): five levels of ``(conv3x3 - BatchNorm -
LeakyReLU) x 2`` with widths 16 / 32 / 64 / 128 / 256, a dropout between the two convolutions of each
encoder block with rates 0.05 / 0.1 / 0.2 / 0.3 / 0.5 and none in the decoder, 2x2 max-pooling down,
up-sampling by ``conv1x1 (halving the channels) + bilinear x2 (align_corners=True)``, concatenation
``[skip, up]``, and a 3x3 convolution to the logits. Note on the up-sampling: ``UNet`` sets
``'bilinear': False`` in its parameters, but the released ``Decoder`` builds its ``UpBlock`` objects
without passing the flag, so their default ``bilinear=True`` is what runs (an older revision sets
``'bilinear': True`` and passes it); medmodal follows the code that runs (``upsample="nontrainable"``,
MONAI's name for a 1x1 pre-convolution followed by interpolation). ``upsample="deconv"`` gives the
transposed 2x2 convolution that ``'bilinear': False`` describes.

**Differences from SSL4MIS's ``UNet``**, all without effect on the function computed, except the last:

1. The dropout sits in MONAI's ``conv - norm - dropout - activation`` order (SSL4MIS: after the
   activation). LeakyReLU commutes with the non-negative scaling dropout applies, so with the same
   random mask the two orders give the same output (up to float rounding).
2. MONAI's second convolution of each block and all decoder blocks carry a ``Dropout(p=0)`` (an
   identity); BasicUNet takes one dropout rate for every block, so the per-level rates are set on the
   encoder's first dropout layers after construction.
3. BasicUNet's up-sampling halves the channels (``in // 2``) where SSL4MIS maps level ``i + 1`` to the
   width of level ``i``: the same when every width doubles the previous one (the SSL4MIS widths do; a
   config whose widths do not double raises :class:`~medmodal.errors.ConfigError`).
4. BasicUNet's own last block (no halving, ``48 -> 16`` channels) and 1x1 head are replaced by
   SSL4MIS's (halving, ``32 -> 16``) and 3x3 head (``head_kernel``).
5. The input has ``len(modalities)`` channels and absent ones are zeroed (SSL4MIS: one grey channel).
6. MONAI replicate-pads an up-sampled map to its skip when the sizes differ; sizes divisible by 16
   never differ, and other sizes are refused.

Parameters (measured, 1 input channel, 4 classes): 1,813,764 (the SSL4MIS network has the same count;
``tests/models/segmentation/test_baselines_2d.py`` computes it independently).

Raises (at construction): :class:`~medmodal.errors.ConfigError` for widths that are not 5 doubling
values, dropout rates not 5 values in ``[0, 1)``, an unknown ``upsample``, ``spatial_dims != 2``. At run
time: :class:`ValueError` for images that are not ``[B, len(modalities), H, W]``, ``H`` or ``W`` not
divisible by 16, a sample with no sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from monai.networks.nets import BasicUNet
from monai.networks.nets.basic_unet import UpCat
from torch import nn

from medmodal.errors import ConfigError
from medmodal.models.registry import model_config, register_model
from medmodal.models.segmentation.blocks import planar_input

__all__ = ["UNet2D", "UNet2DConfig", "UPSAMPLE_MODES"]

#: ``upsample`` choices: SSL4MIS's running code (1x1 conv + bilinear) or its ``bilinear: False`` (transposed conv)
UPSAMPLE_MODES = ("nontrainable", "deconv")


@dataclass
class UNet2DConfig:
    """SSL4MIS U-Net options (defaults: ``UNet`` of ``HiLab-git/SSL4MIS``, ``code/networks/unet.py``).

    Attributes:
        widths: channels of the five levels (SSL4MIS ``feature_chns`` 16, 32, 64, 128, 256); each must be
            twice the previous one.
        dropout: dropout rate of each encoder level (SSL4MIS ``dropout`` 0.05, 0.1, 0.2, 0.3, 0.5); the
            decoder has none (SSL4MIS ``dropout_p=0.0``).
        negative_slope: LeakyReLU slope (SSL4MIS ``nn.LeakyReLU()``: PyTorch's default 0.01).
        upsample: ``nontrainable`` (1x1 conv + bilinear x2, what SSL4MIS's decoder runs) | ``deconv``
            (transposed 2x2 convolution, SSL4MIS's ``bilinear: False``); module docstring.
        head_kernel: kernel of the output convolution (SSL4MIS ``out_conv``: 3).
        spatial_dims: must be 2 (the segmentation engine passes it).
    """

    widths: tuple = (16, 32, 64, 128, 256)
    dropout: tuple = (0.05, 0.1, 0.2, 0.3, 0.5)
    negative_slope: float = 0.01
    upsample: str = "nontrainable"
    head_kernel: int = 3
    spatial_dims: int = 2

    def __post_init__(self):
        self.widths, self.dropout = tuple(int(w) for w in self.widths), tuple(float(p) for p in self.dropout)
        if int(self.spatial_dims) != 2:
            raise ConfigError(f"unet2d is 2-D; got spatial_dims={self.spatial_dims}")
        if len(self.widths) != 5 or self.widths[0] < 1 or any(b != 2 * a for a, b in zip(self.widths, self.widths[1:])):
            raise ConfigError(f"unet2d widths must be 5 values, each twice the previous (SSL4MIS 16, 32, 64, 128, "
                              f"256), got {self.widths}")
        if len(self.dropout) != 5 or any(not 0.0 <= p < 1.0 for p in self.dropout):
            raise ConfigError(f"unet2d dropout must be 5 rates in [0, 1), got {self.dropout}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ConfigError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {self.upsample!r}")
        if int(self.head_kernel) < 1 or int(self.head_kernel) % 2 == 0:
            raise ConfigError(f"head_kernel must be an odd positive size, got {self.head_kernel}")


class UNet2D(nn.Module):
    """The SSL4MIS U-Net under the ``segmentation`` contract (module docstring).

    Args:
        modalities: input channel names (e.g. ``("image",)`` for a grey slice).
        num_classes: output logits per pixel.
        config: a :class:`UNet2DConfig` or dict.
        **overrides: fields of :class:`UNet2DConfig`.

    Attributes:
        net: the MONAI ``BasicUNet`` (``conv_0``, ``down_1`` ... ``down_4``, ``upcat_4`` ... ``upcat_1``,
            ``final_conv``).
    """

    #: input height and width must be multiples of this (four 2x2 max-poolings)
    size_divisor = 16

    def __init__(self, modalities: Sequence[str], num_classes: int, config: UNet2DConfig | dict | None = None,
                 **overrides):
        super().__init__()
        cfg = model_config(UNet2DConfig, config, **overrides)
        self.config, self.modalities, self.num_classes = cfg, tuple(modalities), int(num_classes)
        act = ("leakyrelu", {"negative_slope": cfg.negative_slope, "inplace": True})
        w = cfg.widths
        self.net = BasicUNet(spatial_dims=2, in_channels=len(self.modalities), out_channels=self.num_classes,
                             features=(*w, w[0]), act=act, norm="batch", bias=True, dropout=0.0,
                             upsample=cfg.upsample)
        # SSL4MIS's last block halves the channels like the others (BasicUNet's does not) and its head is 3x3
        self.net.upcat_1 = UpCat(2, w[1], w[0], w[0], act, "batch", True, 0.0, cfg.upsample, halves=True)
        self.net.final_conv = nn.Conv2d(w[0], self.num_classes, cfg.head_kernel, padding=cfg.head_kernel // 2)
        # per-level encoder dropout on the first convolution of each block (BasicUNet takes one rate)
        blocks = [self.net.conv_0] + [getattr(self.net, f"down_{i}").convs for i in range(1, 5)]
        for block, rate in zip(blocks, cfg.dropout):
            block.conv_0.adn.D.p = rate

    def forward(self, images: torch.Tensor, modality_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``images [B, M, H, W]`` (``H, W`` divisible by 16) -> logits ``[B, num_classes, H, W]``.

        Args:
            images: ``[B, len(modalities), H, W]`` float.
            modality_mask: ``[B, M]`` bool, True = present (``None``: all present); absent channels are zeroed.

        Raises:
            ValueError: wrong shape, ``H`` or ``W`` not divisible by 16, a sample with no sequence.
        """
        images = planar_input("unet2d", images, modality_mask, self.modalities, self.size_divisor)
        return self.net(images)


_TINY = {"widths": (4, 8, 16, 32, 64), "spatial_dims": 2}


@register_model("unet2d", tiny=_TINY)
def unet2d(modalities, num_classes, config=None, **overrides):
    """The SSL4MIS 2-D U-Net (MONAI BasicUNet with SSL4MIS's dropout, up-sampling and head)."""
    return UNet2D(modalities, num_classes, config, **overrides)
