"""Training losses: Dice+CE segmentation, masked per-sequence auxiliary loss, deep supervision,
DMAF-Net relation / prototype distillation, and the combined DMAF-Net objective."""

from medmodal.losses.distillation import (
    CovarianceConsistencyLoss,
    MaskedAttentionAlignmentLoss,
    PrototypeDistillationLoss,
    class_weights_at,
    reduce_pair_loss,
)
from medmodal.losses.dmafnet_loss import DMAFNetLoss, DMAFNetLossConfig
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
]
