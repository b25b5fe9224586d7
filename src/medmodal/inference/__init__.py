"""Inference below evaluation (MONAI's inferers idea): sliding-window prediction for any subset of
sequences, one encoder pass shared by all subsets where the model allows it, the mapping of
probabilities back to a case's native grid, and the post-processing of class maps.

Layer: imports only ``errors``, ``data``, ``models`` and lower; ``evaluation`` and ``engine`` build on it.

* :mod:`medmodal.inference.segmentation` - :func:`resolve_device`, :func:`inference_precision`,
  :func:`sliding_window`, :func:`predict_probabilities`, :func:`predict_probabilities_all_subsets`,
  :func:`supports_shared_encoding`, :func:`native_classes` (moved from
  ``medmodal.engine.segmentation.inference``, which re-exports them for one release).
* :mod:`medmodal.inference.postprocess` - :func:`postprocess_et` (moved from
  ``medmodal.evaluation.metrics``, which still imports it).
* :mod:`medmodal.inference.pix2pix` - :func:`render_pseudo_fundus` (pseudo-fundus images from vessel
  masks with a pix2pix generator; imported on use).
"""

from medmodal.inference.postprocess import postprocess_et
from medmodal.inference.segmentation import (inference_precision, native_classes, predict_probabilities,
                                             predict_probabilities_all_subsets, resolve_device, sliding_window,
                                             supports_shared_encoding)

__all__ = ["inference_precision", "native_classes", "postprocess_et", "predict_probabilities",
           "predict_probabilities_all_subsets", "resolve_device", "sliding_window", "supports_shared_encoding"]
