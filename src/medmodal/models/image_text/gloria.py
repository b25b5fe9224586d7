"""GLoRIA-style model: global image-report contrast + word-region attention local contrast.

Paper: S.-C. Huang, L. Shen, M. P. Lungren, S. Yeung, "GLoRIA: A Multimodal Global-Local
Representation Learning Framework for Label-efficient Medical Image Recognition", ICCV 2021.
Reference code: github.com/marshuang80/gloria (``gloria/models/gloria_model.py``,
``gloria/loss/gloria_loss.py``, ``configs/pretrain/chexpert_gloria_pretrain_config.yaml``)::

    image -> CNN -> global average pool -> Linear -> v_g [B, E]     ;  feature map -> Linear -> regions [B, N, E]
    report -> BERT -> [CLS] -> Linear -> t_g [B, E]                 ;  word tokens -> Linear -> words [B, L, E]
    global_loss = CE(10 * cos(v_g, t_g)) + CE(10 * cos(t_g, v_g))                (temp3 = 10, summed)
    local_loss  = word_region_attention_loss(words, regions; temp1 = 4, temp2 = 5, temp3 = 10)
    loss = 1 * global_loss + 1 * local_loss

Defaults from the released config: ``E = 768``, temp1 / temp2 / temp3 = 4 / 5 / 10, both loss
weights 1, Adam lr 5e-5, weight decay 1e-6, batch 48, 50 epochs, gradient clipping 0.25.

"-style" because the encoders are the shared ones of :mod:`.encoders`: local regions are the cells
of the *last* feature map (GLoRIA: ResNet-50 ``layer3`` with a 1x1 conv, a 19x19 grid at 299 px),
words are the report's sub-word tokens (GLoRIA sums the sub-words of a word and the last 4 BERT
layers), the text side gets a linear projection (GLoRIA's ClinicalBERT is already 768-d), and the
global loss gathers negatives across processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from medmodal.layers.contrastive import info_nce_loss
from medmodal.models.image_text.base import ImageTextConfig, ImageTextModel, word_mask
from medmodal.models.image_text.layers import ProjectionHead
from medmodal.models.image_text.objectives import (
    word_region_attention_loss,
)
from medmodal.models.registry import register_model

__all__ = ["GLoRIA", "GLoRIAConfig"]


@dataclass
class GLoRIAConfig(ImageTextConfig):
    """GLoRIA hyper-parameters (released defaults; shared fields on :class:`~.base.ImageTextConfig`).

    Attributes:
        embed_dim: 768. temperature: 0.1 fixed, i.e. the global logit scale ``temp3 = 10``.
        image_global_pool: ``"avg"``. temp_attention: ``temp1 = 4``. temp_word: ``temp2 = 5``.
        local_logit_scale: ``temp3 = 10`` for the local pair scores. local_weight: 1 (global_weight 1).
        stage1_epochs / stage2_epochs: 50 / 0. optimizer: ``"adam"``, learning_rate 5e-5, weight_decay 1e-6,
            warmup_epochs 0.
    """

    image_global_pool: str = "avg"
    embed_dim: int = 768
    temperature: float = 0.1
    learnable_temperature: bool = False
    temp_attention: float = 4.0
    temp_word: float = 5.0
    local_logit_scale: float = 10.0
    local_weight: float = 1.0
    stage1_epochs: int = 50
    learning_rate: float = 5e-5
    warmup_epochs: int = 0

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.temp_attention > 0 and self.temp_word > 0 and self.local_logit_scale > 0,
             "temp_attention, temp_word and local_logit_scale must be > 0"),
        ]


@register_model("gloria", task="image_text")
class GLoRIA(ImageTextModel):
    """GLoRIA-style image-report model (module docstring).

    Args:
        config: a :class:`GLoRIAConfig` or dict; ``**overrides``: its fields.

    Attributes:
        global_image_projection, local_image_projection, global_text_projection, word_projection:
            ``Linear -> E``.

    ``compute_losses`` returns ``{"loss", "global_loss", "local_loss", "temperature"}``; stages 1 and 2
    are the same. Every report needs at least one word token (``sentence_index >= 0``).
    """

    config_class = GLoRIAConfig

    def __init__(self, config: GLoRIAConfig | Mapping[str, Any] | None = None, **overrides):
        super().__init__(config, **overrides)
        e = self.config.embed_dim
        self.global_image_projection = ProjectionHead(self.image_encoder.global_dim, e)
        self.local_image_projection = ProjectionHead(self.image_encoder.local_dim, e)
        self.global_text_projection = ProjectionHead(self.text_encoder.hidden_size, e)
        self.word_projection = ProjectionHead(self.text_encoder.hidden_size, e)

    def image_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``(global [B, E], regions [B, N, E])``, not normalised (GLoRIA's ``norm: false``)."""
        feats = self.image_encoder(images)
        return self.global_image_projection(feats.global_features), self.local_image_projection(feats.local_features)

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``(global [B, E] from [CLS], words [B, L, E])``, not normalised."""
        tokens = self.text_encoder(input_ids, attention_mask)
        return self.global_text_projection(tokens[:, 0]), self.word_projection(tokens)

    def image_embedding(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_features(images)[0], dim=-1)

    def text_embedding(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, sentence_index: torch.Tensor,
                       num_sentences: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_features(input_ids, attention_mask)[0], dim=-1)

    def losses(self, batch: Mapping[str, torch.Tensor], *, stage: int,
               update_clusters: bool) -> dict[str, torch.Tensor]:
        cfg = self.config
        image_global, regions = self.image_features(batch["image"])
        text_global, words = self.text_features(batch["input_ids"], batch["attention_mask"])
        global_loss = info_nce_loss(F.normalize(image_global, dim=-1), F.normalize(text_global, dim=-1),
                                    self._logit_scale().exp(), weights=(1.0, 1.0))
        local_loss = word_region_attention_loss(words, word_mask(batch["sentence_index"]), regions,
                                                cfg.temp_attention, cfg.temp_word, cfg.local_logit_scale)
        total = cfg.global_weight * global_loss + cfg.local_weight * local_loss
        return {"loss": total, "global_loss": global_loss, "local_loss": local_loss, "temperature": self.temperature}
