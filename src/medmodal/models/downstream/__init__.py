"""Chest X-ray downstream models around an exported image encoder (MGCA / CM-CGNS protocol).

* :class:`DownstreamEncoder` (:mod:`.encoder`): a timm backbone loaded by
  :func:`medmodal.models.encoder_export.load_image_encoder`, with the input renormalisation
  from the data's 0.5 / 0.5 to the encoder's own mean / std; pooled feature and C3-C5 maps.
* :class:`LinearClassifier` (:mod:`.linear`): pooled feature -> Dropout -> Linear (``SSLEvaluator``).
* :class:`UNetSegmenter` (:mod:`.unet`): ``segmentation_models_pytorch.Unet`` whose encoder holds
  the exported weights.
* :class:`YOLOv3Detector` (:mod:`.yolo`): C3-C5 of the backbone + a YOLOv3 head (3 scales x 3
  anchors), :func:`decode_predictions`, :func:`postprocess_detections` (torchvision NMS).

Every model has an ``encoder`` (frozen, or trained with the encoder learning rate, by the engine)
and a ``head`` (always trained).
"""

# the contract first: the heads register under it
from medmodal.models.downstream import contract  # noqa: F401
from medmodal.models.downstream.encoder import DownstreamEncoder, InputNormalization
from medmodal.models.downstream.linear import LinearClassifier
from medmodal.models.downstream.unet import UNetSegmenter
from medmodal.models.downstream.yolo import (COCO_ANCHORS, YOLOv3Detector, YOLOv3Head, decode_predictions,
                                             postprocess_detections, scaled_anchors)

__all__ = ["DownstreamEncoder", "InputNormalization", "LinearClassifier", "UNetSegmenter", "YOLOv3Detector",
           "YOLOv3Head", "COCO_ANCHORS", "decode_predictions", "postprocess_detections", "scaled_anchors"]
