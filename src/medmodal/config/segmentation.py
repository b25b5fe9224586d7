"""The segmentation family's run config (``medmodal seg train``; DMAF-Net and its baselines).

The defaults reproduce the DMAF-Net / PASSION BraTS2020 protocol (AdamW 2e-4, weight decay
1e-4, poly(0.9), 300 epochs, batch 1, 80^3 crops, sliding window 80^3 with 50 % overlap, scored
with PASSION's evaluation protocol: ``eval.protocol: auto`` picks each dataset's reference
protocol, see :mod:`medmodal.evaluation.protocols`). The preset ``seg/train_demo_cpu`` shrinks
everything for 2 CPU cores.

This module sits in the config layer (not in ``engine/segmentation``) because the evaluation layer
reads a segmentation run's ``config.yaml`` too; :mod:`medmodal.engine.segmentation.config` is the
engine's name for it. Aliases kept for code written against 0.1.0: ``ExperimentConfig`` (=
:class:`SegmentationRunConfig`), ``DataConfig``, ``ModelConfig``, ``OptimConfig``, ``TrainerConfig``,
``EvalConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

from medmodal.config.common import LoaderSettings, OptimSettings, TrainerSettings
from medmodal.config.core import load_run_config
from medmodal.errors import ConfigError

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
    ``cache_dir`` default ``<root>/.medmodal_cache``, ``batch_size`` 1, ``num_workers`` 2).

    Attributes:
        root: the dataset folder (``--data`` overrides it).
        layout: ``auto`` | ``brats2020`` | ``brats2023`` | ``myops2020`` | ``nnunet`` | ``msd`` | ``mapping``
            (:mod:`medmodal.data.volumes.layouts`).
        mapping: layout ``mapping``: one glob per sequence, e.g. ``flair=*_fla*.nii.gz,t1=*_t1_*.nii.gz,seg=*seg*``.
        labels: label convention of the files (``brats2020`` | ``brats2023`` | ``myops2020``; ``None``: the layout's).
        dataset: dataset spec (``brats2020`` | ``brats2023`` | ``myops2020``): sequences, classes, regions.
        split_fractions: train / val / test fractions of the drawn split (default: 219 / 50 / 100 of 369 cases,
            the PASSION split of BraTS2020).
        crop_size: training crop in voxels (2 values for 2-D datasets).
        samples_per_epoch: crops drawn per training epoch (``None``: one per training case).
        missing: training protocol of missing sequences: ``full`` (all present) | ``balanced`` (a uniformly
            random non-empty subset per sample) | ``imbalanced`` (a fixed subset per case, ``missing_rates``).
        missing_rates: per-sequence missing rate of the ``imbalanced`` protocol (default: the dataset's).
        missing_csv: the case -> available sequences assignment file (``None``: written into the run folder).
        missing_seed: seed of the ``imbalanced`` assignment.
        foreground_ratio: probability that a training crop is centred on a labelled voxel.
        target_spacing: training voxel size in mm (``None``: the median of the training cases).
    """

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
    """``create_model(name, **kwargs)`` of a registered segmentation model.

    Attributes:
        name: a registered segmentation model (:func:`medmodal.models.registry.list_models`), e.g.
            ``dmafnet``, ``passion``.
        kwargs: keyword arguments of the model's constructor (e.g. ``widths: [8, 16, 32, 64]``).
    """

    name: str = "dmafnet"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class SegmentationOptimSettings(OptimSettings):
    """AdamW 2e-4, weight decay 1e-4, ``poly`` (power 0.9) per epoch (DMAF-Net / PASSION).

    Attributes:
        poly_power: exponent of the ``poly`` schedule, ``(1 - epoch / max_epochs) ** poly_power``.
    """

    optimizer: str = "adamw"  # adamw | adam
    lr: float = 2e-4
    weight_decay: float = 1e-4
    schedule: str = "poly"  # poly | cosine | constant (per epoch)
    poly_power: float = 0.9


@dataclass
class SegmentationTrainerSettings(TrainerSettings):
    """300 epochs, validation every 10 (shared fields: :class:`TrainerSettings`; ``precision``
    ``32-true``, ``bf16-mixed`` on GPUs).

    Attributes:
        max_epochs: training epochs.
        deterministic: Lightning's ``deterministic`` (reproducible kernels, slower).
    """

    max_epochs: int = 300
    val_every_n_epochs: int = 10
    deterministic: bool = False
    channels_last: bool = False  # channels_last_3d memory format (faster 3-D convs: bf16 on GPUs, oneDNN on CPUs)
    compile: bool = False  # torch.compile the training step (forward_train + loss) as one graph
    # torch.compile mode: default | reduce-overhead (CUDA graphs) | max-autotune[-no-cudagraphs]
    compile_mode: str = "default"


@dataclass
class SegmentationEvalSettings:
    """Sliding-window inference and scoring (validation and ``medmodal seg evaluate``).

    Attributes:
        roi_size: sliding-window size in voxels.
        overlap: overlap of neighbouring windows (0.5 = 50 %).
        sw_batch_size: windows per forward pass.
        hd95: also compute HD95 (slower).
    """

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
    """One segmentation training run: ``data``, ``model``, ``loss``, ``dtm``, ``optim``, ``trainer``, ``eval``.

    Attributes:
        loss: :class:`~medmodal.losses.dmafnet_loss.DMAFNetLossConfig` fields (the DMAF-Net loss; empty: its defaults).
        dtm: :class:`~medmodal.engine.segmentation.dtm.DTMConfig` fields (the dynamic training monitor: per-sequence
            loss weights and gradient scales).
        out_dir: the run folder (``--out`` overrides it).
        task: ``volumes`` (always: the key tells a volume run's ``config.yaml`` from a 2-D vessel run's,
            ``task: vessels``, :mod:`medmodal.engine.segmentation.config`).
    """

    family: ClassVar[str] = "seg"
    #: the value of ``task`` a config of this class holds
    TASK: ClassVar[str] = "volumes"

    task: str = "volumes"

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
                below 1, a ``task`` other than ``volumes``.
        """
        if self.task != self.TASK:
            raise ConfigError(f"task: a volume segmentation config has task {self.TASK!r}, got {self.task!r}")
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
