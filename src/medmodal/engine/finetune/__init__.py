"""Chest X-ray downstream fine-tuning engine (``medmodal cxr finetune``): linear classification,
U-Net segmentation and YOLOv3 detection on an exported image encoder, MGCA / CM-CGNS protocol.

* :mod:`.config`: one config dataclass per task (the references' defaults), YAML presets in
  ``medmodal/configs/cxr/finetune_*.yaml``;
* :mod:`.data`: splits, label fraction, image cache, datasets and loaders;
* :mod:`.features`: the cached-feature fast path of the linear probe;
* :mod:`.modules`: the Lightning modules; :mod:`.metrics`: AUROC, reference Dice, mAP;
* :mod:`.train`: :func:`run_finetune` (run folder, best-checkpoint test, metrics.json, results.csv);
* :mod:`.speed`: cached-feature vs re-encode-every-epoch linear-probe benchmark.
"""

from medmodal.engine.finetune.config import (TASK_CONFIGS, ClassificationConfig, DetectionConfig, FinetuneConfig,
                                             SegmentationConfig, load_finetune_config)
from medmodal.engine.finetune.train import run_finetune

__all__ = ["TASK_CONFIGS", "ClassificationConfig", "DetectionConfig", "FinetuneConfig", "SegmentationConfig",
           "load_finetune_config", "run_finetune"]
