"""MICS fine-tuning model: WLI encoder + NBI encoder + cross-attention fusion + classifier.

``forward(images [B, M, 3, S, S], modality_mask [B, M] bool) -> logits [B, K]`` with ``M`` the
model's modalities in medmodal order (``wli``, ``nbi``). Every encoder always runs (DDP needs no
unused-parameter search) and an absent modality is removed by masking, as for the MRI
sequences of the segmentation models: its cross-attention update is gated off in every fusion
layer and its tokens are left out of the pooled feature (mean over the present modalities). A
model trained with modality dropout therefore predicts from white light alone, and its output
for a WLI-only sample does not depend on the (zero) NBI input.

Fusion modes (``fusion``):

* ``cross_attention`` (MICS): per-modality streams, each layer self-attention then cross-attention to
  the other stream (ALBEF-style fusion encoder), then the DSU feature-statistics shift on the fused
  tokens (training only, :class:`FeatureStatisticsShift`), mean-pool per stream, masked mean over
  modalities, LayerNorm, linear classifier.
* ``late``: no fusion layers; one linear classifier per modality on its pooled tokens, logits
  averaged over the present modalities (late-fusion baseline).

With one modality (``modalities=("wli",)``) the cross-attention mode is an encoder + transformer
blocks + classifier (single-modality baseline).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from medmodal.layers.domain import FeatureStatisticsShift
from medmodal.layers.masking import masked_mean
from medmodal.models.endoscopy.blocks import FusionTransformer, TokenEncoder
from medmodal.models.registry import model_config, register_model

__all__ = ["MICSClassifierConfig", "MICSClassifier", "FUSIONS", "SHIFTS"]

FUSIONS = ("cross_attention", "late")
SHIFTS = ("dsu", "none")
ALL_MODALITIES = ("wli", "nbi")


@dataclass
class MICSClassifierConfig:
    """Fine-tuning model settings.

    Attributes:
        arch / image_size / encoder_kwargs: the encoders (as in pre-training, so its weights load).
        num_classes: ``K`` (authors: the six Kvasir classes).
        modalities: the streams built, a subset of ``("wli", "nbi")`` in that order.
        fusion: ``cross_attention`` | ``late`` (module docstring).
        fusion_depth: fusion layers (ALBEF's fusion encoder has 6). fusion_heads: ``None`` = ``D // 64``
            (at least 1).
        shift: ``dsu`` | ``none``; shift_p: per-sample probability of the shift (DSU 0.5).
        dropout: dropout of the fusion blocks and before the classifier.
    """

    arch: str = "vit_base_patch16_384"
    image_size: int = 384
    encoder_kwargs: dict = field(default_factory=dict)
    num_classes: int = 6
    modalities: tuple = ("wli", "nbi")
    fusion: str = "cross_attention"
    fusion_depth: int = 6
    fusion_heads: int | None = None
    shift: str = "dsu"
    shift_p: float = 0.5
    dropout: float = 0.1


@register_model("mics", task="paired_views", tiny={"num_classes": 3, "fusion_depth": 1})
class MICSClassifier(nn.Module):
    """See the module docstring. Built as ``create_model("mics", num_classes=K, modalities=(...), ...)`` or
    ``MICSClassifier(config: MICSClassifierConfig | dict | None = None, **overrides)``; ``config`` holds the
    resolved settings (``cfg``: its old name, one release).

    Raises:
        ValueError: unknown / duplicate / out-of-order modalities, unknown fusion or shift,
            ``num_classes < 2``; in :meth:`forward`, bad shapes or a sample without any modality.
    """

    def __init__(self, config: MICSClassifierConfig | Mapping[str, Any] | None = None, **overrides):
        super().__init__()
        cfg = model_config(MICSClassifierConfig, config, **overrides)
        cfg.modalities = tuple(cfg.modalities)
        order = [m for m in ALL_MODALITIES if m in cfg.modalities]
        if not cfg.modalities or list(cfg.modalities) != order or len(order) != len(cfg.modalities):
            raise ValueError(f"modalities must be a non-empty subset of {ALL_MODALITIES} in that order, "
                             f"got {list(cfg.modalities)}")
        if cfg.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {cfg.fusion!r}; choose one of {', '.join(FUSIONS)}")
        if cfg.shift not in SHIFTS:
            raise ValueError(f"unknown shift {cfg.shift!r}; choose one of {', '.join(SHIFTS)}")
        if int(cfg.num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {cfg.num_classes}")
        self.config = cfg
        self.modalities, self.num_classes = cfg.modalities, int(cfg.num_classes)
        self.encoders = nn.ModuleDict({m: TokenEncoder(cfg.arch, cfg.image_size, cfg.encoder_kwargs)
                                       for m in cfg.modalities})
        dim = self.encoders[cfg.modalities[0]].dim
        if cfg.fusion == "cross_attention":
            heads = cfg.fusion_heads or max(1, dim // 64)
            self.fusion = FusionTransformer(dim, cfg.fusion_depth, heads, len(cfg.modalities), cfg.dropout)
            self.shift = FeatureStatisticsShift(cfg.shift_p) if cfg.shift == "dsu" else nn.Identity()
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(dim, self.num_classes))
        else:
            self.heads = nn.ModuleDict({m: nn.Sequential(nn.LayerNorm(dim), nn.Dropout(cfg.dropout),
                                                         nn.Linear(dim, self.num_classes))
                                        for m in cfg.modalities})

    def load_encoders(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Load pre-trained encoder weights (``{"wli.<key>": ..., "nbi.<key>": ...}``, from
        :meth:`MICSPretrainer.encoder_state_dict`) into the streams this model has.

        Returns the modalities loaded. Raises ``ValueError`` when keys or shapes do not fit (the
        pre-training used another architecture or image size).
        """
        loaded = []
        for m in self.modalities:
            part = {k[len(m) + 1:]: v for k, v in state.items() if k.startswith(m + ".")}
            if not part:
                raise ValueError(f"pre-trained weights have no {m.upper()} encoder")
            try:
                self.encoders[m].load_state_dict(part, strict=True)
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[0]
                raise ValueError(f"pre-trained {m.upper()} encoder does not fit {self.config.arch!r} at "
                                 f"{self.config.image_size} px: {first}") from None
            loaded.append(m)
        return loaded

    def _check(self, images: torch.Tensor, modality_mask: torch.Tensor) -> None:
        m = len(self.modalities)
        if images.dim() != 5 or images.shape[1] != m or images.shape[2] != 3:
            raise ValueError(f"images must be [B, {m}, 3, S, S] for modalities {list(self.modalities)}, "
                             f"got {list(images.shape)}")
        if tuple(modality_mask.shape) != (images.shape[0], m):
            raise ValueError(f"modality_mask must be [B, {m}], got {list(modality_mask.shape)}")
        if not bool(modality_mask.bool().any(1).all()):
            raise ValueError("a sample has no modality present (need white light, narrow band or both)")

    def features(self, images: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:
        """Pooled fused feature ``[B, D]`` (cross-attention fusion)."""
        self._check(images, modality_mask)
        present = modality_mask.bool()
        streams = [self.encoders[m](images[:, i]) for i, m in enumerate(self.modalities)]
        streams = self.fusion(streams, present)
        pooled = torch.stack([self.shift(s).mean(1) for s in streams], 1)  # [B, M, D]
        return self.norm(masked_mean(pooled, present))

    @property
    def cfg(self) -> MICSClassifierConfig:
        """Old name of :attr:`config` (kept for one release)."""
        return self.config

    def forward(self, images: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:
        """``images [B, M, 3, S, S]``, ``modality_mask [B, M] bool`` -> ``logits [B, K]``."""
        if self.config.fusion == "cross_attention":
            return self.head(self.features(images, modality_mask))
        self._check(images, modality_mask)
        logits = torch.stack([self.heads[m](self.encoders[m](images[:, i]).mean(1))
                              for i, m in enumerate(self.modalities)], 1)
        return masked_mean(logits, modality_mask.bool())
