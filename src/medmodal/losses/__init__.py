"""Training losses, the single home of every method's objective.

The objective contract (:mod:`medmodal.losses.base`): ``objective(inputs, StepContext) -> {"loss", <terms>}``,
built by name (``loss.name``) with :func:`build_objective`. Registered objectives: ``dmafnet``
(:class:`DMAFNetLoss`, every segmentation model; baselines turn its switches off), ``image_text``
(:class:`~medmodal.losses.image_text.ImageTextObjective`), ``mics``
(:class:`~medmodal.losses.paired.MICSObjective`), ``pix2pix``
(:class:`~medmodal.losses.pix2pix.Pix2PixObjective`).

Parts: Dice+CE segmentation, masked per-sequence auxiliary loss, deep supervision, DMAF-Net relation /
prototype distillation, PASSION terms, the image-report pre-training losses
(:mod:`medmodal.losses.image_text`), the paired-view MICS terms (:mod:`medmodal.losses.paired`).
"""

from medmodal.losses.base import (
    Objective,
    StepContext,
    build_objective,
    get_objective_class,
    list_objectives,
    register_objective,
    split_objective_config,
)

from medmodal.losses.distillation import (
    CovarianceConsistencyLoss,
    MaskedAttentionAlignmentLoss,
    PrototypeDistillationLoss,
    class_weights_at,
    reduce_pair_loss,
)
from medmodal.losses.dmafnet_loss import DMAFNetLoss, DMAFNetLossConfig
from medmodal.losses.image_text import (
    ImageTextObjective,
    OnlineKMeans,
    bidirectional_margin_loss,
    cluster_guided_info_nce,
    gather_with_grad,
    info_nce_loss,
    reconstruction_l1,
    simsiam_loss,
)
from medmodal.losses.paired import MICSObjective
from medmodal.losses.passion import preference_weights, self_distillation_loss
from medmodal.losses.pix2pix import Pix2PixObjective
from medmodal.losses.segmentation import (
    SegmentationLoss,
    deep_supervision_loss,
    masked_aux_loss,
    masked_mean,
    resize_labels,
)

__all__ = [
    "Objective",
    "StepContext",
    "build_objective",
    "get_objective_class",
    "list_objectives",
    "register_objective",
    "split_objective_config",
    "ImageTextObjective",
    "MICSObjective",
    "Pix2PixObjective",
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
