"""MICS (paired white-light / narrow-band endoscopy): pre-training and fine-tuning models.

>>> from medmodal.models import create_model
>>> pre = create_model("mics_pretrain", arch="vit_tiny_patch16_224", image_size=32,
...                    encoder_kwargs={"patch_size": 8, "depth": 1}, queue_size=16, decoder_depth=1)
>>> clf = create_model("mics", num_classes=6, arch="vit_tiny_patch16_224", image_size=32,
...                    encoder_kwargs={"patch_size": 8, "depth": 1}, fusion_depth=1)
"""

# the contract first: the model modules register under it
from medmodal.models.endoscopy import contract  # noqa: F401
from medmodal.models.endoscopy.blocks import (
    CrossAttentionBlock,
    FeatureStatisticsShift,
    FusionTransformer,
    TokenEncoder,
    grad_reverse,
)
from medmodal.models.endoscopy.classifier import MICSClassifier, MICSClassifierConfig
from medmodal.models.endoscopy.pretrain import MaskedDecoder, MICSPretrainConfig, MICSPretrainer

__all__ = ["CrossAttentionBlock", "FeatureStatisticsShift", "FusionTransformer", "TokenEncoder", "grad_reverse",
           "MICSClassifier", "MICSClassifierConfig", "MaskedDecoder", "MICSPretrainConfig", "MICSPretrainer"]
