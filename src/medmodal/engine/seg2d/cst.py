"""ERANet's conditional self-training (CST; Li et al., arXiv 2502.07331; release ``code/eval-unlabel-split.py`` and
``code/cst.py``), after its stage 1 (``semi.method: eranet``, :class:`medmodal.engine.semi.ERANetStage1`).

1. Stage 1 keeps ``semi.snapshots`` student checkpoints at evenly spaced epochs (``RUN/stage1/snapshots/``).
2. Each snapshot predicts every unlabelled training slice (on the network grid). A slice is *reliable* when the
   Dice agreement (mean over all classes, background included, as the release) between the first snapshot's
   prediction and every later one is at least ``cst_agreement`` (0.8).
3. U3 is trained from scratch on the labelled slices plus the reliable slices with the last snapshot's
   pseudo-labels; it relabels the unreliable slices.
4. U4 is trained from scratch on the labelled slices plus all pseudo-labelled slices; U4 is the run's model
   (validated, saved in ``RUN/model``, scored).

**Departures from the release**, with reasons: U3 and U4 are the task's network with the run's optimiser and
budget (the release: a V-Net-style 2-D U-Net and Adam 1e-3 for 100 epochs), so the comparison with the other
methods changes one thing at a time; the reliable slices' pseudo-labels are the last snapshot's (the release's
split script does not say which checkpoint labels them); an agreement on a slice where both predictions are empty
for a class counts 1 for that class. Each stage keeps its own checkpoint by validation Dice (validation patients
only), as every run here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from medmodal.config import config_to_dict, save_config
from medmodal.data.seg2d import read_seg2d
from medmodal.engine.run import RunResult, finished_result
from medmodal.engine.seg2d.config import Seg2DRunConfig
from medmodal.engine.seg2d.module import Seg2DModule
from medmodal.engine.seg2d.train import METRICS_FILE, _training_slices, run_seg2d, with_classes
from medmodal.errors import ConfigError
from medmodal.io import atomic_write_json

__all__ = ["train_2d", "run_conditional_self_training", "agreement", "lowest_agreement", "reliable_slices"]


def train_2d(cfg: Seg2DRunConfig, resume: str | None = "auto") -> RunResult:
    """A ``task: 2d`` run as ``medmodal seg train`` starts it: ERANet in full (stage 1, U3, U4) when
    ``semi.self_training`` is set, else one run (:func:`medmodal.engine.seg2d.train.run_seg2d`)."""
    if cfg.semi.self_training:
        return run_conditional_self_training(cfg, resume=resume)
    return run_seg2d(cfg, resume)


def agreement(a: torch.Tensor, b: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per slice, the mean over all classes of the Dice between label maps ``a`` and ``b`` (``[N, H, W]``); a class
    empty in both counts 1. Returns ``[N]``."""
    scores = []
    for c in range(num_classes):
        p, q = a == c, b == c
        den = p.sum((1, 2)) + q.sum((1, 2))
        inter = (p & q).sum((1, 2))
        scores.append(torch.where(den == 0, torch.ones_like(den, dtype=torch.float32),
                                  2.0 * inter.float() / den.clamp(min=1).float()))
    return torch.stack(scores).mean(0)


def lowest_agreement(predictions: list[torch.Tensor], num_classes: int) -> torch.Tensor:
    """``[N]``: per slice, the lowest :func:`agreement` between the first snapshot's prediction and a later one."""
    if len(predictions) < 2:
        raise ValueError("conditional self-training compares at least two snapshots")
    first = predictions[0]
    return torch.stack([agreement(first, p, num_classes) for p in predictions[1:]]).min(0).values


def reliable_slices(predictions: list[torch.Tensor], num_classes: int, threshold: float) -> torch.Tensor:
    """``[N]`` bool: the first snapshot's prediction agrees with every later one at ``threshold`` or more."""
    return lowest_agreement(predictions, num_classes) >= threshold


@torch.no_grad()
def _predict(module: Seg2DModule, images: torch.Tensor, batch: int = 32) -> torch.Tensor:
    module.eval()
    out = [module(images[i:i + batch]).argmax(1) for i in range(0, len(images), batch)]
    return torch.cat(out)


def _load(cfg: dict, checkpoint: Path) -> Seg2DModule:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    module = Seg2DModule(cfg)
    module.load_state_dict(state["state_dict"])
    return module


