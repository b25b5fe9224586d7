"""The toy family's run config: ``ToyRunConfig`` built from the common sections (:mod:`medmodal.config.common`).

Naming (docs/extending.md): ``*Settings`` for run sections, ``*RunConfig`` for the top level, ``*Config``
for the model's own dataclass (:class:`tests.toy_family.model.ToyNetConfig`). The YAML keys are the field
names, so ``--set data.batch_size=2`` works as for every family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

from medmodal.config import LoaderSettings, OptimSettings, TrainerSettings, load_run_config
from medmodal.errors import ConfigError

__all__ = ["ToyDataSettings", "ToyModelSettings", "ToyOptimSettings", "ToyTrainerSettings", "ToyRunConfig",
           "load_toy_config"]


@dataclass
class ToyDataSettings(LoaderSettings):
    """A ``png-csv`` folder (:mod:`tests.toy_family.data`); shared fields: :class:`LoaderSettings`."""

    root: str = "runs/toy/data"
    layout: str = "auto"  # auto | png-csv
    num_classes: int = 2
    val_fraction: float = 0.25
    batch_size: int = 4
    num_workers: int = 0


@dataclass
class ToyModelSettings:
    """``create_model(name, num_classes=data.num_classes, **kwargs)`` of a ``toy_classifier`` model."""

    name: str = "toy_net"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToyOptimSettings(OptimSettings):
    """AdamW 1e-2, constant (shared fields: :class:`OptimSettings`)."""

    lr: float = 1e-2


@dataclass
class ToyTrainerSettings(TrainerSettings):
    """One epoch on the CPU (shared fields: :class:`TrainerSettings`)."""

    max_epochs: int = 1
    accelerator: str = "cpu"
    devices: Any = 1
    progress_bar: bool = False
    log_every_n_steps: int = 1


@dataclass
class ToyRunConfig:
    """One toy training run: ``data``, ``model``, ``loss`` (``loss.name``: a registered objective), ``optim``,
    ``trainer``, ``out_dir``."""

    family: ClassVar[str] = "toy"  # where load_run_config looks a bare preset name up first

    data: ToyDataSettings = field(default_factory=ToyDataSettings)
    model: ToyModelSettings = field(default_factory=ToyModelSettings)
    loss: dict[str, Any] = field(default_factory=lambda: {"name": "toy_ce"})
    optim: ToyOptimSettings = field(default_factory=ToyOptimSettings)
    trainer: ToyTrainerSettings = field(default_factory=ToyTrainerSettings)
    out_dir: str = "runs/toy/run"

    def validate(self) -> None:
        """Raises ConfigError: the optimiser's checks, fewer than 2 classes, a validation fraction outside (0, 1)."""
        self.optim.validate()
        if int(self.data.num_classes) < 2:
            raise ConfigError(f"data.num_classes must be >= 2, got {self.data.num_classes}")
        if not 0 < float(self.data.val_fraction) < 1:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {self.data.val_fraction}")


def load_toy_config(path: str | Path | None = None, preset: str | None = None,
                    overrides: Sequence[str] = ()) -> ToyRunConfig:
    """:func:`medmodal.config.load_run_config` of :class:`ToyRunConfig` (the loader ``run_config`` calls)."""
    return load_run_config(ToyRunConfig, path, preset, overrides)
