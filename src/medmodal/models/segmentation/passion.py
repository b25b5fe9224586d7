"""PASSION-style baseline: a plain multi-encoder network trained with imbalance-aware losses.

After Shi et al., "PASSION: Towards Effective Incomplete Multi-Modal Medical Image Segmentation
with Imbalanced Missing Rates" (ACM MM 2024). PASSION is a *training scheme* on top of a
multi-encoder backbone, so the network here is DMAF-Net's skeleton with parameter-free masked-mean
fusion (:class:`~medmodal.models.segmentation.dmafnet.DMAFNet` with ``fusion="mean"``: per-sequence encoders,
a shared decoder for per-sequence auxiliary predictions, mean of the present sequences' features
per level, a fusion decoder with deep supervision). No code is duplicated: this is a thin subclass
that pins ``fusion``.

The PASSION parts live in the loss (:class:`~medmodal.losses.dmafnet_loss.DMAFNetLoss` options,
see ``configs/passion_brats2020.yaml``):

* ``self_distill_weight`` / ``self_distill_temperature``: self-distillation from the fused
  prediction (teacher, detached) to each present sequence's auxiliary prediction (KL divergence
  of temperature-softened softmaxes);
* ``preference_weighting``: per-batch preference-aware weights that up-weight the sequences whose
  auxiliary loss is worse than the average of the present sequences.

Differences from the published PASSION: its student for sequence ``m`` is the fusion decoder run
with only ``m`` present (an extra fusion-decoder pass per sequence); here the student is the
shared decoder's auxiliary prediction (no extra pass). Its preference weights are updated once
per epoch from tracked distillation gaps; here they are recomputed per batch from the auxiliary
losses (medmodal's DTM provides the per-epoch variant).
"""

from __future__ import annotations

from typing import Sequence

from medmodal.models.segmentation.dmafnet import DMAFNet, DMAFNetConfig
from medmodal.models.registry import register_model

__all__ = ["PASSIONNet"]


@register_model("passion")
class PASSIONNet(DMAFNet):
    """Multi-encoder network with masked-mean fusion (DMAF-Net with ``fusion="mean"``).

    Args:
        modalities: sequence names in input-channel order.
        num_classes: output classes including background.
        config / **overrides: :class:`~medmodal.models.segmentation.dmafnet.DMAFNetConfig` fields (``widths``,
            ``blocks_per_level``, ``spatial_dims``, ``deep_supervision``, ...). ``fusion`` is always
            ``"mean"`` (passing another value raises :class:`ValueError`); the transformer fields
            (``token_grid``, ``num_heads``, ``depth``, ...) have no effect.
    """

    def __init__(self, modalities: Sequence[str], num_classes: int, config: DMAFNetConfig | dict | None = None,
                 **overrides):
        fusion = overrides.pop("fusion", "mean")
        if fusion != "mean":
            raise ValueError(f"the passion model always uses fusion='mean', got fusion={fusion!r}")
        super().__init__(modalities, num_classes, config=config, **overrides, fusion="mean")
