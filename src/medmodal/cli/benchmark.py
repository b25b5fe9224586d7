"""``medmodal benchmark`` (method comparison) and ``medmodal bench-speed`` (speed)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli.common import REAL_CASE_MAPPING, app, console, user_errors
from medmodal.errors import ConfigError


@app.command("benchmark")
@user_errors
def benchmark_cmd(
    out: Optional[Path] = typer.Option(None, "--out", help="folder for data, runs and report/ (default "
                                       "runs/benchmark, --suite cxr: runs/benchmark_cxr, --suite endoscopy: "
                                       "runs/benchmark_endoscopy)"),
    suite: str = typer.Option("segmentation", "--suite", help="segmentation (DMAF-Net, BraTS-like) | cxr (chest "
                              "X-ray pre-training methods x downstream tasks x label fractions) | endoscopy "
                              "(MICS, paired WLI / NBI)"),
    profile: str = typer.Option("cpu-quick", "--profile", help="cpu-quick (2 CPU cores, ~20-30 min) | cpu-compare "
                                "(cxr only: 2 CPU cores, ~1 h, the one CPU profile that compares methods) | gpu-full"),
    methods: Optional[str] = typer.Option(None, "--methods", help="comma list (default: the profile's methods; "
                                          "segmentation: all methods and ablations)"),
    protocols: str = typer.Option("balanced,imbalanced", "--missing", "--protocols",
                                  help="segmentation: missing-sequence protocols trained under: balanced,imbalanced"),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="comma list (default: the profile's)"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="override the profile's epochs"),
    real: Optional[bool] = typer.Option(None, "--real/--no-real", help="also evaluate on the real labelled case "
                                        "(default: gpu-full yes, cpu-quick no)"),
    real_data: Optional[Path] = typer.Option(None, "--real-data", help="real case folder (default: "
                                             "$MEDMODAL_REAL_CASE, else shared/data/brats-real/"
                                             "TCGA-DU-7294 beside the working folder or the checkout)"),
    real_map: Optional[str] = typer.Option(REAL_CASE_MAPPING, "--real-map", help="--map for the real case"),
    eval_protocol: Optional[str] = typer.Option(None, "--protocol", help="segmentation: evaluation protocol every "
                                                "run is scored under (default: the runs' config, passion): passion | "
                                                "brats-challenge | monai-max-directed"),
    fractions: Optional[str] = typer.Option(None, "--fractions", help="cxr: label fractions, e.g. 0.01,0.1,1 "
                                            "(default: the profile's)"),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="cxr: task:dataset list, e.g. "
                                        "classification:rsna,segmentation:siim (default: all seven)"),
    imagenet_weights: Optional[Path] = typer.Option(None, "--imagenet-weights", help="cxr: local ImageNet weight "
                                                    "file of the profile's backbone (adds the ImageNet-init row "
                                                    "and initialises pre-training from it, as the papers)"),
):
    """Compare methods on one dataset with one budget and write a report (``--suite segmentation``: every
    DMAF-Net baseline and ablation; ``--suite cxr``: every image-report pre-training method on every
    chest X-ray downstream task and label fraction; ``--suite endoscopy``: MICS, its ablations and
    the supervised / FixMatch baselines at each label fraction)."""
    if suite not in ("segmentation", "cxr", "endoscopy"):
        raise ConfigError(f"--suite must be segmentation, cxr or endoscopy, got {suite!r}")
    if suite != "cxr" and (fractions or tasks or imagenet_weights):
        console.print("note: --fractions / --tasks / --imagenet-weights apply to --suite cxr only (ignored)",
                      soft_wrap=True)
    if suite == "cxr":
        _cxr_benchmark(out or Path("runs/benchmark_cxr"), profile, methods, seeds, fractions, tasks, imagenet_weights,
                       epochs)
        return
    if suite == "endoscopy":
        from medmodal.evaluation.endoscopy import run_endoscopy_benchmark

        report = run_endoscopy_benchmark(
            out or Path("runs/benchmark_endoscopy"), profile,
            [m.strip() for m in methods.split(",")] if methods else None,
            [int(s) for s in seeds.split(",")] if seeds else None, finetune_epochs=epochs,
            on_run=lambda r: console.print(f"{r['bench_method']:<24} labels {r['label_fraction']:g} seed {r['seed']}: "
                                           f"accuracy {r['test']['accuracy']:.3f}", highlight=False, soft_wrap=True))
        for name in ("comparison.md", "ablation.md"):
            console.print((report / name).read_text(), markup=False, highlight=False, soft_wrap=True)
        console.print(f"report: {report}", soft_wrap=True)
        return
    out = out or Path("runs/benchmark")
    from medmodal.evaluation.benchmark import METHODS, PROFILES, default_real_case, run_benchmark

    names = [m.strip() for m in methods.split(",")] if methods else list(METHODS)
    if real_data is not None and not real_data.is_dir():
        raise FileNotFoundError(f"{real_data}: no such folder (--real-data)")
    real_root = real_data or default_real_case()
    wanted = real if real is not None else getattr(PROFILES.get(profile), "real", False)
    if wanted and real_root is None:
        if real:
            raise FileNotFoundError("--real: no real labelled case found; pass --real-data FOLDER "
                                    "(or set MEDMODAL_REAL_CASE)")
        console.print("note: the real labelled case was not found; the benchmark runs without it (--real-data)",
                      soft_wrap=True)
    real_cases = [(real_root, real_map)] if real_root is not None else []
    report = run_benchmark(out, profile, names, [p.strip() for p in protocols.split(",")],
                           [int(s) for s in seeds.split(",")] if seeds else None, epochs, real, real_cases,
                           on_run=lambda r: console.print(f"{r['protocol']:>10} {r['method']:<18} seed {r['seed']}: "
                                                          f"Dice WT/TC/ET {r['Dice_WT']:.1f}/{r['Dice_TC']:.1f}/"
                                                          f"{r['Dice_ET']:.1f}  ({r['train_s']:.0f} s)",
                                                          soft_wrap=True),
                           eval_protocol=eval_protocol)
    console.print((report / "report.md").read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {report}", soft_wrap=True)


def _cxr_benchmark(out: Path, profile: str, methods: Optional[str], seeds: Optional[str], fractions: Optional[str],
                   tasks: Optional[str], imagenet_weights: Optional[Path], epochs: Optional[int]) -> None:
    from medmodal.evaluation.cxr_benchmark import CXR_PROFILES, run_cxr_benchmark, with_overrides

    if profile not in CXR_PROFILES:
        raise ConfigError(f"unknown profile {profile!r} for --suite cxr; choose one of {', '.join(CXR_PROFILES)}")
    prof = CXR_PROFILES[profile]
    if epochs is not None:  # the pre-training budget of every method
        prof = with_overrides(prof, pretrain_epochs=int(epochs),
                              cmcgns_stage2_epochs=min(prof.cmcgns_stage2_epochs, max(int(epochs) - 1, 0)))
    pairs = None
    if tasks:
        pairs = []
        for item in tasks.split(","):
            task, _, dataset = item.strip().partition(":")
            if not dataset:
                raise ConfigError(f"--tasks: {item!r} is not task:dataset (e.g. classification:rsna)")
            pairs.append((task, dataset))
    report = run_cxr_benchmark(
        out, prof if epochs is not None else profile, [m.strip() for m in methods.split(",")] if methods else None,
        [int(s) for s in seeds.split(",")] if seeds else None,
        [float(f) for f in fractions.split(",")] if fractions else None, pairs, imagenet_weights,
        on_run=lambda r: console.print(f"{r['task']:>14} {r['dataset']:<10} {r['method']:<18} "
                                       f"{100 * r['fraction']:>5g}% seed {r['seed']}: {r['metric']} "
                                       f"{r['value']:.1f}", highlight=False, soft_wrap=True))
    console.print((report / "report.md").read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {report}", soft_wrap=True)


@app.command("bench-speed")
@user_errors
def bench_speed_cmd(
    suite: str = typer.Option("segmentation", "--suite", help="segmentation (DMAF-Net: reference loop vs fast "
                              "path) | cmcgns (CM-CGNS: per-sample vs batched train step)"),
    crop: int = typer.Option(80, "--crop", help="training crop / sliding-window edge"),
    case_size: str = typer.Option("240,240,155", "--case-size", help="evaluation volume X,Y,Z (a full BraTS case)"),
    overlap: float = typer.Option(0.5, "--overlap", help="sliding-window overlap"),
    sw_batch_size: int = typer.Option(2, "--sw-batch-size", help="windows per forward pass"),
    steps: Optional[int] = typer.Option(None, "--steps", help="timed steps (default: segmentation 10, cmcgns 3)"),
    widths: Optional[str] = typer.Option(None, "--widths", help="encoder widths, e.g. 16,32,64,128"),
    compile: bool = typer.Option(False, "--compile", help="torch.compile forward + loss of the fast path (one graph)"),
    compile_mode: str = typer.Option("default", "--compile-mode",
                                     help="default | reduce-overhead (CUDA graphs) | max-autotune | "
                                          "max-autotune-no-cudagraphs"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="samples per step, both variants "
                                             "(default: segmentation 1, cmcgns 32)"),
    evaluate: bool = typer.Option(True, help="also time the 15-subset evaluation and full-case inference"),
    channels_last: bool = typer.Option(True, help="channels_last_3d memory format on the fast path (CUDA)"),
    image_encoder: str = typer.Option("resnet18", "--image-encoder", help="cmcgns: timm backbone"),
    image_size: int = typer.Option(128, "--image-size", help="cmcgns: image edge in pixels"),
    text_encoder: Optional[Path] = typer.Option(None, "--text-encoder", help="cmcgns: Hugging Face folder "
                                                "(default: the shipped MiniLM-L6)"),
    reports: Optional[Path] = typer.Option(None, "--reports", help="cmcgns: indiana_reports.csv for the batch's "
                                           "text (default: $MEDMODAL_IU_REPORTS or shared/data/cxr-reports-real if found)"),
    preset: Optional[str] = typer.Option(None, "--preset", help="cmcgns: time the model of a pre-training preset "
                                         "(e.g. pretrain_demo_cpu: encoder, image size, text cache, batch); "
                                         "--image-encoder / --image-size / --batch-size given explicitly win"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads"),
    device: Optional[str] = typer.Option(None, "--device"),
    peak_tflops: Optional[float] = typer.Option(None, "--peak-tflops", help="device bf16 peak, e.g. 989 (H100 SXM)"),
    out: Optional[Path] = typer.Option(None, "--out", help="JSON report (default runs/bench_speed.json, "
                                       "cmcgns: runs/bench_speed_cmcgns.json)"),
):
    """Training / evaluation speed: reference-style loop vs medmodal's fast path."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    ignored = ([name for name, given in (("--widths", widths), ("--compile", compile), ("--peak-tflops", peak_tflops))
                if given] if suite == "cmcgns" else
               [name for name, given in (("--text-encoder", text_encoder), ("--reports", reports),
                                         ("--image-encoder", image_encoder != "resnet18"),
                                         ("--image-size", image_size != 128), ("--preset", preset)) if given])
    if ignored:
        console.print(f"note: {', '.join(ignored)} ignored for --suite {suite}", soft_wrap=True)
    if suite == "cmcgns":
        from medmodal.engine.image_text.speed import (
            CMCGNSSpeedSettings,
            format_cmcgns_report,
            run_cmcgns_speed_benchmark,
        )

        if text_encoder is not None and not text_encoder.is_dir():
            raise FileNotFoundError(f"{text_encoder}: no such folder (--text-encoder)")
        if reports is not None and not reports.is_file():
            raise FileNotFoundError(f"{reports}: no such file (--reports)")
        out = out or Path("runs/bench_speed_cmcgns.json")
        common = dict(steps=steps or 3, threads=threads, reports_csv=str(reports) if reports else None,
                      **({"device": device} if device else {}),
                      **({"text_encoder_path": str(text_encoder)} if text_encoder else {}))
        if preset is not None:
            from medmodal.engine.image_text.config import load_pretrain_config

            given = dict(image_encoder=image_encoder if image_encoder != "resnet18" else None,
                         image_size=image_size if image_size != 128 else None, batch_size=batch_size)
            settings = CMCGNSSpeedSettings.from_pretrain_config(load_pretrain_config(None, preset), preset,
                                                                **given, **common)
        else:
            settings = CMCGNSSpeedSettings(image_encoder=image_encoder, image_size=image_size,
                                           batch_size=batch_size or 32, **common)
        report = run_cmcgns_speed_benchmark(settings, out)
        console.print(format_cmcgns_report(report), markup=False, highlight=False, soft_wrap=True)
        console.print(f"JSON: {out}", soft_wrap=True)
        return
    if suite != "segmentation":
        raise ConfigError(f"--suite must be segmentation or cmcgns, got {suite!r}")
    from medmodal.engine.segmentation.speed import SpeedSettings, format_report, run_speed_benchmark

    out = out or Path("runs/bench_speed.json")
    kwargs = {"widths": [int(w) for w in widths.split(",")]} if widths else {}
    settings = SpeedSettings(model_kwargs=kwargs, crop=crop, case_size=tuple(int(v) for v in case_size.split(",")),
                             steps=steps or 10, compile=compile, compile_mode=compile_mode, batch_size=batch_size or 1,
                             evaluate=evaluate, peak_tflops=peak_tflops, overlap=overlap,
                             sw_batch_size=sw_batch_size, channels_last=channels_last,
                             **({"device": device} if device else {}))
    report = run_speed_benchmark(settings, out)
    console.print(format_report(report), soft_wrap=True)
    console.print(f"JSON: {out}", soft_wrap=True)
