"""Old home of segmentation inference, now :mod:`medmodal.inference.segmentation` (kept for one release)."""

from medmodal.inference.segmentation import (inference_precision, native_classes, predict_probabilities,
                                             predict_probabilities_all_subsets, resolve_device, sliding_window,
                                             supports_shared_encoding)

__all__ = ["inference_precision", "native_classes", "predict_probabilities", "predict_probabilities_all_subsets",
           "resolve_device", "sliding_window", "supports_shared_encoding"]
