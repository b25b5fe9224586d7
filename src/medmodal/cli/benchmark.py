"""The benchmark and speed commands of each family: ``medmodal seg|cxr|endoscopy benchmark`` (method
comparison), ``medmodal seg|cxr speed``; each carries only its own family's options. ``medmodal benchmark
--suite ...`` and ``medmodal bench-speed --suite ...`` (the union of every suite's options) are the old
spellings, kept one release as hidden aliases (:mod:`medmodal.cli.main`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli.common import REAL_CASE_MAPPING, console, user_errors
from medmodal.errors import ConfigError


# ----------------------------------------------------------------------------- options (shared by the family
# commands and the old --suite commands, whose options are their union)

ProfileHelp = "cpu-quick (2 CPU cores, ~20-30 min) | gpu-full"
MethodsOpt = typer.Option(None, "--methods", help="comma list (default: the profile's methods)")
SeedsOpt = typer.Option(None, "--seeds", help="comma list (default: the profile's)")
ProtocolsOpt = typer.Option("balanced,imbalanced", "--missing", "--protocols",
                            help="missing-sequence protocols trained under: balanced,imbalanced")
RealOpt = typer.Option(None, "--real/--no-real", help="also evaluate on the real labelled case (default: gpu-full "
                       "yes, cpu-quick no)")
RealDataOpt = typer.Option(None, "--real-data", help="real case folder (default: $MEDMODAL_REAL_CASE)")
RealMapOpt = typer.Option(REAL_CASE_MAPPING, "--real-map", help="--map for the real case")
EvalProtocolOpt = typer.Option(None, "--protocol", help="evaluation protocol every run is scored under (default: "
                               "the runs' config, passion): passion | brats-challenge | monai-max-directed")
TasksOpt = typer.Option(None, "--tasks", help="task:dataset list, e.g. classification:rsna,segmentation:siim "
                        "(default: all seven)")
ImagenetWeightsOpt = typer.Option(None, "--imagenet-weights", help="local ImageNet weight file of the profile's "
                                  "backbone (adds the ImageNet-init row and initialises pre-training from it, as "
                                  "the papers)")
CropOpt = typer.Option(80, "--crop", help="training crop / sliding-window edge")
CaseSizeOpt = typer.Option("240,240,155", "--case-size", help="evaluation volume X,Y,Z (a full BraTS case)")
OverlapOpt = typer.Option(0.5, "--overlap", help="sliding-window overlap")
SwBatchSizeOpt = typer.Option(2, "--sw-batch-size", help="windows per forward pass")
WidthsOpt = typer.Option(None, "--widths", help="encoder widths, e.g. 16,32,64,128")
CompileOpt = typer.Option(False, "--compile", help="torch.compile forward + loss of the fast path (one graph)")
CompileModeOpt = typer.Option("default", "--compile-mode", help="default | reduce-overhead (CUDA graphs) | "
                              "max-autotune | max-autotune-no-cudagraphs")
EvaluateOpt = typer.Option(True, help="also time the 15-subset evaluation and full-case inference")
ChannelsLastOpt = typer.Option(True, help="channels_last_3d memory format on the fast path (CUDA)")
TextEncoderOpt = typer.Option(None, "--text-encoder", help="Hugging Face folder (default: the shipped MiniLM-L6)")
ReportsOpt = typer.Option(None, "--reports", help="indiana_reports.csv for the batch's text (default: "
                          "$MEDMODAL_IU_REPORTS; else four built-in reports)")
SpeedPresetOpt = typer.Option(None, "--preset", help="time the model of a pre-training preset (e.g. "
                              "pretrain_demo_cpu: encoder, image size, text cache, batch); --image-encoder / "
                              "--image-size / --batch-size given explicitly win")
ThreadsOpt = typer.Option(None, "--threads", help="torch CPU threads")
DeviceOpt = typer.Option(None, "--device", help="cpu | cuda (default: cuda if available)")
PeakTflopsOpt = typer.Option(None, "--peak-tflops", help="device bf16 peak, e.g. 989 (H100 SXM)")


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
    protocols: str = ProtocolsOpt,
    seeds: Optional[str] = SeedsOpt,
    epochs: Optional[int] = typer.Option(None, "--epochs", help="override the profile's epochs"),
    real: Optional[bool] = RealOpt,
    real_data: Optional[Path] = RealDataOpt,
    real_map: Optional[str] = RealMapOpt,
    eval_protocol: Optional[str] = EvalProtocolOpt,
    fractions: Optional[str] = typer.Option(None, "--fractions", help="cxr: label fractions, e.g. 0.01,0.1,1 "
                                            "(default: the profile's)"),
    tasks: Optional[str] = TasksOpt,
    imagenet_weights: Optional[Path] = ImagenetWeightsOpt,
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
        _endoscopy_benchmark(out or Path("runs/benchmark_endoscopy"), profile, methods, seeds, epochs)
        return
    _seg_benchmark(out or Path("runs/benchmark"), profile, methods, protocols, seeds, epochs, real, real_data,
                   real_map, eval_protocol)


def _set_threads(threads: Optional[int]) -> None:
    """``torch.set_num_threads(threads)`` when given (before anything is timed)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def _split(text: Optional[str], kind=str) -> Optional[list]:
    """``"a, b"`` -> ``["a", "b"]`` (``kind`` applied); ``None`` / empty -> ``None``."""
    return [kind(item.strip()) for item in text.split(",")] if text else None


