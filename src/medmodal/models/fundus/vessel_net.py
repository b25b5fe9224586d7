"""Retinal vessel segmenters (DGSSA): DeepLabv3+ or U-Net on a MobileNetV2 encoder.

Built with segmentation-models-pytorch, always with ``encoder_weights=None`` (random init; nothing is
ever downloaded); ``weights_path=`` loads a *local* ImageNet encoder weight file (safetensors, or a
torch state dict read with ``weights_only=True``; torchvision's ``mobilenet_v2`` ImageNet state dict
fits as it is, its ``classifier.*`` keys are dropped).

**Contract** ``segmentation`` (the segmentation family's 2-D, single-image case): the input channels
are the "sequences", so a fundus photograph ``[B, 3, H, W]`` is built with
``modalities=("red", "green", "blue")``; ``forward(images [B, M, H, W], modality_mask [B, M] | None)
-> logits [B, num_classes, H, W]``. Absent channels are zero-filled with ``torch.where`` before the
encoder (a fundus image always has all three; the mask exists for the contract), ``None`` = all
present. ``H`` and ``W`` must be divisible by 32 (``data.fundus.geometry.to_network`` gives that).

**Output.** ``num_classes=1`` (recommended for vessels): one logit per pixel, vessel probability
``sigmoid(logit)``, thresholded at 0.5 as the papers do; this is the usual binary form (BCE + Dice on
one map) and is equivalent to 2-class softmax (softmax of ``[a, b]`` is ``sigmoid(b - a)``) with one
redundant logit fewer. ``num_classes=2`` gives background/vessel softmax logits for objectives that
expect a background class.

**DSU** (Li et al., ICLR 2022, :class:`medmodal.layers.domain.FeatureStatisticsShift`, the layer MICS
uses): ``dsu_p > 0`` inserts one DSU (per-channel statistics over space, ``dims=(2, 3)``) after each
encoder stage in ``dsu_stages`` (1..5: the outputs at strides 2, 4, 8, 16, 32), as forward hooks on
the stage's last module, so the perturbation propagates into the deeper stages and the state dict
keys stay those of the plain encoder (weight files and bundles load either way). Active only in
training mode, identity in eval mode. Default ``dsu_p=0`` (off: the ERM baseline); DSU's paper value
is ``0.5``.

Parameters (measured, ``classes=1``, 3 input channels): ``deeplabv3plus_mobilenetv2`` 4,378,513;
``unet_mobilenetv2`` 6,628,945.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from medmodal.errors import ConfigError, EncoderLoadError
from medmodal.io import load_safetensors_file, load_torch_file
from medmodal.layers.domain import FeatureStatisticsShift
from medmodal.layers.masking import check_modality_mask, mask_modalities
from medmodal.models.registry import model_config, register_model

__all__ = ["VesselNetConfig", "VesselNet", "deeplabv3plus_mobilenetv2", "unet_mobilenetv2",
           "load_encoder_weights", "ARCHITECTURES"]

#: architecture name -> smp class name
ARCHITECTURES = {"deeplabv3plus": "DeepLabV3Plus", "unet": "Unet"}
#: indexes of ``encoder.features`` whose outputs are the 5 stages of smp's MobileNetV2 encoder
_MOBILENET_STAGE_MODULES = (1, 3, 6, 13, 18)


@dataclass
class VesselNetConfig:
    """Options of :class:`VesselNet`.

    Attributes:
        arch: ``deeplabv3plus`` | ``unet``.
        encoder_name: smp encoder name; only ``mobilenet_v2`` supports DSU insertion.
        decoder_channels: ``None`` = smp's default (DeepLabV3+: 256; U-Net: (256, 128, 64, 32, 16));
            an int for DeepLabV3+, five ints for U-Net.
        weights_path: a local ImageNet encoder weight file (``.safetensors`` or a torch state dict).
        dsu_p: per-sample probability of the DSU shift (0 = no DSU layers; DSU's paper: 0.5).
        dsu_stages: encoder stages (1..5) followed by a DSU layer when ``dsu_p > 0``.
        spatial_dims: must be 2 (the segmentation engine passes it).
    """

    arch: str = "deeplabv3plus"
    encoder_name: str = "mobilenet_v2"
    decoder_channels: int | tuple[int, ...] | None = None
    weights_path: str | None = None
    dsu_p: float = 0.0
    dsu_stages: tuple[int, ...] = (1, 2, 3, 4, 5)
    spatial_dims: int = 2

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"arch {self.arch!r} unknown; known: {sorted(ARCHITECTURES)}")
        if int(self.spatial_dims) != 2:
            raise ConfigError(f"vessel networks are 2-D; got spatial_dims={self.spatial_dims}")
        if not 0 <= float(self.dsu_p) <= 1:
            raise ConfigError(f"dsu_p must be in [0, 1], got {self.dsu_p}")
        self.dsu_stages = tuple(int(s) for s in self.dsu_stages)
        if any(s not in range(1, 6) for s in self.dsu_stages):
            raise ConfigError(f"dsu_stages must be among 1..5, got {list(self.dsu_stages)}")
        if isinstance(self.decoder_channels, list):
            self.decoder_channels = tuple(self.decoder_channels)


def load_encoder_weights(encoder: nn.Module, path: str | Path) -> None:
    """Load a local encoder weight file into ``encoder`` (strict, apart from ``classifier.*`` keys).

    A ``state_dict`` / ``model`` wrapper and an ``encoder.`` prefix are unwrapped.

    Raises:
        FileNotFoundError: no such file. DamagedFileError: unreadable file or pickled objects.
        EncoderLoadError: the file is not a state dict of this encoder (missing / unexpected keys,
            shape mismatch); one line naming the file.
    """
    path = Path(path)
    state = load_safetensors_file(path) if path.suffix == ".safetensors" else load_torch_file(path)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EncoderLoadError(f"{path}: not a state dict of tensors")
    if state and all(k.startswith("encoder.") for k in state):
        state = {k[len("encoder."):]: v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    own = encoder.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
                 f"{len(shapes)} of another shape (e.g. {sorted(shapes)[0]})" if shapes else ""]
        raise EncoderLoadError(f"{path}: not an encoder state dict for this network: "
                               + ", ".join(p for p in parts if p))
    encoder.load_state_dict(state, strict=True)


class VesselNet(nn.Module):
    """smp DeepLabV3+ / U-Net vessel segmenter under the ``segmentation`` contract (module docstring).

    Args:
        modalities: input channel names (fundus: ``("red", "green", "blue")``).
        num_classes: output logits per pixel (1: sigmoid vessel map; 2: softmax background/vessel).
        config: a :class:`VesselNetConfig` or dict; ``**overrides``: its fields.

    Attributes:
        net: the smp model (``net.encoder``: the MobileNetV2 encoder).
        dsu: the DSU layers, keyed by stage (empty when ``dsu_p == 0``).
    """

    def __init__(self, modalities: Sequence[str], num_classes: int, config: VesselNetConfig | dict | None = None,
                 **overrides):
        super().__init__()
        import segmentation_models_pytorch as smp

        cfg = model_config(VesselNetConfig, config, **overrides)
        self.config = cfg
        self.modalities = tuple(modalities)
        self.num_classes = int(num_classes)
        kwargs = {} if cfg.decoder_channels is None else {"decoder_channels": cfg.decoder_channels}
        # encoder_weights=None: random init, smp never reaches the network
        self.net = getattr(smp, ARCHITECTURES[cfg.arch])(encoder_name=cfg.encoder_name, encoder_weights=None,
                                                         in_channels=len(self.modalities),
                                                         classes=self.num_classes, **kwargs)
        if cfg.weights_path:
            load_encoder_weights(self.net.encoder, cfg.weights_path)
        self.dsu = nn.ModuleDict()
        if cfg.dsu_p > 0:
            self._insert_dsu(cfg.dsu_p, cfg.dsu_stages)

    def _insert_dsu(self, p: float, stages: tuple[int, ...]) -> None:
        if self.config.encoder_name != "mobilenet_v2":
            raise ConfigError(f"DSU insertion supports encoder_name 'mobilenet_v2' only, "
                              f"got {self.config.encoder_name!r}")
        for stage in stages:
            layer = FeatureStatisticsShift(p=p, dims=(2, 3))
            self.dsu[str(stage)] = layer
            self.net.encoder.features[_MOBILENET_STAGE_MODULES[stage - 1]].register_forward_hook(_DSUHook(layer))

    def forward(self, images: torch.Tensor, modality_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``images [B, M, H, W]`` (``H, W`` divisible by 32) -> logits ``[B, num_classes, H, W]``.

        Raises:
            ValueError: a wrong mask shape or a sample with no channel present.
        """
        if modality_mask is not None:
            mask = check_modality_mask(modality_mask, images.shape[0], len(self.modalities), images.device)
            images = mask_modalities(images, mask)
        return self.net(images)


class _DSUHook:
    """Forward hook replacing a stage's output by ``layer(output)`` (a picklable callable)."""

    def __init__(self, layer: nn.Module):
        self.layer = layer

    def __call__(self, module, inputs, output):
        return self.layer(output)


@register_model("deeplabv3plus_mobilenetv2", tiny={"widths": None, "decoder_channels": 16, "spatial_dims": 2})
def deeplabv3plus_mobilenetv2(modalities, num_classes, config=None, **overrides):
    """DeepLabv3+ (output stride 16) on MobileNetV2: DGSSA's network."""
    return VesselNet(modalities, num_classes, config, **{"arch": "deeplabv3plus", **overrides})


@register_model("unet_mobilenetv2", tiny={"widths": None, "decoder_channels": (16, 8, 8, 8, 8), "spatial_dims": 2})
def unet_mobilenetv2(modalities, num_classes, config=None, **overrides):
    """U-Net on MobileNetV2: the U-Net option of the vessel benchmark."""
    return VesselNet(modalities, num_classes, config, **{"arch": "unet", **overrides})
