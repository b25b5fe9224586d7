"""The ``medmodal`` command line. Each sub-command is a thin layer over the library.

Errors caused by the user's input (bad files, bad layout, unwritable folders) are printed as
one clear line naming the file and the problem, with exit code 1: never a torch traceback.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="medmodal: multi-modal medical image learning with missing modalities.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Datasets: synthesise, inspect, split, assign missing sequences.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)

LayoutOpt = typer.Option("auto", "--layout", help="auto | brats2020 | brats2023 | myops2020 | nnunet | mapping")
REAL_CASE_MAPPING = "flair=*_fla_bet*,t1=*_t1_bet*,t1ce=*_t1c_bet*,t2=*_t2_bet*,seg=*_seg_fusion*"
MapOpt = typer.Option(None, "--map", help="glob per sequence, e.g. 'flair=*_fla*.nii.gz,t1=*_t1_*.nii.gz,seg=*seg*'")
LabelsOpt = typer.Option(None, "--labels", help="label convention of the files (brats2020 | brats2023 | "
                                                  "myops2020); default: the layout's")
DatasetOpt = typer.Option("auto", "--dataset", help="auto (myops2020 for MyoPS-layout files, else brats2020) | "
                                                    "brats2020 | brats2023 | myops2020")


def user_errors(func):
    """Turn input errors into one red line on stderr and exit code 1."""
    from medmodal.data.layouts import LayoutError
    from medmodal.data.loading import CaseError
    from medmodal.io import OutputError

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (CaseError, LayoutError, OutputError, FileNotFoundError, PermissionError, KeyError, ValueError) as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def discover(root: Path, layout: str, mapping: Optional[str], labels: Optional[str], modalities=None):
    from medmodal.data.layouts import discover_cases

    extra = {"modalities": tuple(modalities)} if modalities else {}
    return discover_cases(root, layout=layout, mapping=mapping, source_labels=labels, **extra)


def discover_dataset(root: Path, dataset: str, layout: str, mapping: Optional[str], labels: Optional[str]):
    """``(cases, spec)``; ``dataset="auto"``: MyoPS 2020 when the files are in the MyoPS layout, else BraTS 2020."""
    from medmodal.data.spec import BRATS2020, MYOPS2020, get_spec

    spec = None if dataset == "auto" else get_spec(dataset)
    found = discover(root, layout, mapping, labels, spec.modalities if spec else None)
    if spec is None:
        spec = MYOPS2020 if found[0].layout == "myops2020" else BRATS2020
    return found, spec


@data_app.command("synth-brats")
@user_errors
def synth_brats_cmd(
    out: Path = typer.Argument(..., help="output folder (BraTS 2020 layout is written inside)"),
    cases: int = typer.Option(8, "--cases", "-n", help="number of cases"),
    size: int = typer.Option(64, "--size", "-s", help="volume edge length in voxels"),
    seed: int = typer.Option(0, "--seed"),
    naming: str = typer.Option("brats2020", "--naming", help="brats2020 | brats2023 file naming"),
):
    """Write a synthetic dataset in the official BraTS layout (real NIfTI files)."""
    from medmodal.data.synthetic import synth_brats

    folders = synth_brats(out, num_cases=cases, size=size, seed=seed, naming=naming)
    console.print(f"wrote {len(folders)} cases to {out}")


@data_app.command("synth-myops")
@user_errors
def synth_myops_cmd(
    out: Path = typer.Argument(..., help="output folder (official MyoPS 2020 layout: train25/, train25_myops_gd/)"),
    cases: int = typer.Option(8, "--cases", "-n", help="number of cases"),
    size: int = typer.Option(96, "--size", "-s", help="in-plane edge length in pixels"),
    slices: int = typer.Option(6, "--slices", help="short-axis slices per stack"),
    seed: int = typer.Option(0, "--seed"),
):
    """Write a synthetic cardiac MR dataset (C0 / DE / T2 + labels) in the MyoPS 2020 layout."""
    from medmodal.data.synthetic_myops import synth_myops

    ids = synth_myops(out, num_cases=cases, size=size, slices=slices, seed=seed)
    console.print(f"wrote {len(ids)} cases to {out}")


@data_app.command("summary")
@user_errors
def summary_cmd(
    root: Path = typer.Argument(..., help="dataset folder or case folder"),
    layout: str = LayoutOpt, mapping: Optional[str] = MapOpt, labels: Optional[str] = LabelsOpt,
    dataset: str = DatasetOpt,
    validate: bool = typer.Option(True, help="read and validate every file (slower)"),
):
    """List the cases found, their sequences, grid and label voxel counts."""
    from medmodal.data.summary import availability, summarize_case, summary_table

    found, spec = discover_dataset(root, dataset, layout, mapping, labels)
    summaries = [summarize_case(c, spec, validate=validate) for c in found]
    console.print(summary_table(summaries, spec))
    avail = ", ".join(f"{m} {n}/{len(found)}" for m, n in availability(summaries, spec).items())
    console.print(f"layout: {found[0].layout}; sequences available: {avail}")


@data_app.command("split")
@user_errors
def split_cmd(
    root: Path = typer.Argument(..., help="dataset folder"),
    seed: int = typer.Option(0, "--seed"),
    fractions: str = typer.Option("", "--fractions", help="train,val,test fractions (default PASSION's 219/50/100)"),
    out: Optional[Path] = typer.Option(None, "--out", help="split file (default <root>/splits_seed<seed>.json)"),
    layout: str = LayoutOpt, mapping: Optional[str] = MapOpt,
):
    """Write a deterministic train/val/test split file."""
    from medmodal.data.splits import DEFAULT_FRACTIONS, default_split_path, make_splits, write_splits

    found = discover(root, layout, mapping, None)
    frac = tuple(float(x) for x in fractions.split(",")) if fractions else DEFAULT_FRACTIONS
    splits = make_splits([c.case_id for c in found], frac, seed)
    path = write_splits(out or default_split_path(root, seed), splits, seed)
    console.print(f"{path}: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))


@data_app.command("missing-rates")
@user_errors
def missing_rates_cmd(
    root: Path = typer.Argument(..., help="dataset folder"),
    rates: Optional[str] = typer.Option(None, "--rates", help="per-sequence missing rates (default BraTS "
                                        "flair=0.2,t1=0.4,t1ce=0.6,t2=0.8; MyoPS c0=0.2,de=0.425,t2=0.675)"),
    seed: int = typer.Option(0, "--seed"),
    out: Optional[Path] = typer.Option(None, "--out", help="CSV path (default <root>/missing_<rates>_seed<seed>.csv)"),
    split_seed: Optional[int] = typer.Option(None, "--split-seed", help="assign only the training cases of this split"),
    layout: str = LayoutOpt, mapping: Optional[str] = MapOpt, dataset: str = DatasetOpt,
):
    """Assign each (training) case a fixed set of available sequences under imbalanced missing rates."""
    from medmodal.config import default_missing_rates
    from medmodal.data.missing import assign_imbalanced, parse_rates, realised_missing_rates, write_missing_csv
    from medmodal.data.splits import load_or_make_splits

    found, spec = discover_dataset(root, dataset, layout, mapping, None)
    modalities = spec.modalities
    ids = [c.case_id for c in found]
    if split_seed is not None:
        ids = load_or_make_splits(root, ids, split_seed)["train"]
    parsed = parse_rates(rates) if rates else default_missing_rates(spec.name)
    assignment = assign_imbalanced(ids, parsed, modalities, seed=seed)
    tag = "".join(f"{int(round(parsed.get(m, 0) * 10))}" for m in modalities)
    path = write_missing_csv(out or Path(root) / f"missing_mr{tag}_seed{seed}.csv", assignment, modalities)
    real = realised_missing_rates(assignment, modalities)
    console.print(f"{path}: {len(assignment)} cases; realised missing rates "
                  + ", ".join(f"{m} {real[m]:.2f}" for m in modalities))


@data_app.command("preprocess")
@user_errors
def preprocess_cmd(
    root: Path = typer.Argument(..., help="dataset folder"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="cache folder (default <root>/.medmodal_cache, or ~/.cache/medmodal if read-only)"),
    layout: str = LayoutOpt, mapping: Optional[str] = MapOpt, labels: Optional[str] = LabelsOpt,
    dataset: str = DatasetOpt,
):
    """Validate, crop and normalise every case once, caching the result as .npy."""
    from medmodal.data.preprocess import PreprocessedCache, default_cache_dir

    found, spec = discover_dataset(root, dataset, layout, mapping, labels)
    store = PreprocessedCache(cache or default_cache_dir(root), spec)
    store.build_all(found, progress=True)
    console.print(f"{len(found)} cases cached in {store.cache_dir}")


@app.command("train")
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
    from medmodal.engine.train import run_training

    cfg = _experiment_config(config, preset, out, data, override)
    run_dir = run_training(cfg, resume=resume)
    console.print(f"run folder: {run_dir}  (model bundle: {run_dir / 'model'})")


def _experiment_config(config, preset, out, data, override):
    from medmodal.config import load_config, packaged_config

    if config and preset:
        raise ValueError("give --config or --preset, not both")
    cfg = load_config(config or (packaged_config(preset) if preset else None), override)
    if out:
        cfg.out_dir = str(out)
    if data:
        cfg.data.root = str(data)
    return cfg


@app.command("evaluate")
@user_errors
def evaluate_cmd(
    run: Path = typer.Argument(..., help="run folder (or model bundle / .ckpt with --data)"),
    data: Optional[Path] = typer.Option(None, "--data", help="dataset folder (default: the run's data.root)"),
    split: str = typer.Option("test", "--split", help="train | val | test | all"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output folder (default <run>/eval_<split>)"),
    device: str = typer.Option("auto", "--device", help="auto (GPU if available) | cpu | cuda"),
    layout: str = LayoutOpt, mapping: Optional[str] = MapOpt, labels: Optional[str] = LabelsOpt,
    hd95: bool = typer.Option(True, help="also compute HD95 (slower)"),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32"),
    progress: bool = typer.Option(True, help="show a progress bar"),
):
    """Score every case under every subset of sequences; writes CSV, markdown table and heatmap."""
    from medmodal.evaluation.report import run_evaluation

    result = run_evaluation(run, data=data, split=split, out=out, device=device, layout=layout, mapping=mapping,
                            labels=labels, hd95=hd95, progress=progress, precision=precision)
    console.print(result.markdown)
    console.print(f"per-case CSV: {result.csv}\ntable: {result.table}\nheatmap: {result.heatmap}")


@app.command("predict")
@user_errors
def predict_cmd(
    input: Path = typer.Option(..., "-i", "--input", help="a case folder or a folder of cases (any layout)"),
    output: Path = typer.Option(..., "-o", "--output", help="folder for <case>.nii.gz"),
    model: Path = typer.Option(..., "-m", "--model", help="run folder, model bundle folder, or .ckpt"),
    device: str = typer.Option("auto", "--device", help="auto (GPU if available) | cpu | cuda"),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32"),
    save_probabilities: bool = typer.Option(False, "--save-probabilities", help="also write <case>.npz"),
    resume: bool = typer.Option(False, "--continue", help="skip cases already predicted"),
    disable_progress_bar: bool = typer.Option(False, "--disable-progress-bar"),
    layout: str = LayoutOpt, mapping: Optional[str] = MapOpt,
    label_convention: Optional[str] = typer.Option(None, "--output-labels",
                                                   help="brats2020 (ET=4) | brats2023 (ET=3) for BraTS models; "
                                                        "default: the input's"),
):
    """Segment new cases; any non-empty subset of the model's sequences may be present."""
    import torch

    from medmodal.engine.checkpoint import load_model
    from medmodal.engine.inference import resolve_device
    from medmodal.engine.predict import PredictOptions, predict_cases

    device = str(resolve_device(device))
    net, meta = load_model(model, map_location=device)
    cases = discover(input, layout, mapping, None, meta["modalities"])
    options = PredictOptions(save_probabilities=save_probabilities, skip_existing=resume,
                             label_convention=label_convention, precision=precision)

    def report(case, status):
        if not disable_progress_bar:
            have = "+".join(m for m in meta["modalities"] if m in case.images)
            console.print(f"{case.case_id}: {status} ({have})")

    with torch.inference_mode():
        predict_cases(net, meta, cases, output, options, device=torch.device(device), on_case=report)
    console.print(f"predictions in {output}")