def _print_report(report: Path, *names: str) -> None:
    for name in names:
        console.print((report / name).read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {report}", soft_wrap=True)


def _endoscopy_benchmark(out: Path, profile: str, methods: Optional[str], seeds: Optional[str],
                         epochs: Optional[int], data: Optional[Path] = None, fractions: Optional[str] = None) -> None:
    from medmodal.experiments.endoscopy.benchmark import run

    report = run(
        out, profile, _split(methods), _split(seeds, int), _split(fractions, float), finetune_epochs=epochs,
        data=data,
        on_run=lambda r: console.print(f"{r['bench_method']:<24} labels {r['label_fraction']:g} seed {r['seed']}: "
                                       f"accuracy {r['test']['accuracy']:.3f}", highlight=False, soft_wrap=True))
    _print_report(report, "comparison.md", "ablation.md")


def _seg_benchmark(out: Path, profile: str, methods: Optional[str], protocols: str, seeds: Optional[str],
                   epochs: Optional[int], real: Optional[bool], real_data: Optional[Path], real_map: Optional[str],
                   eval_protocol: Optional[str], data: Optional[Path] = None) -> None:
    from medmodal.experiments.seg.benchmark import METHODS, PROFILES, default_real_case, run

    names = _split(methods) or list(METHODS)
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
    report = run(out, profile, names, _split(seeds, int), protocols=[p.strip() for p in protocols.split(",")],
                 epochs=epochs, real=real, real_cases=real_cases,
                 on_run=lambda r: console.print(f"{r['protocol']:>10} {r['method']:<18} seed {r['seed']}: "
                                                f"Dice WT/TC/ET {r['Dice_WT']:.1f}/{r['Dice_TC']:.1f}/"
                                                f"{r['Dice_ET']:.1f}  ({r['train_s']:.0f} s)", soft_wrap=True),
                 eval_protocol=eval_protocol, data=data)
    _print_report(report, "report.md")


def _cxr_benchmark(out: Path, profile: str, methods: Optional[str], seeds: Optional[str], fractions: Optional[str],
                   tasks: Optional[str], imagenet_weights: Optional[Path], epochs: Optional[int],
                   data: Optional[Path] = None) -> None:
    from medmodal.experiments.cxr.benchmark import CXR_PROFILES, run, with_overrides

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
    report = run(
        out, prof if epochs is not None else profile, [m.strip() for m in methods.split(",")] if methods else None,
        [int(s) for s in seeds.split(",")] if seeds else None,
        [float(f) for f in fractions.split(",")] if fractions else None, pairs, imagenet_weights, data=data,
        on_run=lambda r: console.print(f"{r['task']:>14} {r['dataset']:<10} {r['method']:<18} "
                                       f"{100 * r['fraction']:>5g}% seed {r['seed']}: {r['metric']} "
                                       f"{r['value']:.1f}", highlight=False, soft_wrap=True))
    _print_report(report, "report.md")


@user_errors
def bench_speed_cmd(
    suite: str = typer.Option("segmentation", "--suite", help="segmentation (DMAF-Net: reference loop vs fast "
                              "path) | cmcgns (CM-CGNS: per-sample vs batched train step)"),
    crop: int = CropOpt,
    case_size: str = CaseSizeOpt,
    overlap: float = OverlapOpt,
    sw_batch_size: int = SwBatchSizeOpt,
    steps: Optional[int] = typer.Option(None, "--steps", help="timed steps (default: segmentation 10, cmcgns 3)"),
    widths: Optional[str] = WidthsOpt,
    compile: bool = CompileOpt,
    compile_mode: str = CompileModeOpt,
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="samples per step, both variants "
                                             "(default: segmentation 1, cmcgns 32)"),
    evaluate: bool = EvaluateOpt,
    channels_last: bool = ChannelsLastOpt,
    image_encoder: str = typer.Option("resnet18", "--image-encoder", help="cmcgns: timm backbone"),
    image_size: int = typer.Option(128, "--image-size", help="cmcgns: image edge in pixels"),
    text_encoder: Optional[Path] = TextEncoderOpt,
    reports: Optional[Path] = ReportsOpt,
    preset: Optional[str] = SpeedPresetOpt,
    threads: Optional[int] = ThreadsOpt,
    device: Optional[str] = DeviceOpt,
    peak_tflops: Optional[float] = PeakTflopsOpt,
    out: Optional[Path] = typer.Option(None, "--out", help="JSON report (default runs/bench_speed.json, "
                                       "cmcgns: runs/bench_speed_cmcgns.json)"),
):
    """Training / evaluation speed: reference-style loop vs medmodal's fast path."""
    _set_threads(threads)
    ignored = ([name for name, given in (("--widths", widths), ("--compile", compile), ("--peak-tflops", peak_tflops))
                if given] if suite == "cmcgns" else
               [name for name, given in (("--text-encoder", text_encoder), ("--reports", reports),
                                         ("--image-encoder", image_encoder != "resnet18"),
                                         ("--image-size", image_size != 128), ("--preset", preset)) if given])
    if ignored:
        console.print(f"note: {', '.join(ignored)} ignored for --suite {suite}", soft_wrap=True)
    if suite == "cmcgns":
        _cxr_speed(steps, batch_size, image_encoder if image_encoder != "resnet18" else None,
                   image_size if image_size != 128 else None, text_encoder, reports, preset, threads, device,
                   out or Path("runs/bench_speed_cmcgns.json"))
        return
    if suite != "segmentation":
        raise ConfigError(f"--suite must be segmentation or cmcgns, got {suite!r}")
    _seg_speed(crop, case_size, overlap, sw_batch_size, steps, widths, compile, compile_mode, batch_size, evaluate,
               channels_last, device, peak_tflops, out or Path("runs/bench_speed.json"))


