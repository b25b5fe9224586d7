"""mmFormer-style baseline: per-sequence encoders, intra- and inter-modal transformers.

After Zhang et al., "mmFormer: Multimodal Medical Transformer for Incomplete Multimodal
Learning of Brain Tumor Segmentation" (MICCAI 2022), re-implemented on medmodal's blocks (not a
port of the authors' code). It shares DMAF-Net's multi-encoder skeleton
(:class:`~medmodal.models.segmentation.dmafnet.DMAFNet`) and replaces the fusion modules::

    x^m --Encoder_m--> e^m_l --Shared decoder--> z^m     (auxiliary regularisers, per sequence)
    levels l < L-1:  f_l = MaskedConcatFusion(e_l)       (masked concatenation + convs)
    level  L-1:      f_L = MMFormerBottleneck(e_L)       (transformers, below)
    {f_l} --Fusion decoder--> z  (+ deep supervision from coarser decoder levels)

Bottleneck (:class:`MMFormerBottleneck`), per present sequence ``m``::

    t^m   = tokens of Conv1x1_m(e^m_L) pooled to a g^d grid, + positional + modality embedding
            (ModalityTokenizer; D = transformer_dim channels)
    t^m   = IntraTransformer_m(t^m)                                     intra-modal, per sequence
    t     = InterTransformer([t^1 .. t^M], key mask = present sequences)  inter-modal
    e'^m  = e^m_L + Upsample(Linear_{D->C}(t^m))                          restore (residual)
    f_L   = MaskedConcatFusion(e')

Missing sequences never influence the output: their features are masked to zeros, their
tokens are zeroed after the intra-modal transformer, they are never attended (masked keys) and
they enter the concatenations as exact zeros (mmFormer itself feeds zero tokens to an unmasked
inter-modal transformer). Absent sequences' encoders receive zero gradient.

Differences from the published mmFormer, all documented choices: tokens are the deepest
features average-pooled to a fixed ``token_grid`` (mmFormer uses the deepest positions directly,
``5^3`` for 80^3 crops and 5 levels, which the default reproduces for that crop size; pooling
lets any input size share the positional embedding), with a residual up-sampled restore; the
attention is masked.
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
    DEFAULT_ACT,
    MaskedConcatFusion,
    MaskedTransformer,
    ModalityTokenizer,
    mask_tokens,
    resize_to,
)
from medmodal.models.segmentation.dmafnet import DMAFNet
from medmodal.models.registry import register_model

__all__ = ["MMFormerConfig", "MMFormerBottleneck", "MMFormer"]


@dataclass
class MMFormerConfig(BackboneConfig):
    """Hyper-parameters of :class:`MMFormer` (fields of :class:`BackboneConfig` plus the below).

    Defaults follow mmFormer: 5 levels ``(16, 32, 64, 128, 256)`` (input sizes divisible by 16),
    transformer width 512, 8 heads, one intra- and one inter-modal layer, MLP ratio 8 (4096 / 512),
    dropout 0.1.

    Attributes:
        deep_supervision_scales: coarser fusion-decoder levels with a deep-supervision head,
            clipped to ``len(widths) - 2`` (default 3: mmFormer supervises every decoder level).
        transformer_dim: token width ``D`` (``None``: ``2 * widths[-1]``, 512 for the defaults).
        token_grid: tokens per axis per sequence (``token_grid ** spatial_dims`` tokens).
        num_heads: attention heads (must divide ``transformer_dim``).
        intra_depth / inter_depth: layers of the intra-modal (one per sequence) and of the
            inter-modal transformer.
        mlp_ratio: transformer MLP hidden size / ``D``.
        dropout: dropout in the transformers (attention probabilities and MLP).
    """

    widths: tuple[int, ...] = (16, 32, 64, 128, 256)
    deep_supervision_scales: int = 3
    transformer_dim: int | None = None
    token_grid: int = 5
    num_heads: int = 8
    intra_depth: int = 1
    inter_depth: int = 1
    mlp_ratio: float = 8.0
    dropout: float = 0.1

    @property
    def token_dim(self) -> int:
        return int(self.transformer_dim) if self.transformer_dim is not None else 2 * self.widths[-1]

    def validate(self) -> None:
        super().validate()
        if self.token_dim < 1 or self.token_grid < 1 or self.num_heads < 1:
            raise ValueError("transformer_dim, token_grid and num_heads must be >= 1")
        if self.intra_depth < 1 or self.inter_depth < 1:
            raise ValueError("intra_depth and inter_depth must be >= 1")
        if self.token_dim % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} does not divide transformer_dim={self.token_dim}")


class MMFormerBottleneck(nn.Module):
    """Intra-modal + inter-modal transformer fusion of the deepest level (formulas: module docstring).

    Args:
        channels: deepest feature channels ``C``.
        num_modalities: ``M``.
        grid: tokens per axis; ``dim``: token width ``D``.
        spatial_dims, norm_name, act_name: as the other MONAI-based blocks.
        intra_depth, inter_depth, num_heads, mlp_ratio, dropout: transformer settings.

    Shapes:
        ``forward(features [B, M, C, *S], modality_mask [B, M] bool) -> (fused [B, C, *S], None)``.
    """

    def __init__(self, channels: int, num_modalities: int, grid: int, dim: int, spatial_dims: int = 3,
                 norm_name: str | tuple = "instance", act_name: str | tuple = DEFAULT_ACT, intra_depth: int = 1,
                 inter_depth: int = 1, num_heads: int = 8, mlp_ratio: float = 8.0, dropout: float = 0.0):
        super().__init__()
        self.num_modalities, self.dim = num_modalities, dim
        # per-sequence projection C -> D (one 1x1 conv per sequence, as a grouped conv)
        self.project = Conv[Conv.CONV, spatial_dims](num_modalities * channels, num_modalities * dim, kernel_size=1,
                                                     groups=num_modalities)
        self.tokenizer = ModalityTokenizer(dim, num_modalities, (grid,) * spatial_dims)
        self.intra = nn.ModuleList(MaskedTransformer(dim, intra_depth, num_heads, mlp_ratio, dropout)
                                   for _ in range(num_modalities))
        self.inter = MaskedTransformer(dim, inter_depth, num_heads, mlp_ratio, dropout)
        self.restore = nn.Linear(dim, channels)
        self.fusion = MaskedConcatFusion(channels, num_modalities, spatial_dims, norm_name, act_name)

    def forward(self, features: torch.Tensor, modality_mask: torch.Tensor) -> tuple[torch.Tensor, None]:
        b, m, c, *spatial = features.shape
        features = mask_modalities(features, modality_mask)
        projected = self.project(features.flatten(1, 2)).reshape(b, m, self.dim, *spatial)
        tokens = self.tokenizer(projected).reshape(b, m, self.tokenizer.num_tokens, self.dim)
        # intra-modal: every sequence's transformer runs on every sample (no unused parameters
        # under DDP); absent sequences' outputs are zeroed below
        tokens = torch.stack([layer(tokens[:, i]) for i, layer in enumerate(self.intra)], dim=1)
        token_mask = self.tokenizer.token_mask(modality_mask)
        tokens = self.inter(mask_tokens(tokens.flatten(1, 2), token_mask), token_mask)     # [B, M*T, D]
        restored = self.restore(tokens).reshape(b * m, self.tokenizer.num_tokens, c).transpose(1, 2)
        restored = resize_to(restored.reshape(b * m, c, *self.tokenizer.grid), spatial).reshape(b, m, c, *spatial)
        return self.fusion(features + restored, modality_mask)


@register_model("mmformer")
class MMFormer(DMAFNet):
    """mmFormer-style network for segmentation with any subset of input sequences.

    Args:
        modalities: sequence names in input-channel order (``M = len(modalities)``).
        num_classes: output classes including background.
        config: an :class:`MMFormerConfig` or dict; ``**overrides``: its fields.

    Attributes (as :class:`~medmodal.models.segmentation.dmafnet.DMAFNet`): ``encoders``, ``shared_decoder``
    (auxiliary regularisers), ``fusions`` (:class:`MaskedConcatFusion` per skip level, then
    :class:`MMFormerBottleneck`), ``fusion_decoder`` (deep supervision), ``feature_channels``.
    ``forward_train`` returns DMAF-Net's keys except ``attention_maps`` (no fusion weights).
    """

    def __init__(self, modalities: Sequence[str], num_classes: int, config: MMFormerConfig | dict | None = None,
                 **overrides):
        cfg = MMFormerConfig.from_kwargs(config, **overrides)
        super().__init__(modalities, num_classes,
                         config={**cfg.backbone_kwargs(), "fusion": "mean",
                                 "deep_supervision_scales": cfg.deep_supervision_scales})
        self.config = cfg
        conv_kw = cfg.conv_kwargs()
        skips = [MaskedConcatFusion(width, self.num_modalities, **conv_kw) for width in cfg.widths[:-1]]
        bottleneck = MMFormerBottleneck(cfg.widths[-1], self.num_modalities, cfg.token_grid, cfg.token_dim,
                                        intra_depth=cfg.intra_depth, inter_depth=cfg.inter_depth,
                                        num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout,
                                        **conv_kw)
        self.fusions = nn.ModuleList([*skips, bottleneck])

    def forward_train(self, images: torch.Tensor, modality_mask: torch.Tensor) -> dict:
        """:meth:`DMAFNet.forward_train` without ``attention_maps``."""
        outputs = super().forward_train(images, modality_mask)
        outputs.pop("attention_maps")
        return outputs