@app.command("benchmark")
@user_errors
def benchmark_cmd(
    out: Path = typer.Option(Path("runs/benchmark"), "--out", help="folder for data, runs and report/"),
    profile: str = typer.Option("cpu-quick", "--profile", help="cpu-quick (2 CPU cores, ~20 min) | gpu-full"),
    methods: Optional[str] = typer.Option(None, "--methods", help="comma list (default: all methods and ablations)"),
    protocols: str = typer.Option("balanced,imbalanced", "--protocols", help="balanced,imbalanced"),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="comma list (default: the profile's)"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="override the profile's epochs"),
    real: Optional[bool] = typer.Option(None, "--real/--no-real", help="also evaluate on the real labelled case "
                                        "(default: gpu-full yes, cpu-quick no)"),
    real_data: Optional[Path] = typer.Option(None, "--real-data", help="real case folder (default: "
                                             "$MEDMODAL_REAL_CASE, else shared/data/brats-real/"
                                             "TCGA-DU-7294 beside the working folder or the checkout)"),
    real_map: Optional[str] = typer.Option(REAL_CASE_MAPPING, "--real-map", help="--map for the real case"),
):
    """Train every method and DMAF-Net ablation on one synthetic dataset; write a comparison report."""
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
        console.print("note: the real labelled case was not found; the benchmark runs without it (--real-data)")
    real_cases = [(real_root, real_map)] if real_root is not None else []
    report = run_benchmark(out, profile, names, [p.strip() for p in protocols.split(",")],
                           [int(s) for s in seeds.split(",")] if seeds else None, epochs, real, real_cases,
                           on_run=lambda r: console.print(f"{r['protocol']:>10} {r['method']:<18} seed {r['seed']}: "
                                                          f"Dice WT/TC/ET {r['Dice_WT']:.1f}/{r['Dice_TC']:.1f}/"
                                                          f"{r['Dice_ET']:.1f}  ({r['train_s']:.0f} s)"))
    console.print((report / "report.md").read_text(), markup=False, highlight=False)
    console.print(f"report: {report}")