def _cxr_speed(steps: Optional[int], batch_size: Optional[int], image_encoder: Optional[str],
               image_size: Optional[int], text_encoder: Optional[Path], reports: Optional[Path], preset: Optional[str],
               threads: Optional[int], device: Optional[str], out: Path) -> None:
    """``image_encoder`` / ``image_size`` / ``batch_size``: ``None`` = the preset's, else resnet18 / 128 / 32."""
    from medmodal.experiments.cxr.speed import CMCGNSSpeedSettings, format_report, run

    if text_encoder is not None and not text_encoder.is_dir():
        raise FileNotFoundError(f"{text_encoder}: no such folder (--text-encoder)")
    if reports is not None and not reports.is_file():
        raise FileNotFoundError(f"{reports}: no such file (--reports)")
    common = dict(steps=steps or 3, threads=threads, reports_csv=str(reports) if reports else None,
                  **({"device": device} if device else {}),
                  **({"text_encoder_path": str(text_encoder)} if text_encoder else {}))
    if preset is not None:
        from medmodal.engine.image_text.config import load_pretrain_config

        given = dict(image_encoder=image_encoder, image_size=image_size, batch_size=batch_size)
        settings = CMCGNSSpeedSettings.from_pretrain_config(load_pretrain_config(None, preset), preset,
                                                            **given, **common)
    else:
        settings = CMCGNSSpeedSettings(image_encoder=image_encoder or "resnet18", image_size=image_size or 128,
                                       batch_size=batch_size or 32, **common)
    report = run(settings, out)
    console.print(format_report(report), markup=False, highlight=False, soft_wrap=True)
    console.print(f"JSON: {out}", soft_wrap=True)


