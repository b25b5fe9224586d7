"""MICS engine: paired WLI / NBI pre-training and few-label classification fine-tuning
(supervised or FixMatch) with Lightning; see :mod:`medmodal.engine.endoscopy.train` for the run folders."""

from medmodal.engine.endoscopy.config import (
    MICSFinetuneRunConfig,
    MICSPretrainRunConfig,
    load_finetune_config,
    load_pretrain_config,
)
from medmodal.engine.endoscopy.train import run_finetune, run_pretrain

__all__ = ["MICSFinetuneRunConfig", "MICSPretrainRunConfig", "load_finetune_config", "load_pretrain_config",
           "run_finetune", "run_pretrain"]
