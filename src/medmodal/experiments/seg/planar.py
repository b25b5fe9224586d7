"""The 2-D segmentation benchmark (``medmodal seg benchmark --task 2d``): MSLAU-Net, its baselines and its two
ablations trained by the same engine (:func:`medmodal.engine.seg2d.train.run_seg2d`) with the same data, grid,
epochs, optimiser and loss, seed by seed, scored on the test cases of one data set.

==========================  ==============================================================================
method                      model
==========================  ==============================================================================
``mslau_net``               MSLAU-Net (multi-scale linear attention in stages 3-4)
``unet2d``                  the SSL4MIS U-Net
``transunet``               TransUNet-style hybrid (ResNet stem + ViT bottleneck)
``swin_unet``               Swin-UNet-style (Swin blocks, patch expanding)
``mslau_single_scale``      ablation: one depth-wise kernel (3) instead of 3/5/7/9 in the linear attention
``mslau_conv``              ablation: depth-wise convolution blocks in place of the attention
==========================  ==============================================================================

Profiles (:data:`PLANAR_PROFILES`): ``cpu-reduced`` (the issue's CPU budget: 128 px, reduced widths of ~0.4 M
parameters per model, a few epochs on 2 CPU cores), ``smoke`` (tests: 64 px, tiny models, one epoch) and
``full`` (the paper presets' 224 px, paper widths, 150 epochs: a GPU). Every run keeps the checkpoint with the
best validation Dice (validation patients only); the report's tables are mean ± std over seeds of each run's
mean over the test cases. Run folders ``OUT/runs/<method>/seed<k>/``: a finished run is skipped, so a
benchmark can be split over processes (``--methods`` / ``--seeds``) and reported once with ``--report-only``.
Report (``OUT/report/``): ``seg2d.md`` (the comparison and the ablations; the validation Dice of each), ``per_case.csv``
(every method, seed, split and case) and ``summary.json``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from medmodal.config import load_run_config
from medmodal.data.seg2d import detect_layout
from medmodal.engine.seg2d.config import Seg2DRunConfig
from medmodal.engine.seg2d.train import run_seg2d
from medmodal.errors import ConfigError
from medmodal.evaluation.seg2d import markdown_table, summarise
from medmodal.experiments.suite import BenchmarkSuite, Method, Profile
from medmodal.io import atomic_write_json, atomic_write_text, ensure_writable_dir

__all__ = ["PLANAR_METHODS", "PLANAR_PROFILES", "PlanarProfile", "run", "SUITE"]

PLANAR_METHODS = {
    "mslau_net": Method(model="mslau_net"),
    "unet2d": Method(model="unet2d"),
    "transunet": Method(model="transunet"),
    "swin_unet": Method(model="swin_unet"),
    "mslau_single_scale": Method(model="mslau_net", model_kwargs={"attention": "single_scale"}, ablation=True),
    "mslau_conv": Method(model="mslau_net", model_kwargs={"attention": "conv"}, ablation=True),
}
LABELS = {"mslau_net": "MSLAU-Net", "unet2d": "U-Net (SSL4MIS)", "transunet": "TransUNet-style",
          "swin_unet": "Swin-UNet-style", "mslau_single_scale": "MSLAU-Net, single-scale linear attention",
          "mslau_conv": "MSLAU-Net, convolution instead of attention"}


@dataclass(kw_only=True)
class PlanarProfile(Profile):
    """A 2-D benchmark budget.

    Attributes:
        overrides: ``--set`` overrides of every run (grid, epochs, precision ...), over the preset.
        preset: the packaged ``seg`` preset an ACDC run starts from.
        presets: the preset of the other data sets, by kind (``synapse``, ``polyp``: the paper's loss, optimiser and
            schedule for that data set; the profile's ``overrides`` set the budget).
        model_kwargs: per registered model, the kwargs of this profile's size (merged under a method's own).
    """

    preset: str = "train_mslau_acdc"
    presets: dict = field(default_factory=lambda: {"synapse": "train_mslau_synapse", "polyp": "train_mslau_cvc"})
    overrides: tuple[str, ...] = ()
    model_kwargs: dict = field(default_factory=dict)


#: reduced widths of about 0.4 M parameters each (``cpu-reduced``; forward + backward of a batch of 2 at 128 px:
#: 31-50 ms on one CPU thread for all four)
REDUCED_KWARGS = {
    "mslau_net": {"widths": [16, 32, 64, 128], "depths": [1, 2, 2, 1], "head_dim": 16, "decoder_channels": 32},
    "unet2d": {"widths": [8, 16, 32, 64, 128]},
    "transunet": {"backbone": "resnet18", "backbone_kwargs": {"layers": [1, 1, 1, 1], "channels": [16, 32, 64, 128]},
                  "img_size": 128, "hidden_size": 64, "depth": 4, "num_heads": 4, "head_channels": 64,
                  "decoder_channels": [32, 16, 16, 8]},
    "swin_unet": {"img_size": 128, "window_size": 4, "embed_dim": 12, "num_heads": [1, 2, 4, 8]},
}
TINY_KWARGS = {
    "mslau_net": {"widths": [8, 16, 32, 32], "depths": [1, 1, 1, 1], "head_dim": 8, "decoder_channels": 8},
    "unet2d": {"widths": [4, 8, 16, 32, 64]},
    "transunet": {"backbone": "resnet18", "backbone_kwargs": {"layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64]},
                  "img_size": 64, "hidden_size": 32, "depth": 1, "num_heads": 2, "head_channels": 16,
                  "decoder_channels": [16, 8, 8, 4]},
    "swin_unet": {"img_size": 64, "embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "window_size": 2},
}
PLANAR_PROFILES = {
    "cpu-reduced": PlanarProfile(
        name="cpu-reduced", seeds=(0, 1, 2), preset="train_mslau_acdc_cpu", model_kwargs=REDUCED_KWARGS,
        note="128 px, reduced widths (~0.4 M parameters each), 16 epochs x 400 slices (800 steps of 8) on one CPU "
             "thread per run (preset train_mslau_acdc_cpu; other data sets: their paper preset at this budget); "
             "not the paper's scale",
        # train_mslau_acdc_cpu's values: the same budget for the Synapse and polyp presets
        overrides=("data.size=128", "data.batch_size=8", "data.num_workers=0", "trainer.max_epochs=16",
                   "trainer.samples_per_epoch=400", "trainer.precision=32-true", "trainer.progress_bar=false",
                   "trainer.accelerator=cpu", "trainer.devices=1")),
    "smoke": PlanarProfile(
        name="smoke", seeds=(0,), preset="train_mslau_acdc", model_kwargs=TINY_KWARGS,
        note="tests only: tiny models, 64 px, one epoch",
        overrides=("data.size=64", "data.batch_size=4", "data.num_workers=0", "trainer.max_epochs=1",
                   "trainer.samples_per_epoch=8", "trainer.precision=32-true", "trainer.progress_bar=false",
                   "trainer.accelerator=cpu", "trainer.devices=1", "eval.hd95=false")),
    "full": PlanarProfile(name="full", seeds=(0, 1, 2), preset="train_mslau_acdc",
                          note="the paper's grid (224 px), widths and 150 epochs: a GPU"),
}


def _profile(profile: str | PlanarProfile) -> PlanarProfile:
    if isinstance(profile, PlanarProfile):
        return profile
    if profile not in PLANAR_PROFILES:
        raise ConfigError(f"unknown --profile {profile!r} for --task 2d; choose one of {', '.join(PLANAR_PROFILES)}")
    return PLANAR_PROFILES[profile]


#: the data set kind of each 2-D layout (which preset of a profile applies)
DATASET_OF_LAYOUT = {"synapse": "synapse", "synapse_raw": "synapse", "acdc_h5": "acdc", "acdc": "acdc",
                     "cvc_clinicdb": "polyp", "kvasir_seg": "polyp"}


def run_config(method: str, seed: int, profile: PlanarProfile, data: Path, out: Path,
               epochs: int | None = None, classes: Sequence[str] | None = None,
               methods: dict | None = None) -> Seg2DRunConfig:
    """The run config of one (method, seed): the preset of the data set's kind (the layout detected in ``data``),
    the profile's overrides, the method's model, kwargs and overrides, ``data.classes`` when given (your own
    organs). ``methods``: the method table (default :data:`PLANAR_METHODS`)."""
    entry = (methods or PLANAR_METHODS)[method]
    kwargs = {**profile.model_kwargs.get(entry.model, {}), **dict(entry.model_kwargs)}
    layout, _ = detect_layout(data)
    kind = DATASET_OF_LAYOUT.get(layout, "acdc")
    preset = profile.presets.get(kind, profile.preset)
    overrides = [*profile.overrides, f"data.layout={layout}", f"model.name={entry.model}",
                 f"model.kwargs={json.dumps(kwargs)}",
                 f"data.root={data}", f"out_dir={out / 'runs' / method / f'seed{seed}'}", f"trainer.seed={seed}"]
    overrides += list(entry.overrides)
    if epochs is not None:
        overrides.append(f"trainer.max_epochs={epochs}")
    if classes:
        overrides.append(f"data.classes={json.dumps(list(classes))}")
    return load_run_config(Seg2DRunConfig, preset=preset, overrides=overrides)


def run(out: str | Path, profile: str | PlanarProfile = "cpu-reduced", methods: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None, *, data: str | Path | None = None, epochs: int | None = None,
        classes: Sequence[str] | None = None, report_only: bool = False,
        on_run: Callable[[str], None] | None = None) -> Path:
    """Train (unless ``report_only``) every method x seed on ``data`` and write the report; returns its folder.

    Raises:
        ConfigError: an unknown method or profile; no data folder; ``report_only`` with no finished run.
    """
    prof = _profile(profile)
    names = list(methods or PLANAR_METHODS)
    unknown = [m for m in names if m not in PLANAR_METHODS]
    if unknown:
        raise ConfigError(f"unknown --methods {', '.join(unknown)}; choose from {', '.join(PLANAR_METHODS)}")
    if data is None:
        raise ConfigError("--task 2d needs --data (an ACDC, Synapse or polyp data set folder; a synthetic twin: "
                          "medmodal seg synth --dataset acdc-h5 DIR)")
    out = Path(out)
    seeds = tuple(seeds if seeds is not None else prof.seeds)
    if not report_only:
        for method in names:
            for seed in seeds:
                cfg = run_config(method, seed, prof, Path(data), out, epochs, classes)
                result = run_seg2d(cfg)
                test = result.metrics["splits"]["test"]["scores"]
                dice = test.get("Dice") or {}
                if on_run:
                    mean = dice.get("mean")
                    where = " (finished before)" if result.skipped else ""
                    on_run(f"{method} seed {seed}: test mean Dice {100 * mean:.2f}{where}" if mean is not None
                           else f"{method} seed {seed}: done{where}")
    return write_report(out, names, seeds, prof, epochs)


def _finished(out: Path, method: str, seed: int) -> dict | None:
    path = out / "runs" / method / f"seed{seed}" / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def write_report(out: Path, names: Sequence[str], seeds: Sequence[int], prof: PlanarProfile,
                 epochs: int | None = None, *, methods: dict | None = None, labels: dict | None = None,
                 title: str = "2-D segmentation benchmark", file: str = "seg2d.md", default_epochs: int = 16,
                 extra_lines: Sequence[str] = (), report: str = "report",
                 ablation_reference: str = "mslau_net") -> Path:
    """``OUT/report/``: ``seg2d.md`` (or ``file``), ``per_case.csv``, ``summary.json`` from the finished runs.
    ``methods`` / ``labels``: the method table and row names (default the 2-D comparison's); ``extra_lines``:
    Markdown added before the validation table; ``report``: the folder under ``out``; ``ablation_reference``: the
    method whose row heads the ablation table."""
    methods, labels = methods or PLANAR_METHODS, labels or LABELS
    runs = {(m, s): _finished(out, m, s) for m in names for s in seeds}
    done = {k: v for k, v in runs.items() if v is not None}
    if not done:
        raise ConfigError(f"{out}: no finished run of {', '.join(names)} (seeds {list(seeds)}) to report")
    first = next(iter(done.values()))
    classes, protocol = first["classes"], first["protocol"]
    table_rows, ablation_rows, summary, per_case = {}, {}, {}, []
    for method in names:
        finished = [(s, runs[(method, s)]) for s in seeds if runs[(method, s)] is not None]
        if not finished:
            continue
        # one row per seed: that run's mean over the test cases; then mean +- std over seeds
        per_seed = [{k: v["mean"] for k, v in m["splits"]["test"]["scores"].items() if v["mean"] is not None}
                    for _, m in finished]
        columns = sorted({k for row in per_seed for k in row})
        over_seeds = summarise(per_seed, [c for c in columns if c not in ("Dice", "HD95", "Jaccard", "ASD")])
        for key in ("Dice", "HD95", "Jaccard", "ASD"):
            values = [row[key] for row in per_seed if key in row]
            if values:
                over_seeds[key] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
        val = [m["best_val_dice"] for _, m in finished if m.get("best_val_dice") is not None]
        label = f"{labels.get(method, method)} ({len(finished)} seed{'s' if len(finished) > 1 else ''})"
        (ablation_rows if methods[method].ablation else table_rows)[label] = over_seeds
        if method == ablation_reference:
            ablation_rows = {label: over_seeds, **ablation_rows}
        summary[method] = {"seeds": [s for s, _ in finished], "test": over_seeds,
                           "val_dice": {"mean": float(np.mean(val)), "std": float(np.std(val))} if val else None,
                           "train_seconds": [m.get("train_seconds") for _, m in finished]}
        for seed, _ in finished:
            path = out / "runs" / method / f"seed{seed}" / "per_case.csv"
            if path.is_file():
                per_case += [{"method": method, "seed": seed, **row} for row in csv.DictReader(io.StringIO(path.read_text()))]
    unit = "" if protocol == "polyp" else f"; HD95 and ASD in {first.get('distance_unit')}" if protocol == "seg3d" \
        else "; HD95 in voxels"
    if protocol != "polyp" and not any(k.startswith("HD95") for s in summary.values() for k in s["test"]):
        unit += (" (not computed: eval.surface is off in this profile)" if protocol == "seg3d" else
                 " (not computed: eval.hd95 is off in this profile)")
    if len(seeds) == 1:
        unit += "; one seed: ± is 0 by construction"
    trained = sorted({m.get("epochs") for m in done.values() if m.get("epochs") is not None})
    if epochs is not None or (trained and prof.name == "cpu-reduced" and trained != [default_epochs]):
        unit += f"; epochs trained: {', '.join(map(str, trained))} (the profile's budget overridden)"
    lines = [f"# {title}: {first['dataset']} ({first['layout']}), profile `{prof.name}`", "",
             f"{prof.note}. Protocol `{protocol}`{unit}. Mean ± std over seeds of each run's mean over the test "
             f"cases; each run's checkpoint chosen on the validation cases only.", "",
             "## Methods", "", markdown_table(table_rows, classes, protocol), ""]
    if len(ablation_rows) > 1:
        lines += ["## Ablations", "", markdown_table(ablation_rows, classes, protocol), ""]
    lines += list(extra_lines)
    lines += ["## Validation Dice (what chose each checkpoint) and training time", "",
              "| method | val Dice (%) | train s / run |", "|---|--:|--:|"]
    for method, s in summary.items():
        v = s["val_dice"]
        secs = [t for t in s["train_seconds"] if t]
        val_cell = f"{100 * v['mean']:.2f} ± {100 * v['std']:.2f}" if v else "-"
        secs_cell = f"{np.mean(secs):.0f}" if secs else "-"
        lines.append(f"| {labels.get(method, method)} | {val_cell} | {secs_cell} |")
    report = ensure_writable_dir(out / report)
    atomic_write_text(report / file, "\n".join(lines) + "\n")
    if per_case:
        buf = io.StringIO()
        fields = list(dict.fromkeys(k for row in per_case for k in row))
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(per_case)
        atomic_write_text(report / "per_case.csv", buf.getvalue())
    atomic_write_json(report / "summary.json", {"profile": prof.name, "protocol": protocol, "classes": classes,
                                                "epochs": trained, "methods": summary})
    return report


SUITE = BenchmarkSuite(family="seg", methods=PLANAR_METHODS, profiles=PLANAR_PROFILES, run=run)
