"""RFNet-style baseline: per-sequence encoders and region-aware fusion.

After Ding et al., "RFNet: Region-aware Fusion Network for Incomplete Multi-modal Brain Tumor
Segmentation" (ICCV 2021), re-implemented on medmodal's blocks (not a port of the authors' code).
It shares DMAF-Net's multi-encoder skeleton (:class:`~medmodal.models.segmentation.dmafnet.DMAFNet`:
one-channel encoder per sequence, a shared decoder giving each present sequence's auxiliary
prediction, one fusion module per encoder level, a fusion decoder) and replaces the fusion
modules by :class:`RegionAwareFusion`::

    x^m --Encoder_m--> e^m_l --Shared decoder--> z^m                 (auxiliary, per sequence)
    {e^m_l}_m --RegionAwareFusion_l--> f_l, region logits r_l
    {f_l} --Fusion decoder--> z;  deep supervision = the region maps r_l of every level

Region-aware fusion at one level (``K`` regions = the ``K`` classes, ``M`` sequences)::

    h      = MaskedConcatFusion(e)                       [B, C, *S]   absent sequences enter as 0
    r      = Conv1x1(h)                                  [B, K, *S]   region logits (supervised)
    pi     = softmax_k(r)      (detached when supervised, as RFNet's probability region maps)
    a      = Conv1x1_m(e^m)                              [B, M, K, *S] one conv per sequence
    w      = softmax over the *present* m of a           (exactly 0 for absent sequences)
    R_k    = pi_k * sum_m w_{m,k} e^m                    [B, K, C, *S] region-wise fused features
    f      = ConvNormAct1x1(concat_k R_k) + h            [B, C, *S]

``sum_k pi_k w_{m,k}`` is the effective per-voxel weight of sequence ``m``; it is reported as the
level's fusion map (``attention_maps`` in ``forward_train``; sums to 1 over present sequences).

Differences from the published RFNet, all documented choices: the region maps are predicted
from the fused encoder features of the same level (RFNet also feeds the coarser decoder
features into them); the per-region sequence weights are voxel-wise softmaxes over the present
sequences (RFNet: global, sigmoid weights from pooled region features); fusion happens before
the decoder, so :meth:`encode` / :meth:`decode` give shared-encoder inference.

Missing sequences: features of absent sequences are exact zeros wherever they enter (masked
concatenation) and get exactly zero fusion weight, so predictions depend neither on their
voxels nor on their encoder; absent encoders receive zero gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from monai.networks.layers import Conv
from torch import nn

from medmodal.layers.masking import mask_modalities
from medmodal.models.segmentation.blocks import (
    BackboneConfig,
    ConvNormAct,
    DEFAULT_ACT,
    MaskedConcatFusion,
    resize_to,
)
from medmodal.models.segmentation.dmafnet import DMAFNet
from medmodal.models.registry import register_model

__all__ = ["RFNetConfig", "RegionAwareFusion", "RFNet"]


@dataclass
class RFNetConfig(BackboneConfig):
    """Hyper-parameters of :class:`RFNet` (the fields of :class:`BackboneConfig`).

    ``widths`` default ``(16, 32, 64, 128)`` (RFNet's 4 levels, width 16). ``deep_supervision``:
    supervise the region maps of every level (RFNet's PRM losses); their logits are up-sampled to
    the input size and returned as ``deep_logits``, finest level first. Without it the region
    maps are learnt only through the fusion (they are then not detached).
    """


class RegionAwareFusion(nn.Module):
    """Region-aware fusion of one feature level (see the module docstring for the formulas).

    Args:
        channels: feature channels ``C``.
        num_modalities: ``M``.
        num_regions: ``K`` (the number of classes: the region maps are class probability maps).
        spatial_dims, norm_name, act_name: as the other MONAI-based blocks.
        detach_regions: stop the gradient of the region probabilities in the fusion weights
            (use when the region logits are supervised).

    Shapes:
        ``forward(features [B, M, C, *S], modality_mask [B, M] bool)`` ->
        ``(fused [B, C, *S], maps [B, M, *S], region_logits [B, K, *S])``; ``maps`` sum to 1 over the
        present sequences and are exactly 0 for absent ones.
    """

    def __init__(self, channels: int, num_modalities: int, num_regions: int, spatial_dims: int = 3,
                 norm_name: str | tuple = "instance", act_name: str | tuple = DEFAULT_ACT,
                 detach_regions: bool = True):
        super().__init__()
        self.num_modalities, self.num_regions = num_modalities, num_regions
        self.detach_regions = detach_regions
        conv = Conv[Conv.CONV, spatial_dims]
        self.embed = MaskedConcatFusion(channels, num_modalities, spatial_dims, norm_name, act_name)
        self.region_head = conv(channels, num_regions, kernel_size=1)
        # one 1x1 conv per sequence (grouped): sequence m's score for every region
        self.weight_head = conv(num_modalities * channels, num_modalities * num_regions, kernel_size=1,
                                groups=num_modalities)
        self.region_fusion = ConvNormAct(spatial_dims, num_regions * channels, channels, 1, norm_name, act_name)

    def forward(self, features: torch.Tensor, modality_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, m, c, *spatial = features.shape
        features = mask_modalities(features, modality_mask)
        h = self.embed.embed(features, modality_mask)
        region_logits = self.region_head(h)                                               # [B, K, *S]
        probs = torch.softmax(region_logits, dim=1, dtype=torch.float32)
        if self.detach_regions:
            probs = probs.detach()
        scores = self.weight_head(features.flatten(1, 2)).reshape(b, m, self.num_regions, *spatial)
        absent = ~modality_mask.reshape(b, m, *[1] * (len(spatial) + 1))
        weights = torch.softmax(scores.masked_fill(absent, float("-inf")), dim=1, dtype=torch.float32)
        weights = (weights * probs.unsqueeze(1)).to(features.dtype)                      # [B, M, K, *S]
        regions = torch.einsum("bmk...,bmc...->bkc...", weights, features)               # [B, K, C, *S]
        fused = self.region_fusion(regions.flatten(1, 2)) + h
        return fused, weights.sum(dim=2), region_logits


@register_model("rfnet")
class RFNet(DMAFNet):
    """RFNet-style network for segmentation with any subset of input sequences.

    Args:
        modalities: sequence names in input-channel order (``M = len(modalities)``).
        num_classes: output classes including background (also the number of regions).
        config: an :class:`RFNetConfig` or dict; ``**overrides``: its fields.

    Attributes (as :class:`~medmodal.models.segmentation.dmafnet.DMAFNet`): ``encoders`` (``M`` one-channel
    encoders, DTM scales their gradients), ``shared_decoder``, ``fusions`` (one
    :class:`RegionAwareFusion` per level), ``fusion_decoder`` (no deep-supervision heads: the region
    maps are the deep supervision), ``feature_channels``. ``encode`` / ``decode`` / ``forward`` are
    DMAF-Net's.
    """

    def __init__(self, modalities: Sequence[str], num_classes: int, config: RFNetConfig | dict | None = None,
                 **overrides):
        cfg = RFNetConfig.from_kwargs(config, **overrides)
        # DMAF-Net skeleton with parameter-free mean fusion, then the fusions are replaced
        super().__init__(modalities, num_classes,
                         config={**cfg.backbone_kwargs(), "fusion": "mean", "deep_supervision": False})
        self.config = cfg
        self.fusions = nn.ModuleList(
            RegionAwareFusion(width, self.num_modalities, self.num_classes, detach_regions=cfg.deep_supervision,
                              **cfg.conv_kwargs())
            for width in cfg.widths)

    def fuse_with_regions(self, features: Sequence[torch.Tensor], modality_mask: torch.Tensor
                          ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Per level: fused features ``[B, C_l, *S_l]``, fusion maps ``[B, M, *S_l]``, region logits ``[B, K, *S_l]``."""
        outputs = [fusion(feat, modality_mask) for fusion, feat in zip(self.fusions, features)]
        return [o[0] for o in outputs], [o[1] for o in outputs], [o[2] for o in outputs]

    def fuse(self, features: Sequence[torch.Tensor], modality_mask: torch.Tensor
             ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``(fused, maps)`` per level (the interface :meth:`decode` uses)."""
        fused, maps, _ = self.fuse_with_regions(features, modality_mask)
        return fused, maps

    def forward_train(self, images: torch.Tensor, modality_mask: torch.Tensor) -> dict:
        """As :meth:`DMAFNet.forward_train`; ``deep_logits`` are the region logits of levels
        ``0..L-1`` up-sampled to the input size (empty without ``deep_supervision``)."""
        images, mask = self._prepare(images, modality_mask)
        features = self.encode(images)
        fused, maps, regions = self.fuse_with_regions(features, mask)
        size = tuple(images.shape[2:])
        logits, _ = self.fusion_decoder(fused)
        return {
            "logits": logits,
            "deep_logits": [resize_to(r, size) for r in regions] if self.config.deep_supervision else [],
            "aux_logits": self.auxiliary_logits(features, mask),
            "modality_features": mask_modalities(features[-1], mask),
            "fused_features": fused[-1],
            "attention_maps": maps,
            "modality_mask": mask,
        }
