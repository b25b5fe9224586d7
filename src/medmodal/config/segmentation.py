"""The segmentation family's run config (``medmodal seg train``; DMAF-Net and its baselines).

The defaults reproduce the DMAF-Net / PASSION BraTS2020 protocol (AdamW 2e-4, weight decay
1e-4, poly(0.9), 300 epochs, batch 1, 80^3 crops, sliding window 80^3 with 50 % overlap, scored
with PASSION's evaluation protocol: ``eval.protocol: auto`` picks each dataset's reference
protocol, see :mod:`medmodal.evaluation.protocols`). The preset ``seg/train_demo_cpu`` shrinks
everything for 2 CPU cores.

This module sits in the config layer (not in ``engine/segmentation``) because the evaluation layer
reads a segmentation run's ``config.yaml`` too; :mod:`medmodal.engine.segmentation.config` is the
engine's name for it. Earlier names stay as aliases: ``ExperimentConfig`` (=
:class:`SegmentationRunConfig`), ``DataConfig``, ``ModelConfig``, ``OptimConfig``, ``TrainerConfig``,
``EvalConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

from medmodal.config.common import LoaderSettings, OptimSettings, TrainerSettings
from medmodal.config.core import load_run_config

__all__ = ["DEFAULT_MISSING_RATES", "MYOPS_MISSING_RATES", "default_missing_rates", "SegmentationDataSettings",
           "SegmentationModelSettings", "SegmentationOptimSettings", "SegmentationTrainerSettings",
           "SegmentationEvalSettings", "SegmentationRunConfig", "load_config", "config_from_dict",
           "ExperimentConfig", "DataConfig", "ModelConfig", "OptimConfig", "TrainerConfig", "EvalConfig"]

#: PASSION-style imbalanced missing rates (issue protocol: FLAIR 20 / T1 40 / T1ce 60 / T2 80 %).
DEFAULT_MISSING_RATES = {"flair": 0.2, "t1": 0.4, "t1ce": 0.6, "t2": 0.8}
#: MyoPS 2020 imbalanced missing rates (bSSFP 20 / LGE 42.5 / T2 67.5 %).
MYOPS_MISSING_RATES = {"c0": 0.2, "de": 0.425, "t2": 0.675}


def default_missing_rates(dataset: str) -> dict[str, float]:
    """The imbalanced-protocol missing rates of a dataset spec name (BraTS or MyoPS)."""
    return dict(MYOPS_MISSING_RATES if dataset.startswith("myops") else DEFAULT_MISSING_RATES)


@dataclass
class SegmentationDataSettings(LoaderSettings):
    """Volumes, splits, crops and the missing-sequence protocol (shared fields: :class:`LoaderSettings`;
    ``cache_dir`` default ``<root>/.medmodal_cache``, ``batch_size`` 1, ``num_workers`` 2)."""

    root: str = "runs/demo/data"
    layout: str = "auto"
    mapping: str | None = None
    labels: str | None = None
    dataset: str = "brats2020"
    split_fractions: tuple[float, float, float] = (219 / 369, 50 / 369, 100 / 369)
    crop_size: tuple[int, ...] = (80, 80, 80)
    samples_per_epoch: int | None = None
    missing: str = "balanced"  # full | balanced | imbalanced
    missing_rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MISSING_RATES))
    missing_csv: str | None = None  # default: written into the run folder
    missing_seed: int = 0
    foreground_ratio: float = 0.5
    # allowed affine difference between a case's files, as a fraction of the voxel size
    affine_tolerance: float = 1e-3
    # training geometry (medmodal.data.volumes.geometry): axis codes such as "RAS" (default: those
    # most training cases share) and voxel size in mm (default: median of the training cases;
    # 2 values for 2-D datasets, whose slice spacing is kept)
    orientation: str | None = None
    target_spacing: tuple[float, ...] | None = None


@dataclass
class SegmentationModelSettings:
    """``create_model(name, **kwargs)`` of a registered segmentation model."""

    name: str = "dmafnet"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class SegmentationOptimSettings(OptimSettings):
    """AdamW 2e-4, weight decay 1e-4, ``poly`` (power 0.9) per epoch (DMAF-Net / PASSION)."""

    optimizer: str = "adamw"  # adamw | adam
    lr: float = 2e-4
    weight_decay: float = 1e-4
    schedule: str = "poly"  # poly | cosine | constant (per epoch)
    poly_power: float = 0.9


@dataclass
class SegmentationTrainerSettings(TrainerSettings):
    """300 epochs, validation every 10 (shared fields: :class:`TrainerSettings`; ``precision``
    ``32-true``, ``bf16-mixed`` on GPUs)."""

    max_epochs: int = 300
    val_every_n_epochs: int = 10
    deterministic: bool = False
    channels_last: bool = False  # channels_last_3d memory format (faster 3-D convs: bf16 on GPUs, oneDNN on CPUs)
    compile: bool = False  # torch.compile the training step (forward_train + loss) as one graph
    # torch.compile mode: default | reduce-overhead (CUDA graphs) | max-autotune[-no-cudagraphs]
    compile_mode: str = "default"


@dataclass
class SegmentationEvalSettings:
    roi_size: tuple[int, ...] = (80, 80, 80)
    overlap: float = 0.5
    sw_batch_size: int = 2
    # how predictions are scored: auto (passion for BraTS, myops for MyoPS) | passion | brats-challenge |
    # monai-max-directed | myops (medmodal.evaluation.protocols); runs without the field: monai-max-directed
    protocol: str = "auto"
    et_min_voxels: int | None = None  # ET post-processing threshold; None: the protocol's (500)
    hd95: bool = True
    val_subsets: str = "full"  # full | all: subsets scored during validation


@dataclass
class SegmentationRunConfig:
    """One segmentation training run: ``data``, ``model``, ``loss``, ``dtm``, ``optim``, ``trainer``, ``eval``."""

    family: ClassVar[str] = "seg"

    data: SegmentationDataSettings = field(default_factory=SegmentationDataSettings)
    model: SegmentationModelSettings = field(default_factory=SegmentationModelSettings)
    loss: dict[str, Any] = field(default_factory=dict)  # DMAFNetLossConfig fields
    dtm: dict[str, Any] = field(default_factory=dict)  # DTMConfig fields
    optim: SegmentationOptimSettings = field(default_factory=SegmentationOptimSettings)
    trainer: SegmentationTrainerSettings = field(default_factory=SegmentationTrainerSettings)
    eval: SegmentationEvalSettings = field(default_factory=SegmentationEvalSettings)
    out_dir: str = "runs/dmafnet"

    def validate(self) -> None:
        """Refuse a config that cannot run (one line).

        Raises:
            ConfigError: an unknown optimiser or schedule, a learning rate <= 0, an epoch count or period
                below 1.
        """
        self.optim.validate()
        self.trainer.validate()


#: earlier names (kept for one release)
ExperimentConfig = SegmentationRunConfig
DataConfig = SegmentationDataSettings
ModelConfig = SegmentationModelSettings
OptimConfig = SegmentationOptimSettings
TrainerConfig = SegmentationTrainerSettings
EvalConfig = SegmentationEvalSettings


def config_from_dict(data: dict | None, where: str = "config") -> SegmentationRunConfig:
    """A segmentation run config from a plain mapping (not validated)."""
    return load_run_config(SegmentationRunConfig, data=data or {}, where=where, validate=False)


def load_config(path: str | Path | None = None, overrides: Sequence[str] | None = None) -> SegmentationRunConfig:
    """Read a segmentation YAML config (or the defaults when ``path`` is None), apply ``a.b=value``
    overrides and validate it (:func:`medmodal.config.core.load_run_config`)."""
    return load_run_config(SegmentationRunConfig, path, overrides=overrides or ())
