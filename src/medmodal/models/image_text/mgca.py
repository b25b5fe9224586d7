"""MGCA-style model: instance (global) + token-level cross-attention alignment + prototype / Sinkhorn.

Paper: F. Wang, Y. Zhou, S. Wang, V. Vardhanabhuti, L. Yu, "Multi-Granularity Cross-modal Alignment
for Generalized Medical Visual Representation Learning", NeurIPS 2022. Reference code:
github.com/HKU-MedAI/MGCA (``mgca/models/mgca/mgca_module.py``, ``mgca/models/backbones/encoder.py``)::

    image -> CNN -> avg pool -> MLP-BN -> v [B, 128] (L2) ; feature map -> token MLP-BN -> patches [B, N, 128] (L2)
    report -> BERT -> [CLS] -> MLP-BN -> t [B, 128] (L2)  ; word tokens -> token MLP-BN -> words [B, L, 128] (L2)
    ita_loss   = CE(v t^T / 0.07) + CE(t v^T / 0.07)                                   (ITA, summed)
    local_loss = token_alignment(words -> patches) + token_alignment(patches -> words)  (CTA, t = 0.1)
    proto_loss = swapped prediction of Sinkhorn codes over 500 prototypes            (CPA)
    loss = 1 * ita_loss + 0.7 * local_loss + 0.5 * proto_loss

Defaults from the released module: ``emb_dim 128``, ``softmax_temperature 0.07``,
``local_temperature 0.1``, ``proto_temperature 0.2``, ``num_prototypes 500``, ``epsilon 0.05``,
``sinkhorn_iterations 3``, ``lambda_1/2/3 = 1 / 0.7 / 0.5``, ``freeze_prototypes_epochs 1``, AdamW
lr 2e-5 (betas 0.9 / 0.999), weight decay 0.05, 50 epochs; the prototype vectors are re-normalised
before every training step.

"-style" because the encoders are the shared ones of :mod:`.encoders` and two weights differ:
the word weights of the token loss are uniform over the report's words (MGCA: the text encoder's
last-layer [CLS] attention, clipped to its 10 / 90 % quantiles); patch weights are uniform as in
MGCA's ResNet path. Padded words are removed from the token-loss negatives (MGCA kept them).

Freezing the prototypes in the first epoch needs the epoch: the engine calls :meth:`MGCA.set_epoch`
at the start of each epoch when it has it; a model never told an epoch trains its prototypes from
the first step (documented deviation rather than a silently frozen layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medmodal.layers.contrastive import info_nce_loss
from medmodal.models.image_text.base import ImageTextConfig, ImageTextModel, word_mask
from medmodal.models.image_text.layers import ProjectionHead
from medmodal.models.image_text.objectives import (
    prototype_swap_loss,
    token_alignment_loss,
)
from medmodal.models.registry import register_model

__all__ = ["MGCA", "MGCAConfig"]


@dataclass
class MGCAConfig(ImageTextConfig):
    """MGCA hyper-parameters (released defaults; shared fields on :class:`~.base.ImageTextConfig`).

    Attributes:
        embed_dim: 128. temperature: 0.07, fixed (``softmax_temperature``). image_global_pool: ``"avg"``.
        projection_hidden_dim: 2048 (hidden width of the MLP-BN embedders).
        local_temperature: 0.1. local_weight: ``lambda_2 = 0.7``. bidirectional: also align patches to words
            (released True).
        num_prototypes: 500. proto_temperature: 0.2. sinkhorn_epsilon: 0.05. sinkhorn_iterations: 3.
        prototype_weight: ``lambda_3 = 0.5``. freeze_prototypes_epochs: 1.
        global_weight: ``lambda_1 = 1``.
        stage1_epochs / stage2_epochs: 50 / 0. optimizer: ``"adamw"``, learning_rate 2e-5, weight_decay 0.05.
    """

    image_global_pool: str = "avg"
    embed_dim: int = 128
    temperature: float = 0.07
    learnable_temperature: bool = False
    projection_hidden_dim: int = 2048
    local_temperature: float = 0.1
    local_weight: float = 0.7
    bidirectional: bool = True
    num_prototypes: int = 500
    proto_temperature: float = 0.2
    sinkhorn_epsilon: float = 0.05
    sinkhorn_iterations: int = 3
    prototype_weight: float = 0.5
    freeze_prototypes_epochs: int = 1
    stage1_epochs: int = 50
    optimizer: str = "adamw"
    learning_rate: float = 2e-5
    weight_decay: float = 0.05

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.local_temperature > 0 and self.proto_temperature > 0 and self.sinkhorn_epsilon > 0,
             "local_temperature, proto_temperature and sinkhorn_epsilon must be > 0"),
            (self.num_prototypes >= 2, "num_prototypes must be >= 2"),
            (self.sinkhorn_iterations >= 1, "sinkhorn_iterations must be >= 1"),
        ]


@register_model("mgca", task="image_text", tiny={"projection_hidden_dim": 16, "num_prototypes": 8})
class MGCA(ImageTextModel):
    """MGCA-style image-report model (module docstring).

    Args:
        config: a :class:`MGCAConfig` or dict; ``**overrides``: its fields.

    Attributes:
        global_image_embed, local_image_embed, global_text_embed, local_text_embed:
        :class:`~.layers.ProjectionHead` (``"mlp_bn"``). prototypes: ``Linear(E, K, bias=False)``.

    ``compute_losses`` returns ``{"loss", "global_loss", "local_loss", "prototype_loss", "temperature"}``;
    stages 1 and 2 are the same. Batch norm in the embedders needs ``B >= 2`` in training mode.
    """

    config_class = MGCAConfig

    def __init__(self, config: MGCAConfig | Mapping[str, Any] | None = None, **overrides):
        super().__init__(config, **overrides)
        cfg = self.config
        e, h = cfg.embed_dim, cfg.projection_hidden_dim
        self.global_image_embed = ProjectionHead(self.image_encoder.global_dim, e, "mlp_bn", h)
        self.local_image_embed = ProjectionHead(self.image_encoder.local_dim, e, "mlp_bn", h)
        self.global_text_embed = ProjectionHead(self.text_encoder.hidden_size, e, "mlp_bn", h)
        self.local_text_embed = ProjectionHead(self.text_encoder.hidden_size, e, "mlp_bn", h)
        self.prototypes = nn.Linear(e, cfg.num_prototypes, bias=False)
        self._epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """Tell the model the current (0-based) training epoch: the prototypes get no gradient while
        ``epoch < freeze_prototypes_epochs`` (MGCA ``on_after_backward``)."""
        self._epoch = int(epoch)

    @property
    def prototypes_frozen(self) -> bool:
        return self._epoch is not None and self._epoch < self.config.freeze_prototypes_epochs

    def image_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``(v [B, E], patches [B, N, E])``, L2-normalised."""
        feats = self.image_encoder(images)
        return (F.normalize(self.global_image_embed(feats.global_features), dim=-1),
                F.normalize(self.local_image_embed(feats.local_features), dim=-1))

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``(t [B, E] from [CLS], words [B, L, E])``, L2-normalised."""
        tokens = self.text_encoder(input_ids, attention_mask)
        return (F.normalize(self.global_text_embed(tokens[:, 0]), dim=-1),
                F.normalize(self.local_text_embed(tokens), dim=-1))

    def image_embedding(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_features(images)[0]

    def text_embedding(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, sentence_index: torch.Tensor,
                       num_sentences: torch.Tensor) -> torch.Tensor:
        return self.text_features(input_ids, attention_mask)[0]

    def losses(self, batch: Mapping[str, torch.Tensor], *, stage: int,
               update_clusters: bool) -> dict[str, torch.Tensor]:
        cfg = self.config
        image, patches = self.image_features(batch["image"])
        text, words = self.text_features(batch["input_ids"], batch["attention_mask"])
        global_loss = info_nce_loss(image, text, self._logit_scale().exp(), weights=(1.0, 1.0))
        valid_words = word_mask(batch["sentence_index"])
        local_loss = token_alignment_loss(words, valid_words.float(), patches, None, cfg.local_temperature)
        if cfg.bidirectional:
            uniform = torch.ones(patches.shape[:2], device=patches.device)
            local_loss = local_loss + token_alignment_loss(patches, uniform, words, valid_words, cfg.local_temperature)
        if update_clusters:
            with torch.no_grad():
                self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        weight = self.prototypes.weight.detach() if self.prototypes_frozen else self.prototypes.weight
        prototype_loss = prototype_swap_loss(image @ weight.t(), text @ weight.t(), cfg.sinkhorn_epsilon,
                                             cfg.sinkhorn_iterations, cfg.proto_temperature)
        total = cfg.global_weight * global_loss + cfg.local_weight * local_loss + cfg.prototype_weight * prototype_loss
        return {"loss": total, "global_loss": global_loss, "local_loss": local_loss, "prototype_loss": prototype_loss,
                "temperature": self.temperature}