def _seg_speed(crop: int, case_size: str, overlap: float, sw_batch_size: int, steps: Optional[int],
               widths: Optional[str], compile: bool, compile_mode: str, batch_size: Optional[int], evaluate: bool,
               channels_last: bool, device: Optional[str], peak_tflops: Optional[float], out: Path) -> None:
    from medmodal.experiments.seg.speed import SpeedSettings, format_report, run

    kwargs = {"widths": [int(w) for w in widths.split(",")]} if widths else {}
    settings = SpeedSettings(model_kwargs=kwargs, crop=crop, case_size=tuple(int(v) for v in case_size.split(",")),
                             steps=steps or 10, compile=compile, compile_mode=compile_mode, batch_size=batch_size or 1,
                             evaluate=evaluate, peak_tflops=peak_tflops, overlap=overlap,
                             sw_batch_size=sw_batch_size, channels_last=channels_last,
                             **({"device": device} if device else {}))
    report = run(settings, out)
    console.print(format_report(report), soft_wrap=True)
    console.print(f"JSON: {out}", soft_wrap=True)


# ----------------------------------------------------------------------------- one command per family

@user_errors
def seg_benchmark_cmd(
    out: Path = typer.Option(Path("runs/benchmark"), "--out", help="folder for data, runs and report/"),
    data: list[Path] = typer.Option([], "--data", help="your own labelled dataset folder (any layout "
                                    "`medmodal seg summary` reads); default: a built-in synthetic BraTS-like "
                                    "set in OUT/data. Vessels: the source data set; with --protocol lodo, "
                                    "repeat it for each data set (each is held out in turn). 2d: required, "
                                    "one ACDC / Synapse / polyp folder"),
    profile: Optional[str] = typer.Option(None, "--profile", help=f"volumes: {ProfileHelp} (default cpu-quick); "
                                          "vessels: cpu-reduced (2 CPU cores, ~45 min with two processes, see "
                                          "--methods) | smoke | full (GPU) (default cpu-reduced); 2d: cpu-reduced "
                                          "(~30 min with two processes) | smoke | full (GPU); semi: cpu-reduced "
                                          "(ACDC: ~3 h per budget with two processes; LA2018) | smoke"),
    methods: Optional[str] = typer.Option(None, "--methods", help="comma list (default: all methods and ablations; "
                                          "vessels: erm,style,structure,dgssa,randconv,frangi; 2d: mslau_net,unet2d,"
                                          "transunet,swin_unet,mslau_single_scale,mslau_conv)"),
    protocols: str = ProtocolsOpt,
    seeds: Optional[str] = SeedsOpt,
    epochs: Optional[int] = typer.Option(None, "--epochs", help="override the profile's epochs"),
    real: Optional[bool] = RealOpt,
    real_data: Optional[Path] = RealDataOpt,
    real_map: Optional[str] = RealMapOpt,
    eval_protocol: Optional[str] = typer.Option(None, "--protocol", help="volumes: the evaluation protocol "
                                                "every run is scored under (default: the runs' config, passion): "
                                                "passion | brats-challenge | monai-max-directed. vessels: "
                                                "single-source (default: train on --data, score it and each "
                                                "--target) | lodo (leave one domain out over the --data sets)"),
    task: str = typer.Option("volumes", "--task", help="volumes (multi-sequence MRI, DMAF-Net and baselines) | "
                             "vessels (retinal fundus across cameras: DGSSA and baselines; --data is the source "
                             "data set, --target each unseen one; --protocol lodo: --data once per data set) | 2d "
                             "(MSLAU-Net, U-Net, TransUNet- and Swin-UNet-style, two ablations on one --data set; "
                             "profiles cpu-reduced | smoke | full) | semi (semi-supervised 2-D: supervised-only, "
                             "Mean Teacher, UA-MT, CPS, ERANet and its parts, the fully supervised bound, at each "
                             "--labelled budget; profiles cpu-reduced | smoke)"),
    target: list[Path] = typer.Option([], "--target", help="vessels: a target data set folder, scored only "
                                      "(repeatable)"),
    report_only: bool = typer.Option(False, "--report-only", help="vessels, 2d, semi: train nothing, report the finished "
                                     "runs in OUT (after runs split over processes with --methods / --seeds)"),
    classes: Optional[str] = typer.Option(None, "--classes", help="2d: your class names, background first, comma "
                                          "list (data.classes: your own organs in the HDF5 / NPZ forms)"),
    labelled: Optional[str] = typer.Option(None, "--labelled", help="semi: labelled training patients (3-D: "
                                           "volumes) per budget, comma list (default: SSL4MIS's ACDC budgets 3,7 = "
                                           "68 / 136 slices; LA2018: 8 of 80 volumes, 10 %)"),
):
    """Compare every segmentation method (and DMAF-Net ablation) on one dataset with one budget; writes a report.

    With --task vessels: train every vessel method on --data and score it there (in-domain) and on each
    --target (cross-domain); finished runs are skipped, so two processes with different --methods share OUT.
    With --task vessels --protocol lodo --data A --data B --data C: leave one domain out (train on all the
    --data sets but one, score the held-out one; each in turn).
    """
    if task == "vessels":
        _vessel_benchmark(out, profile or "cpu-reduced", methods, seeds, epochs, data, target, report_only,
                          eval_protocol or "single-source")
        return
    if task == "2d":
        if target or eval_protocol or len(data) != 1:
            raise ConfigError("--task 2d takes one --data folder (ACDC, Synapse or a polyp set) and no --target / "
                              "--protocol (the data set's protocol applies)")
        from medmodal.experiments.seg.planar import run as run_planar

        report = run_planar(out, profile or "cpu-reduced", _split(methods), _split(seeds, int), data=data[0],
                            epochs=epochs, classes=_split(classes), report_only=report_only,
                            on_run=lambda line: console.print(line, soft_wrap=True, highlight=False))
        _print_report(report, "seg2d.md")
        return
    if task == "semi":
        if target or eval_protocol or classes or len(data) != 1:
            raise ConfigError("--task semi takes one --data folder (ACDC, LA2018 ...) and no --target / --protocol / "
                              "--classes")
        from medmodal.experiments.seg.semi import run as run_semi

        budgets = _split(labelled, int)
        report = run_semi(out, profile or "cpu-reduced", _split(methods), _split(seeds, int), data=data[0],
                          labelled=budgets, epochs=epochs, report_only=report_only,
                          on_run=lambda line: console.print(line, soft_wrap=True, highlight=False))
        for n in budgets or (3, 7, 8):
            if (report.parent / f"report_l{n}" / f"semi_l{n}.md").is_file():
                _print_report(report.parent / f"report_l{n}", f"semi_l{n}.md")
        return
    if task != "volumes":
        raise ConfigError(f"unknown --task {task!r}; choose volumes, vessels, 2d or semi")
    if classes:
        raise ConfigError("--classes belongs to --task 2d")
    if target or report_only:
        raise ConfigError("--target and --report-only belong to --task vessels, 2d and semi")
    if len(data) > 1:
        raise ConfigError(f"--task volumes takes one --data folder, got {len(data)}")
    _seg_benchmark(out, profile or "cpu-quick", methods, protocols, seeds, epochs, real, real_data, real_map,
                   eval_protocol, data[0] if data else None)


