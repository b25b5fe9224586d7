"""``medmodal seg train``: train a segmentation model into a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli._run import (ConfigOpt, ResumeOpt, SetOpt, out_option, preset_option, run_and_report, run_config,
                               seed_option)
from medmodal.cli.common import console, user_errors


@user_errors
def train_cmd(
    data: Optional[Path] = typer.Option(None, "--data", help="dataset folder (overrides data.root)"),
    preset: Optional[str] = preset_option("seg", "train"),
    config: Optional[Path] = ConfigOpt,
    override: list[str] = SetOpt,
    out: Optional[Path] = out_option("runs/dmafnet"),
    seed: Optional[int] = seed_option("0"),
    resume: str = ResumeOpt,
):
    """Train a model (DMAF-Net by default); writes checkpoints, logs and a model bundle into the run folder."""
    from functools import partial

    from medmodal.config import load_run_config
    from medmodal.engine.segmentation.config import SegmentationRunConfig
    from medmodal.engine.segmentation.train import run_training

    cfg = run_config(partial(load_run_config, SegmentationRunConfig), config, preset, override, out=out, seed=seed)
    if data:
        cfg.data.root = str(data)
    run_and_report(run_training, cfg, resume, report=lambda result: console.print(
        f"model bundle: {result.artefacts['model']}", highlight=False, soft_wrap=True))
