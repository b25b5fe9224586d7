"""build_optimizer gives every family the learning rate of every step that its own
``configure_optimizers`` gave before (the reference bodies below are those of commit a3d1149)."""

import math

import pytest
import torch

from medmodal.config import load_config, packaged_config
from medmodal.engine.endoscopy.config import load_finetune_config as mics_finetune
from medmodal.engine.endoscopy.config import load_pretrain_config as mics_pretrain
from medmodal.engine.finetune.config import load_finetune_config
from medmodal.engine.image_text.config import load_pretrain_config
from medmodal.engine.optim import build_optimizer
from medmodal.engine.seg2d.config import Seg2DOptimSettings
from medmodal.errors import ConfigError


def _params():
    torch.manual_seed(0)
    return [torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2))]


def _lrs(built: dict, n: int) -> list[list[float]]:
    opt, sched = built["optimizer"], built["lr_scheduler"]["scheduler"]
    out = []
    for _ in range(n):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return out


def _old_segmentation(params, cfg):
    o = cfg.optim
    opt = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay, fused=False)
    total = max(1, cfg.trainer.max_epochs)
    fn = {"poly": lambda e: (1 - min(e, total - 1) / total) ** o.poly_power,
          "cosine": lambda e: 0.5 * (1 + math.cos(math.pi * min(e, total) / total)),
          "constant": lambda e: 1.0}[o.schedule]
    return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, fn),
                                               "interval": "epoch"}}


def _old_stage_lr_factor(step, steps_per_epoch, cfg):
    o, t = cfg.optim, cfg.trainer
    steps_per_epoch = max(1, int(steps_per_epoch))
    stage1_steps = int(t.stage1_epochs) * steps_per_epoch
    if step < stage1_steps:
        local, total = step, stage1_steps
    else:
        local, total = step - stage1_steps, int(t.stage2_epochs) * steps_per_epoch
    total = max(1, total)
    warmup = min(int(round(o.warmup_epochs * steps_per_epoch)), total)
    if local < warmup:
        lr = o.warmup_start_lr + (o.lr - o.warmup_start_lr) * local / warmup
    else:
        span = max(1, total - warmup)
        progress = min(1.0, (local - warmup) / span)
        lr = o.final_lr + 0.5 * (o.lr - o.final_lr) * (1.0 + math.cos(math.pi * progress))
    return lr / o.lr


def _old_pretrain(params, cfg, total_steps, max_epochs):
    o = cfg.optim
    kind = torch.optim.Adam if o.optimizer == "adam" else torch.optim.AdamW
    opt = kind(params, lr=o.lr, weight_decay=o.weight_decay, fused=False)
    steps_per_epoch = max(1, int(total_steps) // max(1, max_epochs))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: _old_stage_lr_factor(step, steps_per_epoch, cfg))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _old_finetune(groups, cfg):
    o = cfg.optim
    opt = torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay, fused=False)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.t_max), eta_min=o.eta_min)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def _old_mics(groups, cfg, total_steps, max_epochs):
    o = cfg.optim
    opt = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
    total = max(1, int(total_steps))
    warmup = min(total - 1, int(round(total * o.warmup_epochs / max(1, max_epochs))))

    def factor(step):
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, factor),
                                               "interval": "step"}}


def _same(new, old, n):
    assert type(new["optimizer"]) is type(old["optimizer"])
    assert new["lr_scheduler"]["interval"] == old["lr_scheduler"]["interval"]
    strip = lambda g: {k: v for k, v in g.items() if k != "params"}  # noqa: E731
    assert [strip(g) for g in new["optimizer"].param_groups] == [strip(g) for g in old["optimizer"].param_groups]
    assert _lrs(new, n) == _lrs(old, n)


@pytest.mark.parametrize("preset,schedule", [("demo_cpu", None), ("dmafnet_brats2020", None),
                                             ("demo_cpu", "cosine"), ("demo_cpu", "constant")])
