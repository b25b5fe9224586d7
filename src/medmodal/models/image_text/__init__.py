"""Image-report pre-training networks (chest X-rays + radiology reports).

>>> from medmodal.models import create_model
>>> model = create_model("cmcgns", image_encoder="resnet18", image_size=128)   # task "image_text"
>>> losses = model.compute_losses(batch, stage=1, update_clusters=True)        # dict, "loss" = total

Modules: :mod:`.encoders` (timm image / Hugging Face text encoders), :mod:`.layers` (sentence
pooling, sigmoid cross-attention, CM-MIR decoder), :mod:`.clustering` (online k-means),
:mod:`.objectives` (the loss functions, re-exported by :mod:`medmodal.losses.image_text`),
:mod:`.base` (the shared encoders / interface), :mod:`.cmcgns` (the method, and its ablations
``cmcgns_no_cgns`` / ``cmcgns_no_mir`` / ``cmcgns_global``), the baselines :mod:`.convirt`,
:mod:`.gloria`, :mod:`.mgca`, and :mod:`.reference_loop` (per-sample comparison implementation).
"""

# the contract first: the model modules register under it
from medmodal.models.image_text import contract  # noqa: F401
from medmodal.models.image_text.base import ImageTextConfig, ImageTextModel
from medmodal.models.image_text.clustering import OnlineKMeans
from medmodal.models.image_text.cmcgns import ABLATIONS, BATCH_KEYS, CMCGNS, CMCGNSConfig, CMCGNSFeatures
from medmodal.models.image_text.convirt import ConVIRT, ConVIRTConfig
from medmodal.models.image_text.encoders import (
    ImageEncoder,
    ImageFeatures,
    TextEncoder,
    default_text_encoder_path,
    load_weight_file,
)
from medmodal.models.image_text.gloria import GLoRIA, GLoRIAConfig
from medmodal.models.image_text.layers import (
    LocalCrossAttention,
    ProjectionHead,
    ReconstructionDecoder,
    SentenceAttentionPool,
    pool_sentences,
    prediction_mlp,
    spatial_token_mask,
)
from medmodal.models.image_text.mgca import MGCA, MGCAConfig

__all__ = [
    "ABLATIONS",
    "ImageTextConfig",
    "ImageTextModel",
    "ConVIRT",
    "ConVIRTConfig",
    "GLoRIA",
    "GLoRIAConfig",
    "MGCA",
    "MGCAConfig",
    "ProjectionHead",
    "CMCGNS",
    "CMCGNSConfig",
    "CMCGNSFeatures",
    "BATCH_KEYS",
    "ImageEncoder",
    "ImageFeatures",
    "TextEncoder",
    "default_text_encoder_path",
    "load_weight_file",
    "OnlineKMeans",
    "LocalCrossAttention",
    "ReconstructionDecoder",
    "SentenceAttentionPool",
    "pool_sentences",
    "prediction_mlp",
    "spatial_token_mask",
]
