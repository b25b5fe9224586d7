"""``medmodal seg benchmark`` (old spelling ``benchmark``): every method and DMAF-Net ablation on the same data,
split, seed and budget.

The data: a synthetic BraTS-like set of the profile's size (``OUT/data``), or the user's own labelled
dataset (``data``). For each profile (:data:`PROFILES`), protocol (balanced random subsets / imbalanced missing
rates) and seed, every method (:data:`METHODS`) is trained into its own run folder
``<out>/runs/<protocol>/<method>/seed<k>`` and evaluated on the test split over all 15 subsets
(``eval_test/``: per-subset CSV, table, heatmap). A finished run (its ``benchmark.json``
exists) is skipped, so an interrupted benchmark continues where it stopped; a finished run scored
under another evaluation protocol is re-scored (not re-trained), so one report never mixes
protocols.

Every run is scored under one evaluation protocol (:mod:`medmodal.evaluation.protocols`):
``eval_protocol`` when given, else the runs' configured one (the demo preset's ``passion``, the
protocol of the papers' code). It is named in the report's title lines and in ``results.csv``
(``eval_protocol``); its columns (e.g. ``ETPro`` under ``passion``) are reported.

Report (``<out>/report/``): ``report.md`` (comparison table and ablation table per protocol:
average Dice over the 15 subsets and all test cases per region, mean HD95, parameters, training
time; mean ± std over seeds; then, per protocol and region, the papers' main table: Dice of
every method on each of the 15 subsets, mean over seeds), ``results.csv`` (one row per run),
``subset_results.csv`` (one row per run and subset: Dice / HD95 per region, mean over test
cases), ``dice_bars.png`` and links to each run's per-subset table and heatmap. With
``real=True`` the models are also evaluated on the real labelled case(s) (``eval_real/``),
reported in a separate section.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from medmodal.config import load_config, packaged_config
from medmodal.data.volumes.spec import BRATS2020
from medmodal.data.volumes.synthetic_brats import synth_brats
from medmodal.engine.checkpoint import load_model
from medmodal.engine.segmentation.train import TRAIN_TIME_FILE, run_training
from medmodal.errors import ConfigError
from medmodal.evaluation.report import run_evaluation
from medmodal.evaluation.protocols import LEGACY_PROTOCOL, get_protocol
from medmodal.evaluation.tables import (
    ABSENT,
    AVERAGE,
    PRESENT,
    csv_text,
    display_name,
    mean_std,
    read_rows_csv,
    subset_table,
)
from medmodal.experiments.suite import BenchmarkSuite, Method, Profile
from medmodal.io import atomic_write_json, atomic_write_text, ensure_writable_dir, read_json_file

__all__ = ["METHODS", "PROFILES", "PROTOCOLS", "SUITE", "Method", "SegProfile", "default_real_case", "run",
           "run_config", "train_and_evaluate", "write_benchmark_report"]

PROTOCOLS = ("balanced", "imbalanced")


_NO_DISTILL = {"use_rd": False, "use_pd": False}
METHODS: dict[str, Method] = {
    "dmafnet": Method("dmafnet"),
    "zero_unet": Method("zero_unet", loss={**_NO_DISTILL, "use_dtm": False}),
    "rfnet": Method("rfnet", loss={**_NO_DISTILL, "use_dtm": False}),
    "mmformer": Method("mmformer", loss={**_NO_DISTILL, "use_dtm": False}),
    "passion": Method("passion", loss={**_NO_DISTILL, "use_dtm": False, "self_distill_weight": 1.0,
                                       "preference_weighting": True}),
    "dmafnet w/o DMAF": Method("dmafnet", {"fusion": "mean"}, ablation=True),
    "dmafnet w/o RD": Method("dmafnet", loss={"use_rd": False}, ablation=True),
    "dmafnet w/o PD": Method("dmafnet", loss={"use_pd": False}, ablation=True),
    "dmafnet w/o DTM": Method("dmafnet", loss={"use_dtm": False}, ablation=True),
}


@dataclass(kw_only=True)
class SegProfile(Profile):
    """Dataset, budget and model size of a benchmark profile (``cases`` / ``size``: the synthetic set drawn
    when no ``data`` is given)."""

    cases: int
    size: int
    crop: int
    widths: tuple[int, ...]
    epochs: int
    samples_per_epoch: int
    batch_size: int
    seeds: tuple[int, ...]
    precision: str = "32-true"
    accelerator: str = "cpu"
    num_workers: int = 1
    token_grid: int = 2
    num_heads: int = 2
    lr: float = 1e-2
    val_every: int = 5
    real: bool = False


PROFILES: dict[str, SegProfile] = {
    # 2 CPU cores, 9 methods x 2 protocols: 26 min measured with 24 crops per epoch (about 80 s per
    # DMAF-Net run, half of it evaluation); 16 crops per epoch brings it to about 20 min. A plumbing
    # check: this budget does not teach any method the small sub-regions.
    "cpu-quick": SegProfile(name="cpu-quick", cases=12, size=48, crop=32, widths=(8, 16, 32, 64), epochs=6,
                            samples_per_epoch=16, batch_size=2, seeds=(0,)),
    # one GPU: default widths, 80^3 crops, bf16, 3 seeds, real-case evaluation
    "gpu-full": SegProfile(name="gpu-full", cases=60, size=128, crop=80, widths=(16, 32, 64, 128), epochs=100,
                           samples_per_epoch=200, batch_size=2, seeds=(0, 1, 2), precision="bf16-mixed",
                           accelerator="gpu", num_workers=8, token_grid=4, num_heads=4, lr=2e-3, val_every=10,
                           real=True),
}


def model_kwargs(method: Method, profile: SegProfile) -> dict:
    """Profile-sized model settings (mmFormer needs one more level: its bottleneck is 1/16;
    the zero-filling U-Net gets doubled widths, as its default, for comparable capacity)."""
    widths = list(profile.widths)
    if method.model == "zero_unet":  # one encoder for all sequences: doubled widths (its own default's ratio)
        widths = [2 * w for w in widths]
    if method.model == "mmformer":
        widths = [*widths, widths[-1] * 2]
    kwargs = {"widths": widths}
    if method.model in ("dmafnet", "passion"):
        kwargs |= {"token_grid": profile.token_grid, "num_heads": profile.num_heads}
    return kwargs | method.model_kwargs


def run_config(method: Method, profile: SegProfile, protocol: str, seed: int, data: Path, out: Path):
    """The ExperimentConfig of one benchmark run (the demo preset, resized by the profile)."""
    crop = [profile.crop] * 3
    overrides = [
        f"data.root={data}", f"out_dir={out}", f"data.crop_size={crop}", f"data.batch_size={profile.batch_size}",
        f"data.samples_per_epoch={profile.samples_per_epoch}", f"data.num_workers={profile.num_workers}",
        f"data.missing={protocol}", "data.split_fractions=[0.6,0.1,0.3]", f"model.name={method.model}",
        f"model.kwargs={model_kwargs(method, profile)}", f"loss={method.loss}", f"optim.lr={profile.lr}",
        f"trainer.max_epochs={profile.epochs}", f"trainer.seed={seed}", f"trainer.precision={profile.precision}",
        f"trainer.accelerator={profile.accelerator}", f"trainer.val_every_n_epochs={profile.val_every}",
        "trainer.progress_bar=false", f"eval.roi_size={crop}",
    ]
    return load_config(packaged_config("demo_cpu"), overrides)


def default_real_case() -> Path | None:
    """The real labelled case folder named by ``$MEDMODAL_REAL_CASE`` (e.g. TCGA-DU-7294, read with
    ``REAL_CASE_MAPPING``); ``None`` when unset (no default location is searched).

    Raises:
        ConfigError: the variable is set but names no folder (a typo must not silently drop the real case).
    """
    env = os.environ.get("MEDMODAL_REAL_CASE")
    if not env:
        return None
    if not Path(env).is_dir():
        raise ConfigError(f"{env}: no such folder ($MEDMODAL_REAL_CASE)")
    return Path(env)


def _slug(name: str) -> str:
    return name.replace(" w/o ", "-no-").replace(" ", "_")


def train_and_evaluate(method_name: str, profile: SegProfile, protocol: str, seed: int, data: Path, runs: Path,
                       real_cases: Sequence[tuple[Path, str | None]] = (), eval_protocol: str | None = None) -> dict:
    """Train + evaluate one (method, protocol, seed) unless already done; returns its summary row.

    ``protocol`` is the missing-sequence protocol; ``eval_protocol`` the evaluation protocol
    (``None``: the run config's). A finished run scored under another evaluation protocol (runs
    from before protocols existed count as ``monai-max-directed``) is re-scored, not re-trained.
    """
    run_dir = runs / protocol / _slug(method_name) / f"seed{seed}"
    done = run_dir / "benchmark.json"
    method = METHODS[method_name]
    cfg = run_config(method, profile, protocol, seed, data, run_dir)
    scoring = get_protocol(eval_protocol or cfg.eval.protocol, BRATS2020).name
    previous = read_json_file(done) if done.is_file() else None
    if previous is not None and previous.get("eval_protocol", LEGACY_PROTOCOL) == scoring:
        return previous
    if previous is None:
        run_training(cfg, resume="auto")
    train_s = json.loads((run_dir / TRAIN_TIME_FILE).read_text())["train_seconds"]  # summed over resumes
    rows = run_evaluation(run_dir, split="test", progress=False, protocol=scoring).rows
    row = {"method": method_name, "protocol": protocol, "seed": seed, "ablation": method.ablation,
           "eval_protocol": scoring, "parameters": _parameters(run_dir), "train_s": round(train_s, 1),
           **_averages(rows, scoring)}
    for root, mapping in real_cases:
        real = run_evaluation(run_dir, data=root, split="all", out=run_dir / "eval_real", progress=False,
                              layout="mapping" if mapping else "auto", mapping=mapping, protocol=scoring).rows
        row |= {f"real_{k}": v for k, v in _averages(real, scoring).items()}
    atomic_write_json(done, row)
    return row


def _parameters(run_dir: Path) -> int:
    model, _ = load_model(run_dir / "model")
    return sum(p.numel() for p in model.parameters())


def _columns(eval_protocol: str | None) -> tuple[str, ...]:
    """The reported columns (BraTS regions, ``ETPro`` under ``passion``) of an evaluation protocol."""
    return get_protocol(eval_protocol or LEGACY_PROTOCOL, BRATS2020).columns(BRATS2020)


def _averages(rows: Sequence[dict], eval_protocol: str) -> dict:
    """Mean Dice (%) and HD95 per column over every (case, subset) row."""
    out = {}
    for region in _columns(eval_protocol):
        out[f"Dice_{region}"] = 100 * float(np.nanmean([r[f"Dice_{region}"] for r in rows]))
        out[f"HD95_{region}"] = float(np.nanmean([r.get(f"HD95_{region}", math.nan) for r in rows]))
    return out


def run(out: str | Path, profile: str | SegProfile = "cpu-quick", methods: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None, *, protocols: Sequence[str] = PROTOCOLS, epochs: int | None = None,
        real: bool | None = None, real_cases: Sequence[tuple[Path, str | None]] = (),
        on_run: Callable[[dict], None] | None = None, eval_protocol: str | None = None,
        data: str | Path | None = None) -> Path:
    """Run the benchmark; returns the report folder. See the module docstring.

    ``protocols``: missing-sequence protocols (balanced / imbalanced); ``eval_protocol``: the
    evaluation protocol every run is scored under (``None``: the runs' configured one, ``passion``);
    ``data``: the user's own labelled dataset folder (``None``: a synthetic BraTS-like set of the
    profile's size in ``OUT/data``, written once).

    Raises:
        FileNotFoundError: ``data`` is not a folder.
    """
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    if epochs is not None:
        prof = replace(prof, epochs=int(epochs))
    methods = list(methods or METHODS)
    if eval_protocol is not None:
        get_protocol(eval_protocol, BRATS2020).columns(BRATS2020)  # unknown or non-BraTS protocol: fail now
    unknown = [m for m in methods if m not in METHODS] + [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ConfigError(f"unknown method/protocol {unknown}; methods: {', '.join(METHODS)}; "
                         f"protocols: {', '.join(PROTOCOLS)}")
    if data is not None and not Path(data).is_dir():
        raise FileNotFoundError(f"{data}: no such dataset folder (--data)")
    out = ensure_writable_dir(out)
    if data is not None:
        data = Path(data)
    elif not ((data := out / "data") / ".complete").is_file():
        synth_brats(data, num_cases=prof.cases, size=prof.size, seed=0)
        atomic_write_text(data / ".complete", "")
    use_real = prof.real if real is None else real
    rows = []
    for protocol in protocols:
        for seed in seeds or prof.seeds:
            for name in methods:
                rows.append(train_and_evaluate(name, prof, protocol, seed, data, out / "runs",
                                               real_cases if use_real else (), eval_protocol))
                on_run and on_run(rows[-1])
    return write_benchmark_report(rows, out / "report", out / "runs")


# ----------------------------------------------------------------------------- report


def comparison_table(rows: Sequence[dict], prefix: str = "") -> str:
    """Markdown: one row per method (mean ± std over seeds); Dice per column of the evaluation
    protocol (``ETPro`` too under ``passion``), Dice mean and HD95 mean over the regions WT/TC/ET."""
    regions = BRATS2020.region_names
    columns = _columns(rows[0].get("eval_protocol"))
    head = ["method", *[f"Dice {r}" for r in columns], "Dice mean", "HD95 mean", "parameters", "train (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":--"] + ["--:"] * (len(head) - 1)) + "|"]
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        dice = [[r[f"{prefix}Dice_{g}"] for r in mine] for g in columns]
        mean_dice = [float(np.mean([r[f"{prefix}Dice_{g}"] for g in regions])) for r in mine]
        hd = [float(np.mean([r[f"{prefix}HD95_{g}"] for g in regions])) for r in mine]
        cells = [method, *[mean_std(d) for d in dice], mean_std(mean_dice), mean_std(hd),
                 f"{mine[0]['parameters'] / 1e6:.2f} M", mean_std([r["train_s"] for r in mine], 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)




def subset_results(rows: Sequence[dict], runs: Path) -> list[dict]:
    """One row per (run, subset, incl. ``Average``): Dice (%) and HD95 per region, mean over test
    cases, read from each run's ``eval_test/subset_metrics.csv``."""
    out = []
    modalities = BRATS2020.modalities
    for row in rows:
        regions = _columns(row.get("eval_protocol"))
        cases = read_rows_csv(runs / _rel(row, "subset_metrics.csv"))
        dice = subset_table(cases, modalities, regions, "Dice")
        hd95 = subset_table(cases, modalities, regions, "HD95")
        for d, h in zip(dice, hd95):
            out.append({"method": row["method"], "protocol": row["protocol"], "seed": row["seed"],
                        "eval_protocol": row.get("eval_protocol", LEGACY_PROTOCOL),
                        "subset": d["subset"], **{f"Dice_{g}": 100 * d[g] for g in regions},
                        **{f"HD95_{g}": h[g] for g in regions}})
    return out


def methods_by_subset_table(subset_rows: Sequence[dict], region: str) -> str:
    """Markdown, the papers' main-table layout: ●/○ per sequence, then Dice (%) of each method on
    each subset (mean over seeds; the best of a row in bold), last row the average over subsets."""
    methods = list(dict.fromkeys(r["method"] for r in subset_rows))
    subsets = list(dict.fromkeys(r["subset"] for r in subset_rows))
    modalities = BRATS2020.modalities
    lines = ["| " + " | ".join([display_name(m) for m in modalities] + methods) + " |",
             "|" + ":-:|" * len(modalities) + "--:|" * len(methods)]
    for subset in subsets:
        names = subset.split("+")
        markers = [AVERAGE] + [""] * (len(modalities) - 1) if subset == AVERAGE else \
            [PRESENT if m in names else ABSENT for m in modalities]
        cells = [mean_std([r[f"Dice_{region}"] for r in subset_rows if r["method"] == method
                            and r["subset"] == subset], 1, std=False) for method in methods]
        numbers = [float(c) for c in cells if c != "-"]
        if len(methods) > 1 and numbers:
            cells = [f"**{c}**" if c != "-" and float(c) == max(numbers) else c for c in cells]
        lines.append("| " + " | ".join(markers + cells) + " |")
    return "\n".join(lines)


def write_benchmark_report(rows: Sequence[dict], report_dir: Path, runs: Path) -> Path:
    """``report.md``, ``results.csv``, ``subset_results.csv`` and ``dice_bars.png`` in ``report_dir``.

    Raises:
        ValueError: the rows were scored under different evaluation protocols.
    """
    scored = sorted({r.get("eval_protocol", LEGACY_PROTOCOL) for r in rows})
    if len(scored) != 1:
        raise ConfigError(f"benchmark runs were scored under different evaluation protocols {scored}; re-run with "
                         f"--protocol to score them all alike")
    scoring = get_protocol(scored[0], BRATS2020)
    rows = [{**r, "eval_protocol": scoring.name} for r in rows]
    report_dir = ensure_writable_dir(report_dir)
    atomic_write_text(report_dir / "results.csv", csv_text(rows))
    per_subset = subset_results(rows, runs)
    atomic_write_text(report_dir / "subset_results.csv", csv_text(per_subset))
    trained = list(dict.fromkeys(r["protocol"] for r in rows))
    parts = [f"# Benchmark - scored under `{scoring.name}`", "",
             f"Evaluation protocol {scoring.describe()} Training under the {' / '.join(trained)} "
             f"missing-sequence protocol{'s' if len(trained) > 1 else ''}.", "",
             "Average over the 15 subsets and all test cases (Dice in %, HD95 in mm). "
             "Per-run subset tables and heatmaps: `runs/<protocol>/<method>/seed<k>/eval_test/`.", ""]
    for protocol in dict.fromkeys(r["protocol"] for r in rows):
        mine = [r for r in rows if r["protocol"] == protocol]
        for title, group in (("methods", [r for r in mine if not r["ablation"] or r["method"] == "dmafnet"]),
                             ("DMAF-Net ablations", [r for r in mine if r["ablation"] or r["method"] == "dmafnet"])):
            if len({r["method"] for r in group}) > 1 or title == "methods":
                parts += [f"## {protocol} protocol: {title} (scored under `{scoring.name}`)", "",
                          comparison_table(group), ""]
        if "real_Dice_WT" in mine[0]:
            parts += [f"## {protocol} protocol: real labelled case(s) (scored under `{scoring.name}`)", "",
                      comparison_table(mine, "real_"), ""]
    for protocol in dict.fromkeys(r["protocol"] for r in rows):
        mine = [r for r in per_subset if r["protocol"] == protocol]
        for region in scoring.columns(BRATS2020):
            parts += [f"## {protocol} protocol: Dice {region} (%) per subset (scored under `{scoring.name}`)", "",
                      methods_by_subset_table(mine, region), ""]
    parts += ["## Runs", ""] + [f"- `{r['protocol']}/{_slug(r['method'])}/seed{r['seed']}`: "
                                f"[table](../runs/{_rel(r, 'table.md')}), "
                                f"[heatmap](../runs/{_rel(r, 'dice_heatmap.png')})" for r in rows]
    atomic_write_text(report_dir / "report.md", "\n".join(parts) + "\n")
    dice_bars(rows, report_dir / "dice_bars.png")
    return report_dir


def _rel(row: dict, name: str) -> str:
    """Path of a run's evaluation file relative to the runs folder."""
    return f"{row['protocol']}/{_slug(row['method'])}/seed{row['seed']}/eval_test/{name}"


def dice_bars(rows: Sequence[dict], path: Path) -> Path:
    """Grouped bar chart: average Dice per method (bars) and region (groups), one panel per protocol.

    Rendered like :mod:`medmodal.evaluation.plots` (Agg canvas, no pyplot), written atomically.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from medmodal.io import atomic_path

    protocols = list(dict.fromkeys(r["protocol"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    regions = BRATS2020.region_names
    fig = Figure(figsize=(2 + 4.5 * len(protocols), 4), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(protocols), squeeze=False)[0]
    width = 0.8 / len(methods)
    for ax, protocol in zip(axes, protocols):
        for i, method in enumerate(methods):
            mine = [r for r in rows if r["protocol"] == protocol and r["method"] == method]
            means = [np.mean([r[f"Dice_{g}"] for r in mine]) if mine else 0 for g in regions]
            ax.bar(np.arange(len(regions)) + i * width, means, width, label=method)
        ax.set_xticks(np.arange(len(regions)) + 0.4 - width / 2, regions)
        ax.set_title(f"{protocol} protocol")
        ax.set_ylabel("Dice (%) over 15 subsets")
        ax.set_ylim(0, 100)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    fig.suptitle(f"scored under {rows[0].get('eval_protocol', LEGACY_PROTOCOL)}", fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


SUITE = BenchmarkSuite("seg", METHODS, PROFILES, run)
