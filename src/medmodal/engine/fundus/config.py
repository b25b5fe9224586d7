"""The vessel run config: data, model, optimiser, trainer.

DGSSA gives no optimiser settings; the defaults here are a stated choice, not the paper's:
AdamW, lr 1e-3, weight decay 1e-4, cosine decay per epoch (a common setting for MobileNetV2
DeepLabV3+ trained from scratch on small vessel sets). Training draws ``trainer.samples_per_epoch``
random crops per epoch (DRIVE has 20 training images; an "epoch" of 16 crops would be a few steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from medmodal.config import LoaderSettings, OptimSettings, TrainerSettings
from medmodal.config.common import check_choice
from medmodal.data.fundus.dataset import AUGMENTS
from medmodal.data.fundus.geometry import REDUCED_DIAMETER
from medmodal.data.fundus.layouts import LAYOUTS
from medmodal.data.fundus.vessel_tree import VesselTreeParams
from medmodal.errors import ConfigError

__all__ = ["VesselDataSettings", "VesselStructureSettings", "STRUCTURE_SOURCES", "VesselModelSettings", "VesselOptimSettings", "VesselTrainerSettings",
           "VesselRunConfig", "VESSEL_MODELS"]

#: the registered vessel networks (:mod:`medmodal.models.fundus.vessel_net`)
VESSEL_MODELS = ("deeplabv3plus_mobilenetv2", "unet_mobilenetv2")


@dataclass
class VesselDataSettings(LoaderSettings):
    """Source (train / validation / test) and target (test only) data sets.

    Attributes:
        root / layout: the source data set (:func:`medmodal.data.fundus.read_fundus`; ``auto`` detects), or a
            list of several source roots (leave-one-domain-out training: the union of their train splits is
            trained on, of their val splits validated on; ``layout`` applies to each).
        targets: roots of the target domains (layout detected); every image of a target is test. A root is
            either a source or a target, never both.
        diameter: FOV diameter of the network grid (:data:`REDUCED_DIAMETER` = 270 for CPU runs; 540 full).
        crop: training crop side on the network grid.
        val_fraction: share of the source's training images held out for validation (seeded by ``split_seed``).
        augment: ``standard`` (flips, rotations, colour jitter) | ``none``.
        pixmix: PixMix inside the FOV after the standard augmentation.
        batch_size: training crops per step; evaluation runs one whole image at a time.
    """

    root: str | list = "data/fundus/DRIVE"
    layout: str = "auto"
    targets: tuple = ()
    diameter: int = REDUCED_DIAMETER
    crop: int = 128
    val_fraction: float = 0.2
    augment: str = "standard"
    pixmix: bool = False
    batch_size: int = 8
    num_workers: int = 0

    def roots(self) -> tuple[str, ...]:
        """The source roots: ``(root,)`` for one folder, else the list's folders in order."""
        return (self.root,) if isinstance(self.root, str) else tuple(str(r) for r in self.root)


#: where synthetic training pairs come from (:class:`VesselStructureSettings`)
STRUCTURE_SOURCES = ("none", "pix2pix", "procedural")


