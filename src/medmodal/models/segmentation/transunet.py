"""TransUNet-style hybrid CNN-Transformer (Chen et al., arXiv 2102.04306; ``Beckschen/TransUNet``, R50-ViT-B/16).

A baseline of the 2-D segmentation comparison, under the ``segmentation`` contract: ``forward(images
[B, M, H, W], modality_mask [B, M] | None) -> logits [B, num_classes, H, W]`` for ``H`` and ``W``
divisible by 16 (any aspect ratio). Absent sequences are zero-filled before the network.

**Written by hand / from a library.** The CNN trunk is a timm model (``timm.create_model(backbone,
features_only=True, out_indices=(0, 1, 2, 3), pretrained=False)``), the transformer layers are timm's
``vision_transformer.Block``, the position embedding is resampled by timm's ``resample_abs_pos_embed``
and a 3-channel stem of a weight file is adapted by timm's ``adapt_input_conv``; written here are the
patch embedding and its wiring, TransUNet's cascaded upsampler (CUP) and head, and the matching of a
weight file's keys to the trunk.

**Network.** The trunk gives maps at strides 2, 4, 8 and 16 (resnet50: 64, 256, 512, 1024 channels). The
stride-16 map is embedded by a 1x1 convolution (TransUNet's patch size 1 on the CNN grid) to
``hidden_size`` tokens, plus a learned position embedding built for an ``img_size`` input
(``img_size / 16`` squared tokens; resampled bicubically by timm when the input's grid differs, so any
``H, W`` divisible by 16 runs), dropout, ``depth`` pre-norm transformer blocks and a final LayerNorm
(eps 1e-6). CUP: the tokens back to a map, a 3x3 conv-BN-ReLU to ``head_channels`` (512), then four
blocks of ``bilinear x2 (align_corners=True) -> concat skip -> (3x3 conv-BN-ReLU) x 2`` with
``decoder_channels`` (256, 128, 64, 16) and the stride-8, 4 and 2 maps as skips (``n_skip`` 3; the last
block has none), then a 3x3 convolution to the logits.

**Deviations from the release**, each stated:

1. Trunk. TransUNet's R50 is a BiT-style ResNetV2 (weight-standardised convolutions, GroupNorm) with 3,
   4 and 9 units in its three stages. The default here is timm's ``resnet50`` cut after its third stage:
   BatchNorm, plain convolutions and 3, 4, 6 units (8.5 M trunk parameters instead of 11.9 M).
   ``backbone_kwargs={"layers": (3, 4, 9, 3)}`` gives TransUNet's unit counts (stage 4 is never built
   into the trunk) and ``"norm_layer": "groupnorm"`` adds timm's GroupNorm (32 groups, eps 1e-5;
   TransUNet's eps is 1e-6); the weight standardisation (StdConv) is not reproduced. Any timm CNN whose
   first four feature maps have strides 2 / 4 / 8 / 16 can be named (``resnet18``, ``resnet34`` ...), with
   its own constructor options in ``backbone_kwargs`` (e.g. ``{"layers": (1, 1, 1, 1), "channels": (16,
   32, 64, 128)}`` for a small ResNet-10).
2. Initialisation. TransUNet always starts from ImageNet-21k R50+ViT-B/16 weights; here nothing is
   downloaded: the model starts from random initialisation (timm's ViT init for the transformer, a
   truncated normal (std 0.02) position embedding), and ``weights_path`` loads a local trunk file.
3. The release repeats a one-channel slice to three channels; here the trunk takes
   ``len(modalities)`` channels (a 3-channel stem in ``weights_path`` is summed / repeated by timm's
   ``adapt_input_conv``: for one channel the same function as repeating the slice).
4. The release runs at ``img_size`` only; here the position embedding is resampled to other grids.
5. timm's ``Block`` fuses q, k, v into one linear layer (the same parameters as TransUNet's three) and
   ties the dropout after the attention's output projection to the MLP's (``dropout``, 0.1); it is
   reset to TransUNet's ``attention_dropout`` (0.0), so the function is the release's.

Parameters (measured, 9 classes, img_size 224): 101,919,257 with the default timm resnet50 trunk and
one input channel; 105,270,809 with ``backbone_kwargs={"layers": (3, 4, 9, 3)}``, and 105,277,081 with
three input channels: TransUNet's reported 105.28 M (GroupNorm has the same parameters as BatchNorm).

Raises (at construction): :class:`~medmodal.errors.ConfigError` for an unknown timm backbone, one whose
feature strides are not 2 / 4 / 8 / 16, a hidden size the heads do not divide, ``img_size`` not a
multiple of 16, ``spatial_dims != 2``; :class:`~medmodal.errors.CheckpointError` for a ``weights_path``
that is missing, unreadable or does not fit the trunk. At run time: :class:`ValueError` for images that
are not ``[B, len(modalities), H, W]``, ``H`` or ``W`` not divisible by 16, a sample with no sequence.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Mapping, Sequence

import timm
import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed, trunc_normal_
from timm.models import adapt_input_conv
from timm.models.vision_transformer import Block, init_weights_vit_timm
from torch import nn

from medmodal.errors import CheckpointError, ConfigError, EncoderLoadError
from medmodal.models.encoder_export import read_state_dict
from medmodal.models.registry import model_config, register_model
from medmodal.models.segmentation.blocks import planar_input

__all__ = ["TransUNet", "TransUNetConfig", "CascadedUpsampler", "load_trunk_weights"]

#: strides of the trunk's four feature maps: three skips and the transformer's input
TRUNK_STRIDES = (2, 4, 8, 16)
#: ``timm.create_model`` options the model sets itself (refused in ``backbone_kwargs``)
RESERVED_BACKBONE_KWARGS = frozenset({"pretrained", "features_only", "out_indices", "in_chans", "num_classes",
                                      "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir"})


@dataclass
class TransUNetConfig:
    """TransUNet options (defaults: R50-ViT-B/16 of the paper and ``Beckschen/TransUNet``
    ``networks/vit_seg_configs.py`` ``get_r50_b16_config``, except the trunk: module docstring).

    Attributes:
        backbone: timm CNN name for the trunk (TransUNet: its own R50 ResNetV2; here timm ``resnet50``).
        backbone_kwargs: extra ``timm.create_model`` options of the trunk (``{}``: the model's own; ``{"layers":
            (3, 4, 9, 3)}``: TransUNet's 9 units in stage 3 for ``resnet50``; module docstring).
        img_size: input side the position embedding is built for (paper 224: a 14 x 14 token grid).
        hidden_size: transformer width (ViT-B 768).
        depth: transformer blocks (ViT-B 12).
        num_heads: attention heads (ViT-B 12).
        mlp_ratio: MLP width / hidden size (ViT-B 3072 / 768 = 4).
        dropout: dropout after the embedding and in the MLPs (release ``dropout_rate`` 0.1).
        attention_dropout: dropout on the attention weights and output (release ``attention_dropout_rate`` 0.0).
        drop_path: stochastic depth, rising linearly over the blocks (release: none, 0.0).
        head_channels: width of CUP's first convolution (release 512).
        decoder_channels: widths of CUP's four up-sampling blocks (release 256, 128, 64, 16).
        n_skip: number of skip connections, from the stride-8 map upwards (release 3).
        weights_path: local trunk weights (``.safetensors`` or a torch file, read with ``weights_only=True``),
            timm / torchvision keys; ``None``: random initialisation. Never downloaded.
        spatial_dims: must be 2 (the segmentation engine passes it).
    """

    backbone: str = "resnet50"
    backbone_kwargs: dict = field(default_factory=dict)
    img_size: int = 224
    hidden_size: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    attention_dropout: float = 0.0
    drop_path: float = 0.0
    head_channels: int = 512
    decoder_channels: tuple = (256, 128, 64, 16)
    n_skip: int = 3
    weights_path: str | None = None
    spatial_dims: int = 2

    def __post_init__(self):
        self.decoder_channels = tuple(int(c) for c in self.decoder_channels)
        if not isinstance(self.backbone_kwargs, Mapping):
            raise ConfigError(f"transunet backbone_kwargs must be a mapping, got {self.backbone_kwargs!r}")
        self.backbone_kwargs = dict(self.backbone_kwargs)
        reserved = sorted(set(self.backbone_kwargs) & RESERVED_BACKBONE_KWARGS)
        if reserved:
            raise ConfigError(f"transunet backbone_kwargs may not set {reserved} (the model sets them)")
        if int(self.spatial_dims) != 2:
            raise ConfigError(f"transunet is 2-D; got spatial_dims={self.spatial_dims}")
        if int(self.img_size) < 16 or int(self.img_size) % 16:
            raise ConfigError(f"transunet img_size must be a positive multiple of 16, got {self.img_size}")
        if min(int(self.hidden_size), int(self.depth), int(self.num_heads), int(self.head_channels)) < 1:
            raise ConfigError("transunet hidden_size, depth, num_heads and head_channels must be positive")
        if int(self.hidden_size) % int(self.num_heads):
            raise ConfigError(f"transunet hidden_size {self.hidden_size} is not divisible by num_heads "
                              f"{self.num_heads}")
        if len(self.decoder_channels) != 4 or min(self.decoder_channels) < 1:
            raise ConfigError(f"transunet decoder_channels must be 4 positive widths, got {self.decoder_channels}")
        if not 0 <= int(self.n_skip) <= 3:
            raise ConfigError(f"transunet n_skip must be 0-3, got {self.n_skip}")


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    """TransUNet's ``Conv2dReLU``: 3x3 convolution (no bias) - BatchNorm - ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CascadedUpsampler(nn.Module):
    """TransUNet's CUP: a map at stride 16 and the skips -> a ``decoder_channels[-1]`` map at stride 1.

    Args:
        in_channels: channels of the transformer's map (``hidden_size``).
        head_channels: width of the first 3x3 conv-BN-ReLU (release 512).
        decoder_channels: widths of the four up-sampling blocks.
        skip_channels: channels of the skips of the first blocks (stride 8, 4, 2 maps; fewer: ``n_skip``).
    """

    def __init__(self, in_channels: int, head_channels: int, decoder_channels: Sequence[int],
                 skip_channels: Sequence[int]):
        super().__init__()
        self.conv_more = _conv_bn_relu(in_channels, head_channels)
        skips = list(skip_channels) + [0] * (len(decoder_channels) - len(skip_channels))
        widths = [head_channels, *decoder_channels]
        self.blocks = nn.ModuleList(
            nn.Sequential(_conv_bn_relu(cin + skip, cout), _conv_bn_relu(cout, cout))
            for cin, cout, skip in zip(widths[:-1], widths[1:], skips))

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self.conv_more(x)
        for i, block in enumerate(self.blocks):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)  # nn.UpsamplingBilinear2d
            if i < len(skips):
                x = torch.cat([x, skips[i]], dim=1)
            x = block(x)
        return x


