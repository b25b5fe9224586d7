"""MSLAU-Net: 2-D segmentation with multi-scale linear attention (Lan et al., arXiv 2505.18823).

A four-stage hybrid encoder (UniFormer-like) and a top-down aggregation decoder, under the
``segmentation`` contract: ``forward(images [B, M, H, W], modality_mask [B, M] | None) -> logits
[B, num_classes, H, W]`` with ``H`` and ``W`` divisible by 32 (any aspect ratio; absent channels are
zero-filled, as every 2-D model of the family does).

**Encoder.** Patch embeddings (strided convolution + channel LayerNorm: 4x4 / 4, then 2x2 / 2 three
times) give stages at strides 4, 8, 16, 32 with widths ``widths`` (paper 64 / 128 / 256 / 512) and
``depths`` blocks (paper 4 / 8 / 11 / 5).

* Stages 1-2, :class:`LocalBlock` (local feature extraction): a 3x3 depthwise positional convolution,
  then BatchNorm -> 1x1 -> 5x5 depthwise -> 1x1 token mixing, then BatchNorm -> convolutional MLP
  (ratio ``mlp_ratio``), each with a residual.
* Stages 3-4, :class:`GlobalBlock` (global feature extraction): the positional convolution, then
  LayerNorm -> :class:`MultiScaleLinearAttention` and LayerNorm -> MLP on the tokens, with residuals.

**MSLA** (:class:`MultiScaleLinearAttention`): the channels are split into one group per kernel of
``kernels`` (paper 3 / 5 / 7 / 9: quarters); group ``i`` is ``relu(x_i + dwconv_{k_i}(x_i))``, then
linear attention over its tokens (:class:`LinearAttention`), times a learned scale weight ``w_i``
(initialised to 1); the groups are concatenated and fused by a 1x1 convolution.

**Linear attention** (Shen et al., "Efficient Attention", WACV 2021): per head, queries are softmax-
normalised over their channels, keys over the positions; ``context = K^T V`` (``d x d``), ``out = Q
context``, then a linear projection. Cost and memory grow with the number of tokens ``N`` (``O(N d^2)``),
not with ``N^2`` as softmax attention does.

**Decoder** (top-down aggregation, SETR-MLA style): each stage is projected to ``decoder_channels``
(paper 64; 1x1 conv + BN + ReLU) and resized to the stride-4 grid; running sums from stage 1 downwards
(``a_1 = p_1``, ``a_k = a_{k-1} + p_k``); each ``a_k`` passes two 3x3 conv-BN-ReLU and a x2 bilinear
upsampling; the four maps are concatenated and a 3x3 convolution gives the logits, resized bilinearly to
the input size.

**Deviations from the released code** (``Monsoon49/MSLAU-Net``, ``networks/msla.py``,
``networks/linear_attention.py``, ``networks/mslau_net.py``), each with its flag:

1. The release turns tokens ``[B, N, C]`` into maps ``[B, C, H, W]`` (and back, and the attention heads
   back into channels) by a raw reshape of memory instead of a transpose, so its depthwise
   convolutions see channel and space mixed up. medmodal transposes, as the paper describes;
   ``release_reshape=True`` reproduces the release.
2. The release normalises queries over positions and keys over channels (the axes of Efficient
   Attention swapped); medmodal uses Efficient Attention's axes; ``release_softmax_axes=True``
   reproduces the release.
3. The release applies one attention module to all four scales; medmodal gives each scale its own
   (the paper's figure draws one per branch); ``shared_attention=True`` reproduces the release.
4. The release requires square inputs (``H = W = sqrt(N)``); medmodal takes any ``H, W`` divisible by 32.
5. The release repeats a one-channel slice to three channels; medmodal takes ``len(modalities)``
   input channels as they are.
6. The release initialises the encoder from the authors' own checkpoint (not public); medmodal starts
   from random initialisation (a local weight file can be loaded into ``model.encoder`` by the caller).

Ablations of the issue: ``attention="single_scale"`` (one group, kernel ``kernels[0]``, one linear
attention over all channels) and ``attention="conv"`` (stages 3-4 use :class:`LocalBlock`: plain
convolution in place of attention).

Parameters (measured, 1 input channel, 9 classes, paper widths and depths): 23,276,425; with
``shared_attention=True`` (the release) 21,736,585; ablations ``single_scale`` 29,199,193 (one attention over
all channels: ``qkv`` and ``proj`` on the full width) and ``conv`` 23,174,217.

Raises (at construction): :class:`~medmodal.errors.ConfigError` for widths / depths not of length 4, a
width that the groups or heads do not divide, an unknown ``attention``, ``spatial_dims != 2``. At run
time: :class:`ValueError` for an input whose ``H`` or ``W`` is not divisible by 32 or whose channel count
is not ``len(modalities)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm2d, Mlp
from torch import nn

from medmodal.errors import ConfigError
from medmodal.models.registry import model_config, register_model
from medmodal.models.segmentation.blocks import planar_input

__all__ = ["MSLAUNet", "MSLAUNetConfig", "LinearAttention", "MultiScaleLinearAttention", "LocalBlock",
           "GlobalBlock", "ATTENTIONS"]

#: ``attention`` choices: the method, and the two ablations of the issue
ATTENTIONS = ("multi_scale", "single_scale", "conv")
#: the input's height and width must be multiples of this (the deepest stage's stride)
STRIDE = 32


@dataclass
class MSLAUNetConfig:
    """MSLAU-Net options (defaults: the paper's network).

    Attributes:
        widths: channels of stages 1-4 (paper 64, 128, 256, 512).
        depths: blocks per stage (paper 4, 8, 11, 5).
        head_dim: channels per attention head; a stage has ``max(1, width // head_dim)`` heads (release: 64).
        mlp_ratio: MLP hidden width / block width (paper 4).
        kernels: depthwise kernels of the MSLA groups (paper 3, 5, 7, 9: one per channel quarter).
        attention: ``multi_scale`` (the method) | ``single_scale`` | ``conv`` (ablations; module docstring).
        shared_attention: one linear attention for every group, as the release (deviation 3).
        release_reshape: the release's raw reshapes between tokens and maps (deviation 1).
        release_softmax_axes: the release's softmax axes (deviation 2).
        decoder_channels: width of the aggregation decoder (paper 64).
        drop_path: stochastic depth rate, rising linearly over the blocks to this value (0: off).
        spatial_dims: must be 2 (the segmentation engine passes it).
    """

    widths: tuple = (64, 128, 256, 512)
    depths: tuple = (4, 8, 11, 5)
    head_dim: int = 64
    mlp_ratio: float = 4.0
    kernels: tuple = (3, 5, 7, 9)
    attention: str = "multi_scale"
    shared_attention: bool = False
    release_reshape: bool = False
    release_softmax_axes: bool = False
    decoder_channels: int = 64
    drop_path: float = 0.0
    spatial_dims: int = 2

    def __post_init__(self):
        self.widths, self.depths, self.kernels = tuple(self.widths), tuple(self.depths), tuple(self.kernels)
        if int(self.spatial_dims) != 2:
            raise ConfigError(f"MSLAU-Net is 2-D; got spatial_dims={self.spatial_dims}")
        if len(self.widths) != 4 or len(self.depths) != 4:
            raise ConfigError(f"MSLAU-Net has 4 stages: widths and depths need 4 values, got {self.widths} / "
                              f"{self.depths}")
        if any(int(w) < 1 for w in self.widths) or any(int(d) < 1 for d in self.depths):
            raise ConfigError(f"widths and depths must be positive, got {self.widths} / {self.depths}")
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"attention must be one of {', '.join(ATTENTIONS)}, got {self.attention!r}")
        if not self.kernels or any(int(k) < 1 or int(k) % 2 == 0 for k in self.kernels):
            raise ConfigError(f"kernels must be odd positive sizes, got {self.kernels}")
        if self.attention != "conv":
            groups = len(self.kernels) if self.attention == "multi_scale" else 1
            for width in self.widths[2:]:
                heads = max(1, width // int(self.head_dim))
                if width % groups or (width // groups) % heads:
                    raise ConfigError(f"stage width {width} must split into {groups} group(s) of a multiple of "
                                      f"{heads} head(s) (head_dim {self.head_dim})")


def _to_map(tokens: torch.Tensor, size: tuple[int, int], raw: bool) -> torch.Tensor:
    """``[B, N, C]`` -> ``[B, C, H, W]``: a transpose, or (``raw``) the release's reshape of memory."""
    b, n, c = tokens.shape
    if raw:
        return tokens.reshape(b, c, *size)
    return tokens.transpose(1, 2).reshape(b, c, *size)


def _to_tokens(x: torch.Tensor, raw: bool) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, N, C]`` (the inverse of :func:`_to_map` for the same ``raw``)."""
    b, c, h, w = x.shape
    if raw:
        return x.reshape(b, h * w, c)
    return x.flatten(2).transpose(1, 2)


class LinearAttention(nn.Module):
    """Efficient (linear) attention on tokens ``[B, N, C]`` -> ``[B, N, C]`` (module docstring).

    Args:
        dim: token width ``C``.
        heads: attention heads; ``C`` must be a multiple of it.
        release_softmax_axes: the release's softmax axes (deviation 2).
        release_reshape: the release's raw reshape of the heads back into channels (deviation 1).
    """

    def __init__(self, dim: int, heads: int, release_softmax_axes: bool = False, release_reshape: bool = False):
        super().__init__()
        self.heads, self.release_softmax_axes, self.release_reshape = int(heads), release_softmax_axes, release_reshape
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, c = tokens.shape
        q, k, v = self.qkv(tokens).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # q, k, v: [B, heads, N, d]
        if self.release_softmax_axes:
            q, k = q.softmax(dim=-2), k.softmax(dim=-1)
        else:  # Efficient Attention: queries over their channels, keys over the positions
            q, k = q.softmax(dim=-1), k.softmax(dim=-2)
        context = k.transpose(-2, -1) @ v  # [B, heads, d, d]
        out = q @ context  # [B, heads, N, d]
        out = out.reshape(b, n, c) if self.release_reshape else out.transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class MultiScaleLinearAttention(nn.Module):
    """MSLA on tokens ``[B, N, C]`` of an ``H x W`` map -> ``[B, N, C]`` (module docstring).

    Args:
        dim: token width ``C``.
        heads: heads of each group's attention.
        kernels: one depthwise kernel per channel group (a single kernel: one group of all channels).
        shared: one attention for every group (deviation 3).
        release_softmax_axes: the release's softmax axes (deviation 2).
        release_reshape: the release's raw reshapes (deviation 1).
    """

    def __init__(self, dim: int, heads: int, kernels: Sequence[int] = (3, 5, 7, 9), shared: bool = False,
                 release_softmax_axes: bool = False, release_reshape: bool = False):
        super().__init__()
        self.groups, self.release_reshape = len(kernels), release_reshape
        width = dim // self.groups
        self.convs = nn.ModuleList(nn.Conv2d(width, width, k, padding=k // 2, groups=width) for k in kernels)
        count = 1 if shared else self.groups
        self.attentions = nn.ModuleList(LinearAttention(width, heads, release_softmax_axes, release_reshape)
                                        for _ in range(count))
        self.scale_weights = nn.Parameter(torch.ones(self.groups))
        self.fuse = nn.Conv2d(dim, dim, 1)

    def forward(self, tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = _to_map(tokens, size, self.release_reshape)
        outs = []
        for i, (part, conv) in enumerate(zip(x.chunk(self.groups, dim=1), self.convs)):
            part = F.relu(part + conv(part))
            attention = self.attentions[i % len(self.attentions)]
            attended = attention(_to_tokens(part, self.release_reshape)) * self.scale_weights[i]
            outs.append(_to_map(attended, size, self.release_reshape))
        return _to_tokens(self.fuse(torch.cat(outs, dim=1)), self.release_reshape)


class LocalBlock(nn.Module):
    """Local feature extraction (stages 1-2): ``[B, C, H, W]`` -> same (module docstring)."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.pos = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.mix = nn.Sequential(nn.BatchNorm2d(dim), nn.Conv2d(dim, dim, 1),
                                 nn.Conv2d(dim, dim, 5, padding=2, groups=dim), nn.Conv2d(dim, dim, 1))
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.BatchNorm2d(dim), nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos(x)
        x = x + self.drop_path(self.mix(x))
        return x + self.drop_path(self.mlp(x))


