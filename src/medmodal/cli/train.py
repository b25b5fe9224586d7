"""``medmodal seg train``: train a segmentation model into a run folder (a volume model: DMAF-Net and its
baselines; with a ``task: vessels`` config, a retinal vessel model: DGSSA and its baselines; with a ``task: 2d``
config, a 2-D slice / photograph model: MSLAU-Net and its baselines)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli._run import (ConfigOpt, ResumeOpt, SetOpt, out_option, preset_option, run_and_report, run_config,
                               seed_option)
from medmodal.cli.common import console, user_errors
from medmodal.errors import ConfigError


@user_errors
def train_cmd(
    data: Optional[Path] = typer.Option(None, "--data", help="dataset folder (overrides data.root)"),
    preset: Optional[str] = preset_option("seg", "train"),
    config: Optional[Path] = ConfigOpt,
    override: list[str] = SetOpt,
    out: Optional[Path] = out_option("the config's out_dir: runs/dmafnet for DMAF-Net, runs/vessels/... for a vessel preset"),
    seed: Optional[int] = seed_option("0"),
    resume: str = ResumeOpt,
):
    """Train a model (DMAF-Net by default; a retinal vessel model with a vessel preset, e.g. --preset
    train_dgssa_drive; a 2-D model with a 2-D preset, e.g. --preset train_mslau_acdc_cpu); writes checkpoints,
    logs and a model bundle into the run folder."""
    from medmodal.engine.fundus.config import VesselRunConfig
    from medmodal.engine.seg2d.config import Seg2DRunConfig
    from medmodal.engine.seg3d.config import Seg3DRunConfig
    from medmodal.engine.segmentation.config import load_train_config

    cfg = run_config(load_train_config, config, preset, override, out=out, seed=seed)
    if data:
        cfg.data.root = str(data)
    if isinstance(cfg, VesselRunConfig):
        from medmodal.engine.fundus.train import run_vessels as run
    elif isinstance(cfg, Seg2DRunConfig):
        from medmodal.engine.seg2d.cst import train_2d as run
    elif isinstance(cfg, Seg3DRunConfig):
        from medmodal.engine.seg3d.train import run_seg3d as run
    else:
        _refuse_fundus_data(cfg.data.root)
        from medmodal.engine.segmentation.train import run_training as run
    run_and_report(run, cfg, resume, report=_report)


def _refuse_fundus_data(root) -> None:
    """A volume (MRI) config pointed at a fundus or 2-D data set: say to use a vessel / 2-D config, not "no BraTS
    layout"."""
    from medmodal.data.fundus.layouts import as_fundus_dataset
    from medmodal.data.seg2d import as_seg2d_dataset

    planar = as_seg2d_dataset(root) if root else None
    if planar is not None:
        raise ConfigError(f"{root}: a 2-D data set ({planar.layout} layout), but the config is a volume (MRI) config "
                          f"(no `task: 2d`); use a 2-D preset (e.g. --preset train_mslau_acdc_cpu) or add `task: 2d`")
    found = as_fundus_dataset(root) if root else None
    if found is not None:
        raise ConfigError(f"{root}: a fundus data set ({found.layout} layout), but the config is a volume (MRI) "
                          f"config (no `task: vessels`); use a vessel preset (e.g. --preset train_vessels_demo_cpu) "
                          f"or add `task: vessels` to the config")


def _report(result) -> None:
    """The bundle line, and for a vessel run its Dice per domain, for a 2-D run its test table."""
    if "model" in result.artefacts:
        console.print(f"model bundle: {result.artefacts['model']}", highlight=False, soft_wrap=True)
    if "splits" in result.metrics and "distance_unit" in result.metrics:   # a 3-D run
        m = result.metrics
        for split in ("val", "test"):
            part = m["splits"].get(split, {})
            if part.get("cases"):
                cells = [f"{key} {100 * v['mean'] if key in ('Dice', 'Jaccard') else v['mean']:.2f}"
                         for key in ("Dice", "Jaccard", "HD95", "ASD")
                         for v in [part["scores"].get(key)] if v and v.get("mean") is not None]
                console.print(f"{split} ({part['cases']} volumes; Dice / Jaccard in %, HD95 / ASD in "
                              f"{m['distance_unit']}): " + ", ".join(cells), highlight=False, soft_wrap=True)
    elif "splits" in result.metrics and "classes" in result.metrics:
        from medmodal.evaluation.seg2d import markdown_table

        m = result.metrics
        name = result.metrics.get("model_name", "model")
        for split in ("val", "test"):
            n = m["splits"].get(split, {}).get("cases")
            if n:
                unit = "" if m["protocol"] == "polyp" else "; HD95 in voxels, 0 where a class is not predicted"
                console.print(f"{split} ({n} case{'' if n == 1 else 's'}, protocol {m['protocol']}{unit}):\n"
                              + markdown_table({name: m["splits"][split]["scores"]}, m["classes"], m["protocol"]),
                              highlight=False, soft_wrap=True, markup=False)
    for name, domain in (result.metrics.get("domains") or {}).items():
        dice = domain["scores"]["dice"]
        console.print(f"{name} ({domain['role']}, {domain['images']} image{'' if domain['images'] == 1 else 's'}): Dice {100 * (dice['mean'] or 0):.2f} "
                      f"+- {100 * (dice['std'] or 0):.2f} (inside the FOV, threshold 0.5)", highlight=False,
                      soft_wrap=True)
