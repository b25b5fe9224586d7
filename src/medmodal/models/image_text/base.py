"""Shared base of every image-report pre-training model (CM-CGNS and the ConVIRT / GLoRIA / MGCA-style
baselines): the encoders, the learnable global temperature, the batch contract and the public interface
that the pre-training engine relies on.

Interface (every ``task="image_text"`` model)::

    model = create_model(name, **config_fields)
    out = model.compute_losses(batch, stage=1 | 2, update_clusters=bool)   # {"loss": total, "<name>_loss": ...}
    model.encode_image(images [B, 3, H, W]) -> [B, E]     (L2-normalised)
    model.encode_text(input_ids, attention_mask, sentence_index, num_sentences) -> [B, E]  (L2-normalised)
    model.backbone_state_dict() -> timm / torchvision state dict of the image backbone (export)
    model.config                 -> the dataclass (schedule fields stage1_epochs, stage2_epochs, optimizer,
                                    learning_rate, weight_decay, warmup_epochs, warmup_start_lr, final_lr)

Batch contract (one dict per step)::

    {"image": [B, 3, H, W] float (mean 0.5 / std 0.5 normalised, i.e. in [-1, 1]),
     "input_ids": [B, L] long, "attention_mask": [B, L] long/bool,
     "sentence_index": [B, L] long (0-based sentence of each token, -1 for special / padding),
     "num_sentences": [B] long}

A method with a single training stage treats ``stage=2`` like ``stage=1`` and has
``stage2_epochs = 0`` by default; ``update_clusters`` is the "training step" flag: methods with
non-gradient state (CM-CGNS's k-means, MGCA's prototype normalisation) only change it when it is
``True``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from medmodal.models.image_text.encoders import ImageEncoder, TextEncoder
from medmodal.models.registry import model_config

__all__ = ["BATCH_KEYS", "ImageTextConfig", "ImageTextModel", "check_batch", "word_mask"]

#: keys of the batch contract
BATCH_KEYS = ("image", "input_ids", "attention_mask", "sentence_index", "num_sentences")


@dataclass
class ImageTextConfig:
    """Fields every image-report model has (a method's config subclasses this and may change defaults).

    Encoders:
        image_encoder: timm name (``"resnet50"`` in all compared papers' ResNet rows; ``"resnet18"`` /
            ``"test_resnet"`` for CPU runs). image_size: input edge (224 in every reference).
        image_pretrained_path: local timm / torchvision weight file; ``None`` = random init.
        image_pool_heads: heads of the CNN attention pool (``image_global_pool="attention"``).
        image_global_pool: ``"attention"`` (CLIP-style, PRIOR / CM-CGNS) or ``"avg"`` (global average
            pooling of the last feature map: ConVIRT, GLoRIA, MGCA use torchvision's ResNet ``avgpool``).
        text_encoder_path / text_model_config: local Hugging Face folder (``None`` = shipped MiniLM-L6)
            or a BERT config dict for a random text model (tests); not both.
        max_text_length: token budget per report.
        cache_text_features: freeze the text encoder and cache its token features per distinct
            report (:class:`~.encoders.TextEncoder` ``cache_features``; CPU runs). False in every
            reference (the text encoder is trained).
    Global loss:
        embed_dim: joint embedding size ``E``. temperature: initial global temperature.
        learnable_temperature: learn ``log(1/temperature)``. logit_scale_max: optional clamp.
        global_weight: weight of the global loss in the total.
    Schedule / optimiser (read by the engine): stage1_epochs, stage2_epochs, optimizer, learning_rate,
        weight_decay, warmup_epochs, warmup_start_lr, final_lr.
    """

    # encoders
    image_encoder: str = "resnet50"
    image_size: int = 224
    image_pretrained_path: str | None = None
    image_pool_heads: int = 8
    image_global_pool: str = "attention"
    text_encoder_path: str | None = None
    text_model_config: dict[str, Any] | None = None
    max_text_length: int = 256
    cache_text_features: bool = False
    # embeddings + global loss
    embed_dim: int = 768
    temperature: float = 0.1
    learnable_temperature: bool = True
    logit_scale_max: float | None = None
    global_weight: float = 1.0
    # schedule / optimiser (engine)
    stage1_epochs: int = 10
    stage2_epochs: int = 0
    optimizer: str = "adam"
    learning_rate: float = 1e-5
    weight_decay: float = 1e-6
    warmup_epochs: int = 1
    warmup_start_lr: float = 1e-7
    final_lr: float = 0.0

    @classmethod
    def from_kwargs(cls, config: ImageTextConfig | Mapping[str, Any] | None = None, **overrides):
        """Build from a config / dict plus keyword overrides; unknown keys raise :class:`TypeError`."""
        cfg = model_config(cls, config, **overrides)
        cfg.normalize()
        cfg.validate()
        return cfg

    def normalize(self) -> None:
        """Coerce YAML-loaded values (lists -> tuples ...); subclasses extend."""

    def checks(self) -> list[tuple[bool, str]]:
        """``(ok, message)`` pairs checked by :meth:`validate`; subclasses extend the list."""
        return [
            (self.embed_dim > 0 and self.embed_dim % 2 == 0, "embed_dim must be a positive even number"),
            (self.image_size >= 32, "image_size must be >= 32 pixels"),
            (self.image_global_pool in ("attention", "avg"), "image_global_pool must be attention | avg"),
            (self.temperature > 0, "temperature must be > 0"),
            (self.text_encoder_path is None or self.text_model_config is None,
             "give text_encoder_path or text_model_config, not both"),
            (self.stage1_epochs >= 0 and self.stage2_epochs >= 0, "stage epochs must be >= 0"),
        ]

    def validate(self) -> None:
        """Raise :class:`ValueError` naming the first inconsistent field."""
        for ok, message in self.checks():
            if not ok:
                raise ValueError(f"{type(self).__name__}: {message}")


class ImageTextModel(nn.Module):
    """Encoders + global temperature + the interface of the module docstring.

    Subclasses set :attr:`config_class`, build their heads after ``super().__init__`` and implement
    :meth:`image_embedding`, :meth:`text_embedding` and :meth:`losses` (``batch`` already checked).

    Attributes:
        config: the resolved config. image_encoder / text_encoder: :class:`~.encoders.ImageEncoder` /
            :class:`~.encoders.TextEncoder`. logit_scale: ``log(1/temperature)`` (parameter when
            learnable, else buffer).
    """

    config_class: type[ImageTextConfig] = ImageTextConfig

    def __init__(self, config: ImageTextConfig | Mapping[str, Any] | None = None, **overrides):
        super().__init__()
        cfg = self.config_class.from_kwargs(config, **overrides)
        self.config = cfg
        self.image_encoder = ImageEncoder(cfg.image_encoder, cfg.image_size, cfg.image_pretrained_path,
                                          pool_heads=cfg.image_pool_heads, global_pool=cfg.image_global_pool)
        self.text_encoder = TextEncoder(cfg.text_encoder_path, config=cfg.text_model_config,
                                        max_length=cfg.max_text_length, cache_features=cfg.cache_text_features)
        scale = torch.tensor(math.log(1.0 / cfg.temperature))
        if cfg.learnable_temperature:
            self.logit_scale = nn.Parameter(scale)
        else:
            self.register_buffer("logit_scale", scale)

    # ------------------------------------------------------------------ interface
    def image_embedding(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def text_embedding(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, sentence_index: torch.Tensor,
                       num_sentences: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def losses(self, batch: Mapping[str, torch.Tensor], *, stage: int,
               update_clusters: bool) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Global image embedding ``[B, E]`` (L2-normalised), for retrieval / zero-shot."""
        return self.image_embedding(images)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, sentence_index: torch.Tensor,
                    num_sentences: torch.Tensor) -> torch.Tensor:
        """Report embedding ``[B, E]`` (L2-normalised); the text batch as from ``text_encoder.tokenize``."""
        return self.text_embedding(input_ids, attention_mask, sentence_index, num_sentences)

    def forward(self, batch: Mapping[str, torch.Tensor], *, stage: int,
                update_clusters: bool) -> dict[str, torch.Tensor]:
        """Same as :meth:`compute_losses`."""
        return self.compute_losses(batch, stage=stage, update_clusters=update_clusters)

    def compute_losses(self, batch: Mapping[str, torch.Tensor], *, stage: int,
                       update_clusters: bool) -> dict[str, torch.Tensor]:
        """The method's objective of one batch: ``{"loss": weighted total, "<term>_loss": ..., ...}``.

        Raises:
            ValueError: ``stage`` not 1/2, a missing batch key or inconsistent shapes.
        """
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage!r}")
        check_batch(batch, type(self).__name__)
        return self.losses(batch, stage=stage, update_clusters=update_clusters)

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """Image backbone weights without head, in timm format (for ResNets also torchvision's keys)."""
        return self.image_encoder.backbone_state_dict()

    @property
    def temperature(self) -> torch.Tensor:
        """Current global temperature ``1 / exp(logit_scale)`` (detached)."""
        return torch.exp(-self._logit_scale().detach())

    def _logit_scale(self) -> torch.Tensor:
        scale = self.logit_scale
        if self.config.logit_scale_max is not None:
            scale = scale.clamp(max=math.log(self.config.logit_scale_max))
        return scale


def word_mask(sentence_index: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` bool of the report's word tokens: tokens inside a sentence (``sentence_index >= 0``),
    i.e. without ``[CLS]`` / ``[SEP]`` / padding."""
    return sentence_index >= 0


def check_batch(batch: Mapping[str, torch.Tensor], owner: str = "image-text model") -> None:
    """Raise :class:`ValueError` for a batch that breaks the contract of the module docstring."""
    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise ValueError(f"{owner} batch is missing {missing}; expected keys {list(BATCH_KEYS)}")
    image, ids = batch["image"], batch["input_ids"]
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"batch['image'] must be [B, 3, H, W], got {tuple(image.shape)}")
    b = image.shape[0]
    for key in ("input_ids", "attention_mask", "sentence_index"):
        if batch[key].ndim != 2 or batch[key].shape[0] != b or batch[key].shape != ids.shape:
            raise ValueError(f"batch[{key!r}] must be [B={b}, L], got {tuple(batch[key].shape)}")
    if tuple(batch["num_sentences"].shape) != (b,):
        raise ValueError(f"batch['num_sentences'] must be [B={b}], got {tuple(batch['num_sentences'].shape)}")
