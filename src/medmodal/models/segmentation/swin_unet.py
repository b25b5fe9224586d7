"""Swin-UNet-style pure-transformer U-Net (Cao et al., ECCV Workshops 2022; ``HuCaoFighting/Swin-Unet``).

A baseline of the 2-D segmentation comparison, under the ``segmentation`` contract: ``forward(images
[B, M, H, W], modality_mask [B, M] | None) -> logits [B, num_classes, H, W]`` for ``H`` and ``W``
divisible by 32 (``patch_size * 8``; any aspect ratio). Absent sequences are zero-filled before the network.

**Written by hand / from a library.** The patch partition + linear embedding is timm's ``PatchEmbed``,
the encoder stages (patch merging + Swin blocks), the bottleneck and the decoder's Swin blocks are timm's
``swin_transformer.SwinTransformerStage`` (``SwinTransformerBlock``, ``PatchMerging``); written here are
the patch expanding layers (x2 and the final x4), the skip concatenation + linear fusion, the decoder
wiring and the 1x1 head.

**Network** (``networks/swin_transformer_unet_skip_expand_decoder_sys.py``, ``SwinTransformerSys``):
patches of ``patch_size`` (4) embedded to ``C = embed_dim`` (96) with LayerNorm; encoder stage 1 at
stride 4 (``depths[0]`` Swin blocks, ``num_heads[0]`` heads), stages 2-3 each a patch merging (x1/2,
channels x2) and Swin blocks; the bottleneck is stage 4 (merging to stride 32 and ``8C``, blocks),
then LayerNorm. Decoder: a patch expanding (a linear layer ``D -> 2D``, rearranged to 2 x 2
neighbours of ``D / 2`` channels, LayerNorm) to stride 16, then for strides 16, 8, 4: concatenation
with the skip, a linear layer ``2D -> D``, Swin blocks (``decoder_depths``), and a patch expanding
(except at stride 4); LayerNorm, a final patch expanding x4 (linear ``C -> 16C``, 4 x 4 neighbours of
``C`` channels, LayerNorm) and a 1x1 convolution without bias to the logits. As in the release, the
skips are the *inputs* of the encoder stages' Swin blocks (the patch embedding, and the outputs of the
patch mergings), and the decoder's Swin blocks use the encoder's ``depths``: the release's
``DECODER_DEPTHS`` ([2, 2, 2, 1] in its config) is printed but never used, so ``decoder_depths=None``
mirrors ``depths`` (2, 2, 2 at strides 16, 8, 4), with the encoder's drop-path rates.

**Input sizes** (timm 1.0 Swin blocks). Each block fixes its window and shift at construction for the
token grid of an ``img_size`` input, as the release does: a stage whose grid is not larger than
``window_size`` gets one window of the whole grid and no shift (at 224: stage 4, 7 x 7). The blocks are
built with ``dynamic_mask=True`` (timm's mode for ``strict_img_size=False``) and ``always_partition=False``,
so other inputs run too: a grid that is not a multiple of the window is zero-padded on the bottom /
right after the cyclic shift, and the shift mask is computed for the padded grid at each call. At
``img_size`` itself this is exactly the release's computation; at other sizes the padded tokens take
part in the attention as keys (timm does not mask them) and the shifted windows' regions are those of
the padded grid: an approximation. So set ``img_size`` to the training size, with a ``window_size`` that
tiles every stage's grid: 7 at 224 (grids 56, 28, 14, 7), 4 or 8 at 128 (grids 32, 16, 8, 4; a window
of 7 would pad every stage there). The contract check builds its tiny model for 32 x 32.

**Deviations from the release.** 1. ``len(modalities)`` input channels (the release repeats a grey slice
to three). 2. Random initialisation (truncated normal std 0.02 on linear layers, as the release's
``_init_weights``); the release loads ImageNet Swin-T weights into the encoder and the mirrored decoder.
3. ``drop_path`` default 0.2 is the released config's (``swin_tiny_patch4_window7_224_lite.yaml``;
``SwinTransformerSys``'s own default is 0.1). 4. Inputs other than ``img_size`` (above).

Parameters (measured, 3 input channels, 9 classes, img_size 224): 27,168,900 (the paper: 27.17 M);
1 input channel, 4 classes: 27,165,348.

Raises (at construction): :class:`~medmodal.errors.ConfigError` for depths / heads not of length 4, a
width the heads do not divide, ``img_size`` not a multiple of ``patch_size * 8``, ``spatial_dims != 2``.
At run time: :class:`ValueError` for images that are not ``[B, len(modalities), H, W]``, ``H`` or ``W``
not divisible by ``patch_size * 8``, a sample with no sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from timm.layers import PatchEmbed
from timm.models.swin_transformer import SwinTransformerStage
from timm.models.vision_transformer import init_weights_vit_timm
from torch import nn

from medmodal.errors import ConfigError
from medmodal.models.registry import model_config, register_model
from medmodal.models.segmentation.blocks import planar_input

__all__ = ["SwinUNet", "SwinUNetConfig", "PatchExpand", "SwinDecoderStage"]


@dataclass
class SwinUNetConfig:
    """Swin-UNet options (defaults: ``HuCaoFighting/Swin-Unet``, ``configs/swin_tiny_patch4_window7_224_lite.yaml``
    and ``SwinTransformerSys``).

    Attributes:
        img_size: input side the windows are planned for (release ``DATA.IMG_SIZE`` 224); other sizes
            divisible by ``patch_size * 8`` run with timm's padding (module docstring).
        patch_size: patch partition (release 4).
        embed_dim: channels ``C`` of stage 1 (release ``EMBED_DIM`` 96; stages 2-4: 2C, 4C, 8C).
        depths: Swin blocks of encoder stages 1-3 and the bottleneck (release ``DEPTHS`` 2, 2, 2, 2).
        decoder_depths: Swin blocks of the decoder at strides 16, 8, 4 (``None``: ``depths[2], depths[1],
            depths[0]``, what the release runs; its ``DECODER_DEPTHS`` is unused).
        num_heads: attention heads of stages 1-4, reused by the decoder (release ``NUM_HEADS`` 3, 6, 12, 24).
        window_size: attention window (release ``WINDOW_SIZE`` 7).
        mlp_ratio: MLP width / block width (release 4).
        drop_rate: dropout after the embedding and in the blocks (release ``DROP_RATE`` 0.0).
        attn_drop_rate: dropout on the attention weights (release 0.0).
        drop_path: stochastic depth, rising linearly over the encoder blocks (release config 0.2;
            ``SwinTransformerSys`` default 0.1).
        spatial_dims: must be 2 (the segmentation engine passes it).
    """

    img_size: int = 224
    patch_size: int = 4
    embed_dim: int = 96
    depths: tuple = (2, 2, 2, 2)
    decoder_depths: tuple | None = None
    num_heads: tuple = (3, 6, 12, 24)
    window_size: int = 7
    mlp_ratio: float = 4.0
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path: float = 0.2
    spatial_dims: int = 2

    def __post_init__(self):
        self.depths, self.num_heads = tuple(int(d) for d in self.depths), tuple(int(h) for h in self.num_heads)
        if self.decoder_depths is None:
            self.decoder_depths = (self.depths[2], self.depths[1], self.depths[0]) if len(self.depths) == 4 else ()
        self.decoder_depths = tuple(int(d) for d in self.decoder_depths)
        if int(self.spatial_dims) != 2:
            raise ConfigError(f"swin_unet is 2-D; got spatial_dims={self.spatial_dims}")
        if len(self.depths) != 4 or len(self.num_heads) != 4 or len(self.decoder_depths) != 3:
            raise ConfigError(f"swin_unet has 4 stages: depths and num_heads need 4 values and decoder_depths 3, got "
                              f"{self.depths} / {self.num_heads} / {self.decoder_depths}")
        if min(self.depths + self.decoder_depths + self.num_heads) < 1 or min(self.patch_size, self.window_size) < 1:
            raise ConfigError("swin_unet depths, decoder_depths, num_heads, patch_size and window_size must be "
                              "positive")
        if int(self.embed_dim) < 2 or int(self.embed_dim) % 2:
            raise ConfigError(f"swin_unet embed_dim must be even (the patch expanding halves it), got {self.embed_dim}")
        for i, heads in enumerate(self.num_heads):
            if (self.embed_dim * 2 ** i) % heads:
                raise ConfigError(f"swin_unet stage {i + 1} width {self.embed_dim * 2 ** i} is not divisible by "
                                  f"{heads} heads")
        side = int(self.patch_size) * 8
        if int(self.img_size) < side or int(self.img_size) % side:
            raise ConfigError(f"swin_unet img_size must be a multiple of patch_size * 8 = {side}, got {self.img_size}")


class PatchExpand(nn.Module):
    """Patch expanding on ``[B, H, W, D]`` tokens -> ``[B, sH, sW, out_dim]``: a linear layer ``D -> s^2
    out_dim`` (no bias), each token's channels rearranged to its ``s x s`` neighbours, then LayerNorm.

    ``scale=2, out_dim=D/2`` is Swin-UNet's ``PatchExpand``; ``scale=4, out_dim=D`` its ``FinalPatchExpand_X4``.

    Args:
        dim: input channels ``D``.
        scale: up-sampling factor ``s``.
        out_dim: output channels (default ``D / 2``).
    """

    def __init__(self, dim: int, scale: int = 2, out_dim: int | None = None):
        super().__init__()
        self.scale, self.out_dim = int(scale), int(out_dim if out_dim is not None else dim // 2)
        self.expand = nn.Linear(dim, self.scale ** 2 * self.out_dim, bias=False)
        self.norm = nn.LayerNorm(self.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        s, c = self.scale, self.out_dim
        x = self.expand(x).reshape(b, h, w, s, s, c)  # channels as (p1 p2 c), einops' order in the release
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, h * s, w * s, c)
        return self.norm(x)


class SwinDecoderStage(nn.Module):
    """One decoder stage: ``cat([x, skip]) -> Linear(2D, D) -> Swin blocks -> PatchExpand x2`` (or nothing).

    Args:
        dim: channels ``D`` of this stride.
        blocks: timm ``SwinTransformerStage`` without down-sampling.
        expand: up-sample to the next stride (False for the stride-4 stage).
    """

    def __init__(self, dim: int, blocks: SwinTransformerStage, expand: bool):
        super().__init__()
        self.concat_back = nn.Linear(2 * dim, dim)
        self.blocks = blocks
        self.upsample = PatchExpand(dim) if expand else nn.Identity()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.blocks(self.concat_back(torch.cat([x, skip], dim=-1))))


def _split_rates(depths: Sequence[int], rate: float) -> list[list[float]]:
    """Stochastic-depth rates rising linearly from 0 to ``rate`` over ``sum(depths)`` blocks, per stage."""
    rates, out, start = torch.linspace(0, rate, sum(depths)).tolist(), [], 0
    for depth in depths:
        out.append(rates[start:start + depth])
        start += depth
    return out


class SwinUNet(nn.Module):
    """Swin-UNet under the ``segmentation`` contract (module docstring).

    Args:
        modalities: input channel names (e.g. ``("image",)`` for a grey slice).
        num_classes: output logits per pixel.
        config: a :class:`SwinUNetConfig` or dict.
        **overrides: fields of :class:`SwinUNetConfig`.

    Attributes:
        patch_embed: timm ``PatchEmbed`` (NHWC tokens, LayerNorm).
        stages: four timm ``SwinTransformerStage`` (stage 1 without merging; stage 4 is the bottleneck).
        norm: LayerNorm of the bottleneck.
        up: the first patch expanding (stride 32 -> 16).
        decoder: three :class:`SwinDecoderStage` (strides 16, 8, 4).
        norm_up: LayerNorm before the final expanding.
        final_expand: :class:`PatchExpand` x ``patch_size`` to the input grid.
        head: 1x1 convolution (no bias) to the logits.
    """

    def __init__(self, modalities: Sequence[str], num_classes: int, config: SwinUNetConfig | dict | None = None,
                 **overrides):
        super().__init__()
        cfg = model_config(SwinUNetConfig, config, **overrides)
        self.config, self.modalities, self.num_classes = cfg, tuple(modalities), int(num_classes)
        self.size_divisor = cfg.patch_size * 8
        c, grid = int(cfg.embed_dim), cfg.img_size // cfg.patch_size
        dims = [c * 2 ** i for i in range(4)]
        grids = [(grid // 2 ** i, grid // 2 ** i) for i in range(4)]
        common = {"window_size": cfg.window_size, "always_partition": False, "dynamic_mask": True,
                  "mlp_ratio": cfg.mlp_ratio, "qkv_bias": True, "proj_drop": cfg.drop_rate,
                  "attn_drop": cfg.attn_drop_rate, "norm_layer": nn.LayerNorm}
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, len(self.modalities), c, norm_layer=nn.LayerNorm,
                                      output_fmt="NHWC", strict_img_size=False)
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        rates = _split_rates(cfg.depths, cfg.drop_path)
        self.stages = nn.ModuleList(
            SwinTransformerStage(dim=dims[max(i - 1, 0)], out_dim=dims[i], input_resolution=grids[max(i - 1, 0)],
                                 depth=cfg.depths[i], downsample=i > 0, num_heads=cfg.num_heads[i],
                                 drop_path=rates[i], **common)
            for i in range(4))
        self.norm = nn.LayerNorm(dims[3])
        self.up = PatchExpand(dims[3])
        # decoder at strides 16, 8, 4 (levels 2, 1, 0); drop-path rates as the encoder's (the release's)
        decoder_rates = _split_rates((*reversed(cfg.decoder_depths), cfg.depths[3]), cfg.drop_path)
        self.decoder = nn.ModuleList(
            SwinDecoderStage(dims[i], SwinTransformerStage(
                dim=dims[i], out_dim=dims[i], input_resolution=grids[i], depth=depth, downsample=False,
                num_heads=cfg.num_heads[i], drop_path=decoder_rates[i], **common), expand=i > 0)
            for i, depth in zip((2, 1, 0), cfg.decoder_depths))
        self.norm_up = nn.LayerNorm(c)
        self.final_expand = PatchExpand(c, scale=cfg.patch_size, out_dim=c)
        self.head = nn.Conv2d(c, self.num_classes, 1, bias=False)
        for module in self.modules():  # the release's _init_weights: trunc_normal(0.02) linear layers, zero bias
            if isinstance(module, nn.Linear):
                init_weights_vit_timm(module)

    def forward(self, images: torch.Tensor, modality_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``images [B, M, H, W]`` (``H, W`` divisible by ``patch_size * 8``) -> logits ``[B, num_classes, H, W]``.

        Args:
            images: ``[B, len(modalities), H, W]`` float.
            modality_mask: ``[B, M]`` bool, True = present (``None``: all present); absent channels are zeroed.

        Raises:
            ValueError: wrong shape, ``H`` or ``W`` not divisible by ``patch_size * 8``, a sample with no sequence.
        """
        images = planar_input("swin_unet", images, modality_mask, self.modalities, self.size_divisor)
        x = self.pos_drop(self.patch_embed(images))  # [B, H/4, W/4, C]
        skips = []
        for stage in self.stages:
            x = stage.downsample(x)  # the release's skips: the input of each stage's Swin blocks
            skips.append(x)
            x = stage.blocks(x)
        x = self.up(self.norm(x))
        for stage, skip in zip(self.decoder, skips[2::-1]):
            x = stage(x, skip)
        x = self.final_expand(self.norm_up(x))
        return self.head(x.permute(0, 3, 1, 2))


_TINY = {"img_size": 32, "embed_dim": 8, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 2, 2), "window_size": 2,
         "widths": None, "spatial_dims": 2}


@register_model("swin_unet", tiny=_TINY)
def swin_unet(modalities, num_classes, config=None, **overrides):
    """Swin-UNet-style U-Net of timm Swin stages with patch-expanding decoder."""
    return SwinUNet(modalities, num_classes, config, **overrides)