@app.command("bench-speed")
@user_errors
def bench_speed_cmd(
    crop: int = typer.Option(80, "--crop", help="training crop / sliding-window edge"),
    case_size: str = typer.Option("240,240,155", "--case-size", help="evaluation volume X,Y,Z (a full BraTS case)"),
    overlap: float = typer.Option(0.5, "--overlap", help="sliding-window overlap"),
    sw_batch_size: int = typer.Option(2, "--sw-batch-size", help="windows per forward pass"),
    steps: int = typer.Option(10, "--steps"),
    widths: Optional[str] = typer.Option(None, "--widths", help="encoder widths, e.g. 16,32,64,128"),
    compile: bool = typer.Option(False, "--compile", help="torch.compile forward + loss of the fast path (one graph)"),
    compile_mode: str = typer.Option("default", "--compile-mode",
                                     help="default | reduce-overhead (CUDA graphs) | max-autotune | "
                                          "max-autotune-no-cudagraphs"),
    batch_size: int = typer.Option(1, "--batch-size", help="training crops per step (both loops)"),
    evaluate: bool = typer.Option(True, help="also time the 15-subset evaluation and full-case inference"),
    channels_last: bool = typer.Option(True, help="channels_last_3d memory format on the fast path (CUDA)"),
    device: Optional[str] = typer.Option(None, "--device"),
    peak_tflops: Optional[float] = typer.Option(None, "--peak-tflops", help="device bf16 peak, e.g. 989 (H100 SXM)"),
    out: Path = typer.Option(Path("runs/bench_speed.json"), "--out", help="JSON report"),
):
    """Training / evaluation speed: reference-style fp32 loop vs medmodal's fast path."""
    from medmodal.engine.speed import SpeedSettings, format_report, run_speed_benchmark

    kwargs = {"widths": [int(w) for w in widths.split(",")]} if widths else {}
    settings = SpeedSettings(model_kwargs=kwargs, crop=crop, case_size=tuple(int(v) for v in case_size.split(",")),
                             steps=steps, compile=compile, compile_mode=compile_mode, batch_size=batch_size,
                             evaluate=evaluate, peak_tflops=peak_tflops, overlap=overlap,
                             sw_batch_size=sw_batch_size, channels_last=channels_last,
                             **({"device": device} if device else {}))
    report = run_speed_benchmark(settings, out)
    console.print(format_report(report))
    console.print(f"JSON: {out}")