@dataclass
class VesselStructureSettings:
    """DGSSA's structure augmentation: synthetic (pseudo-fundus image, vessel label) pairs mixed into training.

    Attributes:
        source: ``none`` (off) | ``pix2pix`` (DGSSA: space-colonisation trees,
            :func:`~medmodal.data.fundus.vessel_tree.grow_vessel_tree`, rendered by a pix2pix generator
            trained on the source's training images, :mod:`medmodal.engine.fundus.structure`) |
            ``procedural`` (the hand-drawn :func:`~medmodal.data.fundus.synthetic.synth_fundus` twins; a
            baseline, not DGSSA).
        ratio: share of the training items that are synthetic (0.3, our choice: DGSSA states no mixing
            ratio; 0.3 keeps real images the majority of every epoch while a DRIVE run of 16 training
            images still sees ~7 synthetic ones per pass).
        steps: pix2pix generator updates (500: 100 s on one CPU thread at crop 128 on a loaded 2-core
            machine, inside the 2-minute budget per benchmark run; the paper trains far longer on a GPU).
        crop: pix2pix training crop side on the network grid (128; a multiple of 32).
        batch_size: pix2pix pairs per step (4).
        base_width: pix2pix generator / discriminator base width (16, CPU-sized; the paper's is 64).
        generator: a saved generator folder (``<run>/structure`` of an earlier run, a ``fundus/pix2pix``
            bundle) to reuse instead of training one; its grid must match ``data.diameter``.
        calibrate: choose the trees' calibre scale so that the rasterised vessel fraction inside the FOV
            matches the source training labels' mean on the network grid (cheap: a few trees); false:
            the :class:`~medmodal.data.fundus.vessel_tree.VesselTreeParams` defaults (+ ``tree``).
        tree: overrides of :class:`~medmodal.data.fundus.vessel_tree.VesselTreeParams` (e.g.
            ``{n_attractors: 1500}``), applied before calibration.
    """

    source: str = "none"
    ratio: float = 0.3
    steps: int = 500
    crop: int = 128
    batch_size: int = 4
    base_width: int = 16
    generator: str | None = None
    calibrate: bool = True
    tree: dict = field(default_factory=dict)

    def validate(self) -> None:
        check_choice("structure.source", self.source, STRUCTURE_SOURCES)
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) or not 0.0 < self.ratio < 1.0:
            raise ConfigError(f"structure.ratio must be a number in (0, 1), got {self.ratio!r}")
        for key, low in (("steps", 1), ("crop", 32), ("batch_size", 1), ("base_width", 4)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"structure.{key} must be an integer >= {low}, got {value!r}")
        if self.crop % 32:
            raise ConfigError(f"structure.crop must be a multiple of 32 (the generator's stride), got {self.crop}")
        if self.generator is not None and (not isinstance(self.generator, str) or not self.generator.strip()):
            raise ConfigError(f"structure.generator must be a folder path, got {self.generator!r}")
        if not isinstance(self.calibrate, bool):
            raise ConfigError(f"structure.calibrate must be true or false, got {self.calibrate!r}")
        if not isinstance(self.tree, dict):
            raise ConfigError(f"structure.tree must be a mapping of vessel-tree parameters, got {self.tree!r}")
        try:
            VesselTreeParams().with_overrides(**self.tree)
        except (ConfigError, TypeError) as err:
            raise ConfigError(f"structure.tree: {err}") from None


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
    structure: VesselStructureSettings = field(default_factory=VesselStructureSettings)
    model: VesselModelSettings = field(default_factory=VesselModelSettings)
    optim: VesselOptimSettings = field(default_factory=VesselOptimSettings)
    trainer: VesselTrainerSettings = field(default_factory=VesselTrainerSettings)

    def validate(self) -> None:
        """Raises ConfigError: an unknown layout / augmentation / model / structure source, a size or fraction
        out of range, an unknown vessel-tree parameter, an empty or repeated ``data.root`` list, a root that is
        both a source and a target."""
        if self.task != self.TASK:
            raise ConfigError(f"task: a vessel segmentation config has task {self.TASK!r}, got {self.task!r}")
        d = self.data
        check_choice("data.layout", d.layout, LAYOUTS)
        check_choice("data.augment", d.augment, AUGMENTS)
        check_choice("model.name", self.model.name, VESSEL_MODELS)
        if isinstance(d.targets, str):
            d.targets = (d.targets,)
        d.targets = tuple(str(t) for t in d.targets)
        _check_roots(d)
        for key, low in (("diameter", 16), ("crop", 32), ("batch_size", 2)):
            value = getattr(d, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"data.{key} must be an integer >= {low}, got {value!r}")
        if d.crop % 32:
            raise ConfigError(f"data.crop must be a multiple of 32 (the network's stride), got {d.crop}")
        if not 0.0 <= float(d.val_fraction) < 1.0:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {d.val_fraction!r}")
        self.structure.validate()
        if not isinstance(self.model.kwargs, dict):
            raise ConfigError(f"model.kwargs must be a mapping, got {self.model.kwargs!r}")
        if int(self.trainer.samples_per_epoch) < d.batch_size:
            raise ConfigError(f"trainer.samples_per_epoch must be >= data.batch_size ({d.batch_size}), "
                              f"got {self.trainer.samples_per_epoch}")
        self.trainer.validate()
        self.optim.validate()


def _check_roots(d: VesselDataSettings) -> None:
    """``data.root``: a folder or a non-empty list of distinct folders, none of them also a target."""
    root = list(d.root) if isinstance(d.root, tuple) else d.root
    if isinstance(root, list):
        if not root:
            raise ConfigError("data.root: give a source data set folder or a non-empty list of them, got []")
        if any(not isinstance(r, str) or not r.strip() for r in root):
            raise ConfigError(f"data.root: every source must be a folder path, got {root!r}")
        d.root = root
    elif not isinstance(root, str) or not root.strip():
        raise ConfigError(f"data.root must be a folder path or a list of them, got {root!r}")
    resolved = [Path(r).expanduser().resolve() for r in d.roots()]
    twice = sorted({str(r) for r in d.roots() if resolved.count(Path(r).expanduser().resolve()) > 1})
    if twice:
        raise ConfigError(f"data.root: {', '.join(twice)} given more than once")
    both = [t for t in d.targets if Path(t).expanduser().resolve() in resolved]
    if both:
        raise ConfigError(f"data.targets: {', '.join(both)} is also a source (data.root); a data set is either "
                          f"trained on or held out")
