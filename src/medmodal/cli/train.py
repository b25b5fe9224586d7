"""``medmodal train``: train a segmentation model into a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli._run import RESUME_HELP, run_and_report, run_config
from medmodal.cli.common import console, user_errors


@user_errors
def train_cmd(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (default: paper defaults)"),
    preset: Optional[str] = typer.Option(None, "--preset", help="packaged config name, e.g. demo_cpu, "
                                                                "dmafnet_brats2020, dmafnet_myops2020, tiny_myops2020"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run folder (overrides out_dir)"),
    data: Optional[Path] = typer.Option(None, "--data", help="dataset folder (overrides data.root)"),
    resume: str = typer.Option("auto", "--resume", help=RESUME_HELP),
    override: list[str] = typer.Option([], "--set", help="override a config value, e.g. --set trainer.max_epochs=5"),
):
    """Train a model (DMAF-Net by default); writes checkpoints, logs and a model bundle into the run folder."""
    from functools import partial

    from medmodal.config import load_run_config
    from medmodal.engine.segmentation.config import SegmentationRunConfig
    from medmodal.engine.segmentation.train import run_training

    cfg = run_config(partial(load_run_config, SegmentationRunConfig), config, preset, override, out=out)
    if data:
        cfg.data.root = str(data)
    run_and_report(run_training, cfg, resume, report=lambda result: console.print(
        f"model bundle: {result.artefacts['model']}", highlight=False, soft_wrap=True))