def _weight_prefix(state: dict, expected: Sequence[str]) -> str:
    """The key prefix (``""``, ``"trunk."``, ``"module.encoder."`` ...) under which most ``expected`` keys are."""
    counts: Counter = Counter()
    for key in state:
        for name in expected:
            if key.endswith(name) and (len(key) == len(name) or key[-len(name) - 1] == "."):
                counts[key[:len(key) - len(name)]] += 1
    return counts.most_common(1)[0][0] if counts else ""


def load_trunk_weights(trunk: nn.Module, path: str | Path, in_chans: int) -> None:
    """Load a local weight file into the timm trunk (keys of the full timm / torchvision model).

    Keys the trunk lacks (the last stage, the classifier) are ignored; a common prefix (``trunk.``,
    ``module.``) is found and stripped; a 3-channel stem is adapted to ``in_chans`` by timm's
    ``adapt_input_conv``; ``num_batches_tracked`` may be absent.

    Args:
        trunk: the ``features_only`` timm model.
        path: ``.safetensors`` or a torch file (loaded with ``weights_only=True``).
        in_chans: input channels of the trunk.

    Raises:
        CheckpointError: no such file, not a state dict of tensors, or keys / shapes that do not fit
            (one line naming the file and the first offending keys).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: transunet weights_path not found")
    try:
        state = read_state_dict(path)
    except (EncoderLoadError, FileNotFoundError) as err:
        raise CheckpointError(f"transunet weights_path: {err}") from None
    own = trunk.state_dict()
    prefix = _weight_prefix(state, list(own))
    stem = next(name for name, m in trunk.named_modules() if isinstance(m, nn.Conv2d)) + ".weight"
    loaded, missing, wrong = {}, [], []
    for name, target in own.items():
        value = state.get(prefix + name)
        if value is None:
            if not name.endswith("num_batches_tracked"):
                missing.append(name)
            continue
        if name == stem and value.ndim == 4 and value.shape[1] != target.shape[1] and \
                value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]:
            value = adapt_input_conv(in_chans, value)
        if value.shape != target.shape:
            wrong.append(f"{name} {tuple(value.shape)} != {tuple(target.shape)}")
            continue
        loaded[name] = value
    if missing or wrong:
        what = (f"missing {missing[:5]}" if missing else "") + ("; " if missing and wrong else "") + \
               (f"shapes {wrong[:3]}" if wrong else "")
        raise CheckpointError(f"{path}: does not fit the transunet trunk ({len(missing)} missing, {len(wrong)} "
                              f"of another shape): {what}")
    trunk.load_state_dict(loaded, strict=False)


class TransUNet(nn.Module):
    """TransUNet (hybrid CNN + ViT encoder, cascaded upsampler) under the ``segmentation`` contract.

    Args:
        modalities: input channel names (e.g. ``("image",)`` for a grey slice).
        num_classes: output logits per pixel.
        config: a :class:`TransUNetConfig` or dict.
        **overrides: fields of :class:`TransUNetConfig`.

    Attributes:
        trunk: the timm CNN (features at strides 2, 4, 8, 16).
        patch_embed: 1x1 convolution of the stride-16 map to ``hidden_size``.
        pos_embed: ``[1, (img_size / 16) ** 2, hidden_size]`` learned position embedding.
        blocks: timm transformer blocks.
        norm: final LayerNorm.
        decoder: :class:`CascadedUpsampler`.
        head: 3x3 convolution to the logits.
    """

    #: input height and width must be multiples of this (the transformer's stride)
    size_divisor = 16

    def __init__(self, modalities: Sequence[str], num_classes: int, config: TransUNetConfig | dict | None = None,
                 **overrides):
        super().__init__()
        cfg = model_config(TransUNetConfig, config, **overrides)
        self.config, self.modalities, self.num_classes = cfg, tuple(modalities), int(num_classes)
        try:
            self.trunk = timm.create_model(cfg.backbone, pretrained=False, features_only=True,
                                           out_indices=(0, 1, 2, 3), in_chans=len(self.modalities),
                                           **cfg.backbone_kwargs)
        except (RuntimeError, TypeError, ValueError, KeyError) as err:  # unknown name, an option it does not take
            raise ConfigError(f"transunet backbone {cfg.backbone!r} with backbone_kwargs {cfg.backbone_kwargs} cannot "
                              f"be built by timm: {(str(err).splitlines() or [type(err).__name__])[0]}") from None
        strides = tuple(self.trunk.feature_info.reduction())
        if strides != TRUNK_STRIDES:
            raise ConfigError(f"transunet backbone {cfg.backbone!r} has feature strides {strides}; the trunk needs "
                              f"{TRUNK_STRIDES} (a ResNet-style CNN)")
        channels = self.trunk.feature_info.channels()
        hidden = int(cfg.hidden_size)
        self.patch_embed = nn.Conv2d(channels[3], hidden, 1)
        self.grid = (cfg.img_size // 16, cfg.img_size // 16)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], hidden))
        trunc_normal_(self.pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(cfg.dropout)
        rates = torch.linspace(0, cfg.drop_path, cfg.depth).tolist()
        blocks = []
        for rate in rates:
            block = Block(hidden, cfg.num_heads, cfg.mlp_ratio, qkv_bias=True, proj_drop=cfg.dropout,
                          attn_drop=cfg.attention_dropout, drop_path=rate,
                          norm_layer=partial(nn.LayerNorm, eps=1e-6))
            block.attn.proj_drop = nn.Dropout(cfg.attention_dropout)  # TransUNet: attention_dropout_rate there
            blocks.append(block)
        self.blocks = nn.Sequential(*blocks)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                init_weights_vit_timm(module)
        self.norm = nn.LayerNorm(hidden, eps=1e-6)
        skips = [channels[2], channels[1], channels[0]][:cfg.n_skip]
        self.decoder = CascadedUpsampler(hidden, cfg.head_channels, cfg.decoder_channels, skips)
        self.head = nn.Conv2d(cfg.decoder_channels[-1], self.num_classes, 3, padding=1)
        if cfg.weights_path is not None:
            load_trunk_weights(self.trunk, cfg.weights_path, len(self.modalities))

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """The position embedding ``[1, gh * gw, hidden]`` for a ``gh x gw`` token grid (bicubic resampling
        of :attr:`pos_embed` by timm when the grid is not the ``img_size`` one)."""
        if tuple(grid) == self.grid:
            return self.pos_embed
        return resample_abs_pos_embed(self.pos_embed, new_size=list(grid), old_size=list(self.grid),
                                      num_prefix_tokens=0, interpolation="bicubic")

    def forward(self, images: torch.Tensor, modality_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``images [B, M, H, W]`` (``H, W`` divisible by 16) -> logits ``[B, num_classes, H, W]``.

        Args:
            images: ``[B, len(modalities), H, W]`` float.
            modality_mask: ``[B, M]`` bool, True = present (``None``: all present); absent channels are zeroed.

        Raises:
            ValueError: wrong shape, ``H`` or ``W`` not divisible by 16, a sample with no sequence.
        """
        images = planar_input("transunet", images, modality_mask, self.modalities, self.size_divisor)
        h, w = images.shape[-2:]
        features = self.trunk(images)  # strides 2, 4, 8, 16
        x = self.patch_embed(features[3])
        b, c, gh, gw = x.shape
        tokens = self.pos_drop(x.flatten(2).transpose(1, 2) + self.position_embedding((gh, gw)))
        tokens = self.norm(self.blocks(tokens))
        x = tokens.transpose(1, 2).reshape(b, c, gh, gw)
        x = self.decoder(x, [features[2], features[1], features[0]][:self.config.n_skip])
        return self.head(x)


_TINY = {"backbone": "resnet18", "backbone_kwargs": {"layers": (1, 1, 1, 1), "channels": (8, 16, 32, 64)},
         "img_size": 32, "hidden_size": 32, "depth": 1, "num_heads": 2, "head_channels": 16,
         "decoder_channels": (16, 8, 8, 4), "widths": None, "spatial_dims": 2}


@register_model("transunet", tiny=_TINY)
def transunet(modalities, num_classes, config=None, **overrides):
    """TransUNet-style hybrid: timm ResNet trunk + ViT bottleneck + cascaded upsampler (CUP)."""
    return TransUNet(modalities, num_classes, config, **overrides)
