"""One optimiser + learning-rate schedule builder for every engine (timm's ``create_optimizer`` /
``create_scheduler`` idea): a LightningModule's ``configure_optimizers`` returns
``build_optimizer(params, self.cfg.optim, max_epochs=..., total_steps=...)``.

Optimisers (``optim.optimizer``): ``adamw`` | ``adam`` (torch), with ``lr`` and ``weight_decay``
from the settings, ``betas`` when the settings have them, per-group options from the parameter groups.

Schedules (``optim.schedule``; factor of each group's learning rate, ``LambdaLR`` unless said):

==================  ========  =======================================================================
schedule            stepped   factor at epoch ``e`` / optimiser step ``s``
==================  ========  =======================================================================
``constant``        epoch     1
``poly``            epoch     ``(1 - min(e, E - 1) / E) ** poly_power`` (``E`` = max_epochs; DMAF-Net)
``poly_step``       step      ``(1 - min(s, T - 1) / T) ** poly_power`` (``T`` = total steps; TransUNet's
                              per-iteration poly, ``Beckschen/TransUNet`` trainer.py, used by MSLAU-Net)
``cosine``          epoch     ``0.5 * (1 + cos(pi * min(e, E) / E))``
``cosine_annealing`` epoch    torch ``CosineAnnealingLR(T_max = t_max or E, eta_min)`` (the CM-CGNS
                              downstream references')
``warmup_cosine``   step      linear warm-up ``(s + 1) / (W + 1)`` for ``s < W``, then
                              ``0.5 * (1 + cos(pi * (s - W) / (T - W)))``; ``T`` = total steps,
                              ``W = min(T - 1, round(T * warmup_epochs / E))`` (MICS)
``staged``          step      :func:`staged_warmup_cosine_factor`: warm-up from ``warmup_start_lr`` and
                              cosine to ``final_lr`` within each of two stages, restarting at stage II
                              (CM-CGNS pre-training, pl_bolts ``LinearWarmupCosineAnnealingLR``)
==================  ========  =======================================================================

Each formula is the one its engine used before this builder existed (same float operations in the same
order), so the learning rate of every step is unchanged.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import torch

from medmodal.config.common import OPTIMIZERS, SCHEDULES, OptimSettings
from medmodal.errors import ConfigError

__all__ = ["build_optimizer", "build_schedule", "staged_warmup_cosine_factor", "EPOCH_SCHEDULES", "STEP_SCHEDULES"]

#: schedules stepped once per epoch / once per optimiser step
EPOCH_SCHEDULES = ("constant", "poly", "cosine", "cosine_annealing")
STEP_SCHEDULES = ("warmup_cosine", "staged", "poly_step")

_AUTO = "auto"


def _optimizer(params: Iterable, settings: OptimSettings, fused: Any) -> torch.optim.Optimizer:
    params = list(params)
    groups = params if params and isinstance(params[0], dict) else None
    flat = [p for g in groups for p in g["params"]] if groups is not None else params
    kwargs: dict[str, Any] = {"lr": settings.lr, "weight_decay": settings.weight_decay}
    betas = getattr(settings, "betas", None)
    if betas is not None:
        kwargs["betas"] = tuple(betas)
    if settings.optimizer == "sgd":  # momentum SGD (TransUNet / MSLAU-Net: momentum 0.9, weight decay 1e-4)
        return torch.optim.SGD(params, lr=settings.lr, weight_decay=settings.weight_decay,
                               momentum=float(getattr(settings, "momentum", 0.9)))
    if fused == _AUTO:  # one fused CUDA kernel instead of per-tensor launches
        kwargs["fused"] = bool(flat) and all(p.is_cuda for p in flat)
    elif fused is not None:
        kwargs["fused"] = bool(fused)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(params, **kwargs)
    if settings.optimizer == "adam":
        return torch.optim.Adam(params, **kwargs)
    raise ConfigError(f"unknown optimizer {settings.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


def staged_warmup_cosine_factor(step: int, steps_per_epoch: int, settings: OptimSettings,
                                stage_epochs: Sequence[int]) -> float:
    """Learning rate of optimiser step ``step`` (global, 0-based) divided by ``settings.lr``.

    Within each stage (its own step count; stage I ``stage_epochs[0]`` epochs, then stage II): linear
    warm-up from ``warmup_start_lr`` over ``warmup_epochs`` epochs, then cosine annealing to ``final_lr``
    at the stage's last step (pl_bolts ``LinearWarmupCosineAnnealingLR`` stepped per iteration, as the
    CM-CGNS release re-creates it for stage II).
    """
    o = settings
    steps_per_epoch = max(1, int(steps_per_epoch))
    stage1_steps = int(stage_epochs[0]) * steps_per_epoch
    if step < stage1_steps:
        local, total = step, stage1_steps
    else:
        local, total = step - stage1_steps, int(stage_epochs[1]) * steps_per_epoch
    total = max(1, total)
    warmup = min(int(round(o.warmup_epochs * steps_per_epoch)), total)
    if local < warmup:
        lr = o.warmup_start_lr + (o.lr - o.warmup_start_lr) * local / warmup
    else:
        span = max(1, total - warmup)
        progress = min(1.0, (local - warmup) / span)
        lr = o.final_lr + 0.5 * (o.lr - o.final_lr) * (1.0 + math.cos(math.pi * progress))
    return lr / o.lr


def build_schedule(optimizer: torch.optim.Optimizer, settings: OptimSettings, *, max_epochs: int,
                   total_steps: int | None = None, stage_epochs: Sequence[int] | None = None) -> dict:
    """The ``lr_scheduler`` entry (``{"scheduler", "interval"}``) of ``settings.schedule`` (module docstring).

    Args:
        max_epochs: the run's epochs (``trainer.max_epochs``).
        total_steps: optimiser steps of the whole run (``trainer.estimated_stepping_batches``); per-step
            schedules need it.
        stage_epochs: ``(stage I, stage II)`` epochs of the ``staged`` schedule.

    Raises:
        ConfigError: an unknown schedule; a per-step schedule without ``total_steps``, ``staged``
            without ``stage_epochs``.
    """
    o = settings
    schedule = o.schedule
    if schedule in STEP_SCHEDULES and total_steps is None:
        raise ConfigError(f"optim.schedule {schedule!r} is stepped per optimiser step: this engine does not "
                          f"support it; choose one of {', '.join(EPOCH_SCHEDULES)}")
    if schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1.0)
    elif schedule == "poly":
        total = max(1, max_epochs)
        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: (1 - min(e, total - 1) / total) ** o.poly_power)
    elif schedule == "poly_step":
        total = max(1, int(total_steps))
        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: (1 - min(s, total - 1) / total) ** o.poly_power)
    elif schedule == "cosine":
        total = max(1, max_epochs)
        sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: 0.5 * (1 + math.cos(math.pi * min(e, total) / total)))
    elif schedule == "cosine_annealing":
        t_max = int(getattr(o, "t_max", None) or max_epochs)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, t_max),
                                                           eta_min=getattr(o, "eta_min", 0.0))
    elif schedule == "warmup_cosine":
        total = max(1, int(total_steps))
        warmup = min(total - 1, int(round(total * getattr(o, "warmup_epochs", 0) / max(1, max_epochs))))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    elif schedule == "staged":
        if stage_epochs is None:
            raise ConfigError("optim.schedule 'staged' needs two training stages: this engine has none")
        steps_per_epoch = max(1, int(total_steps) // max(1, max_epochs))
        stages = tuple(stage_epochs)
        sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: staged_warmup_cosine_factor(step, steps_per_epoch, o, stages))
    else:
        raise ConfigError(f"unknown optim.schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    return {"scheduler": sched, "interval": "step" if schedule in STEP_SCHEDULES else "epoch"}


def build_optimizer(params: Iterable, settings: OptimSettings, *, max_epochs: int, total_steps: int | None = None,
                    stage_epochs: Sequence[int] | None = None, fused: Any = _AUTO) -> dict:
    """What a LightningModule's ``configure_optimizers`` returns: ``{"optimizer", "lr_scheduler"}``.

    Args:
        params: parameters or parameter groups (dicts with ``params`` and per-group options).
        settings: the run's ``optim`` section (:class:`medmodal.config.common.OptimSettings` or a subclass).
        max_epochs / total_steps / stage_epochs: see :func:`build_schedule`.
        fused: ``auto`` (a fused CUDA kernel when every parameter is on a GPU, else ``fused=False``),
            ``None`` (torch's default: foreach on GPUs; the MICS engine's), or a bool.

    Raises:
        ConfigError: an unknown optimiser or schedule (see :func:`build_schedule`).
    """
    optimizer = _optimizer(params, settings, fused)
    return {"optimizer": optimizer, "lr_scheduler": build_schedule(optimizer, settings, max_epochs=max_epochs,
                                                                   total_steps=total_steps,
                                                                   stage_epochs=stage_epochs)}
