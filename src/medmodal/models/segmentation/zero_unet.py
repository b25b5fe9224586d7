"""Zero-filling U-Net: the simplest incomplete-sequence baseline.

One encoder sees all ``M`` sequences stacked as input channels; the channels of absent sequences
are set to exact zeros ("zero filling") and one decoder predicts the segmentation::

    x [B, M, *S] --zero absent channels--> Encoder (M input channels) --> Decoder --> z (+ deep supervision)

Robustness to missing sequences comes only from training with random subsets (the data
pipeline's modality dropout: the presence masks of the batches). Because the encoding mixes the
sequences from the first convolution on, there are no per-sequence encoders or features: the
model has no ``encoders`` attribute (Dynamic Training Monitoring has nothing to scale), no
``feature_channels`` (no relation / prototype distillation) and no ``encode`` / ``decode`` split
(inference runs one pass per subset). ``forward_train`` returns ``aux_logits``,
``modality_features`` and ``fused_features`` as ``None``; :class:`~medmodal.losses.DMAFNetLoss`
then uses the segmentation and deep-supervision terms only.

A prediction never depends on the voxels of an absent sequence: they are replaced by zeros with
``torch.where`` before the first convolution (so even NaN cannot leak, and their gradient is
exactly zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from medmodal.layers.masking import check_modality_mask, mask_modalities
from medmodal.models.segmentation.blocks import (
    BackboneConfig,
    SequenceEncoder,
    UNetDecoder,
    resize_to,
)
from medmodal.models.registry import register_model

__all__ = ["ZeroUNetConfig", "ZeroUNet"]


@dataclass
class ZeroUNetConfig(BackboneConfig):
    """Hyper-parameters of :class:`ZeroUNet` (fields of :class:`BackboneConfig` plus the below).

    Attributes:
        widths: channels per level. Default ``(32, 64, 128, 256)``: twice DMAF-Net's per-sequence
            widths, so the single encoder has about the parameters of DMAF-Net's four encoders.

    Deep-supervision logits are up-sampled to the input size.
    """

    widths: tuple[int, ...] = (32, 64, 128, 256)


@register_model("zero_unet")
class ZeroUNet(nn.Module):
    """U-Net on the zero-filled stack of all sequences.

    Args:
        modalities: sequence names in input-channel order (``M = len(modalities)``).
        num_classes: output classes including background.
        config: a :class:`ZeroUNetConfig` or dict; ``**overrides``: its fields.

    Attributes:
        encoder: :class:`SequenceEncoder` with ``M`` input channels.
        decoder: :class:`UNetDecoder` with deep-supervision heads.
    """

    def __init__(self, modalities: Sequence[str], num_classes: int, config: ZeroUNetConfig | dict | None = None,
                 **overrides):
        super().__init__()
        cfg = ZeroUNetConfig.from_kwargs(config, **overrides)
        self.config = cfg
        self.modalities = tuple(modalities)
        self.num_classes = int(num_classes)
        self.num_modalities = len(self.modalities)
        self.spatial_dims = cfg.spatial_dims
        conv_kw = cfg.conv_kwargs()
        self.encoder = SequenceEncoder(self.num_modalities, cfg.widths, blocks_per_level=cfg.blocks_per_level,
                                       **conv_kw)
        self.decoder = UNetDecoder(cfg.widths, self.num_classes, deep_supervision_heads=cfg.num_deep_scales(),
                                   **conv_kw)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of (trainable) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def size_divisor(self) -> int:
        """Input spatial sizes must be multiples of this."""
        return self.config.size_divisor

    def _prepare(self, images: torch.Tensor, modality_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate shapes, return (zero-filled images, bool mask)."""
        if images.ndim != 2 + self.spatial_dims or images.shape[1] != self.num_modalities:
            raise ValueError(f"images must be [B, M={self.num_modalities}, *spatial] with {self.spatial_dims} spatial "
                             f"dims ({', '.join(self.modalities)}), got {tuple(images.shape)}")
        if any(s % self.size_divisor for s in images.shape[2:]):
            raise ValueError(f"spatial size {tuple(images.shape[2:])} must be divisible by {self.size_divisor} "
                             f"({self.config.num_levels} levels); pad or crop the input")
        mask = check_modality_mask(modality_mask, images.shape[0], self.num_modalities, images.device)
        return mask_modalities(images, mask), mask

    def forward(self, images: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:
        """``images [B, M, *S]``, ``modality_mask [B, M]`` bool -> logits ``[B, num_classes, *S]``.

        Raises:
            ValueError: a sample with no sequence, wrong shapes, or sizes not divisible by
                :attr:`size_divisor`.
        """
        images, _ = self._prepare(images, modality_mask)
        return self.decoder(self.encoder(images))[0]

    def forward_train(self, images: torch.Tensor, modality_mask: torch.Tensor) -> dict:
        """The loss inputs: ``logits [B, K, *S]``, ``deep_logits`` (list of ``[B, K, *S]``, up-sampled),
        ``modality_mask [B, M]`` and ``aux_logits`` / ``modality_features`` / ``fused_features`` = ``None``."""
        images, mask = self._prepare(images, modality_mask)
        logits, deep = self.decoder(self.encoder(images))
        size = tuple(images.shape[2:])
        return {
            "logits": logits,
            "deep_logits": [resize_to(d, size) for d in deep],
            "aux_logits": None,
            "modality_features": None,
            "fused_features": None,
            "modality_mask": mask,
        }
