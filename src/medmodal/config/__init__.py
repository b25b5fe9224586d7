"""Configs: the shared machinery (:mod:`.core`), the sections every family extends (:mod:`.common`)
and the segmentation family's run config (:mod:`.segmentation`).

Every name the former module ``medmodal/config.py`` exported is still importable from here.
"""

from medmodal.config.common import LoaderSettings, OptimSettings, TrainerSettings
from medmodal.config.core import (LEGACY_KEYS, LEGACY_PRESETS, apply_override, config_to_dict, dataclass_from_dict,
                                  load_run_config, packaged_config, preset_names, read_yaml_mapping, save_config)
from medmodal.config.segmentation import (DEFAULT_MISSING_RATES, MYOPS_MISSING_RATES, DataConfig, EvalConfig,
                                          ExperimentConfig, ModelConfig, OptimConfig, SegmentationRunConfig,
                                          TrainerConfig, config_from_dict, default_missing_rates, load_config)

__all__ = ["LoaderSettings", "OptimSettings", "TrainerSettings", "LEGACY_KEYS", "LEGACY_PRESETS", "apply_override",
           "config_to_dict", "dataclass_from_dict", "load_run_config", "packaged_config", "preset_names",
           "read_yaml_mapping", "save_config", "DEFAULT_MISSING_RATES", "MYOPS_MISSING_RATES", "DataConfig",
           "EvalConfig", "ExperimentConfig", "ModelConfig", "OptimConfig", "SegmentationRunConfig", "TrainerConfig",
           "config_from_dict", "default_missing_rates", "load_config"]
