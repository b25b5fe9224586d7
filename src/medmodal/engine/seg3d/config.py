"""The run config of a 3-D single-image segmentation run (``task: 3d`` in a ``medmodal seg train`` config):
patch training on one-channel volumes (LA2018, BHSD-style CT, a NIfTI folder; :mod:`medmodal.data.seg3d`), fully
or semi-supervised, sliding-window validation and scoring.

The loss, optimiser, trainer and ``semi`` sections are the 2-D task's (:mod:`medmodal.engine.seg2d.config`,
:class:`medmodal.engine.semi.SemiSettings`); the data, model and evaluation sections are the volume's.
Defaults are UA-MT's LA recipe (``yulequan/UA-MT``, ``train_LA_meanteacher_certainty_unlabel.py``): V-Net,
patch 112 x 112 x 80, batch 4 with 2 labelled, SGD 0.01 momentum 0.9 weight decay 1e-4, 0.5 CE + 0.5 Dice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

from medmodal.config import LoaderSettings
from medmodal.config.common import check_choice
from medmodal.data.layouts import known_layouts
from medmodal.data.seg3d import LAYOUTS
from medmodal.engine.seg2d.config import (Seg2DLossSettings, Seg2DOptimSettings, Seg2DTrainerSettings,
                                         validate_shared_sections)
from medmodal.engine.semi import SemiSettings
from medmodal.errors import ConfigError
from medmodal.models import list_models
from medmodal.models.registry import get_tiny_kwargs

__all__ = ["volume_models", "Seg3DDataSettings", "Seg3DModelSettings", "Seg3DEvalSettings", "Seg3DRunConfig"]


def volume_models() -> list[str]:
    """Registered ``segmentation`` models that take volumes (their contract check does not fix them to 2-D)."""
    return [m for m in list_models("segmentation") if get_tiny_kwargs(m).get("spatial_dims") != 2]


@dataclass
class Seg3DDataSettings(LoaderSettings):
    """Attributes:
        root: the data folder (:func:`medmodal.data.seg3d.read_seg3d`). layout: ``auto`` | ``la2018`` | ``bhsd`` |
            ``nifti_folder``.
        patch: the training patch ``[X, Y, Z]`` in voxels of the (scaled) volume, each a multiple of 16 (UA-MT:
            112, 112, 80); volumes smaller than it are zero-padded.
        scale: resampling factor applied to every volume on loading (0.5: half the voxels per side; trilinear for
            images, nearest for labels); scores are computed on the scaled grid.
        val_fraction: share of the training cases held out for validation (LA has train / test lists only; UA-MT
            validates on nothing and keeps its last iteration), drawn with ``split_seed``, never labelled-budget
            cases' patients.
        test_fraction: share held out for test when the layout has no split at all.
        batch_size: patches per step (UA-MT: 4, 2 of them labelled).
        binary: merge every foreground label into one class (``null``: the layout's default: BHSD-style CT merged,
            SWDL's setting; LA2018 and a NIfTI folder keep their classes; ``false``: BHSD's five types).
    """

    root: str = "data/LA"
    layout: str = "auto"
    patch: list = field(default_factory=lambda: [112, 112, 80])
    scale: float = 1.0
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    batch_size: int = 4
    num_workers: int = 0
    binary: Optional[bool] = None


@dataclass
class Seg3DModelSettings:
    """Attributes:
        name: a registered volume model of the ``segmentation`` contract (``vnet``: UA-MT's V-Net; ``swdl_net``).
        kwargs: its config fields (``n_filters`` ...).
    """

    name: str = "vnet"
    kwargs: dict = field(default_factory=dict)


@dataclass
class Seg3DEvalSettings:
    """Attributes:
        overlap: sliding-window overlap of the patches at validation and test (MONAI ``sliding_window_inference``;
            UA-MT: stride 18 x 18 x 4 for a 112 x 112 x 80 patch, about 0.84 / 0.84 / 0.95).
        sw_batch_size: windows per forward.
        surface: also compute HD95 and ASD (slow on large volumes).
    """

    overlap: float = 0.5
    sw_batch_size: int = 2
    surface: bool = True


@dataclass
class Seg3DRunConfig:
    """A 3-D segmentation run (:func:`medmodal.engine.seg3d.train.run_seg3d`): ``medmodal seg train`` with a config
    whose ``task`` is ``3d`` (presets ``seg/train_uamt_la``, ``seg/train_swdl_la``, ``seg/train_semi_la_cpu``,
    ``seg/train_swdl_demo_cpu``)."""

    family: ClassVar[str] = "seg"
    TASK: ClassVar[str] = "3d"

    task: str = "3d"
    out_dir: str = "runs/seg3d"
    data: Seg3DDataSettings = field(default_factory=Seg3DDataSettings)
    model: Seg3DModelSettings = field(default_factory=Seg3DModelSettings)
    loss: Seg2DLossSettings = field(default_factory=lambda: Seg2DLossSettings(ce_weight=0.5, dice_weight=0.5,
                                                                              dice_include_background=False))
    optim: Seg2DOptimSettings = field(default_factory=lambda: Seg2DOptimSettings(lr=0.01))
    trainer: Seg2DTrainerSettings = field(default_factory=Seg2DTrainerSettings)
    eval: Seg3DEvalSettings = field(default_factory=Seg3DEvalSettings)
    semi: SemiSettings = field(default_factory=lambda: SemiSettings(labelled_batch=2))

    def validate(self) -> None:
        """Raises ConfigError: a wrong task, an unknown layout / model, a patch side that is not a positive multiple
        of 16, a scale outside (0, 1], fractions out of range, a bad loss / evaluation / semi setting."""
        if self.task != self.TASK:
            raise ConfigError(f"task: a 3-D segmentation config has task {self.TASK!r}, got {self.task!r}")
        d = self.data
        check_choice("data.layout", d.layout, known_layouts("seg3d", LAYOUTS))
        patch = list(d.patch) if isinstance(d.patch, (list, tuple)) else None
        if patch is None or len(patch) != 3 or any(isinstance(s, bool) or not isinstance(s, int) or s < 16 or s % 16
                                                   for s in patch):
            raise ConfigError(f"data.patch must be three multiples of 16, got {d.patch!r}")
        d.patch = patch
        if isinstance(d.scale, bool) or not isinstance(d.scale, (int, float)) or not 0 < d.scale <= 1:
            raise ConfigError(f"data.scale must be in (0, 1], got {d.scale!r}")
        check_choice("model.name", self.model.name, volume_models())
        e = self.eval
        if isinstance(e.overlap, bool) or not isinstance(e.overlap, (int, float)) or not 0 <= e.overlap < 1:
            raise ConfigError(f"eval.overlap must be in [0, 1), got {e.overlap!r}")
        if isinstance(e.sw_batch_size, bool) or not isinstance(e.sw_batch_size, int) or e.sw_batch_size < 1:
            raise ConfigError(f"eval.sw_batch_size must be an integer >= 1, got {e.sw_batch_size!r}")
        if self.semi.self_training or self.semi.era_classes:
            raise ConfigError("semi.self_training and semi.era_classes (ERANet's self-training and edge replacement) "
                              "are 2-D only")
        if self.semi.method in ("swdl", "swdl_no_feedback") and self.model.name != "swdl_net":
            raise ConfigError(f"semi.method {self.semi.method} trains SWDL-Net's two decoders: model.name must be "
                              f"swdl_net, got {self.model.name}")
        validate_shared_sections(self)