@app.command("demo")
@user_errors
def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="folder for the demo's data and outputs"),
    cases: int = typer.Option(16, "--cases", help="synthetic cases to generate"),
    size: int = typer.Option(64, "--size", help="volume edge length in voxels"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="training epochs (default: the demo preset's)"),
):
    """The main job on built-in synthetic data: synthesise, train DMAF-Net briefly, evaluate all subsets."""
    import time

    from medmodal.data.synthetic import synth_brats
    from medmodal.engine.train import run_training
    from medmodal.evaluation.report import run_evaluation

    start = time.perf_counter()
    data = out / "data"
    if not any(data.glob("*/*_seg.nii.gz")):
        synth_brats(data, num_cases=cases, size=size, seed=0)
        console.print(f"synthetic BraTS-layout dataset: {cases} cases of {size}^3 in {data}")
    overrides = [f"trainer.max_epochs={epochs}"] if epochs else []
    cfg = _experiment_config(None, "demo_cpu", out / "run", data, overrides)
    run_dir = run_training(cfg, resume="auto")
    result = run_evaluation(run_dir, split="test", progress=True)
    console.print(result.markdown)
    minutes = (time.perf_counter() - start) / 60
    console.print(f"done in {minutes:.1f} min. per-case CSV: {result.csv}\ntable: {result.table}\n"
                  f"heatmap: {result.heatmap}\nmodel bundle: {run_dir / 'model'}")


def main() -> None:  # pragma: no cover - entry point
    app(prog_name="medmodal")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
