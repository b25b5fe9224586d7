"""``medmodal train``: train a segmentation model into a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli.common import console, experiment_config, user_errors


@user_errors
def train_cmd(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (default: paper defaults)"),
    preset: Optional[str] = typer.Option(None, "--preset", help="packaged config name, e.g. demo_cpu, "
                                                                "dmafnet_brats2020, dmafnet_myops2020, tiny_myops2020"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run folder (overrides out_dir)"),
    data: Optional[Path] = typer.Option(None, "--data", help="dataset folder (overrides data.root)"),
    resume: str = typer.Option("auto", "--resume", help="auto (continue from last.ckpt if any) | never | PATH"),
    override: list[str] = typer.Option([], "--set", help="override a config value, e.g. --set trainer.max_epochs=5"),
):
    """Train a model (DMAF-Net by default); writes checkpoints, logs and a model bundle into the run folder."""
    from medmodal.distributed import is_global_zero
    from medmodal.engine.segmentation.train import run_training

    cfg = experiment_config(config, preset, out, data, override)
    run_dir = run_training(cfg, resume=resume)
    if is_global_zero():  # under DDP every process runs this command; one reports
        console.print(f"run folder: {run_dir}  (model bundle: {run_dir / 'model'})", soft_wrap=True)
