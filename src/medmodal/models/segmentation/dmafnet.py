"""DMAF-Net: per-sequence encoders, Dynamic Modality-Aware Fusion, shared and fusion decoders.

Implemented from the method description and figures (``shared/notes/dmafnet.md``); the authors
released no code. Architecture::

    x^m --Encoder_m--> e^m_l (levels l = 0..L-1) --Shared decoder--> z^m   (auxiliary, per sequence)
    {e^m_l}_m --DMAF_l--> f_l                   --Fusion decoder--> z     (+ deep supervision)

DMAF module at level ``l`` (:class:`DMAFFusion`): each present sequence's ``e^m [B, C, *S_l]``
is pooled to a ``g^3`` grid and projected to tokens (+ positional and modality embeddings); the
``M * g^3`` tokens go through ``depth`` pre-norm masked multi-head attention layers in which
tokens of missing sequences are excluded as keys and zeroed as outputs; the tokens are restored
to ``[B, C, g, g, g]``, up-sampled to ``S_l`` and, together with ``e^m``, give per-sequence,
per-channel attention-map logits ``[B, C, *S_l]`` (a 1x1 conv ``2C -> C`` on
``concat(e^m, restored^m)``). A softmax over the *present* sequences gives ``Att_map_m``
(exactly 0 for absent ones); ``f = sum_m Att_map_m ⊙ e^m`` (element-wise, as in the paper's
fusion figure: each channel chooses its own mix of sequences).

Missing sequences (documented choice: **zeroed inputs and masked features**). ``forward`` sets
absent input channels to exact zeros *and* every later stage masks them: fusion weights are
exactly 0, attention never uses their tokens, auxiliary outputs are zero. So a prediction
depends neither on the voxels of an absent sequence nor on what its encoder outputs for a zero
input - the zero-at-input vs zero-at-features choice cannot leak into results. All encoders
still run on every sample (on zero input when absent), so DDP needs no unused-parameter
handling; absent encoders receive exactly zero gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from monai.networks.layers import Conv
from torch import nn

from medmodal.layers.masking import check_modality_mask, mask_modalities
from medmodal.models.segmentation.blocks import (
    BackboneConfig,
    MaskedMeanFusion,
    MaskedTransformer,
    ModalityTokenizer,
    SequenceEncoder,
    UNetDecoder,
    resize_to,
)
from medmodal.models.segmentation.pairs import gather_pairs, pair_indices, scatter_pairs
from medmodal.models.registry import register_model

__all__ = ["DMAFNetConfig", "DMAFFusion", "DMAFNet"]

FUSIONS = ("dmaf", "mean")


@dataclass
class DMAFNetConfig(BackboneConfig):
    """Hyper-parameters of :class:`DMAFNet` (all YAML-friendly; lists become tuples).

    The backbone fields (``widths`` (16, 32, 64, 128): RFNet-like, input sizes divisible by 8;
    ``blocks_per_level``, ``spatial_dims``, ``norm``, ``norm_affine``, ``act``,
    ``deep_supervision``) are those of :class:`~medmodal.models.segmentation.blocks.BackboneConfig`.

    Attributes:
        fusion: ``"dmaf"`` (the DMAF module) or ``"mean"`` (masked averaging of the present
            sequences: the "without DMAF" ablation; no transformer parameters).
        fusion_levels: encoder levels fused with DMAF (``None``: all). Other levels use masked
            mean fusion. Ignored when ``fusion="mean"``.
        token_grid: tokens per axis per sequence at each level: an int for all levels or one int
            per level (e.g. ``(4, 4, 4, 5)``). ``T = token_grid ** spatial_dims`` tokens per
            sequence; ``M * T`` tokens enter the transformer.
        num_heads: attention heads (must divide the width of every DMAF level).
        depth: masked multi-head attention layers per DMAF module (4 in the paper's figure).
        mlp_ratio: hidden size of the transformer MLP relative to the token dim.
        dropout: dropout inside the DMAF transformer (attention probabilities and MLP).

    Deep-supervision logits (``deep_supervision_scales`` coarser fusion-decoder levels) are
    **up-sampled (linearly) to the input size**, so a loss can use the full-resolution label.
    """

    fusion: str = "dmaf"
    fusion_levels: tuple[int, ...] | None = None
    token_grid: int | tuple[int, ...] = 4
    num_heads: int = 4
    depth: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0

    def __post_init__(self):
        if self.fusion_levels is not None:
            self.fusion_levels = tuple(int(level) for level in self.fusion_levels)
        if not isinstance(self.token_grid, int):
            self.token_grid = tuple(int(g) for g in self.token_grid)
        super().__post_init__()

    def validate(self) -> None:
        """Raise :class:`ValueError` with a clear message for inconsistent settings."""
        super().validate()
        n = self.num_levels
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.depth < 1 or self.num_heads < 1:
            raise ValueError("depth and num_heads must be >= 1")
        bad = [lv for lv in (self.fusion_levels or ()) if not 0 <= lv < n]
        if bad:
            raise ValueError(f"fusion_levels {bad} out of range for {n} levels (0..{n - 1})")
        grids = self.token_grids()
        if len(grids) != n or any(g < 1 for g in grids):
            raise ValueError(f"token_grid must be a positive int or one per level ({n}), got {self.token_grid}")
        for level in self.dmaf_levels():
            if self.widths[level] % self.num_heads:
                raise ValueError(f"num_heads={self.num_heads} does not divide width {self.widths[level]} "
                                 f"of DMAF level {level}")

    def token_grids(self) -> tuple[int, ...]:
        """Tokens per axis for each level."""
        if isinstance(self.token_grid, int):
            return (self.token_grid,) * self.num_levels
        return tuple(self.token_grid)

    def dmaf_levels(self) -> tuple[int, ...]:
        """Levels fused by the DMAF module (empty for ``fusion="mean"``)."""
        if self.fusion == "mean":
            return ()
        return tuple(range(self.num_levels)) if self.fusion_levels is None else tuple(sorted(set(self.fusion_levels)))


class DMAFFusion(nn.Module):
    """Dynamic Modality-Aware Fusion of one feature level.

    Args:
        channels: feature channels ``C`` of the level (token dim).
        num_modalities: ``M``.
        grid: tokens per axis (``T = grid ** spatial_dims`` tokens per sequence).
        spatial_dims: 3 or 2.
        depth, num_heads, mlp_ratio, dropout: masked transformer settings.

    The attention-map logits of sequence ``m`` (``C`` channels) are a 1x1 convolution
    ``2C -> C`` on ``concat(e^m, Upsample(restore(t^m)))``. Because the 1x1 convolution and
    (tri)linear up-sampling are both linear they commute, so it is computed as
    ``conv_e(e^m) + Upsample(linear_t(t^m))`` (identical; the linear map runs on the ``g^d``
    tokens instead of the full-resolution grid). The two maps are shared by the sequences (the
    modality embedding tells them apart). The per-channel maps are softmaxed over the present
    sequences and multiply ``e^m`` element-wise.

    Shapes:
        ``forward(features [B, M, C, *S], modality_mask [B, M] bool)``
        -> ``(fused [B, C, *S], attention_maps [B, M, *S])``; the reported maps are the
        per-channel maps averaged over channels (for plots): they sum to 1 over present
        sequences and are exactly 0 for absent ones.
    """

    def __init__(self, channels: int, num_modalities: int, grid: int, spatial_dims: int = 3, depth: int = 4,
                 num_heads: int = 4, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.tokenizer = ModalityTokenizer(channels, num_modalities, (grid,) * spatial_dims)
        self.transformer = MaskedTransformer(channels, depth, num_heads, mlp_ratio, dropout)
        self.map_from_features = Conv[Conv.CONV, spatial_dims](channels, channels, kernel_size=1)
        self.map_from_tokens = nn.Linear(channels, channels, bias=False)

    def attention_logits(self, features: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:
        """Per-sequence, per-channel map logits ``[B, M, C, *S]`` (``-inf`` for absent sequences)."""
        b, m, c, *spatial = features.shape
        tokens = self.tokenizer(features)                                             # [B, M*T, C]
        tokens = self.transformer(tokens, self.tokenizer.token_mask(modality_mask))  # absent tokens = 0
        grid = self.tokenizer.grid
        restored = self.map_from_tokens(tokens).reshape(b * m, *grid, c).movedim(-1, 1)  # [B*M, C, *grid]
        logits = self.map_from_features(features.flatten(0, 1)) + resize_to(restored, spatial)
        logits = logits.reshape(b, m, c, *spatial)
        absent = ~modality_mask.reshape(b, m, *[1] * (len(spatial) + 1))
        return logits.masked_fill(absent, float("-inf"))

    def forward(self, features: torch.Tensor, modality_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = mask_modalities(features, modality_mask)
        # softmax in float32 (stable under bf16 autocast), weights back in the features' dtype
        maps = torch.softmax(self.attention_logits(features, modality_mask), dim=1, dtype=torch.float32)
        maps = maps.to(features.dtype)
        fused = (maps * features).sum(dim=1)
        return fused, maps.mean(dim=2)


@register_model("dmafnet", tiny={"widths": (4, 8, 16), "token_grid": 2, "num_heads": 2, "depth": 2})
class DMAFNet(nn.Module):
    """DMAF-Net for segmentation with any subset of input sequences.

    Args:
        modalities: sequence names in input-channel order (``M = len(modalities)``).
        num_classes: output classes including background.
        config: a :class:`DMAFNetConfig` or dict (default: the defaults).
        **overrides: fields of :class:`DMAFNetConfig` overriding ``config``.

    Attributes:
        encoders: ``nn.ModuleList`` of ``M`` one-channel :class:`SequenceEncoder` s
            (index = sequence index; DTM scales their gradients).
        shared_decoder: :class:`UNetDecoder` applied to each present sequence's features.
        fusions: one fusion module per level (:class:`DMAFFusion` or :class:`MaskedMeanFusion`).
        fusion_decoder: :class:`UNetDecoder` (separate weights) on the fused features.
        feature_channels: channels of the deepest level (``C_L``, for distillation heads).

    Input spatial sizes must be divisible by ``2 ** (len(widths) - 1)``.
    """

    def __init__(self, modalities: Sequence[str], num_classes: int, config: DMAFNetConfig | dict | None = None,
                 **overrides):
        super().__init__()
        cfg = DMAFNetConfig.from_kwargs(config, **overrides)
        self.config = cfg
        self.modalities = tuple(modalities)
        self.num_classes = int(num_classes)
        self.num_modalities = len(self.modalities)
        self.spatial_dims = cfg.spatial_dims
        self.feature_channels = cfg.widths[-1]
        conv_kw = cfg.conv_kwargs()
        self.encoders = nn.ModuleList(
            SequenceEncoder(1, cfg.widths, blocks_per_level=cfg.blocks_per_level, **conv_kw)
            for _ in self.modalities)
        self.shared_decoder = UNetDecoder(cfg.widths, self.num_classes, deep_supervision_heads=0, **conv_kw)
        dmaf_levels = set(cfg.dmaf_levels())
        grids = cfg.token_grids()
        self.fusions = nn.ModuleList(
            DMAFFusion(width, self.num_modalities, grids[level], cfg.spatial_dims, cfg.depth, cfg.num_heads,
                       cfg.mlp_ratio, cfg.dropout) if level in dmaf_levels else MaskedMeanFusion()
            for level, width in enumerate(cfg.widths))
        self.fusion_decoder = UNetDecoder(cfg.widths, self.num_classes,
                                          deep_supervision_heads=cfg.num_deep_scales(), **conv_kw)

    # ------------------------------------------------------------------ helpers
    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of (trainable) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def size_divisor(self) -> int:
        """Input spatial sizes must be multiples of this."""
        return 2 ** (self.config.num_levels - 1)

    def _check_images(self, images: torch.Tensor) -> None:
        expected = 2 + self.spatial_dims
        if images.ndim != expected or images.shape[1] != self.num_modalities:
            raise ValueError(f"images must be [B, M={self.num_modalities}, *spatial] with {self.spatial_dims} spatial "
                             f"dims ({', '.join(self.modalities)}), got {tuple(images.shape)}")
        bad = [s for s in images.shape[2:] if s % self.size_divisor]
        if bad:
            raise ValueError(f"spatial size {tuple(images.shape[2:])} must be divisible by {self.size_divisor} "
                             f"({self.config.num_levels} levels); pad or crop the input")

    def _mask(self, modality_mask: torch.Tensor, batch_size: int | None, device: torch.device) -> torch.Tensor:
        return check_modality_mask(modality_mask, batch_size, self.num_modalities, device)

    # ------------------------------------------------------------------ stages
    def encode(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Run every sequence's encoder on its own channel (no masking here).

        Args:
            images: ``[B, M, *S]``.

        Returns:
            List over levels of ``[B, M, C_l, *S_l]``. Sequences are encoded independently, so
            the entries of sequence ``m`` depend on ``images[:, m]`` only.
        """
        self._check_images(images)
        per_sequence = [encoder(images[:, i:i + 1]) for i, encoder in enumerate(self.encoders)]
        return [torch.stack(level, dim=1) for level in zip(*per_sequence)]

    def fuse(self, features: Sequence[torch.Tensor], modality_mask: torch.Tensor
             ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Fuse each level over the present sequences.

        Args:
            features: list over levels of ``[B, M, C_l, *S_l]`` (absent entries may hold anything).
            modality_mask: ``[B, M]`` bool.

        Returns:
            ``(fused, maps)``: lists over levels of ``[B, C_l, *S_l]`` and ``[B, M, *S_l]``
            (mean-fused levels report their uniform weights ``1 / #present``).
        """
        outputs = [fusion(feat, modality_mask) for fusion, feat in zip(self.fusions, features)]
        return [o[0] for o in outputs], [o[1] for o in outputs]

    def _fusion_head(self, fused: Sequence[torch.Tensor], size: Sequence[int]
                     ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Fusion decoder: ``(logits [B, K, *size], deep logits up-sampled to size)``."""
        logits, deep = self.fusion_decoder(fused)
        return logits, [resize_to(d, size) for d in deep]

    def decode(self, features: Sequence[torch.Tensor], modality_mask: torch.Tensor) -> torch.Tensor:
        """Fuse and decode encoder features under a (batch of) presence mask(s).

        Args:
            features: output of :meth:`encode`, list over levels of ``[B, M, C_l, *S_l]``; ``B``
                may be 1 while the mask has ``K`` rows: the features are then shared (expanded,
                no copy) by all ``K`` masks - encode a case once, decode all subsets in one batch.
            modality_mask: ``[B, M]`` (or ``[K, M]``) bool.

        Returns:
            Fused logits ``[B, num_classes, *S]`` (``K`` rows in the broadcast case).
            ``decode(encode(x), m)`` equals ``forward(x, m)``.
        """
        b = features[0].shape[0]
        mask = self._mask(modality_mask, None, features[0].device)
        k = mask.shape[0]
        if b != k:
            if b != 1:
                raise ValueError(f"features have batch {b} but modality_mask has {k} rows (need equal, or features B=1)")
            features = [f.expand(k, *f.shape[1:]) for f in features]
        fused, _ = self.fuse(features, mask)
        return self.fusion_decoder(fused)[0]  # deep-supervision heads are training-only

    def auxiliary_logits(self, features: Sequence[torch.Tensor], modality_mask: torch.Tensor) -> torch.Tensor:
        """Shared decoder on every present (sample, sequence) pair.

        Args:
            features: list over levels of ``[B, M, C_l, *S_l]``.
            modality_mask: ``[B, M]`` bool.

        Returns:
            ``[B, M, num_classes, *S]``; entries of absent sequences are exact zeros (eager: the
            decoder is not run on them; under ``torch.compile`` it runs on every pair and absent
            results are masked - static shapes, see :mod:`medmodal.models.segmentation.pairs`).
        """
        bi, mi = pair_indices(modality_mask)
        logits, _ = self.shared_decoder([gather_pairs(f, bi, mi, modality_mask) for f in features])  # [P, K, *S]
        return scatter_pairs(logits, bi, mi, modality_mask)

    # ------------------------------------------------------------------ forward
    def _prepare(self, images: torch.Tensor, modality_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_images(images)
        mask = self._mask(modality_mask, images.shape[0], images.device)
        return mask_modalities(images, mask), mask

    def forward(self, images: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:
        """Fused prediction (what inference / sliding windows use).

        Args:
            images: ``[B, M, *S]`` float; channels of absent sequences are ignored (zeroed).
            modality_mask: ``[B, M]`` bool, True = present; rows may differ.

        Returns:
            Logits ``[B, num_classes, *S]``.

        Raises:
            ValueError: a sample with no sequence, wrong shapes, or sizes not divisible by
                :attr:`size_divisor`.
        """
        images, mask = self._prepare(images, modality_mask)
        return self.decode(self.encode(images), mask)

    def forward_train(self, images: torch.Tensor, modality_mask: torch.Tensor) -> dict:
        """Everything the DMAF-Net loss needs.

        Args:
            images: ``[B, M, *S]``; modality_mask: ``[B, M]`` bool.

        Returns:
            A dict with

            * ``"logits"``: fused prediction ``[B, K, *S]`` (``K`` = num_classes);
            * ``"deep_logits"``: list of ``[B, K, *S]`` deep-supervision logits from the 1/2,
                1/4, ... fusion-decoder levels, up-sampled to ``S`` (empty if off);
            * ``"aux_logits"``: ``[B, M, K, *S]`` shared-decoder outputs per sequence (zero for
                absent sequences; the loss ignores them);
            * ``"modality_features"``: ``[B, M, C_L, *S_L]`` deepest encoder features ``e^m_L``
                (absent ones zero);
            * ``"fused_features"``: ``[B, C_L, *S_L]`` deepest fused feature ``f_L``;
            * ``"attention_maps"``: list over levels of ``[B, M, *S_l]`` fusion weights;
            * ``"modality_mask"``: ``[B, M]`` bool.
        """
        images, mask = self._prepare(images, modality_mask)
        features = self.encode(images)
        fused, maps = self.fuse(features, mask)
        logits, deep = self._fusion_head(fused, tuple(images.shape[2:]))
        return {
            "logits": logits,
            "deep_logits": deep,
            "aux_logits": self.auxiliary_logits(features, mask),
            "modality_features": mask_modalities(features[-1], mask),
            "fused_features": fused[-1],
            "attention_maps": maps,
            "modality_mask": mask,
        }
