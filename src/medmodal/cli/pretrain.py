"""``medmodal cxr pretrain`` (image-report pre-training: CM-CGNS and baselines) and ``medmodal cxr export RUN``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli._run import (ConfigOpt, ResumeOpt, SetOpt, out_option, preset_option, run_and_report, run_config,
                               seed_option)
from medmodal.cli.common import console, user_errors
from medmodal.errors import ConfigError


@user_errors
def pretrain_cmd(
    preset: Optional[str] = preset_option("cxr", "pretrain"),
    config: Optional[Path] = ConfigOpt,
    data: Optional[Path] = typer.Option(None, "--data", help="MIMIC-CXR-JPG folder | IU annotation.json (or its "
                                        "folder) | indiana_reports.csv | generic CSV (data.root)"),
    model: Optional[str] = typer.Option(None, "--model", help="registered image_text model (default: the "
                                        "config's, cmcgns)"),
    override: list[str] = SetOpt,
    out: Optional[Path] = out_option("the config's out_dir, else runs/pretrain/<model>-<data>-seed<seed>"),
    seed: Optional[int] = seed_option("42"),
    resume: str = ResumeOpt,
):
    """Pre-train an image-report model (stage I, then stage II), export its encoders into RUN/export and
    evaluate retrieval (R@1/5/10) and zero-shot AUROC on the held-out test split."""
    from medmodal.engine.image_text.config import load_pretrain_config
    from medmodal.engine.image_text.train import run_pretraining
    from medmodal.evaluation.image_text import format_evaluation_tables

    if config is None and preset is None:
        raise ConfigError("give --preset (pretrain_mimic_cxr | pretrain_iu_xray | pretrain_demo_cpu) or --config")
    cfg = run_config(load_pretrain_config, config, preset, override, out=out, seed=seed)
    if data is not None:
        cfg.data.root = str(data)
    if model is not None:
        cfg.model.name = model
    cfg.validate()
    if not Path(cfg.data.root).exists():
        raise FileNotFoundError(f"{cfg.data.root}: data not found (--data; `medmodal cxr synth OUT` writes a "
                                f"built-in dataset)")

    def report(result) -> None:
        if result.get("evaluation"):
            console.print(format_evaluation_tables(result["evaluation"]), highlight=False, soft_wrap=True,
                          markup=False)
        seconds = result.get("wall_seconds")
        console.print(f"{result['model']}: {result['epochs']} epochs, {result['counts']} rows"
                      + (f", {seconds / 60:.1f} min" if seconds else ""), highlight=False, soft_wrap=True)
        if result.get("export"):
            console.print(f"export: {result['export']['image_encoder']} ({result['export']['architecture']}), "
                          f"{result['export']['text_encoder']}", highlight=False, soft_wrap=True)

    run_and_report(run_pretraining, cfg, resume, report)


@user_errors
def export_cmd(
    run: Path = typer.Argument(..., help="pre-training run folder (or a checkpoint file)"),
    checkpoint: str = typer.Option("last", "--checkpoint", help="last | best"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="export folder (default RUN/export)"),
):
    """Export a pre-training run's encoders: RUN/export/image_encoder (timm / torchvision keys,
    medmodal-image-encoder/1) and RUN/export/text_encoder (Hugging Face folder with tokenizer)."""
    from medmodal.engine.image_text.export import export_run

    result = export_run(run, checkpoint, out)
    console.print(f"image encoder ({result['architecture']}): {result['image_encoder']}", highlight=False,
                  soft_wrap=True)
    console.print(f"text encoder: {result['text_encoder'] or 'none'}", highlight=False, soft_wrap=True)
    for note in result["notes"]:
        console.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
