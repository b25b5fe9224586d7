"""ConVIRT: contrastive learning of medical visual representations from paired images and text.

Paper: Y. Zhang, H. Jiang, Y. Miura, C. D. Manning, C. P. Langlotz, "Contrastive Learning of Medical
Visual Representations from Paired Images and Text", MLHC 2022 (arXiv:2010.00747). No official code;
the GLoRIA repository (github.com/marshuang80/gloria, ``configs/chexpert_pretrain_config.yaml``,
experiment "convirt_pretrain") and CM-CGNS's ``convirt`` module re-implement it as a global-only
contrastive model. Only the **global** image-report contrast is used::

    image -> ResNet-50 -> global average pool -> MLP g_v -> v (L2)        [B, E=512]
    report tokens -> BERT -> max-pool over the token outputs -> MLP g_u -> u (L2)
    loss = lambda * CE(v u^T / tau, y) + (1 - lambda) * CE(u v^T / tau, y),  lambda = 0.75, tau = 0.1

Defaults from the paper (Sec. 3-4): ``E = 512``, ``tau = 0.1`` (fixed), ``lambda = 0.75``, Adam,
learning rate 1e-4, weight decay 1e-6, batch 32. Differences here, all configurable: the text
encoder is the shared local one (default MiniLM-L6; the paper used ClinicalBERT and froze its
embeddings and first 6 layers, which would freeze the whole 6-layer default model, so all layers
train); the negatives are gathered across processes (:func:`~medmodal.layers.contrastive.info_nce_loss`);
epochs default to 50 like GLoRIA / MGCA (the paper stops early on the validation loss).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from medmodal.layers.contrastive import info_nce_loss
from medmodal.models.image_text.base import ImageTextConfig, ImageTextModel
from medmodal.models.image_text.layers import ProjectionHead, masked_max
from medmodal.models.registry import register_model

__all__ = ["ConVIRT", "ConVIRTConfig"]


@dataclass
class ConVIRTConfig(ImageTextConfig):
    """ConVIRT hyper-parameters (paper defaults; shared fields documented on :class:`~.base.ImageTextConfig`).

    Attributes:
        embed_dim: 512. temperature: 0.1, fixed (``learnable_temperature=False``).
        image_global_pool: ``"avg"`` (torchvision ResNet-50 pooling).
        projection: ``"mlp"`` (Linear-ReLU-Linear), projection_hidden_dim: ``None`` = the input size.
        image_to_text_weight: ``lambda = 0.75`` (the text-to-image term gets ``1 - lambda``).
        stage1_epochs / stage2_epochs: 50 / 0. optimizer: ``"adam"``, learning_rate 1e-4, weight_decay 1e-6,
            warmup_epochs 0.
    """

    image_global_pool: str = "avg"
    embed_dim: int = 512
    temperature: float = 0.1
    learnable_temperature: bool = False
    projection: str = "mlp"
    projection_hidden_dim: int | None = None
    image_to_text_weight: float = 0.75
    stage1_epochs: int = 50
    learning_rate: float = 1e-4
    warmup_epochs: int = 0

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (0.0 <= self.image_to_text_weight <= 1.0, "image_to_text_weight must be in [0, 1]"),
            (self.projection in ("linear", "mlp", "mlp_bn"), "projection must be linear | mlp | mlp_bn"),
        ]


@register_model("convirt", task="image_text", tiny={"projection_hidden_dim": 16})
class ConVIRT(ImageTextModel):
    """ConVIRT image-report model (global contrast only).

    Args:
        config: a :class:`ConVIRTConfig` or dict; ``**overrides``: its fields.

    Attributes:
        image_projection / text_projection: :class:`~.layers.ProjectionHead` ``-> E``.

    ``compute_losses`` returns ``{"loss", "global_loss", "temperature"}``; stages 1 and 2 are the same.
    """

    config_class = ConVIRTConfig

    def __init__(self, config: ConVIRTConfig | Mapping[str, Any] | None = None, **overrides):
        super().__init__(config, **overrides)
        cfg = self.config
        self.image_projection = ProjectionHead(self.image_encoder.global_dim, cfg.embed_dim, cfg.projection,
                                               cfg.projection_hidden_dim)
        self.text_projection = ProjectionHead(self.text_encoder.hidden_size, cfg.embed_dim, cfg.projection,
                                              cfg.projection_hidden_dim)

    def image_embedding(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_projection(self.image_encoder(images).global_features), dim=-1)

    def text_embedding(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, sentence_index: torch.Tensor,
                       num_sentences: torch.Tensor) -> torch.Tensor:
        tokens = self.text_encoder(input_ids, attention_mask)
        return F.normalize(self.text_projection(masked_max(tokens, attention_mask.bool())), dim=-1)

    def losses(self, batch: Mapping[str, torch.Tensor], *, stage: int,
               update_clusters: bool) -> dict[str, torch.Tensor]:
        cfg = self.config
        image = self.image_embedding(batch["image"])
        text = self.text_embedding(batch["input_ids"], batch["attention_mask"], batch["sentence_index"],
                                   batch["num_sentences"])
        lam = cfg.image_to_text_weight
        global_loss = info_nce_loss(image, text, self._logit_scale().exp(), weights=(lam, 1.0 - lam))
        return {"loss": cfg.global_weight * global_loss, "global_loss": global_loss, "temperature": self.temperature}
