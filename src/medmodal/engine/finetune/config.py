"""Fine-tuning configs: one dataclass per task, defaults = the MGCA / CM-CGNS downstream protocol.

Sources: ``cgns_finetuner.py`` / ``ssl_finetuner.py`` (linear classification),
``cgns_segmenter.py`` / ``ssl_segmenter.py`` / ``segmentation_loss.py`` (segmentation),
``cgns_detector.py`` / ``ssl_detector.py`` / ``yolo_loss.py`` (detection); summarised in
``shared/notes/cmcgns-reference-code.md`` section 2.3.

==================  ===========================  ==========================  ==========================
                    classification (linear)      segmentation (U-Net)        detection (YOLOv3)
==================  ===========================  ==========================  ==========================
datasets            chexpert, rsna, covidx       siim, rsna                  rsna, object-cxr
loss                BCE (CheXpert 5, RSNA 1),    10 * focal(2) - log Dice    YOLOv3 (xy/wh 2.5,
                    CE (COVIDx 3)                                            conf/cls 1, no-obj 0.5)
optimiser           AdamW 5e-4, wd 1e-6          AdamW 5e-4, wd 0.05         AdamW 5e-4, wd 1e-6
schedule            cosine per epoch, T_max 100  cosine, T_max 50            cosine, T_max 50
epochs / batch      <= 100 / 48                  <= 50 / 16                  <= 50 / 16
early stopping      val loss, patience 10        val loss, patience 10       val mAP, patience 10
seed                43                           42                          42
input               256 frame (pad), crop 224    256 frame, resize 224       direct resize to 224
train augmentation  dataset's (moco2 / crop)     ShiftScaleRotate p 0.5      none
metric              AUROC macro + per finding;   Dice per image (reference)  mAP @ IoU 0.40:0.05:0.75
                    accuracy (COVIDx)            + dataset-level Dice
==================  ===========================  ==========================  ==========================

The README's learning rate 5e-4 is used for segmentation and detection (the scripts default to
1e-3). The test split is scored with the best validation checkpoint in every task.

Options beyond the reference: ``encoder.freeze: false`` (``--unfreeze``) fine-tunes the encoder too,
with ``optim.encoder_lr`` (default ``lr / 10``); ``classification.features: cached`` (the default)
extracts the frozen features once and trains the head on them (the training augmentation is
dropped: every epoch sees the evaluation view, centre crop), ``augmented`` (``--exact-protocol``)
re-encodes the augmented images every epoch as the references do.

The sections subclass :mod:`medmodal.config.common`. Earlier names stay as aliases for one release:
``DataSettings`` / ``OptimSettings`` / ``TrainerSettings`` (= ``Finetune*Settings``), ``FinetuneConfig``,
``ClassificationConfig``, ``SegmentationConfig``, ``DetectionConfig`` (= ``*RunConfig``); ``check_config(cfg)``
is ``cfg.validate()``. Presets: ``src/medmodal/configs/cxr/finetune_*.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

from medmodal.config import common, load_run_config
from medmodal.config.core import read_yaml_mapping, resolve_source
from medmodal.data.cxr.downstream import dataset_entry
from medmodal.errors import ConfigError

__all__ = ["FinetuneDataSettings", "EncoderSettings", "FinetuneOptimSettings", "FinetuneTrainerSettings",
           "ClassificationSettings", "SegmentationSettings", "DetectionSettings", "FinetuneRunConfig",
           "ClassificationRunConfig", "SegmentationRunConfig", "DetectionRunConfig", "DataSettings", "OptimSettings",
           "TrainerSettings", "FinetuneConfig", "ClassificationConfig", "SegmentationConfig", "DetectionConfig",
           "TASK_CONFIGS", "load_finetune_config", "TASKS", "FEATURE_PATHS", "TRAIN_TRANSFORMS", "default_run_dir",
           "check_config", "resolved_resize"]

TASKS = ("classification", "segmentation", "detection")
FEATURE_PATHS = ("cached", "augmented")
TRAIN_TRANSFORMS = ("reference", "eval")


@dataclass
class FinetuneDataSettings(common.LoaderSettings):
    """Which data, which labels, which images.

    Attributes:
        dataset: ``chexpert`` | ``rsna`` | ``covidx`` | ``siim`` | ``object-cxr``.
        root: the dataset folder as distributed (or its synthetic twin).
        fraction: label fraction of the training split (MGCA ``data_pct``: 0.01, 0.1, 1).
        fraction_seed: seed of the fraction draw (reference 42).
        split_seed: seed of the splits (``None``: the reader's, reference 0).
        reader: options of the dataset's reader (``--set data.reader.KEY=VALUE``; every dataset:
            ``check_images``; ``seed`` is ``split_seed``, ``skip_bad`` is ``data.skip_bad``). CheXpert:
            ``findings``, ``uncertain``, ``blank``, ``views``, ``exclude_5x200``, ``val_size``,
            ``image_root``. RSNA: ``image_dir``. COVIDx: ``train_file``, ``test_file``,
            ``val_fraction``, ``image_root``. SIIM: ``balance_train``, ``patients``, ``image_dir``,
            ``rle``. Object-CXR: ``val_fraction``, ``box_tolerance``.
        image_size: network input side ``S`` (reference 224).
        resize: side of the cached square frame the images are resized + padded to (reference 256);
            ``None``: ``round(S * 256 / 224)``, the references' ratio (crop 224 of 256).
        augment: training augmentation (``None``: the task's reference one; classification
            ``crop`` | ``moco2`` | ``none``, segmentation ``shift_scale_rotate`` | ``none``).
        geometry: detection input geometry: ``stretch`` (the reference's direct resize) | ``pad``.
        cache_dir: decoded-image and feature caches (``None``: ``<root>/.medmodal_cache`` when writable, else
            under ``$MEDMODAL_CACHE``).
        batch_size: training batch (per process). eval_batch_size: ``None`` = ``batch_size``.
        num_workers: DataLoader workers (capped at the CPUs this process may use, with a note).
        skip_bad: skip (and name) unreadable rows / images instead of stopping.
    """

    dataset: str = "chexpert"
    root: str = "data/chexpert"
    fraction: float = 1.0
    fraction_seed: int = 42
    split_seed: Optional[int] = None
    reader: dict[str, Any] = field(default_factory=dict)
    image_size: int = 224
    resize: Optional[int] = None
    augment: Optional[str] = None
    geometry: str = "stretch"
    batch_size: int = 48
    eval_batch_size: Optional[int] = None
    skip_bad: bool = False


@dataclass
class EncoderSettings:
    """The image encoder (see :mod:`medmodal.models.encoder_export` for the specifications).

    Attributes:
        source: pre-training run folder | export folder | ``image_encoder`` folder | weight file |
            ``imagenet:PATH`` | ``random``.
        arch: timm model name (``None``: the export's, else ``resnet50``).
        freeze: keep the encoder frozen (eval mode, no gradient) as the references; ``False`` = fine-tune.
        init_seed: seed of a ``random`` initialisation (``None``: ``trainer.seed``).
    """

    source: str = "random"
    arch: Optional[str] = None
    freeze: bool = True
    init_seed: Optional[int] = None


@dataclass
class FinetuneOptimSettings(common.OptimSettings):
    """AdamW + cosine annealing per epoch (``CosineAnnealingLR(T_max, eta_min=0)``, as the references).

    Attributes:
        schedule: ``cosine_annealing`` (torch ``CosineAnnealingLR`` per epoch, the references').
        encoder_lr: learning rate of an unfrozen encoder (``None``: ``lr / 10``).
        t_max: cosine period in epochs (``None``: ``trainer.max_epochs``).
        eta_min: cosine floor of the learning rate.
        betas: AdamW's betas.
        grad_clip: gradient-norm clipping (``None``: off, as the references).
    """

    lr: float = 5e-4
    encoder_lr: Optional[float] = None
    weight_decay: float = 1e-6
    schedule: str = "cosine_annealing"
    betas: tuple[float, float] = (0.9, 0.999)
    t_max: Optional[int] = 100
    eta_min: float = 0.0


@dataclass
class FinetuneTrainerSettings(common.TrainerSettings):
    """Lightning trainer settings; ``monitor`` / ``mode`` choose ``best.ckpt`` and early stopping.

    Attributes:
        patience: validations without improvement before stopping (``None``: no early stopping).
        monitor: validation metric of ``best.ckpt`` and early stopping (``val/loss``; detection ``val/map``).
        mode: ``min`` | ``max``: whether a lower or a higher ``monitor`` value is better.
        precision: ``32-true`` (CPU), ``bf16-mixed`` on GPUs.
    """

    max_epochs: int = 100
    patience: Optional[int] = 10
    monitor: str = "val/loss"
    mode: str = "min"
    seed: int = 43
    deterministic: bool = False


@dataclass
class ClassificationSettings:
    """Linear classification.

    Attributes:
        features: ``cached`` (extract once, train the head on the features; no training
            augmentation) | ``augmented`` (re-encode the augmented images every epoch: the exact protocol).
        train_transform: ``reference`` (the dataset's augmentation) | ``eval`` (the evaluation view
            also in training; with ``features: augmented`` this sees the same images as the cached
            path, which is what the speed benchmark compares).
        dropout: before the linear layer (reference 0).
    """

    features: str = "cached"
    train_transform: str = "reference"
    dropout: float = 0.0


@dataclass
class SegmentationSettings:
    """U-Net segmentation: ``focal_weight * focal(focal_gamma) - log soft Dice``; Dice at ``threshold``.

    Attributes:
        focal_weight / focal_gamma: weight and exponent of the focal term (reference 10 / 2).
        threshold: probability threshold of the predicted mask (Dice is scored on it).
        decoder_channels: U-Net decoder widths, deepest first.
    """

    focal_weight: float = 10.0
    focal_gamma: float = 2.0
    threshold: float = 0.5
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)


@dataclass
class DetectionSettings:
    """YOLOv3 head, loss, post-processing and mAP (see :mod:`medmodal.models.downstream.yolo`).

    Attributes:
        width: head channel multiplier (1.0 = the reference's 512 / 256 / 128).
        lambda_xy / lambda_wh / lambda_conf / lambda_cls: YOLOv3 loss weights (reference 2.5 / 2.5 / 1 / 1).
        noobj_weight: weight of the no-object confidence term (0.5).
        ignore_threshold: anchor-shape IoU above which a cell's other anchors are not pushed to "no object" (0.5).
        conf_threshold / nms_iou: post-processing (reference 0.5 / 0.5).
        iou_thresholds: of the mAP (0.40:0.05:0.75).
        max_detections: per image after NMS (``None``: all, as the reference).
    """

    width: float = 1.0
    lambda_xy: float = 2.5
    lambda_wh: float = 2.5
    lambda_conf: float = 1.0
    lambda_cls: float = 1.0
    noobj_weight: float = 0.5
    ignore_threshold: float = 0.5
    conf_threshold: float = 0.5
    nms_iou: float = 0.5
    iou_thresholds: tuple[float, ...] = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75)
    max_detections: Optional[int] = None


@dataclass
class FinetuneRunConfig:
    """Shared sections of every task's config (``task``, ``data``, ``encoder``, ``optim``, ``trainer``)."""

    family: ClassVar[str] = "cxr"

    task: str = "classification"
    data: FinetuneDataSettings = field(default_factory=FinetuneDataSettings)
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    optim: FinetuneOptimSettings = field(default_factory=FinetuneOptimSettings)
    trainer: FinetuneTrainerSettings = field(default_factory=FinetuneTrainerSettings)
    out_dir: Optional[str] = None

    @property
    def settings(self):
        """The task's own section (``classification`` / ``segmentation`` / ``detection``)."""
        return getattr(self, self.task)

    @property
    def t_max(self) -> int:
        return int(self.optim.t_max or self.trainer.max_epochs)

    def validate(self) -> None:
        """Refuse a config that cannot run (one clear line); ``data.dataset`` becomes the dataset's
        canonical name.

        Raises:
            ConfigError: a dataset without the task, values out of range, unknown choices.
        """
        entry = dataset_entry(self.data.dataset)
        self.data.dataset = entry.descriptor.name
        if self.task not in entry.descriptor.tasks:
            raise ConfigError(f"{entry.descriptor.name} has no {self.task} task (it supports "
                              f"{', '.join(entry.descriptor.tasks)})")
        if not 0 < float(self.data.fraction) <= 1:
            raise ConfigError(f"data.fraction must be in (0, 1], got {self.data.fraction}")
        if self.data.image_size < 32 or self.data.image_size % 32:
            raise ConfigError(f"data.image_size must be a multiple of 32 (>= 32), got {self.data.image_size}")
        if self.data.resize is not None and self.data.resize < self.data.image_size:
            raise ConfigError(f"data.resize {self.data.resize} is smaller than data.image_size "
                              f"{self.data.image_size}")
        if self.trainer.mode not in ("min", "max"):
            raise ConfigError(f"trainer.mode must be min or max, got {self.trainer.mode!r}")
        self.optim.validate()
        self.trainer.validate()
        if self.task == "classification":
            s = self.classification
            if s.features not in FEATURE_PATHS:
                raise ConfigError(f"classification.features must be one of {', '.join(FEATURE_PATHS)}, "
                                  f"got {s.features!r}")
            if s.train_transform not in TRAIN_TRANSFORMS:
                raise ConfigError(f"classification.train_transform must be one of {', '.join(TRAIN_TRANSFORMS)}, "
                                  f"got {s.train_transform!r}")
        if self.task == "detection" and self.data.geometry not in ("stretch", "pad"):
            raise ConfigError(f"data.geometry must be stretch or pad, got {self.data.geometry!r}")


@dataclass
class ClassificationRunConfig(FinetuneRunConfig):
    """Linear classification (CheXpert, RSNA, COVIDx); defaults = ``cgns_finetuner.py``."""

    task: str = "classification"
    data: FinetuneDataSettings = field(default_factory=lambda: FinetuneDataSettings(dataset="chexpert", batch_size=48))
    optim: FinetuneOptimSettings = field(default_factory=lambda: FinetuneOptimSettings(lr=5e-4, weight_decay=1e-6, t_max=100))
    trainer: FinetuneTrainerSettings = field(default_factory=lambda: FinetuneTrainerSettings(max_epochs=100, patience=10, seed=43))
    classification: ClassificationSettings = field(default_factory=ClassificationSettings)


@dataclass
class SegmentationRunConfig(FinetuneRunConfig):
    """U-Net segmentation (SIIM, RSNA boxes as masks); defaults = ``cgns_segmenter.py`` (README lr)."""

    task: str = "segmentation"
    data: FinetuneDataSettings = field(default_factory=lambda: FinetuneDataSettings(dataset="siim", batch_size=16))
    optim: FinetuneOptimSettings = field(default_factory=lambda: FinetuneOptimSettings(lr=5e-4, weight_decay=0.05, t_max=50))
    trainer: FinetuneTrainerSettings = field(default_factory=lambda: FinetuneTrainerSettings(max_epochs=50, patience=10, seed=42))
    segmentation: SegmentationSettings = field(default_factory=SegmentationSettings)


@dataclass
class DetectionRunConfig(FinetuneRunConfig):
    """YOLOv3 detection (RSNA, Object-CXR); defaults = ``cgns_detector.py`` (README lr)."""

    task: str = "detection"
    data: FinetuneDataSettings = field(default_factory=lambda: FinetuneDataSettings(dataset="rsna", batch_size=16))
    optim: FinetuneOptimSettings = field(default_factory=lambda: FinetuneOptimSettings(lr=5e-4, weight_decay=1e-6, t_max=50))
    trainer: FinetuneTrainerSettings = field(default_factory=lambda: FinetuneTrainerSettings(
        max_epochs=50, patience=10, seed=42, monitor="val/map", mode="max"))
    detection: DetectionSettings = field(default_factory=DetectionSettings)


#: earlier names (kept for one release)
DataSettings, OptimSettings, TrainerSettings = FinetuneDataSettings, FinetuneOptimSettings, FinetuneTrainerSettings
FinetuneConfig, ClassificationConfig = FinetuneRunConfig, ClassificationRunConfig
SegmentationConfig, DetectionConfig = SegmentationRunConfig, DetectionRunConfig

TASK_CONFIGS: dict[str, type[FinetuneRunConfig]] = {"classification": ClassificationRunConfig,
                                                    "segmentation": SegmentationRunConfig,
                                                    "detection": DetectionRunConfig}


def default_run_dir(cfg: FinetuneRunConfig) -> str:
    """``runs/finetune/<dataset>-<task>-<fraction>-seed<seed>``."""
    return f"runs/finetune/{cfg.data.dataset}-{cfg.task}-{cfg.data.fraction:g}-seed{cfg.trainer.seed}"


def load_finetune_config(path: str | Path | None = None, preset: str | None = None,
                         overrides: Sequence[str] | None = None, task: str | None = None,
                         dataset: str | None = None) -> FinetuneRunConfig:
    """Read a fine-tuning config (YAML file or packaged preset; else the task's defaults), apply
    ``a.b=value`` overrides and the explicit ``task`` / ``dataset``, then validate it: the task picks
    the run config class, then :func:`medmodal.config.load_run_config` builds it.

    Raises:
        ConfigError: no task given anywhere, a task / dataset that contradicts the file, an unknown
            key, a dataset that does not support the task, a bad value (one line each).
        FileNotFoundError: the file or preset does not exist.
    """
    source = resolve_source(path, preset, FinetuneRunConfig.family)
    data = read_yaml_mapping(source, overrides)
    where = str(source or "config")
    in_file = data.get("task")
    if task is not None and in_file is not None and task != in_file:
        raise ConfigError(f"{where} is a {in_file} config, not {task} (task)")
    task = task or in_file
    if task is None:
        raise ConfigError("no task: give the task (classification | segmentation | detection) or a preset")
    if task not in TASK_CONFIGS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    data["task"] = task
    if dataset is not None:
        data.setdefault("data", {})
        if not isinstance(data["data"], dict):
            raise ConfigError(f"{where}: 'data' must be a mapping")
        data["data"]["dataset"] = dataset
    return load_run_config(TASK_CONFIGS[task], data=data, where=where)


def check_config(cfg: FinetuneRunConfig) -> None:
    """``cfg.validate()`` (kept for one release)."""
    cfg.validate()


def resolved_resize(cfg: FinetuneRunConfig) -> int:
    """Side of the cached frame: ``data.resize`` or ``round(image_size * 256 / 224)``."""
    return int(cfg.data.resize or round(cfg.data.image_size * 256 / 224))

