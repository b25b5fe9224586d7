"""Building blocks shared by medmodal's missing-modality segmentation networks.

Shape conventions (``S`` = spatial shape, 3-D ``(D, H, W)`` by default, 2-D ``(H, W)`` with
``spatial_dims=2``):

* images: ``[B, M, *S]`` - one channel per sequence, in the model's ``modalities`` order;
* modality mask: ``[B, M]`` bool, True = sequence present (a batch may mix subsets);
* per-sequence features: ``[B, M, C, *S_l]`` at encoder level ``l`` (``S_l = S / 2**l``);
* tokens: ``[B, N, C]``; a token mask is ``[B, N]`` bool, True = valid.

Missing sequences are handled by *masking*, never by relying on what an encoder produces
for a zero input: features of absent sequences are replaced by exact zeros
(:func:`mask_modalities`), attention never uses them as keys and fusion weights them by
exactly 0. Hence a prediction cannot depend on the voxels (or the encoder) of an absent
sequence.

The convolutional blocks are MONAI's (``UnetResBlock``, ``UnetUpBlock``, ``UnetOutBlock``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import UnetOutBlock, UnetResBlock, UnetUpBlock
from monai.networks.blocks.dynunet_block import get_conv_layer
from monai.networks.layers.utils import get_act_layer, get_norm_layer
from torch import nn

from medmodal.layers.masking import check_modality_mask, mask_modalities, present_mean

#: Old name of :func:`medmodal.layers.masking.present_mean` (kept for one release).
masked_mean = present_mean
from medmodal.models.registry import model_config

__all__ = [
    "DEFAULT_ACT",
    "planar_input",
    "check_modality_mask",
    "mask_modalities",
    "masked_mean",
    "resize_to",
    "adaptive_avg_pool",
    "SequenceEncoder",
    "UNetDecoder",
    "MaskedMultiheadAttention",
    "mask_tokens",
    "MaskedTransformerLayer",
    "MaskedTransformer",
    "ModalityTokenizer",
    "MaskedMeanFusion",
    "ConvNormAct",
    "MaskedConcatFusion",
    "BackboneConfig",
]

#: MONAI activation spec used by default (nnU-Net / RFNet style LeakyReLU).
DEFAULT_ACT: tuple = ("leakyrelu", {"negative_slope": 0.01, "inplace": True})


def resize_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(Bi/tri)linear resize of ``[N, C, *S]`` to ``[N, C, *size]`` (no-op if already that size)."""
    size = tuple(int(s) for s in size)
    if tuple(x.shape[2:]) == size:
        return x
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def adaptive_avg_pool(x: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """Adaptive average pooling of ``[N, C, *S]`` to ``[N, C, *grid]`` for 1-, 2- or 3-D ``S``."""
    pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[len(grid)]
    return pool(x, tuple(int(g) for g in grid))


# ------------------------------------------------------------------------ conv encoder/decoder
class SequenceEncoder(nn.Module):
    """Multi-level convolutional encoder (U-Net style) for one sequence or a channel stack.

    Level 0 keeps the input resolution; every further level halves it with a strided residual
    block. Each level is ``blocks_per_level`` MONAI ``UnetResBlock`` s (conv-norm-act x2 with a
    residual connection).

    Args:
        in_channels: input channels (1 for a per-sequence encoder).
        widths: channels per level, e.g. ``(16, 32, 64, 128)``.
        spatial_dims: 3 (volumes) or 2 (slices).
        norm_name / act_name: MONAI norm / activation specs.
        blocks_per_level: residual blocks per level (>= 1).
        kernel_size: convolution kernel size.
        dropout: MONAI dropout spec inside the blocks (``None``: off).

    Shapes:
        ``forward(x [N, in_channels, *S]) -> [ [N, widths[l], *S / 2**l] for l in levels ]``.
    """

    def __init__(self, in_channels: int, widths: Sequence[int], spatial_dims: int = 3,
                 norm_name: str | tuple = "instance", act_name: str | tuple = DEFAULT_ACT,
                 blocks_per_level: int = 1, kernel_size: int = 3, dropout: float | None = None):
        super().__init__()
        if len(widths) < 1 or blocks_per_level < 1:
            raise ValueError("SequenceEncoder needs at least one level and one block per level")
        self.widths = tuple(int(w) for w in widths)
        self.spatial_dims = spatial_dims
        self.levels = nn.ModuleList()
        prev = in_channels
        for level, width in enumerate(self.widths):
            blocks = []
            for b in range(blocks_per_level):
                stride = 2 if (level > 0 and b == 0) else 1
                blocks.append(UnetResBlock(spatial_dims, prev if b == 0 else width, width, kernel_size=kernel_size,
                                           stride=stride, norm_name=norm_name, act_name=act_name, dropout=dropout))
            self.levels.append(nn.Sequential(*blocks))
            prev = width

    @property
    def downsampling_factor(self) -> int:
        """Spatial sizes must be divisible by this (``2 ** (levels - 1)``)."""
        return 2 ** (len(self.widths) - 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x [N, C_in, *S]`` -> list over levels of ``[N, widths[l], *S_l]``."""
        features = []
        for level in self.levels:
            x = level(x)
            features.append(x)
        return features


class UNetDecoder(nn.Module):
    """U-Net decoder over multi-level features, with optional deep-supervision heads.

    Starting from the deepest level, each step up-samples (transposed conv, stride 2),
    concatenates the skip features of the next finer level and applies a conv-norm-act block
    (MONAI ``UnetUpBlock``). A 1x1 head gives the logits at level 0.

    Args:
        widths: channels per level (must match the features passed to ``forward``).
        out_channels: number of output classes.
        spatial_dims: 3 or 2.
        norm_name / act_name: MONAI specs.
        deep_supervision_heads: number of extra 1x1 heads on decoder levels ``1..k`` (coarser
            scales, ``k <= len(widths) - 2``).
        kernel_size: convolution kernel size.

    Shapes:
        ``forward([f_0 [N, widths[0], *S], ..., f_{L-1} [N, widths[-1], *S_{L-1}]])``
        -> ``(logits [N, out_channels, *S], [deep_l [N, out_channels, *S_l] for l = 1..k])``
        (deep-supervision logits at their native, coarser resolution).
    """

    def __init__(self, widths: Sequence[int], out_channels: int, spatial_dims: int = 3,
                 norm_name: str | tuple = "instance", act_name: str | tuple = DEFAULT_ACT,
                 deep_supervision_heads: int = 0, kernel_size: int = 3):
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        if len(self.widths) < 2:
            raise ValueError("UNetDecoder needs at least two levels")
        if not 0 <= deep_supervision_heads <= len(self.widths) - 2:
            raise ValueError(f"deep_supervision_heads must be in [0, {len(self.widths) - 2}] "
                             f"for {len(self.widths)} levels, got {deep_supervision_heads}")
        # ups[i] maps level i+1 -> level i
        self.ups = nn.ModuleList(
            UnetUpBlock(spatial_dims, self.widths[i + 1], self.widths[i], kernel_size=kernel_size, stride=1,
                        upsample_kernel_size=2, norm_name=norm_name, act_name=act_name)
            for i in range(len(self.widths) - 1))
        self.head = UnetOutBlock(spatial_dims, self.widths[0], out_channels)
        self.deep_heads = nn.ModuleList(UnetOutBlock(spatial_dims, self.widths[level], out_channels)
                                        for level in range(1, deep_supervision_heads + 1))

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """See the class docstring for shapes."""
        if len(features) != len(self.widths):
            raise ValueError(f"decoder expects {len(self.widths)} feature levels, got {len(features)}")
        x = features[-1]
        decoded: dict[int, torch.Tensor] = {}
        for level in range(len(self.widths) - 2, -1, -1):
            x = self.ups[level](x, features[level])
            decoded[level] = x
        logits = self.head(x)
        deep = [head(decoded[level]) for level, head in enumerate(self.deep_heads, start=1)]
        return logits, deep


# ----------------------------------------------------------------------------- attention
class MaskedMultiheadAttention(nn.Module):
    """Multi-head attention in which invalid keys (e.g. tokens of missing sequences) are ignored.

    Args:
        dim: query / output channels.
        num_heads: heads (``dim % num_heads == 0``).
        kv_dim: key/value input channels (default ``dim``); allows cross-attention.
        dropout: attention-probability dropout (training only).
        qkv_bias: bias in the q/k/v projections.

    Shapes:
        ``forward(query [B, Nq, dim], key_value [B, Nk, kv_dim] | None, key_mask [B, Nk] bool | None)``
        -> ``[B, Nq, dim]``. ``key_value=None`` is self-attention. Masked keys receive exactly zero
        attention weight (and zero gradient). Every query must have at least one valid key; callers
        guarantee it (:func:`check_modality_mask`).
    """

    def __init__(self, dim: int, num_heads: int, kv_dim: int | None = None, dropout: float = 0.0,
                 qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"attention dim {dim} is not divisible by num_heads={num_heads}")
        self.dim, self.num_heads, self.dropout = dim, num_heads, float(dropout)
        kv_dim = dim if kv_dim is None else kv_dim
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(kv_dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.num_heads, self.dim // self.num_heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key_value: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        key_value = query if key_value is None else key_value
        q = self._heads(self.q(query))
        k, v = (self._heads(t) for t in self.kv(key_value).chunk(2, dim=-1))
        attn_mask = None if key_mask is None else key_mask[:, None, None, :].to(torch.bool)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(query.shape[0], query.shape[1], self.dim))


class MaskedTransformerLayer(nn.Module):
    """Pre-norm transformer layer with masked multi-head self-attention (an "MMHA" layer).

    ``x <- x + Attn(LN(x), key_mask); x <- x + MLP(LN(x))``; afterwards the outputs of invalid
    tokens are set to exact zeros, so absent sequences neither attend nor are attended.

    Shapes: ``forward(x [B, N, dim], token_mask [B, N] bool | None) -> [B, N, dim]``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MaskedMultiheadAttention(dim, num_heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), key_mask=token_mask)
        x = x + self.mlp(self.norm2(x))
        return x if token_mask is None else mask_tokens(x, token_mask)


def mask_tokens(x: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """``x [B, N, C]`` with rows of invalid tokens (``token_mask [B, N]`` False) set to exact zeros."""
    return torch.where(token_mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))


class MaskedTransformer(nn.Module):
    """A stack of :class:`MaskedTransformerLayer` s followed by a LayerNorm.

    Shapes: ``forward(x [B, N, dim], token_mask [B, N] bool | None) -> [B, N, dim]`` (invalid tokens
    zero).
    """

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(MaskedTransformerLayer(dim, num_heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, token_mask)
        x = self.norm(x)
        return x if token_mask is None else mask_tokens(x, token_mask)


# ------------------------------------------------------------------------------ tokens
class ModalityTokenizer(nn.Module):
    """Turn each sequence's feature map into a group of tokens.

    Per sequence: adaptive average pooling to a ``grid`` (``T = prod(grid)`` positions), a linear
    projection, plus a learned positional embedding (shared by the sequences) and a learned
    modality embedding (one per sequence).

    Args:
        channels: feature channels ``C`` (= token dim).
        num_modalities: ``M``.
        grid: tokens per axis, e.g. ``(4, 4, 4)``.

    Shapes:
        ``forward(features [B, M, C, *S]) -> tokens [B, M * T, C]`` (sequence-major: the tokens of
        sequence ``m`` are ``[m * T, (m + 1) * T)``).
    """

    def __init__(self, channels: int, num_modalities: int, grid: Sequence[int]):
        super().__init__()
        self.grid = tuple(int(g) for g in grid)
        self.num_tokens = math.prod(self.grid)
        self.proj = nn.Linear(channels, channels)
        self.pos_embed = nn.Parameter(torch.zeros(1, 1, self.num_tokens, channels))
        self.modality_embed = nn.Parameter(torch.zeros(1, num_modalities, 1, channels))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.modality_embed, std=0.02)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, m, c = features.shape[:3]
        pooled = adaptive_avg_pool(features.flatten(0, 1), self.grid)          # [B*M, C, *grid]
        tokens = pooled.flatten(2).transpose(1, 2).reshape(b, m, self.num_tokens, c)
        tokens = self.proj(tokens) + self.pos_embed + self.modality_embed       # [B, M, T, C]
        return tokens.reshape(b, m * self.num_tokens, c)

    def token_mask(self, modality_mask: torch.Tensor) -> torch.Tensor:
        """``modality_mask [B, M]`` -> token mask ``[B, M * T]``."""
        return modality_mask.repeat_interleave(self.num_tokens, dim=1)


# ------------------------------------------------------------------------------ fusion
class MaskedMeanFusion(nn.Module):
    """Plain fusion by averaging the present sequences' features (no parameters).

    Shapes: ``forward(features [B, M, C, *S], modality_mask [B, M]) -> (fused [B, C, *S],
    weights [B, M, *S])`` where ``weights`` is ``1 / #present`` for present sequences and exactly
    0 for absent ones (an expanded view, the same interface as attention-based fusions).
    """

    def forward(self, features: torch.Tensor, modality_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = modality_mask.to(features.dtype)
        weights = weights / weights.sum(dim=1, keepdim=True)
        fused = present_mean(features, modality_mask)
        spatial = features.shape[3:]
        return fused, weights.reshape(*weights.shape, *[1] * len(spatial)).expand(*weights.shape, *spatial)


class ConvNormAct(nn.Sequential):
    """Convolution (no bias) -> MONAI norm -> MONAI activation, "same" padding.

    Shapes: ``[N, in_channels, *S] -> [N, out_channels, *S]``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 1,
                 norm_name: str | tuple = "instance", act_name: str | tuple = DEFAULT_ACT):
        super().__init__(
            get_conv_layer(spatial_dims, in_channels, out_channels, kernel_size=kernel_size, stride=1, conv_only=True),
            get_norm_layer(name=norm_name, spatial_dims=spatial_dims, channels=out_channels),
            get_act_layer(name=act_name))


class MaskedConcatFusion(nn.Module):
    """Fusion by a convolution over the concatenated features of all sequences, absent ones zeroed.

    The ``M`` feature maps are masked (absent sequences -> exact zeros), concatenated along the
    channels (``M * C``, fixed sequence order) and reduced by conv-norm-act blocks: 1x1
    (``M * C -> C``), 3x3 (``C -> C``), 1x1 (``C -> C``). This is the skip-level fusion of mmFormer
    and the shortcut / region-map embedding of RFNet's region-aware fusion. Because absent
    sequences enter as exact zeros, the output depends on which sequences are present but never
    on the voxels (or encoder outputs) of an absent one.

    Shapes:
        :meth:`embed`: ``(features [B, M, C, *S], modality_mask [B, M]) -> [B, C, *S]``;
        ``forward``: ``-> (fused [B, C, *S], None)`` (the fusion interface of
        :class:`MaskedMeanFusion`; a concatenation has no per-sequence weights to report).
    """

    def __init__(self, channels: int, num_modalities: int, spatial_dims: int = 3,
                 norm_name: str | tuple = "instance", act_name: str | tuple = DEFAULT_ACT):
        super().__init__()
        kw = dict(norm_name=norm_name, act_name=act_name)
        self.layers = nn.Sequential(
            ConvNormAct(spatial_dims, num_modalities * channels, channels, 1, **kw),
            ConvNormAct(spatial_dims, channels, channels, 3, **kw),
            ConvNormAct(spatial_dims, channels, channels, 1, **kw))

    def embed(self, features: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:
        return self.layers(mask_modalities(features, modality_mask).flatten(1, 2))

    def forward(self, features: torch.Tensor, modality_mask: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.embed(features, modality_mask), None


# ----------------------------------------------------------------------- model settings
@dataclass
class BackboneConfig:
    """Settings shared by the U-Net-style baselines (``zero_unet``, ``rfnet``, ``mmformer``).

    Model configs subclass it and add their own fields; the names match
    :class:`medmodal.models.segmentation.dmafnet.DMAFNetConfig` where they mean the same thing.

    Attributes:
        widths: channels per encoder level (input sizes must be divisible by
            ``2 ** (len(widths) - 1)``).
        blocks_per_level: MONAI ``UnetResBlock`` s per encoder level.
        spatial_dims: 3 (volumes) or 2 (slices).
        norm: MONAI norm name (``"instance"``: samples of a batch never interact).
        norm_affine: learnable per-channel scale and shift in the norm layers (nnU-Net's
            instance norm has them; MONAI's ``"instance"`` default does not). Default ``True``:
            without them a model fits small structures (necrosis, enhancing tumour) far slower.
        act: MONAI activation name (``"leakyrelu"``: slope 0.01).
        deep_supervision: extra supervised coarse predictions in ``forward_train`` (what they
            are is model-specific).
        deep_supervision_scales: how many coarser decoder scales (1/2, 1/4, ...) get a
            deep-supervision head; clipped to ``len(widths) - 2`` (:meth:`num_deep_scales`).
    """

    widths: tuple[int, ...] = (16, 32, 64, 128)
    blocks_per_level: int = 1
    spatial_dims: int = 3
    norm: str = "instance"
    norm_affine: bool = True
    act: str = "leakyrelu"
    deep_supervision: bool = True
    deep_supervision_scales: int = 2

    def __post_init__(self):
        self.widths = tuple(int(w) for w in self.widths)
        self.validate()

    @property
    def num_levels(self) -> int:
        return len(self.widths)

    def num_deep_scales(self) -> int:
        """Deep-supervision heads actually built (0 when ``deep_supervision`` is off)."""
        return min(self.deep_supervision_scales, self.num_levels - 2) if self.deep_supervision else 0

    @property
    def size_divisor(self) -> int:
        return 2 ** (self.num_levels - 1)

    def validate(self) -> None:
        """Raise :class:`ValueError` for inconsistent settings (subclasses extend it)."""
        if self.num_levels < 2 or any(w < 1 for w in self.widths):
            raise ValueError(f"widths needs >= 2 positive entries, got {self.widths}")
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if self.blocks_per_level < 1:
            raise ValueError(f"blocks_per_level must be >= 1, got {self.blocks_per_level}")

    def conv_kwargs(self) -> dict:
        """``spatial_dims`` / ``norm_name`` / ``act_name`` for the MONAI-based blocks."""
        act = DEFAULT_ACT if self.act == "leakyrelu" else self.act
        norm = (self.norm, {"affine": bool(self.norm_affine)}) if self.norm in ("instance", "batch") else self.norm
        return dict(spatial_dims=self.spatial_dims, norm_name=norm, act_name=act)

    def backbone_kwargs(self) -> dict:
        """The fields of this base class (to build a DMAF-Net skeleton with the same backbone)."""
        return {f.name: getattr(self, f.name) for f in fields(BackboneConfig)}

    @classmethod
    def from_kwargs(cls, config=None, **overrides):
        """Build from a config / dict plus keyword overrides (:func:`~medmodal.models.registry.model_config`);
        unknown keys raise :class:`TypeError`."""
        return model_config(cls, config, **overrides)


def to_channels_last_3d(model: nn.Module) -> nn.Module:
    """Store every 5-D parameter (3D conv kernel) in ``channels_last_3d`` format, in place.

    ``model.to(memory_format=...)`` refuses models that also hold non-5-D parameters (norms,
    attention, linear layers) in recent PyTorch versions, so only the conv kernels are converted.
    """
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 5:
                param.data = param.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def planar_input(name: str, images: torch.Tensor, modality_mask: torch.Tensor | None, modalities: Sequence[str],
                 divisor: int) -> torch.Tensor:
    """The checked input of a 2-D model: ``images [B, M, H, W]`` with absent channels zeroed.

    Args:
        name: the model's name (for messages). images: ``[B, len(modalities), H, W]`` float.
        modality_mask: ``[B, M]`` bool, True = present (``None``: all present). modalities: the model's channels.
        divisor: ``H`` and ``W`` must be multiples of it (the network's total stride).

    Raises:
        ValueError: wrong shape, a side not divisible by ``divisor``, a sample with no sequence.
    """
    if images.ndim != 4 or images.shape[1] != len(modalities):
        raise ValueError(f"{name} expects images [B, {len(modalities)}, H, W], got {tuple(images.shape)}")
    h, w = images.shape[-2:]
    if h % divisor or w % divisor:
        raise ValueError(f"{name} needs H and W divisible by {divisor}, got {h} x {w}")
    if modality_mask is None:
        return images
    mask = check_modality_mask(modality_mask, images.shape[0], len(modalities), images.device)
    return mask_modalities(images, mask)
