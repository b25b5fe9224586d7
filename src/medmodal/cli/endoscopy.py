"""``medmodal endoscopy pretrain|finetune|predict|demo`` (MICS; old spellings ``pretrain-endoscopy`` ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli._run import (ConfigOpt, ResumeOpt, SetOpt, out_option, preset_option, run_and_report, run_config,
                               seed_option)
from medmodal.cli.common import console, user_errors
from medmodal.errors import ConfigError

LayoutOpt = typer.Option("auto", "--layout", help="auto | authors | wl-nbi | kvasir | kvasir-seg | image-folder | csv")


def _apply_data(cfg, data: Optional[Path], layout: str, split_file: Optional[Path]) -> None:
    if data is not None:
        cfg.data.root = str(data)
    if layout != "auto":
        cfg.data.layout = layout
    if split_file is not None:
        cfg.data.split_file = str(split_file)
    if not Path(cfg.data.root).exists():
        raise FileNotFoundError(f"{cfg.data.root}: dataset folder not found (--data)")


@user_errors
def pretrain_endoscopy_cmd(
    data: Optional[Path] = typer.Option(None, "--data", help="paired dataset folder or CSV (data.root)"),
    layout: str = LayoutOpt,
    split_file: Optional[Path] = typer.Option(None, "--split-file", help="official split file (kvasir layout)"),
    preset: Optional[str] = preset_option("endoscopy", "pretrain"),
    config: Optional[Path] = ConfigOpt,
    override: list[str] = SetOpt,
    out: Optional[Path] = out_option("runs/mics/pretrain"),
    seed: Optional[int] = seed_option("0"),
    resume: str = ResumeOpt,
):
    """MICS self-supervised pre-training on unlabelled WLI / NBI pairs (reconstruction + contrastive +
    adversarial); writes encoders.safetensors for endoscopy finetune --init."""
    from medmodal.engine.endoscopy import load_pretrain_config, run_pretrain

    cfg = run_config(load_pretrain_config, config, preset, override, out=out, seed=seed)
    _apply_data(cfg, data, layout, split_file)

    def report(result) -> None:
        losses = result["losses"]
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(losses.items()) if k.startswith("val/")) or \
            ", ".join(f"{k} {v:.4f}" for k, v in sorted(losses.items()))
        pairs, epochs = result["pairs"], result["epochs"]
        console.print(f"pre-trained on {pairs} pair{'s' * (pairs != 1)}, {epochs} epoch{'s' * (epochs != 1)}: {shown}",
                      highlight=False, soft_wrap=True)

    run_and_report(run_pretrain, cfg, resume, report)


@user_errors
def finetune_endoscopy_cmd(
    data: Optional[Path] = typer.Option(None, "--data", help="labelled dataset folder or CSV (data.root)"),
    layout: str = LayoutOpt,
    split_file: Optional[Path] = typer.Option(None, "--split-file", help="official split file (kvasir layout)"),
    init: Optional[str] = typer.Option(None, "--init", help="pre-training run folder or encoders.safetensors "
                                       "(default none: random init)"),
    fraction: Optional[float] = typer.Option(None, "--fraction", help="label fraction: 0.01 | 0.05 | 0.1 | 1"),
    method: Optional[str] = typer.Option(None, "--method", help="supervised | fixmatch"),
    modalities: Optional[str] = typer.Option(None, "--modalities", help="model streams: wli,nbi | wli | nbi"),
    preset: Optional[str] = preset_option("endoscopy", "finetune"),
    config: Optional[Path] = ConfigOpt,
    override: list[str] = SetOpt,
    out: Optional[Path] = out_option("runs/mics/finetune"),
    seed: Optional[int] = seed_option("0: label subset, init, augmentation"),
    resume: str = ResumeOpt,
):
    """Fine-tune the MICS classifier (or a baseline) with few labels; tests with all modalities and with
    white light only; writes metrics.json, results.csv, per_class.csv, confusion.png, model.safetensors."""
    from medmodal.engine.endoscopy import load_finetune_config, run_finetune
    from medmodal.engine.endoscopy.train import format_result

    cfg = run_config(load_finetune_config, config, preset, override, out=out, seed=seed)
    _apply_data(cfg, data, layout, split_file)
    if init is not None:
        cfg.init = init
    if fraction is not None:
        cfg.data.label_fraction = float(fraction)
    if method is not None:
        cfg.method = method
    if modalities is not None:
        cfg.model.modalities = tuple(m.strip().lower() for m in modalities.split(","))
    run_and_report(run_finetune, cfg, resume, lambda result: console.print(
        format_result(result), highlight=False, soft_wrap=True))


@user_errors
def predict_endoscopy_cmd(
    input: Path = typer.Option(..., "--input", "-i", help="images: any endoscopy layout, a CSV, or a plain "
                               "folder of white-light images"),
    output: Path = typer.Option(..., "--output", "-o", help="predictions CSV"),
    model: Path = typer.Option(..., "--model", "-m", help="endoscopy finetune run folder"),
    layout: str = LayoutOpt,
    modalities: str = typer.Option("wli,nbi", "--modalities", help="modalities to use (wli: white light only)"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:<index> | auto (GPU if available)"),
):
    """Predict the class of each site; an absent image (or one not in --modalities) is masked out. When the input
    shows class names (class folders, a CSV label column) that the model does not know, one warning line names them;
    labelled input adds a label column to the CSV and prints the accuracy on those files."""
    import csv

    from medmodal.data.endoscopy.layouts import read_samples
    from medmodal.engine.endoscopy.train import input_class_mismatch, load_classifier, predict_samples
    from medmodal.inference.segmentation import resolve_device
    from medmodal.io import atomic_path
    from medmodal.notices import warn

    use = tuple(m.strip().lower() for m in modalities.split(","))
    if not set(use) <= {"wli", "nbi"} or not use:
        raise ConfigError(f"--modalities must be wli, nbi or wli,nbi, got {modalities!r}")
    device = str(resolve_device(device))  # cuda without a GPU: one line, not a torch traceback
    net, classes = load_classifier(model, device)
    if not set(use) & set(net.modalities):
        raise ConfigError(f"--modalities {','.join(use)}: the model in {model} has no such stream (its modalities: "
                          f"{','.join(net.modalities)})")
    if input.is_dir() and layout == "auto" and not any(p.is_dir() for p in input.iterdir()):
        layout = "image-folder"
    samples = read_samples(input, layout)
    mismatch, coverage = input_class_mismatch(samples, classes)
    if mismatch:
        warn(f"{input}: {mismatch}")
    if coverage:
        console.print(f"note: {coverage}", markup=False, highlight=False, soft_wrap=True)
    rows = predict_samples(net, classes, samples, net.cfg.image_size, use, device=device)
    labelled = any(s.label is not None for s in samples)
    if labelled:  # the input's own classes, so a trained model can be scored on new labelled files
        rows = [{**{k: v for k, v in row.items() if not k.startswith("p_")}, "label": s.label or "",
                 **{k: v for k, v in row.items() if k.startswith("p_")}} for s, row in zip(samples, rows)]
    with atomic_path(output) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    skipped = [r["sample_id"] for r in rows if r["used"] == "none"]
    if skipped:
        console.print(f"note: {len(skipped)} samples have none of {', '.join(use)} (no prediction): "
                      f"{', '.join(skipped[:10])}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"{len(rows) - len(skipped)} predictions -> {output}", highlight=False, soft_wrap=True)
    if labelled:
        scored = [r for r in rows if r["label"] in classes and r["prediction"]]
        left = sum(bool(r["label"]) for r in rows) - len(scored)
        seen = _seen_in_training(model, input, [r["sample_id"] for r in scored])
        if seen:
            console.print(f"note: {seen}", markup=False, highlight=False, soft_wrap=True)
        if scored:
            correct = sum(r["label"] == r["prediction"] for r in scored)
            console.print(f"accuracy {correct / len(scored):.3f} ({correct} of {len(scored)}) on the labelled samples "
                          f"of the given files, with {'+'.join(m for m in net.modalities if m in use)}"
                          + (f"; {left} labelled samples not scored (a class the model lacks, or no usable image)"
                             if left else ""), highlight=False, soft_wrap=True)
        else:
            console.print("note: no labelled sample has a class of the model and a usable image: no accuracy",
                          markup=False, highlight=False, soft_wrap=True)


def _seen_in_training(model: Path, input: Path, sample_ids: list[str]) -> str | None:
    """One line when the input is the model's own dataset and some scored samples were in its training or
    validation split (their accuracy is optimistic); ``None`` otherwise or when the run records no split."""
    import yaml

    from medmodal.io import read_json_file

    config, splits = model / "config.yaml", model / "splits.json"
    if not config.is_file() or not splits.is_file():
        return None
    root = (yaml.safe_load(config.read_text()) or {}).get("data", {}).get("root")
    if not root or Path(root).resolve() != input.resolve():
        return None
    record = read_json_file(splits)
    fitted = {i for key in ("train", "val") for i in record.get(key, [])}
    seen = [i for i in sample_ids if i in fitted]
    if not seen:
        return None
    return (f"{len(seen)} of the {len(sample_ids)} scored samples were in the model's training / validation split "
            f"({splits}): the accuracy below is optimistic; its test split alone: "
            f"{len([i for i in sample_ids if i in set(record.get('test', []))])} samples")


@user_errors
def demo_endoscopy_cmd(
    out: Path = typer.Option(Path("runs/demo-endoscopy"), "--out", help="folder for data, runs and the table"),
    samples: int = typer.Option(240, "--samples", "-n", help="synthetic WLI / NBI pairs"),
    seeds: str = typer.Option("0", "--seeds", help="fine-tuning seeds, comma list"),
    pretrain_epochs: int = typer.Option(20, "--pretrain-epochs", help="pre-training epochs (the cpu-quick "
                                        "benchmark's; experiments/endoscopy/demo.py DEMO_PRETRAIN_EPOCHS)"),
    finetune_epochs: int = typer.Option(10, "--finetune-epochs", help="fine-tuning epochs (the cpu-quick "
                                        "benchmark's; DEMO_FINETUNE_EPOCHS)"),
):
    """Short MICS demo on 2 cores: endoscopy synth -> pre-train -> fine-tune at 5 % labels (with and
    without pre-training, WLI-only baseline) -> comparison table."""
    import time

    from medmodal.experiments.endoscopy.demo import run_demo

    start = time.perf_counter()
    report = run_demo(out, samples, [int(s) for s in seeds.split(",")], pretrain_epochs, finetune_epochs,
                      say=lambda line: console.print(line, soft_wrap=True),
                      on_run=lambda r: console.print(f"{r['bench_method']:<20} seed {r['seed']}: accuracy "
                                                     f"{r['test']['accuracy']:.3f}", highlight=False, soft_wrap=True))
    console.print((report / "comparison.md").read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"done in {(time.perf_counter() - start) / 60:.1f} min. report: {report}", highlight=False,
                  soft_wrap=True)