def _vessel_benchmark(out: Path, profile: str, methods: Optional[str], seeds: Optional[str], epochs: Optional[int],
                      data: list[Path], targets: list[Path], report_only: bool,
                      protocol: str = "single-source") -> None:
    from medmodal.experiments.seg.vessels import run

    for folder in list(data) + list(targets):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
    report = run(out, profile, _split(methods), _split(seeds, int), protocol=protocol, data=list(data) or None,
                 targets=targets, epochs=epochs, report_only=report_only,
                 on_run=lambda line: console.print(line, soft_wrap=True, highlight=False))
    _print_report(report, "vessels.md")


@user_errors
def cxr_benchmark_cmd(
    out: Path = typer.Option(Path("runs/benchmark_cxr"), "--out", help="folder for data, runs and report/"),
    data: Optional[Path] = typer.Option(None, "--data", help="your own data: a folder with pretrain/ (anything "
                                        "`medmodal cxr pretrain --data` reads) and downstream/<dataset>/ (each "
                                        "task's dataset as distributed); default: built-in synthetic twins in "
                                        "OUT/data"),
    profile: str = typer.Option("cpu-quick", "--profile", help="cpu-quick (2 CPU cores, ~20-30 min) | cpu-compare "
                                "(2 CPU cores, ~1 h, the one CPU profile that compares methods) | gpu-full"),
    methods: Optional[str] = MethodsOpt,
    seeds: Optional[str] = SeedsOpt,
    epochs: Optional[int] = typer.Option(None, "--epochs", help="override the profile's pre-training epochs"),
    fractions: Optional[str] = typer.Option(None, "--fractions", help="label fractions, e.g. 0.01,0.1,1 "
                                            "(default: the profile's)"),
    tasks: Optional[str] = TasksOpt,
    imagenet_weights: Optional[Path] = ImagenetWeightsOpt,
):
    """Compare every image-report pre-training method on every chest X-ray downstream task and label fraction."""
    _cxr_benchmark(out, profile, methods, seeds, fractions, tasks, imagenet_weights, epochs, data)


