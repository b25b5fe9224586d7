"""The vessel run config: data, model, optimiser, trainer.

DGSSA gives no optimiser settings; the defaults here are a stated choice, not the paper's:
AdamW, lr 1e-3, weight decay 1e-4, cosine decay per epoch (a common setting for MobileNetV2
DeepLabV3+ trained from scratch on small vessel sets). Training draws ``trainer.samples_per_epoch``
random crops per epoch (DRIVE has 20 training images; an "epoch" of 16 crops would be a few steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from medmodal.config import LoaderSettings, OptimSettings, TrainerSettings
from medmodal.config.common import check_choice
from medmodal.data.fundus.dataset import AUGMENTS
from medmodal.data.fundus.geometry import REDUCED_DIAMETER
from medmodal.data.fundus.layouts import LAYOUTS
from medmodal.errors import ConfigError

__all__ = ["VesselDataSettings", "VesselModelSettings", "VesselOptimSettings", "VesselTrainerSettings",
           "VesselRunConfig", "VESSEL_MODELS"]

#: the registered vessel networks (:mod:`medmodal.models.fundus.vessel_net`)
VESSEL_MODELS = ("deeplabv3plus_mobilenetv2", "unet_mobilenetv2")


@dataclass
class VesselDataSettings(LoaderSettings):
    """Source (train / validation / test) and target (test only) data sets.

    Attributes:
        root / layout: the source data set (:func:`medmodal.data.fundus.read_fundus`; ``auto`` detects).
        targets: roots of the target domains (layout detected); every image of a target is test.
        diameter: FOV diameter of the network grid (:data:`REDUCED_DIAMETER` = 270 for CPU runs; 540 full).
        crop: training crop side on the network grid.
        val_fraction: share of the source's training images held out for validation (seeded by ``split_seed``).
        augment: ``standard`` (flips, rotations, colour jitter) | ``none``.
        pixmix: PixMix inside the FOV after the standard augmentation.
        synthetic_ratio: share of training items that are synthetic pairs (``synth_fundus`` twins brought to the
            network grid; not DGSSA's structure renderer), 0 = off.
        batch_size: training crops per step; evaluation runs one whole image at a time.
    """

    root: str = "data/fundus/DRIVE"
    layout: str = "auto"
    targets: tuple = ()
    diameter: int = REDUCED_DIAMETER
    crop: int = 128
    val_fraction: float = 0.2
    augment: str = "standard"
    pixmix: bool = False
    synthetic_ratio: float = 0.0
    batch_size: int = 8
    num_workers: int = 0


@dataclass
class VesselModelSettings:
    """Attributes:
        name: a registered vessel network (:data:`VESSEL_MODELS`).
        kwargs: its options (:class:`medmodal.models.fundus.vessel_net.VesselNetConfig`: ``dsu_p``,
            ``decoder_channels``, ``weights_path`` ...).
        randconv: RandConv (mixed, kernels 1/3/5/7) on every training batch, inside the FOV.
    """

    name: str = "deeplabv3plus_mobilenetv2"
    kwargs: dict = field(default_factory=dict)
    randconv: bool = False


@dataclass
class VesselOptimSettings(OptimSettings):
    """AdamW lr 1e-3, weight decay 1e-4, cosine per epoch (a stated choice: DGSSA gives none)."""

    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"


@dataclass
class VesselTrainerSettings(TrainerSettings):
    """Attributes:
        max_epochs: training epochs. samples_per_epoch: training crops drawn per epoch (with replacement
        over the training images). patience: early stopping on ``val/dice`` (``None``: off).
    """

    max_epochs: int = 40
    samples_per_epoch: int = 160
    patience: int | None = None
    progress_bar: bool = False


@dataclass
class VesselRunConfig:
    """A vessel segmentation run (:func:`medmodal.engine.fundus.run_vessels`): ``medmodal seg train`` with a
    config whose ``task`` is ``vessels`` (presets ``seg/train_*vessels*`` / ``seg/train_dgssa_*``)."""

    family: ClassVar[str] = "seg"
    #: the value of ``task`` a config of this class holds
    TASK: ClassVar[str] = "vessels"

    task: str = "vessels"
    out_dir: str = "runs/fundus/vessels"
    data: VesselDataSettings = field(default_factory=VesselDataSettings)
    model: VesselModelSettings = field(default_factory=VesselModelSettings)
    optim: VesselOptimSettings = field(default_factory=VesselOptimSettings)
    trainer: VesselTrainerSettings = field(default_factory=VesselTrainerSettings)

    def validate(self) -> None:
        """Raises ConfigError: an unknown layout / augmentation / model, a size or fraction out of range."""
        if self.task != self.TASK:
            raise ConfigError(f"task: a vessel segmentation config has task {self.TASK!r}, got {self.task!r}")
        d = self.data
        check_choice("data.layout", d.layout, LAYOUTS)
        check_choice("data.augment", d.augment, AUGMENTS)
        check_choice("model.name", self.model.name, VESSEL_MODELS)
        if isinstance(d.targets, str):
            d.targets = (d.targets,)
        d.targets = tuple(str(t) for t in d.targets)
        for key, low in (("diameter", 16), ("crop", 32), ("batch_size", 2)):
            value = getattr(d, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"data.{key} must be an integer >= {low}, got {value!r}")
        if d.crop % 32:
            raise ConfigError(f"data.crop must be a multiple of 32 (the network's stride), got {d.crop}")
        for key in ("val_fraction", "synthetic_ratio"):
            if not 0.0 <= float(getattr(d, key)) < 1.0:
                raise ConfigError(f"data.{key} must be in [0, 1), got {getattr(d, key)!r}")
        if not isinstance(self.model.kwargs, dict):
            raise ConfigError(f"model.kwargs must be a mapping, got {self.model.kwargs!r}")
        if int(self.trainer.samples_per_epoch) < d.batch_size:
            raise ConfigError(f"trainer.samples_per_epoch must be >= data.batch_size ({d.batch_size}), "
                              f"got {self.trainer.samples_per_epoch}")
        self.trainer.validate()
        self.optim.validate()
