"""Old home of the model bundle writer / reader, now :mod:`medmodal.models.bundles` (kept for one
release: it sits below inference and evaluation, which load models)."""

from medmodal.errors import CheckpointError
from medmodal.models.bundles import (BUNDLE_META, BUNDLE_WEIGHTS, MODEL_PREFIX, check_modalities, load_model,
                                     model_geometry, resolve_checkpoint, save_bundle)

__all__ = ["BUNDLE_META", "BUNDLE_WEIGHTS", "MODEL_PREFIX", "CheckpointError", "check_modalities", "load_model",
           "model_geometry", "resolve_checkpoint", "save_bundle"]
