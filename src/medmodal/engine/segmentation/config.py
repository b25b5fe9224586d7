"""The segmentation engine's run config: :class:`SegmentationRunConfig` and its ``*Settings`` sections.

Defined in :mod:`medmodal.config.segmentation` (the evaluation layer, below the engine, reads a
segmentation run's ``config.yaml`` too); this module is the engine's name for them, as
``engine/image_text/config.py``, ``engine/finetune/config.py`` and ``engine/endoscopy/config.py`` are
for the other families. Presets: ``src/medmodal/configs/seg/``.
"""

from medmodal.config.segmentation import (DEFAULT_MISSING_RATES, MYOPS_MISSING_RATES, ExperimentConfig,
                                          SegmentationDataSettings, SegmentationEvalSettings,
                                          SegmentationModelSettings, SegmentationOptimSettings, SegmentationRunConfig,
                                          SegmentationTrainerSettings, default_missing_rates, load_config)

__all__ = ["SegmentationRunConfig", "SegmentationDataSettings", "SegmentationModelSettings",
           "SegmentationOptimSettings", "SegmentationTrainerSettings", "SegmentationEvalSettings", "ExperimentConfig",
           "DEFAULT_MISSING_RATES", "MYOPS_MISSING_RATES", "default_missing_rates", "load_config"]
