"""Image-report pre-training losses (CM-CGNS and the ConVIRT / GLoRIA / MGCA-style baselines).

The implementations live in :mod:`medmodal.models.image_text.objectives` and
:mod:`medmodal.models.image_text.clustering` (a model computes its own objective, and the package
layering lets ``losses`` import ``models`` but not the reverse); this module is their public home:

* :func:`info_nce_loss` + :func:`gather_with_grad`: symmetric CLIP/InfoNCE, negatives gathered
  across processes with gradients (ConVIRT's and every method's global term);
* :func:`simsiam_loss`: negative-cosine SimSiam with stop-gradient (PRIOR / CM-CGNS local image loss);
* :func:`cluster_guided_info_nce` (+ :class:`OnlineKMeans`, :func:`bidirectional_margin_loss`):
  CM-CGNS local report loss with cluster-guided hard negatives and false-negative margins;
* :func:`reconstruction_l1`: CM-MIR pixel loss;
* :func:`word_region_attention_loss`: GLoRIA's word-region attention local loss;
* :func:`token_alignment_loss`: MGCA's cross-modal token alignment;
* :func:`sinkhorn_knopp` + :func:`prototype_swap_loss`: MGCA's cross-modal prototype alignment.

Shared building blocks for local alignment (sentence pooling, sigmoid cross-attention) are in
:mod:`medmodal.models.image_text.layers`.
"""

from medmodal.models.image_text.clustering import OnlineKMeans
from medmodal.models.image_text.objectives import (
    LocalReportLoss,
    bidirectional_margin_loss,
    cluster_guided_info_nce,
    gather_with_grad,
    info_nce_loss,
    prototype_swap_loss,
    reconstruction_l1,
    simsiam_loss,
    sinkhorn_knopp,
    token_alignment_loss,
    word_region_attention_loss,
)

__all__ = [
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
