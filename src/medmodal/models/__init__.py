"""Networks built through one registry, tagged by task.

>>> from medmodal.models import create_model, list_models
>>> model = create_model("dmafnet", modalities=("flair", "t1", "t1ce", "t2"), num_classes=4)
>>> list_models(task="segmentation"), list_models(task="image_text")

Segmentation models (:mod:`medmodal.models.segmentation`):
``forward(images [B, M, *S], modality_mask [B, M] bool) -> logits [B, K, *S]``.
Image-report models (:mod:`medmodal.models.image_text`): ``compute_losses(batch, stage=..., update_clusters=...)``,
``encode_image``, ``encode_text``. timm and transformers are imported when such a model is built.
Paired-view models (:mod:`medmodal.models.endoscopy`, contract ``paired_views``, old tag ``endoscopy``) and
the CXR downstream heads (:mod:`medmodal.models.downstream`, contract ``heads``). Each family registers
its contract (:func:`~medmodal.models.registry.register_contract`) next to its models.
"""

from medmodal.models.registry import create_model, get_model_factory, get_model_task, list_models, register_model

# importing a model module registers it
from medmodal.models.segmentation.dmafnet import DMAFNet, DMAFNetConfig  # noqa: E402
from medmodal.models.segmentation.mmformer import MMFormer, MMFormerConfig  # noqa: E402
from medmodal.models.segmentation.passion import PASSIONNet  # noqa: E402
from medmodal.models.segmentation.rfnet import RFNet, RFNetConfig  # noqa: E402
from medmodal.models.segmentation.zero_unet import ZeroUNet, ZeroUNetConfig  # noqa: E402
from medmodal.models.segmentation.mslau_net import MSLAUNet, MSLAUNetConfig  # noqa: E402
from medmodal.models.segmentation.unet2d import UNet2D, UNet2DConfig  # noqa: E402
from medmodal.models.segmentation.transunet import TransUNet, TransUNetConfig  # noqa: E402
from medmodal.models.segmentation.swin_unet import SwinUNet, SwinUNetConfig  # noqa: E402
from medmodal.models.segmentation.swdl_net import SWDLNet, SWDLNetConfig  # noqa: E402
from medmodal.models.fundus.vessel_net import VesselNet, VesselNetConfig  # noqa: E402
from medmodal.models.image_text.cmcgns import CMCGNS, CMCGNSConfig  # noqa: E402
from medmodal.models.downstream import LinearClassifier, UNetSegmenter, YOLOv3Detector  # noqa: E402
from medmodal.models.endoscopy import (  # noqa: E402
    MICSClassifier,
    MICSClassifierConfig,
    MICSPretrainConfig,
    MICSPretrainer,
)

__all__ = ["create_model", "list_models", "register_model", "get_model_factory", "get_model_task", "DMAFNet",
           "DMAFNetConfig", "MMFormer", "MMFormerConfig", "PASSIONNet", "RFNet", "RFNetConfig", "ZeroUNet",
           "ZeroUNetConfig", "MSLAUNet", "MSLAUNetConfig", "UNet2D", "UNet2DConfig", "TransUNet",
           "TransUNetConfig", "SwinUNet", "SwinUNetConfig", "SWDLNet", "SWDLNetConfig", "VesselNet", "VesselNetConfig",
           "CMCGNS", "CMCGNSConfig",
           "MICSClassifier", "MICSClassifierConfig", "MICSPretrainConfig", "MICSPretrainer",
           "LinearClassifier", "UNetSegmenter", "YOLOv3Detector"]