def test_segmentation_schedule_is_unchanged(preset, schedule):
    cfg = load_config(packaged_config(preset), [f"optim.schedule={schedule}"] if schedule else [])
    n = cfg.trainer.max_epochs + 5
    _same(build_optimizer(_params(), cfg.optim, max_epochs=cfg.trainer.max_epochs),
          _old_segmentation(_params(), cfg), n)


@pytest.mark.parametrize("preset", ["pretrain_demo_cpu", "pretrain_iu_xray"])
@pytest.mark.parametrize("steps_per_epoch", [1, 7])
def test_pretrain_staged_schedule_is_unchanged(preset, steps_per_epoch):
    cfg = load_pretrain_config(preset=preset)
    t = cfg.trainer
    total = steps_per_epoch * t.max_epochs + 3
    new = build_optimizer(_params(), cfg.optim, max_epochs=t.max_epochs, total_steps=total,
                          stage_epochs=(t.stage1_epochs, t.stage2_epochs))
    _same(new, _old_pretrain(_params(), cfg, total, t.max_epochs), total)


@pytest.mark.parametrize("preset", ["finetune_tiny_classification", "finetune_siim_segmentation"])
def test_finetune_schedule_is_unchanged(preset):
    cfg = load_finetune_config(preset=preset)
    groups = lambda: [{"name": "head", "lr": cfg.optim.lr, "params": _params()[:1]},  # noqa: E731
                      {"name": "encoder", "lr": cfg.optim.lr / 10, "params": _params()[1:]}]
    _same(build_optimizer(groups(), cfg.optim, max_epochs=cfg.trainer.max_epochs), _old_finetune(groups(), cfg),
          cfg.t_max + 5)


@pytest.mark.parametrize("loader,preset", [(mics_pretrain, "mics_pretrain_demo_cpu"),
                                           (mics_finetune, "mics_finetune_demo_cpu")])
def test_mics_schedule_is_unchanged(loader, preset):
    cfg = loader(preset=preset)
    o = cfg.optim
    groups = lambda: [{"params": _params()[:1]},  # noqa: E731
                      {"params": _params()[1:], "lr": o.discriminator_lr, "betas": tuple(o.discriminator_betas),
                       "weight_decay": 0.0}]
    total = 5 * cfg.trainer.max_epochs + 2
    new = build_optimizer(groups(), o, max_epochs=cfg.trainer.max_epochs, total_steps=total, fused=None)
    _same(new, _old_mics(groups(), cfg, total, cfg.trainer.max_epochs), total)
    assert new["optimizer"].defaults["fused"] is None  # torch's default kernels, as before


def test_unknown_names_and_unsupported_schedules_are_config_errors():
    cfg = load_config(packaged_config("demo_cpu"))
    cfg.optim.schedule = "warmup_cosine"
    with pytest.raises(ConfigError, match="per optimiser step"):
        build_optimizer(_params(), cfg.optim, max_epochs=3)
    cfg.optim.optimizer = "lamb"
    with pytest.raises(ConfigError, match="unknown optimizer 'lamb'"):
        build_optimizer(_params(), cfg.optim, max_epochs=3)


def test_sgd_with_per_step_poly_is_transunets_schedule():
    """SGD (momentum from the settings) and ``poly_step``: lr_s = lr * (1 - s / T) ** 0.9 per optimiser step."""
    param = torch.nn.Parameter(torch.zeros(2))
    built = build_optimizer([param], Seg2DOptimSettings(), max_epochs=3, total_steps=10)  # MSLAU-Net's defaults
    optim, sched = built["optimizer"], built["lr_scheduler"]["scheduler"]
    assert isinstance(optim, torch.optim.SGD) and optim.defaults["momentum"] == 0.9
    assert built["lr_scheduler"]["interval"] == "step"
    seen = []
    for _ in range(10):
        seen.append(optim.param_groups[0]["lr"])
        optim.step()
        sched.step()
    expected = [0.05 * (1 - s / 10) ** 0.9 for s in range(10)]
    assert seen == pytest.approx(expected)
