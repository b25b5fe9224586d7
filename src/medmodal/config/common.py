"""Run-config sections every family shares; each family's sections subclass them.

A family section adds only its own fields and overrides a shared field's default where its
reference differs (dataclass inheritance: a redeclared field keeps its place and takes the new
default). The YAML keys are the field names, so presets, run folders and ``--set a.b=value`` paths
stay the same.

==================  ==========================================================================
section             shared fields (defaults here; the family subclasses set their references')
==================  ==========================================================================
``trainer``         accelerator, devices, num_nodes, precision, seed, val_every_n_epochs,
                    log_every_n_steps, progress_bar (Lightning ``Trainer`` arguments, see
                    :func:`medmodal.engine.trainer.make_trainer`)
``optim``           optimizer, lr, weight_decay, grad_clip, schedule (see
                    :func:`medmodal.engine.optim.build_optimizer` for the schedule vocabulary)
``data``            root, cache_dir, split_seed, batch_size, num_workers
==================  ==========================================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Optional

from medmodal.errors import ConfigError

__all__ = ["TrainerSettings", "OptimSettings", "LoaderSettings", "OPTIMIZERS", "SCHEDULES", "check_choice",
           "usable_cpus"]

#: optimisers :func:`medmodal.engine.optim.build_optimizer` builds
OPTIMIZERS = ("adamw", "adam", "sgd")
#: learning-rate schedules :func:`medmodal.engine.optim.build_optimizer` builds
SCHEDULES = ("constant", "poly", "poly_step", "cosine", "cosine_annealing", "warmup_cosine", "staged")


def check_choice(key: str, value: Any, choices) -> None:
    """Refuse ``value`` of config key ``key`` unless it is one of ``choices``.

    Raises:
        ConfigError: naming the key, the value and the choices.
    """
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}, got {value!r}")


@dataclass
class TrainerSettings:
    """The Lightning trainer.

    Attributes:
        accelerator / devices / num_nodes: Lightning's (``auto`` picks the GPUs when present).
        precision: a Lightning precision (``32-true`` on CPUs; ``bf16-mixed`` on GPUs).
        seed: training seed (``L.seed_everything``; data order, initialisation, augmentation).
        val_every_n_epochs: validation period in epochs.
        log_every_n_steps: logging period (also how often the progress bar reads the loss back).
        progress_bar: show the rich progress bar.
    """

    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    seed: int = 0
    val_every_n_epochs: int = 1
    log_every_n_steps: int = 10
    progress_bar: bool = True

    def validate(self, where: str = "trainer") -> None:
        """Raises ConfigError: a period, node count or ``max_epochs`` (of a subclass that has it) below 1
        (0 epochs would write an untrained model as if it were trained)."""
        keys = ["num_nodes", "val_every_n_epochs", "log_every_n_steps"] + [
            f.name for f in fields(self) if f.name == "max_epochs"]
        for key in keys:
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"{where}.{key} must be >= 1, got {getattr(self, key)}")


@dataclass
class OptimSettings:
    """The optimiser and its learning-rate schedule.

    Attributes:
        optimizer: ``adamw`` | ``adam`` | ``sgd`` (momentum from a ``momentum`` field of the subclass, else 0.9).
        lr: peak learning rate. weight_decay: the optimiser's (decoupled for AdamW).
        grad_clip: gradient-norm clipping (``None``: off).
        schedule: one of :data:`SCHEDULES` (:func:`medmodal.engine.optim.build_optimizer`).
    """

    optimizer: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: Optional[float] = None
    schedule: str = "constant"

    def validate(self, where: str = "optim") -> None:
        """Raises ConfigError: an unknown optimiser / schedule, a learning rate <= 0."""
        check_choice(f"{where}.optimizer", self.optimizer, OPTIMIZERS)
        check_choice(f"{where}.schedule", self.schedule, SCHEDULES)
        if not float(self.lr) > 0:
            raise ConfigError(f"{where}.lr must be > 0, got {self.lr}")


@dataclass
class LoaderSettings:
    """Where the data is and how it is loaded.

    Attributes:
        root: the data set (folder or file, as the family's readers take it).
        cache_dir: decoded-data cache (``None``: the family's default, next to the data or in memory).
        split_seed: seed of the drawn splits (fixed across training seeds).
        batch_size: per process. num_workers: DataLoader workers.
    """

    root: str = "data"
    cache_dir: Optional[str] = None
    split_seed: int = 0
    batch_size: int = 1
    num_workers: int = 2

    def capped_workers(self) -> tuple[int, str | None]:
        """``(workers, note)``: ``num_workers`` capped at the CPUs this process may use
        (:func:`usable_cpus`; more workers than CPUs only compete, and PyTorch warns about them),
        with a note naming both when capped (``None`` otherwise). Used by the families that say so
        (the chest X-ray engines); the others load with ``num_workers`` as given."""
        cpus = usable_cpus()
        workers = int(self.num_workers)
        if workers <= cpus:
            return workers, None
        return cpus, (f"data.num_workers {workers} is more than the {cpus} CPUs this process may use: "
                      f"loading with {cpus} workers")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the system has one, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
