"""The 2-D segmentation run config (``task: 2d``): slices of CT / MRI volumes (Synapse, ACDC) and 2-D
photographs (CVC-ClinicDB, Kvasir-SEG polyps), one image channel set, several classes.

Defaults are MSLAU-Net's Synapse preset, which is TransUNet's recipe (``Beckschen/TransUNet``
``train.py`` / ``trainer.py``) with MSLAU-Net's learning rate (``Monsoon49/MSLAU-Net``, paper §4.2):
224 x 224 slices, batch 24, SGD (momentum 0.9, weight decay 1e-4), learning rate 0.05 decayed per
iteration by ``(1 - s / T) ** 0.9``, loss 0.4 cross-entropy + 0.6 Dice (TransUNet's Dice averages every
class, background included, over the whole batch), random rot90 / flip or a rotation in [-20, 20] degrees.
The CVC-ClinicDB preset swaps in soft Dice, AdamW 1e-4 and a cosine schedule (paper §4.2).

Unlike both releases (which keep the last epoch), the checkpoint evaluated is the one with the best
validation Dice (``val/dice``: mean foreground Dice of the validation cases on their native grid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from medmodal.config import LoaderSettings, OptimSettings, TrainerSettings
from medmodal.config.common import check_choice
from medmodal.engine.semi import SEMI_METHODS, SemiSettings
from medmodal.data.layouts import known_layouts
from medmodal.data.seg2d import LAYOUTS
from medmodal.data.seg2d.slice_dataset import AUGMENTS
from medmodal.errors import ConfigError
from medmodal.models import list_models
from medmodal.models.registry import get_tiny_kwargs

__all__ = ["planar_models", "Seg2DDataSettings", "Seg2DModelSettings", "Seg2DLossSettings", "Seg2DOptimSettings",
           "Seg2DTrainerSettings", "Seg2DEvalSettings", "Seg2DSemiSettings", "SEMI_METHODS", "Seg2DRunConfig", "validate_shared_sections", "PROTOCOL_CHOICES", "STRIDE"]

#: the network grid's sides must be multiples of this (5-stage encoders, MSLAU-Net's stride 32)
STRIDE = 32
#: ``eval.protocol``: ``auto`` = ``transunet`` for volumes (Synapse, ACDC), ``polyp`` for photographs
PROTOCOL_CHOICES = ("auto", "transunet", "polyp")


def planar_models() -> list[str]:
    """The registered ``segmentation`` models that take 2-D images (their contract check runs them on 2-D images:
    ``spatial_dims: 2`` in their ``tiny``); the 3-D MRI models (DMAF-Net, RFNet ...) are not among them."""
    return [m for m in list_models("segmentation") if get_tiny_kwargs(m).get("spatial_dims") == 2]


@dataclass
class Seg2DDataSettings(LoaderSettings):
    """Attributes:
        root: the data set folder (:func:`medmodal.data.seg2d.read_seg2d`).
        layout: ``auto`` | ``synapse`` | ``synapse_raw`` | ``acdc_h5`` | ``acdc`` | ``cvc_clinicdb`` | ``kvasir_seg``.
        size: the network grid, one side (square) or ``[H, W]``; multiples of 32 (224: TransUNet / MSLAU-Net).
        val_fraction: share of the training cases held out for validation when the layout has no validation
            split (Synapse; by case, so no volume is in both), drawn with ``split_seed``.
        test_fraction: share of the cases held out for test when the layout has no split at all (polyps).
        augment: ``transunet`` (rot90 + flip with p 0.5, else a rotation in [-20, 20] degrees with p 0.5) |
            ``flips`` | ``none``.
        classes: your class names, index = label value, background first (``null``: the layout's: Synapse's 8
            organs, ACDC's RV / Myo / LV, ``Polyp``): for your own organs stored in the SSL4MIS HDF5 or TransUNet
            NPZ / HDF5 form (a label value past the list is refused, naming the file); not for ``synapse_raw``
            (its BTCV labels are mapped to TransUNet's 8 organs); a polyp layout keeps two classes.
        batch_size: slices per step (24: TransUNet). num_workers: DataLoader workers.
    """

    root: str = "data/ACDC"
    layout: str = "auto"
    size: Any = 224
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    augment: str = "transunet"
    classes: Optional[list] = None
    batch_size: int = 24
    num_workers: int = 0

    def grid(self) -> tuple[int, int]:
        """``(H, W)`` of the network grid."""
        size = self.size
        return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


@dataclass
class Seg2DModelSettings:
    """Attributes:
        name: a registered 2-D model of the ``segmentation`` contract (``mslau_net``, ``unet2d``, ``transunet``,
            ``swin_unet``, ...). kwargs: its ``*Config`` fields (``widths``, ``attention`` ...).
    """

    name: str = "mslau_net"
    kwargs: dict = field(default_factory=dict)


@dataclass
class Seg2DLossSettings:
    """``ce_weight * CE + dice_weight * soft Dice`` (MONAI ``DiceCELoss``, softmax, Dice over the batch).

    Attributes:
        ce_weight / dice_weight: 0.4 / 0.6 (MSLAU-Net's Synapse loss); CVC-ClinicDB: 0 / 1.
        dice_include_background: average the Dice over every class, background included (TransUNet's
            ``DiceLoss``); false: foreground classes only.
    """

    ce_weight: float = 0.4
    dice_weight: float = 0.6
    dice_include_background: bool = True


@dataclass
class Seg2DOptimSettings(OptimSettings):
    """SGD lr 0.05, momentum 0.9, weight decay 1e-4, per-iteration poly 0.9 (MSLAU-Net / TransUNet)."""

    optimizer: str = "sgd"
    lr: float = 0.05
    weight_decay: float = 1e-4
    schedule: str = "poly_step"
    momentum: float = 0.9
    poly_power: float = 0.9


@dataclass
class Seg2DTrainerSettings(TrainerSettings):
    """Attributes:
        max_epochs: training epochs (150: TransUNet's Synapse budget).
        samples_per_epoch: training slices per epoch (``None``: every training slice once).
        patience: early stopping on ``val/dice`` (``None``: off).
    """

    max_epochs: int = 150
    samples_per_epoch: Optional[int] = None
    patience: Optional[int] = None


@dataclass
class Seg2DEvalSettings:
    """Attributes:
        protocol: ``auto`` (``transunet`` for volumes, ``polyp`` for photographs) | ``transunet`` | ``polyp``
            (:mod:`medmodal.evaluation.seg2d`).
        hd95: also compute HD95 (volumes).
    """

    protocol: str = "auto"
    hd95: bool = True


def validate_shared_sections(cfg) -> None:
    """The checks the 2-D and 3-D run configs share: split fractions, batch size, model kwargs, loss weights, the
    epoch size, then the ``semi``, ``trainer`` and ``optim`` sections' own validation.

    Raises:
        ConfigError: the first bad value (one line).
    """
    d = cfg.data
    for key in ("val_fraction", "test_fraction"):
        value = getattr(d, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ConfigError(f"data.{key} must be in [0, 1), got {value!r}")
    if isinstance(d.batch_size, bool) or not isinstance(d.batch_size, int) or d.batch_size < 1:
        raise ConfigError(f"data.batch_size must be an integer >= 1, got {d.batch_size!r}")
    if not isinstance(cfg.model.kwargs, dict):
        raise ConfigError(f"model.kwargs must be a mapping, got {cfg.model.kwargs!r}")
    ce, dice = cfg.loss.ce_weight, cfg.loss.dice_weight
    if any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in (ce, dice)) or ce + dice <= 0:
        raise ConfigError(f"loss.ce_weight and loss.dice_weight must be >= 0 and not both 0, got {ce!r}, {dice!r}")
    spe = cfg.trainer.samples_per_epoch
    if spe is not None and (isinstance(spe, bool) or not isinstance(spe, int) or spe < d.batch_size):
        raise ConfigError(f"trainer.samples_per_epoch must be >= data.batch_size ({d.batch_size}) or null, got {spe!r}")
    cfg.semi.validate(d.batch_size)
    cfg.trainer.validate()
    cfg.optim.validate()


#: the ``semi`` section is the semi-supervised paradigm's (:class:`medmodal.engine.semi.SemiSettings`)
Seg2DSemiSettings = SemiSettings


@dataclass
class Seg2DRunConfig:
    """A 2-D segmentation run (:func:`medmodal.engine.seg2d.train.run_seg2d`): ``medmodal seg train`` with a
    config whose ``task`` is ``2d`` (presets ``seg/train_mslau_*``, ``seg/train_2d_demo_cpu``)."""

    family: ClassVar[str] = "seg"
    #: the value of ``task`` a config of this class holds
    TASK: ClassVar[str] = "2d"

    task: str = "2d"
    out_dir: str = "runs/seg2d"
    data: Seg2DDataSettings = field(default_factory=Seg2DDataSettings)
    model: Seg2DModelSettings = field(default_factory=Seg2DModelSettings)
    loss: Seg2DLossSettings = field(default_factory=Seg2DLossSettings)
    optim: Seg2DOptimSettings = field(default_factory=Seg2DOptimSettings)
    trainer: Seg2DTrainerSettings = field(default_factory=Seg2DTrainerSettings)
    eval: Seg2DEvalSettings = field(default_factory=Seg2DEvalSettings)
    semi: Seg2DSemiSettings = field(default_factory=Seg2DSemiSettings)

    def validate(self) -> None:
        """Raises ConfigError: a wrong task, an unknown layout / augmentation / model / protocol, a grid side that is
        not a positive multiple of 32, a fraction out of range, negative loss weights or both zero."""
        if self.task != self.TASK:
            raise ConfigError(f"task: a 2-D segmentation config has task {self.TASK!r}, got {self.task!r}")
        d = self.data
        check_choice("data.layout", d.layout, known_layouts("seg2d", LAYOUTS))
        check_choice("data.augment", d.augment, AUGMENTS)
        size = d.size
        if isinstance(size, (list, tuple)) and len(size) == 1:
            size = d.size = int(size[0])
        sides = [size] if isinstance(size, int) and not isinstance(size, bool) else list(size) \
            if isinstance(size, (list, tuple)) and len(size) == 2 else None
        if sides is None or any(isinstance(s, bool) or not isinstance(s, int) or s < STRIDE or s % STRIDE
                                for s in sides):
            raise ConfigError(f"data.size must be a multiple of {STRIDE} (>= {STRIDE}) or [H, W] of such, got {d.size!r}")
        if not isinstance(size, int):
            d.size = [int(s) for s in sides]
        if d.classes is not None:
            names = list(d.classes) if isinstance(d.classes, (list, tuple)) else None
            if (names is None or len(names) < 2 or any(not isinstance(c, str) or not c.strip() for c in names)
                    or len(set(names)) != len(names)):
                raise ConfigError(f"data.classes must be a list of at least two distinct names (background first), "
                                  f"got {d.classes!r}")
            d.classes = names
        check_choice("model.name", self.model.name, planar_models())
        check_choice("eval.protocol", self.eval.protocol, PROTOCOL_CHOICES)
        if self.semi.method in ("swdl", "swdl_no_feedback"):
            raise ConfigError(f"semi.method {self.semi.method} (SWDL-Net's inner passes) is 3-D only: use task: 3d "
                              f"with model.name swdl_net")
        validate_shared_sections(self)
