"""The segmentation engine's run config: :class:`SegmentationRunConfig` and its ``*Settings`` sections.

Defined in :mod:`medmodal.config.segmentation` (the evaluation layer, below the engine, reads a
segmentation run's ``config.yaml`` too); this module is the engine's name for them, as
``engine/image_text/config.py``, ``engine/finetune/config.py`` and ``engine/endoscopy/config.py`` are
for the other families. Presets: ``src/medmodal/configs/seg/``.

``medmodal seg train`` trains four kinds of segmentation with one command; the config's ``task`` key
picks the run config class (:func:`load_train_config`): ``volumes`` (the default: 3-D multi-sequence
MRI, :class:`SegmentationRunConfig`, DMAF-Net and its baselines), ``vessels`` (2-D retinal fundus
photographs, :class:`medmodal.engine.fundus.config.VesselRunConfig`, DGSSA and its baselines) or ``2d``
(2-D multi-class slices and photographs: Synapse, ACDC, polyps, meniscus slices, a folder;
:class:`medmodal.engine.seg2d.config.Seg2DRunConfig`, MSLAU-Net, the semi-supervised methods, ERANet) or ``3d``
(one-channel volumes: LA2018, BHSD-style CT, a NIfTI folder; :class:`medmodal.engine.seg3d.config.Seg3DRunConfig`,
V-Net, the semi-supervised methods, SWDL-Net).
"""

from pathlib import Path
from typing import Sequence

from medmodal.config.segmentation import (DEFAULT_MISSING_RATES, MYOPS_MISSING_RATES, ExperimentConfig,
                                          SegmentationDataSettings, SegmentationEvalSettings,
                                          SegmentationModelSettings, SegmentationOptimSettings, SegmentationRunConfig,
                                          SegmentationTrainerSettings, default_missing_rates, load_config)
from medmodal.config.core import load_run_config, read_yaml_mapping, resolve_source
from medmodal.engine.fundus.config import VesselRunConfig
from medmodal.engine.seg2d.config import Seg2DRunConfig
from medmodal.engine.seg3d.config import Seg3DRunConfig
from medmodal.errors import ConfigError

#: ``task`` -> the run config class ``medmodal seg train`` builds for it
TASK_CONFIGS = {SegmentationRunConfig.TASK: SegmentationRunConfig, VesselRunConfig.TASK: VesselRunConfig,
                Seg2DRunConfig.TASK: Seg2DRunConfig, Seg3DRunConfig.TASK: Seg3DRunConfig}


def load_train_config(path: str | Path | None = None, preset: str | None = None,
                      overrides: Sequence[str] | None = None):
    """The run config of ``medmodal seg train``: read the YAML file or packaged preset (else the
    defaults of a volume run), apply the ``a.b=value`` overrides, pick the class by the ``task`` key
    (:data:`TASK_CONFIGS`; absent: ``volumes``, as every config written before the key existed) and
    validate it (:func:`medmodal.config.load_run_config`).

    Raises:
        ConfigError: an unknown task, an unknown key, a bad value (one line each).
        FileNotFoundError: the file or preset does not exist.
    """
    source = resolve_source(path, preset, SegmentationRunConfig.family)
    data = read_yaml_mapping(source, overrides)
    task = data.get("task", SegmentationRunConfig.TASK)
    task = str(task).lower() if isinstance(task, str) else task
    if task not in TASK_CONFIGS:
        raise ConfigError(f"{source or 'config'}: unknown task {task!r}; choose one of {', '.join(TASK_CONFIGS)}")
    if "task" not in data:
        hints = _other_task_keys(data)
        if hints:
            raise ConfigError(f"{source or 'config'}: {', '.join(hints)} belong to a vessel config, but the config "
                              f"has no task key (a volume run); add `task: vessels`")
    return load_run_config(TASK_CONFIGS[task], data=data, where=str(source or "config"))

def _other_task_keys(data: dict) -> list[str]:
    """Keys of ``data`` that only a vessel config knows (``data.diameter``, ``structure``, ...)."""
    from dataclasses import fields

    vessel, volume = VesselRunConfig(), SegmentationRunConfig()
    found = [k for k in data if not hasattr(volume, k) and hasattr(vessel, k)]
    section = data.get("data")
    if isinstance(section, dict):
        ours = {f.name for f in fields(volume.data)}
        theirs = {f.name for f in fields(vessel.data)}
        found += [f"data.{k}" for k in section if k not in ours and k in theirs]
    return found


__all__ = ["SegmentationRunConfig", "SegmentationDataSettings", "SegmentationModelSettings",
           "SegmentationOptimSettings", "SegmentationTrainerSettings", "SegmentationEvalSettings", "ExperimentConfig",
           "DEFAULT_MISSING_RATES", "MYOPS_MISSING_RATES", "default_missing_rates", "load_config", "TASK_CONFIGS",
           "load_train_config"]