def run_conditional_self_training(cfg: Seg2DRunConfig, stage1: str | Path | None = None,
                                  resume: str | None = "auto") -> RunResult:
    """ERANet in full: stage 1 (or the finished stage-1 run in ``stage1``), the reliability split, U3, U4 (module
    docstring). ``cfg.out_dir`` receives U4 (the run's model) with ``stage1/`` (unless given) and ``u3/`` inside.

    Raises:
        ConfigError: ``semi.method`` is not ``eranet``; a stage-1 folder without snapshots.
    """
    if cfg.semi.method != "eranet":
        raise ConfigError(f"conditional self-training follows ERANet's stage 1: semi.method must be eranet, "
                          f"got {cfg.semi.method}")
    run_dir = Path(cfg.out_dir)
    done = finished_result(run_dir, resume, METRICS_FILE, cfg=cfg, artefacts={"model": str(run_dir / "model")})
    if done is not None:
        return done
    stage1 = Path(stage1) if stage1 is not None else run_dir / "stage1"
    if not (stage1 / METRICS_FILE).is_file():
        run_seg2d(replace(cfg, out_dir=str(stage1), semi=replace(cfg.semi, self_training=False)), resume)
    shots = sorted((stage1 / "snapshots").glob("*.ckpt"))[-int(cfg.semi.snapshots):]
    if len(shots) < 2:
        raise ConfigError(f"{stage1 / 'snapshots'}: conditional self-training needs at least 2 stage-1 snapshots, "
                          f"found {len(shots)}")
    # the unlabelled training slices of stage 1, on the network grid
    splits = json.loads((stage1 / "splits.json").read_text())
    dataset = with_classes(read_seg2d(cfg.data.root, cfg.data.layout), cfg.data.classes)
    by_id = {c.id: c for c in dataset.cases}
    labelled = set(splits.get("labelled", splits["train"]))
    pool = [by_id[i] for i in splits["train"] if i not in labelled] + [by_id[i] for i in splits.get("unlabelled", [])]
    images, _ = _training_slices(dataset, pool, cfg.data.grid(), labelled=False)
    stage_cfg = torch.load(shots[-1], map_location="cpu", weights_only=True)["hyper_parameters"]["config"]
    num_classes = int(stage_cfg["bundle"]["num_classes"])
    predictions = [_predict(_load(stage_cfg, shot), images) for shot in shots]
    lowest = lowest_agreement(predictions, num_classes)
    reliable = lowest >= float(cfg.semi.cst_agreement)
    quantiles = {f"q{int(q * 100):02d}": round(float(v), 4)
                 for q, v in zip((0.05, 0.25, 0.5, 0.75, 0.95), torch.quantile(lowest, torch.tensor(
                     [0.05, 0.25, 0.5, 0.75, 0.95])).tolist())}
    pseudo = predictions[-1]
    supervised = replace(cfg, semi=replace(cfg.semi, method="none", self_training=False))
    n_rel = int(reliable.sum())
    agreement_note = (f"conditional self-training: {n_rel} of {len(images)} unlabelled slices reliable (lowest "
                      f"snapshot agreement >= {cfg.semi.cst_agreement}; its median {quantiles['q50']}, 95th "
                      f"percentile {quantiles['q95']})" + ("; U3 learns from the labelled slices alone" if n_rel == 0
                                                           else ""))
    u3 = run_seg2d(replace(supervised, out_dir=str(run_dir / "u3")), resume, extra=(images[reliable], pseudo[reliable]),
                   extra_note=f"conditional self-training U3: {n_rel} reliable pseudo-labelled slices of {len(images)}")
    if n_rel < len(images):
        u3_module = _load({**config_to_dict(supervised), "bundle": stage_cfg["bundle"]},
                          Path(u3.artefacts["checkpoint"]))
        pseudo = pseudo.clone()
        pseudo[~reliable] = _predict(u3_module, images[~reliable])
    result = run_seg2d(supervised, resume, extra=(images, pseudo),
                       extra_note=f"conditional self-training U4: {len(images)} pseudo-labelled slices ({n_rel} "
                                  f"reliable from stage 1 (agreement >= {cfg.semi.cst_agreement} over "
                                  f"{len(shots)} snapshots), {len(images) - n_rel} relabelled by U3)")
    metrics = {"run_dir": result.run_dir, "notes": [*result.notes, agreement_note], **result.metrics,
               "semi": {"method": "eranet", "labelled_patients": cfg.semi.labelled_patients, "self_training": True},
               "cst": {"reliable": n_rel, "pseudo_labelled": len(images), "snapshots": [p.name for p in shots],
                       "agreement_quantiles": quantiles,
                       "stage1": str(stage1), "u3": str(run_dir / "u3"),
                       "stage1_best_val_dice": json.loads((stage1 / METRICS_FILE).read_text()).get("best_val_dice"),
                       "u3_best_val_dice": u3.metrics.get("best_val_dice")}}
    save_config(cfg, run_dir / "config.yaml")   # the run is ERANet's (U4 was written as a supervised run)
    atomic_write_json(run_dir / METRICS_FILE, metrics)
    return RunResult.from_dict(metrics, result.artefacts)
