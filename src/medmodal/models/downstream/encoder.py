"""The image encoder of every downstream task: a timm backbone + input renormalisation."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from medmodal.models.encoder_export import REFERENCE_MEAN, REFERENCE_STD, EncoderInfo

__all__ = ["DownstreamEncoder", "InputNormalization"]


class InputNormalization(nn.Module):
    """Re-normalise images from ``(x - from_mean) / from_std`` to ``(x - to_mean) / to_std``, per channel.

    ``y = x * from_std / to_std + (from_mean - to_mean) / to_std``; identity (no arithmetic) when the
    two normalisations are equal. Buffers are not saved in checkpoints (they follow the config).
    """

    def __init__(self, from_mean: Sequence[float] = REFERENCE_MEAN, from_std: Sequence[float] = REFERENCE_STD,
                 to_mean: Sequence[float] = REFERENCE_MEAN, to_std: Sequence[float] = REFERENCE_STD):
        super().__init__()
        fm, fs, tm, ts = (torch.as_tensor(v, dtype=torch.float32).view(1, -1, 1, 1)
                          for v in (from_mean, from_std, to_mean, to_std))
        self.identity = bool(torch.equal(fm, tm) and torch.equal(fs, ts))
        self.register_buffer("scale", fs / ts, persistent=False)
        self.register_buffer("shift", (fm - tm) / ts, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.identity else x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


class DownstreamEncoder(nn.Module):
    """A timm backbone (``num_classes=0``) fed with the data's normalisation.

    Args:
        backbone: from :func:`~medmodal.models.encoder_export.load_image_encoder`.
        info: its :class:`EncoderInfo` (mean / std it expects).
        data_mean / data_std: normalisation of the input images (the downstream datasets': 0.5 / 0.5).

    ``forward(x [B, 3, S, S]) -> [B, D]``: the backbone's pooled feature (ResNet: mean over the last
    ``S/32 x S/32`` map, ``D`` = 2048 for ResNet-50; ViT: the CLS token), as the references' linear
    probe. :meth:`pyramid` gives the feature maps of chosen stages (C3-C5 = stages 2, 3, 4 of a ResNet).
    """

    def __init__(self, backbone: nn.Module, info: EncoderInfo, data_mean: Sequence[float] = REFERENCE_MEAN,
                 data_std: Sequence[float] = REFERENCE_STD):
        super().__init__()
        self.backbone = backbone
        self.info = info
        self.normalize = InputNormalization(data_mean, data_std, info.mean, info.std)

    @property
    def num_features(self) -> int:
        """``D`` of :meth:`forward`."""
        return int(self.backbone.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(x))

    def stage_channels(self, indices: Sequence[int]) -> list[int]:
        """Channels of the backbone stages ``indices`` (timm ``feature_info``).

        Raises:
            ValueError: the backbone has no such stages (e.g. a ViT: no C3-C5 pyramid).
        """
        info = getattr(self.backbone, "feature_info", None)
        try:
            channels = [int(info[i]["num_chs"]) for i in indices]
            reductions = [int(info[i]["reduction"]) for i in indices]
        except (TypeError, IndexError, KeyError):
            raise ValueError(f"{self.info.architecture} has no feature stages {list(indices)} (a CNN with "
                             f"C3-C5 maps, e.g. a ResNet, is needed)") from None
        if len(set(reductions)) != len(reductions):
            raise ValueError(f"{self.info.architecture}: stages {list(indices)} share one stride {reductions} "
                             f"(not a feature pyramid; a CNN such as a ResNet is needed)")
        return channels

    def pyramid(self, x: torch.Tensor, indices: Sequence[int] = (2, 3, 4)) -> list[torch.Tensor]:
        """Feature maps of stages ``indices`` (ResNet: ``[B, 512, S/8, S/8]``, ``[B, 1024, S/16, S/16]``,
        ``[B, 2048, S/32, S/32]`` for ResNet-50), via timm ``forward_intermediates``."""
        return self.backbone.forward_intermediates(self.normalize(x), indices=list(indices),
                                                   intermediates_only=True)
