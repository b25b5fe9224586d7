"""Training losses: Dice+CE segmentation, masked per-sequence auxiliary loss, deep supervision,
DMAF-Net relation / prototype distillation, the combined DMAF-Net objective, and the image-report
pre-training losses (:mod:`medmodal.losses.image_text`)."""

from medmodal.losses.distillation import (
    CovarianceConsistencyLoss,
    MaskedAttentionAlignmentLoss,
    PrototypeDistillationLoss,
    class_weights_at,
    reduce_pair_loss,
)
from medmodal.losses.dmafnet_loss import DMAFNetLoss, DMAFNetLossConfig
from medmodal.losses.image_text import (
    OnlineKMeans,
    bidirectional_margin_loss,
    cluster_guided_info_nce,
    gather_with_grad,
    info_nce_loss,
    reconstruction_l1,
    simsiam_loss,
)
from medmodal.losses.passion import preference_weights, self_distillation_loss
from medmodal.losses.segmentation import (
    SegmentationLoss,
    deep_supervision_loss,
    masked_aux_loss,
    masked_mean,
    resize_labels,
)

__all__ = [
    "SegmentationLoss",
    "masked_aux_loss",
    "masked_mean",
    "deep_supervision_loss",
    "resize_labels",
    "CovarianceConsistencyLoss",
    "MaskedAttentionAlignmentLoss",
    "PrototypeDistillationLoss",
    "class_weights_at",
    "reduce_pair_loss",
    "DMAFNetLoss",
    "DMAFNetLossConfig",
    "self_distillation_loss",
    "preference_weights",
    "info_nce_loss",
    "gather_with_grad",
    "simsiam_loss",
    "bidirectional_margin_loss",
    "cluster_guided_info_nce",
    "reconstruction_l1",
    "OnlineKMeans",
]