class GlobalBlock(nn.Module):
    """Global feature extraction (stages 3-4): ``[B, C, H, W]`` -> same, MSLA on the tokens."""

    def __init__(self, dim: int, heads: int, kernels: Sequence[int], mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 shared: bool = False, release_softmax_axes: bool = False, release_reshape: bool = False):
        super().__init__()
        self.pos = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = MultiScaleLinearAttention(dim, heads, kernels, shared, release_softmax_axes,
                                                   release_reshape)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos(x)
        size = tuple(x.shape[-2:])
        t = x.flatten(2).transpose(1, 2)
        t = t + self.drop_path(self.attention(self.norm1(t), size))
        t = t + self.drop_path(self.mlp(self.norm2(t)))
        return t.transpose(1, 2).reshape(x.shape)


def _conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class AggregationDecoder(nn.Module):
    """Top-down aggregation: four stage maps (strides 4-32) -> logits at stride 2 (module docstring)."""

    def __init__(self, widths: Sequence[int], channels: int, num_classes: int):
        super().__init__()
        self.proj = nn.ModuleList(_conv_bn_relu(w, channels, 1) for w in widths)
        self.refine = nn.ModuleList(nn.Sequential(_conv_bn_relu(channels, channels, 3),
                                                  _conv_bn_relu(channels, channels, 3)) for _ in widths)
        self.head = nn.Conv2d(channels * len(widths), num_classes, 3, padding=1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        grid = features[0].shape[-2:]
        total, maps = None, []
        for feature, proj, refine in zip(features, self.proj, self.refine):
            p = proj(feature)
            if p.shape[-2:] != grid:
                p = F.interpolate(p, size=grid, mode="bilinear", align_corners=False)
            total = p if total is None else total + p
            maps.append(F.interpolate(refine(total), scale_factor=2, mode="bilinear", align_corners=False))
        return self.head(torch.cat(maps, dim=1))


class MSLAUNet(nn.Module):
    """MSLAU-Net under the ``segmentation`` contract (module docstring).

    Args:
        modalities: input channel names (e.g. ``("image",)`` for a grey slice).
        num_classes: output logits per pixel.
        config: a :class:`MSLAUNetConfig` or dict.
        **overrides: fields of :class:`MSLAUNetConfig`.

    Attributes:
        encoder: ``embeds`` (4 patch embeddings) and ``stages`` (4 block lists). decoder: the aggregation.
    """

    def __init__(self, modalities: Sequence[str], num_classes: int, config: MSLAUNetConfig | dict | None = None,
                 **overrides):
        super().__init__()
        cfg = model_config(MSLAUNetConfig, config, **overrides)
        self.config, self.modalities, self.num_classes = cfg, tuple(modalities), int(num_classes)
        widths = [int(w) for w in cfg.widths]
        rates = torch.linspace(0, cfg.drop_path, sum(cfg.depths)).tolist()
        embeds, stages, start = [], [], 0
        for i, (width, depth) in enumerate(zip(widths, cfg.depths)):
            cin, stride = (len(self.modalities), 4) if i == 0 else (widths[i - 1], 2)
            embeds.append(nn.Sequential(nn.Conv2d(cin, width, stride, stride=stride), LayerNorm2d(width)))
            blocks = []
            for j in range(depth):
                rate = rates[start + j]
                if i < 2 or cfg.attention == "conv":
                    blocks.append(LocalBlock(width, cfg.mlp_ratio, rate))
                else:
                    kernels = cfg.kernels if cfg.attention == "multi_scale" else cfg.kernels[:1]
                    blocks.append(GlobalBlock(width, max(1, width // cfg.head_dim), kernels, cfg.mlp_ratio, rate,
                                              cfg.shared_attention, cfg.release_softmax_axes, cfg.release_reshape))
            stages.append(nn.Sequential(*blocks))
            start += depth
        self.encoder = nn.ModuleDict({"embeds": nn.ModuleList(embeds), "stages": nn.ModuleList(stages)})
        self.decoder = AggregationDecoder(widths, cfg.decoder_channels, self.num_classes)

    def forward(self, images: torch.Tensor, modality_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``images [B, M, H, W]`` (``H, W`` divisible by 32) -> logits ``[B, num_classes, H, W]``."""
        images = planar_input("MSLAU-Net", images, modality_mask, self.modalities, STRIDE)
        h, w = images.shape[-2:]
        features, x = [], images
        for embed, stage in zip(self.encoder["embeds"], self.encoder["stages"]):
            x = stage(embed(x))
            features.append(x)
        logits = self.decoder(features)
        return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)


_TINY = {"widths": (8, 16, 32, 32), "depths": (1, 1, 1, 1), "head_dim": 8, "decoder_channels": 8, "spatial_dims": 2}


@register_model("mslau_net", tiny=_TINY)
def mslau_net(modalities, num_classes, config=None, **overrides):
    """MSLAU-Net (multi-scale linear attention in stages 3-4)."""
    return MSLAUNet(modalities, num_classes, config, **overrides)