@user_errors
def endoscopy_benchmark_cmd(
    out: Path = typer.Option(Path("runs/benchmark_endoscopy"), "--out", help="folder for data, runs and report/"),
    data: Optional[Path] = typer.Option(None, "--data", help="your own paired dataset folder or CSV (any layout "
                                        "`medmodal endoscopy summary` reads); default: a built-in synthetic set in "
                                        "OUT/data"),
    profile: str = typer.Option("cpu-quick", "--profile", help=ProfileHelp),
    methods: Optional[str] = MethodsOpt,
    seeds: Optional[str] = SeedsOpt,
    fractions: Optional[str] = typer.Option(None, "--fractions", help="label fractions, e.g. 0.05,1 (default: the "
                                            "profile's)"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="override the profile's fine-tuning epochs"),
):
    """Compare MICS, its ablations and the supervised / FixMatch baselines at each label fraction."""
    if data is not None and not data.exists():
        raise FileNotFoundError(f"{data}: no such dataset (--data)")
    _endoscopy_benchmark(out, profile, methods, seeds, epochs, data, fractions)


@user_errors
def seg_speed_cmd(
    crop: int = CropOpt,
    case_size: str = CaseSizeOpt,
    overlap: float = OverlapOpt,
    sw_batch_size: int = SwBatchSizeOpt,
    steps: int = typer.Option(10, "--steps", help="timed steps"),
    widths: Optional[str] = WidthsOpt,
    compile: bool = CompileOpt,
    compile_mode: str = CompileModeOpt,
    batch_size: int = typer.Option(1, "--batch-size", help="samples per step, both variants"),
    evaluate: bool = EvaluateOpt,
    channels_last: bool = ChannelsLastOpt,
    threads: Optional[int] = ThreadsOpt,
    device: Optional[str] = DeviceOpt,
    peak_tflops: Optional[float] = PeakTflopsOpt,
    out: Path = typer.Option(Path("runs/bench_speed.json"), "--out", help="JSON report"),
):
    """Segmentation training / evaluation speed: reference-style loop vs medmodal's fast path (DMAF-Net)."""
    _set_threads(threads)
    _seg_speed(crop, case_size, overlap, sw_batch_size, steps, widths, compile, compile_mode, batch_size, evaluate,
               channels_last, device, peak_tflops, out)


@user_errors
def cxr_speed_cmd(
    steps: int = typer.Option(3, "--steps", help="timed steps"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="samples per step, both variants "
                                             "(default: the preset's, else 32)"),
    image_encoder: Optional[str] = typer.Option(None, "--image-encoder", help="timm backbone (default: the "
                                                "preset's, else resnet18)"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="image edge in pixels (default: the "
                                             "preset's, else 128)"),
    text_encoder: Optional[Path] = TextEncoderOpt,
    reports: Optional[Path] = ReportsOpt,
    preset: Optional[str] = SpeedPresetOpt,
    threads: Optional[int] = ThreadsOpt,
    device: Optional[str] = DeviceOpt,
    out: Path = typer.Option(Path("runs/bench_speed_cmcgns.json"), "--out", help="JSON report"),
):
    """CM-CGNS pre-training step speed: per-sample (the released code's loops) vs batched."""
    _set_threads(threads)
    _cxr_speed(steps, batch_size, image_encoder, image_size, text_encoder, reports, preset, threads, device, out)
