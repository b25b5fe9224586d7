"""Segmentation networks for incomplete multi-sequence inputs, built through a registry.

>>> from medmodal.models import create_model, list_models
>>> model = create_model("dmafnet", modalities=("flair", "t1", "t1ce", "t2"), num_classes=4)

Every model: ``forward(images [B, M, *S], modality_mask [B, M] bool) -> logits [B, K, *S]``.
"""

from medmodal.models.registry import create_model, get_model_factory, list_models, register_model

# importing a model module registers it
from medmodal.models.segmentation.dmafnet import DMAFNet, DMAFNetConfig  # noqa: E402
from medmodal.models.segmentation.mmformer import MMFormer, MMFormerConfig  # noqa: E402
from medmodal.models.segmentation.passion import PASSIONNet  # noqa: E402
from medmodal.models.segmentation.rfnet import RFNet, RFNetConfig  # noqa: E402
from medmodal.models.segmentation.zero_unet import ZeroUNet, ZeroUNetConfig  # noqa: E402

__all__ = ["create_model", "list_models", "register_model", "get_model_factory", "DMAFNet", "DMAFNetConfig",
           "MMFormer", "MMFormerConfig", "PASSIONNet", "RFNet", "RFNetConfig", "ZeroUNet", "ZeroUNetConfig"]
