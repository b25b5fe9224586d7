"""Image-report pre-training objective (CM-CGNS and the ConVIRT / GLoRIA / MGCA-style baselines).

:class:`ImageTextObjective` (``loss.name: image_text``, the default of the image-text pre-training
engine) is the objective contract of :mod:`medmodal.losses.base` for every registered
``image_text`` model::

    out = ImageTextObjective()(batch, StepContext(model=model, stage=1 | 2, update=True | False))
    # = model.compute_losses(batch, stage=..., update_clusters=...): {"loss": weighted total, "<term>_loss": ...}

An image-text model computes its own method's terms (the contract of
:mod:`medmodal.models.image_text.contract`): they need its heads, predictor, prototypes and k-means
state, and the layer order (``layers < models < losses``) lets a model use building blocks below it
only. The loss functions therefore stay importable from below the models:

* :func:`info_nce_loss` + :func:`gather_with_grad`: symmetric CLIP/InfoNCE, negatives gathered
  across processes with gradients (:mod:`medmodal.layers.contrastive`; ConVIRT's and every
  method's global term);
* from :mod:`medmodal.models.image_text.objectives`: :func:`simsiam_loss` (PRIOR / CM-CGNS local
  image loss); :func:`cluster_guided_info_nce` (+ :class:`OnlineKMeans`,
  :func:`bidirectional_margin_loss`): CM-CGNS local report loss with cluster-guided hard negatives
  and false-negative margins; :func:`reconstruction_l1`: CM-MIR pixel loss;
  :func:`word_region_attention_loss`: GLoRIA's local loss; :func:`token_alignment_loss`: MGCA's
  cross-modal token alignment; :func:`sinkhorn_knopp` + :func:`prototype_swap_loss`: MGCA's
  cross-modal prototype alignment.

They are re-exported here (their documented public path).
"""

from collections.abc import Mapping

import torch

from medmodal.layers.contrastive import gather_with_grad, info_nce_loss
from medmodal.losses.base import Objective, StepContext, register_objective
from medmodal.models.image_text.clustering import OnlineKMeans
from medmodal.models.image_text.objectives import (
    LocalReportLoss,
    bidirectional_margin_loss,
    cluster_guided_info_nce,
    prototype_swap_loss,
    reconstruction_l1,
    simsiam_loss,
    sinkhorn_knopp,
    token_alignment_loss,
    word_region_attention_loss,
)

__all__ = [
    "ImageTextObjective",
    "OnlineKMeans",
    "LocalReportLoss",
    "bidirectional_margin_loss",
    "cluster_guided_info_nce",
    "gather_with_grad",
    "info_nce_loss",
    "reconstruction_l1",
    "simsiam_loss",
    "word_region_attention_loss",
    "token_alignment_loss",
    "sinkhorn_knopp",
    "prototype_swap_loss",
]


@register_objective("image_text")
class ImageTextObjective(Objective):
    """The objective of a registered ``image_text`` model (module docstring); no parameters of its own.

    ``forward(batch, context)``: ``batch`` the model batch (``image``, ``input_ids``,
    ``attention_mask``, ``sentence_index``, ``num_sentences``), ``context.model`` the model,
    ``context.stage`` 1 or 2, ``context.update`` whether training-only state (k-means) may move
    (``None``: ``model.training``).

    Raises:
        ValueError: ``context.model`` missing; the model's own errors (bad stage, missing batch key).
    """

    def forward(self, batch: Mapping[str, torch.Tensor], context: StepContext) -> dict[str, torch.Tensor]:
        model = context.model
        if model is None:
            raise ValueError("the image_text objective needs context.model (the image-text model)")
        update = model.training if context.update is None else bool(context.update)
        return model.compute_losses(batch, stage=context.stage, update_clusters=update)
