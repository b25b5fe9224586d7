"""U-Net segmentation on the exported encoder (segmentation_models_pytorch), as MGCA / CM-CGNS.

The references build ``smp.Unet("resnet50", encoder_weights=None)`` and load the exported
torchvision state dict into ``unet.encoder`` (then freeze it). Here the encoder weights come from
the loaded timm backbone: smp's native ResNet encoders use torchvision's keys, which equal timm's;
other timm CNNs go through smp's timm-universal encoder ``tu-<name>`` (keys under ``model.``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from medmodal.models.downstream.encoder import DownstreamEncoder
from medmodal.models.registry import register_model

__all__ = ["UNetSegmenter"]


@register_model("unet_segmenter", task="heads", tiny={"decoder_channels": (32, 16, 16, 8, 8)})
class UNetSegmenter(nn.Module):
    """``smp.Unet`` (1 output channel, no activation) with the exported encoder weights.

    ``forward(images [B, 3, S, S]) -> logits [B, 1, S, S]`` (``S`` divisible by 32).

    Args:
        encoder: the loaded encoder; its weights are copied into smp's encoder (the timm module is
            not kept), its input renormalisation is kept.
        decoder_channels: smp's default ``(256, 128, 64, 32, 16)`` (the references').

    Raises:
        ValueError: an architecture smp cannot build as a U-Net encoder, or weights that do not fit.
    """

    def __init__(self, encoder: DownstreamEncoder, decoder_channels: Sequence[int] = (256, 128, 64, 32, 16)):
        super().__init__()
        import segmentation_models_pytorch as smp
        from segmentation_models_pytorch.encoders import encoders as smp_encoders

        arch = encoder.info.architecture
        native = arch in smp_encoders and arch.startswith("resnet")
        name = arch if native else f"tu-{arch}"
        try:
            self.unet = smp.Unet(encoder_name=name, encoder_weights=None, classes=1, activation=None,
                                 decoder_channels=tuple(decoder_channels))
        except Exception as err:  # noqa: BLE001 - smp raises several types for unsupported encoders
            raise ValueError(f"segmentation_models_pytorch cannot build a U-Net on {arch} ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''}); use a CNN such as resnet50") from None
        self.normalize = encoder.normalize
        target = self.unet.encoder if native else self.unet.encoder.model
        state = encoder.backbone.state_dict()
        own = target.state_dict()
        missing = [k for k in own if k not in state or tuple(state[k].shape) != tuple(own[k].shape)]
        if missing:
            raise ValueError(f"{encoder.info.path or encoder.info.source}: the {arch} weights do not fit smp's "
                             f"{name} encoder ({len(missing)} keys missing or of another shape, e.g. {missing[0]})")
        target.load_state_dict({k: state[k] for k in own}, strict=True)

    @property
    def encoder(self) -> nn.Module:
        return self.unet.encoder

    @property
    def head(self) -> nn.ModuleList:
        """Everything trained besides the encoder: smp's decoder and segmentation head."""
        return nn.ModuleList([self.unet.decoder, self.unet.segmentation_head])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.unet(self.normalize(images))
