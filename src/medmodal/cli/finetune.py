"""``medmodal cxr finetune`` (chest X-ray downstream tasks) and ``medmodal cxr finetune-speed`` (linear-probe speed)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli._run import (ConfigOpt, ResumeOpt, SetOpt, out_option, preset_option, run_and_report, run_config,
                               seed_option)
from medmodal.cli.common import console, user_errors
from medmodal.errors import ConfigError


@user_errors
def finetune_cmd(
    task: Optional[str] = typer.Option(None, "--task", help="classification | segmentation | detection "
                                       "(default: the preset's)"),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="chexpert | rsna | covidx | siim | object-cxr"),
    data: Optional[Path] = typer.Option(None, "--data", help="the dataset's folder, as distributed (data.root)"),
    fraction: Optional[float] = typer.Option(None, "--fraction", help="label fraction of the training split: "
                                             "0.01 | 0.1 | 1 (default 1)"),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="pre-training run folder | export folder | "
                                          "image_encoder folder | weights .safetensors/.pth/.pt | imagenet:PATH | "
                                          "random (default random)"),
    arch: Optional[str] = typer.Option(None, "--arch", help="timm architecture of a weight file or random init "
                                       "(default: the preset's, else resnet50); an export names its own, checked "
                                       "against --arch only when --arch is given"),
    preset: Optional[str] = preset_option("cxr", "finetune"),
    config: Optional[Path] = ConfigOpt,
    override: list[str] = SetOpt,
    out: Optional[Path] = out_option("runs/finetune/<dataset>-<task>-<fraction>-seed<seed>"),
    seed: Optional[int] = seed_option("the task's reference seed"),
    unfreeze: bool = typer.Option(False, "--unfreeze", help="fine-tune the encoder too (optim.encoder_lr, "
                                  "default lr / 10)"),
    exact_protocol: bool = typer.Option(False, "--exact-protocol", help="classification: re-encode the augmented "
                                        "images every epoch as the references (default: cached features, no "
                                        "training augmentation)"),
    resume: str = ResumeOpt,
):
    """Fine-tune a pre-trained image encoder on a chest X-ray downstream task (MGCA / CM-CGNS protocol);
    writes checkpoints, logs, splits, metrics.json and results.csv into the run folder."""
    from medmodal.engine.finetune.config import load_finetune_config
    from medmodal.engine.finetune.train import format_result, run_finetune
    from medmodal.models.encoder_export import architecture_for

    cfg = run_config(load_finetune_config, config, preset, override, out=out, seed=seed, task=task, dataset=dataset)
    if data is not None:
        cfg.data.root = str(data)
    if fraction is not None:
        cfg.data.fraction = float(fraction)
    if encoder is not None:
        cfg.encoder.source = encoder
    if arch is not None:
        cfg.encoder.arch = arch
    elif not any(item.split("=", 1)[0].strip() == "encoder.arch" for item in override):
        # a preset's / config's arch is the default for sources that need one; an export names its own
        cfg.encoder.arch = architecture_for(cfg.encoder.source, cfg.encoder.arch)
    if unfreeze:
        cfg.encoder.freeze = False
    cfg.validate()
    if exact_protocol:
        if cfg.task != "classification":
            raise ConfigError("--exact-protocol applies to classification (segmentation and detection always "
                              "run the encoder on every batch)")
        cfg.classification.features, cfg.classification.train_transform = "augmented", "reference"
    if not cfg.data.root or not Path(cfg.data.root).exists():
        raise FileNotFoundError(f"{cfg.data.root}: dataset folder not found (--data)")
    run_and_report(run_finetune, cfg, resume, lambda result: console.print(
        format_result(result), highlight=False, soft_wrap=True))


@user_errors
def finetune_speed_cmd(
    out: Path = typer.Option(Path("runs/bench_finetune"), "--out", help="working folder (data, runs, speed.json)"),
    data: Optional[Path] = typer.Option(None, "--data", help="a dataset folder (default: write a synthetic twin "
                                        "into OUT/data)"),
    dataset: str = typer.Option("rsna", "--dataset", "-d", help="classification dataset (rsna | covidx | chexpert)"),
    images: int = typer.Option(240, "--images", help="images of the synthetic twin"),
    encoder: str = typer.Option("random", "--encoder", help="as medmodal cxr finetune --encoder"),
    arch: Optional[str] = typer.Option(None, "--arch", help="architecture of random / weight-file encoders "
                                       "(default resnet18; an export names its own)"),
    image_size: int = typer.Option(224, "--image-size"),
    epochs: int = typer.Option(15, "--epochs"),
    batch_size: int = typer.Option(48, "--batch-size"),
    accelerator: str = typer.Option("cpu", "--accelerator", help="cpu | gpu"),
):
    """Linear probe on cached features vs re-encoding every epoch: wall time and test metric, side by side."""
    from medmodal.data.cxr.downstream import synth_downstream
    from medmodal.experiments.cxr.finetune_speed import LinearProbeSpeedSettings, format_report, run
    from medmodal.models.encoder_export import architecture_for

    if data is None:
        data = out / "data" / dataset
        if not data.is_dir():
            with console.status("drawing the synthetic twin"):
                synth_downstream(out / "data", dataset, images=images, size=256, seed=0)
    arch = arch or architecture_for(encoder, "resnet18")
    settings = LinearProbeSpeedSettings(data=str(data), dataset=dataset, encoder=encoder, arch=arch,
                                        image_size=image_size, epochs=epochs, batch_size=batch_size,
                                        accelerator=accelerator)
    report = run(settings, out)
    console.print(format_report(report), highlight=False, markup=False, soft_wrap=True)
    console.print(f"JSON: {out / 'speed.json'}", highlight=False, soft_wrap=True)
