"""The semi-supervised 2-D benchmark (``medmodal seg benchmark --task semi``): the same network, data, grid,
optimiser, loss and step budget for every method, at each labelled budget, seed by seed, scored on the test cases.

====================  ===========================================================================================
method                what trains
====================  ===========================================================================================
``supervised``        the labelled patients only (the lower bound)
``mean_teacher``      Mean Teacher (SSL4MIS)
``ua_mt``             UA-MT (SSL4MIS / ``yulequan/UA-MT``)
``cps``               cross pseudo supervision (SSL4MIS)
``eranet``            ERANet stage 1: mean teacher + pseudo-label CE + prototype consistency alignment
``eranet_cst``        ERANet: stage 1 (the ``eranet`` run) + conditional self-training (U3, U4)
``eranet_era``        ERANet stage 1 with edge replacement augmentation of the right ventricle: a *proxy* (ERA is
                      meant for menisci; on ACDC the crescent-shaped RV is the closest elongated structure)
``full``              every training patient labelled (the upper bound; no budget)
====================  ===========================================================================================

Run folders: ``OUT/runs/<method>_l<patients>/seed<k>/`` (``full``: ``OUT/runs/full/seed<k>/``); a finished run is
skipped, so the benchmark can be split over processes (``--methods`` / ``--seeds`` / ``--labelled``) and reported
once with ``--report-only``. Report: ``OUT/report/semi_l<patients>.md`` per budget (with the upper bound), plus
``per_case.csv`` and ``summary.json`` of each budget in ``OUT/report_l<patients>/``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from medmodal.engine.seg2d.cst import run_conditional_self_training, train_2d
from medmodal.errors import ConfigError
from medmodal.experiments.seg.planar import REDUCED_KWARGS, TINY_KWARGS, PlanarProfile, run_config, write_report
from medmodal.experiments.suite import BenchmarkSuite, Method

__all__ = ["SEMI_BENCH_METHODS", "SEMI_PROFILES", "run", "budget_methods", "SUITE"]

_NET = "unet2d"
#: the methods, before a labelled budget is attached (module docstring)
SEMI_BENCH_METHODS = {
    "supervised": Method(model=_NET, overrides=("semi.method=none",)),
    "mean_teacher": Method(model=_NET, overrides=("semi.method=mean_teacher",)),
    "ua_mt": Method(model=_NET, overrides=("semi.method=ua_mt",)),
    "cps": Method(model=_NET, overrides=("semi.method=cps",)),
    "eranet": Method(model=_NET, overrides=("semi.method=eranet",)),
    "eranet_cst": Method(model=_NET, overrides=("semi.method=eranet", "semi.self_training=true")),
    "eranet_era": Method(model=_NET, overrides=("semi.method=eranet", "semi.era_classes=[1]")),
    "full": Method(model=_NET, overrides=("semi.method=none", "semi.labelled_patients=null")),
}
LABELS = {"supervised": "Supervised only (labelled part)", "mean_teacher": "Mean Teacher", "ua_mt": "UA-MT",
          "cps": "CPS", "eranet": "ERANet stage 1 (MT + pseudo-label CE + prototype alignment)",
          "eranet_cst": "ERANet (stage 1 + conditional self-training)",
          "eranet_era": "ERANet stage 1 + ERA on the RV (proxy)", "full": "Fully supervised (every training patient)"}

_SEMI = ("semi.labelled_batch=4",)
SEMI_PROFILES = {
    "cpu-reduced": PlanarProfile(
        name="cpu-reduced", seeds=(0, 1, 2), preset="train_mslau_acdc_cpu", model_kwargs=REDUCED_KWARGS,
        note="ACDC 2-D slices at 128 px, the SSL4MIS U-Net at reduced widths (8-128, ~0.46 M parameters), 16 epochs "
             "x 400 items (800 steps of 8: 4 labelled + 4 unlabelled for the semi-supervised methods), the "
             "train_mslau_acdc_cpu recipe (SGD 0.05, poly, 0.4 CE + 0.6 Dice) for every method, one CPU thread "
             "per run; from scratch; not SSL4MIS's 30,000 iterations",
        overrides=("data.size=128", "data.batch_size=8", "data.num_workers=0", "trainer.max_epochs=16",
                   "trainer.samples_per_epoch=400", "trainer.precision=32-true", "trainer.progress_bar=false",
                   "trainer.accelerator=cpu", "trainer.devices=1", *_SEMI)),
    "smoke": PlanarProfile(
        name="smoke", seeds=(0,), preset="train_mslau_acdc", model_kwargs=TINY_KWARGS,
        note="tests only: tiny models, 64 px, one epoch",
        overrides=("data.size=64", "data.batch_size=4", "data.num_workers=0", "trainer.max_epochs=2",
                   "trainer.samples_per_epoch=8", "trainer.precision=32-true", "trainer.progress_bar=false",
                   "trainer.accelerator=cpu", "trainer.devices=1", "eval.hd95=false", "semi.labelled_batch=2",
                   "semi.uncertainty_passes=2", "semi.snapshots=2")),
}


def budget_methods(names: Sequence[str], labelled: Sequence[int]) -> tuple[dict, dict]:
    """``(methods, labels)`` keyed by run folder: ``<method>_l<n>`` per budget ``n`` (``full`` once)."""
    methods, labels = {}, {}
    for name in names:
        entry = SEMI_BENCH_METHODS[name]
        if name == "full":
            methods[name], labels[name] = entry, LABELS[name]
            continue
        for n in labelled:
            key = f"{name}_l{n}"
            methods[key] = replace(entry, overrides=(*entry.overrides, f"semi.labelled_patients={n}"))
            labels[key] = LABELS[name]
    return methods, labels


def run(out: str | Path, profile: str | PlanarProfile = "cpu-reduced", methods: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None, *, data: str | Path | None = None, labelled: Sequence[int] = (3, 7),
        epochs: int | None = None, report_only: bool = False,
        on_run: Callable[[str], None] | None = None) -> Path:
    """Train (unless ``report_only``) every method x budget x seed on ``data`` and write the reports; returns the
    report folder.

    Raises:
        ConfigError: an unknown method or profile; no data folder; ``report_only`` with no finished run.
    """
    prof = profile if isinstance(profile, PlanarProfile) else SEMI_PROFILES.get(profile)
    if prof is None:
        raise ConfigError(f"unknown --profile {profile!r} for --task semi; choose one of {', '.join(SEMI_PROFILES)}")
    names = list(methods or SEMI_BENCH_METHODS)
    unknown = [m for m in names if m not in SEMI_BENCH_METHODS]
    if unknown:
        raise ConfigError(f"unknown --methods {', '.join(unknown)}; choose from {', '.join(SEMI_BENCH_METHODS)}")
    if data is None:
        raise ConfigError("--task semi needs --data (an ACDC folder; a synthetic twin: medmodal seg synth --dataset "
                          "acdc-h5 DIR)")
    out, seeds = Path(out), tuple(seeds if seeds is not None else prof.seeds)
    table, labels = budget_methods(names, labelled)
    if not report_only:
        for key in table:
            for seed in seeds:
                cfg = run_config(key, seed, prof, Path(data), out, epochs, methods=table)
                if key.startswith("eranet_cst"):   # stage 1 is the eranet run of the same budget and seed
                    stage1 = out / "runs" / key.replace("eranet_cst", "eranet") / f"seed{seed}"
                    result = run_conditional_self_training(cfg, stage1)
                else:
                    result = train_2d(cfg)
                if on_run:
                    dice = (result.metrics["splits"]["test"]["scores"].get("Dice") or {}).get("mean")
                    where = " (finished before)" if result.skipped else ""
                    on_run(f"{key} seed {seed}: test mean Dice {100 * dice:.2f}{where}" if dice is not None
                           else f"{key} seed {seed}: done{where}")
    return write_reports(out, table, labels, seeds, prof, labelled, epochs)


def write_reports(out: Path, table: dict, labels: dict, seeds: Sequence[int], prof: PlanarProfile,
                  labelled: Sequence[int], epochs: int | None = None) -> Path:
    """One report per budget (its methods and the upper bound) from the finished runs."""
    written = None
    for n in labelled:
        keys = [k for k in table if k.endswith(f"_l{n}")] + [k for k in table if k == "full"]
        if not any((out / "runs" / k / f"seed{s}" / "metrics.json").is_file() for k in keys for s in seeds):
            continue
        written = write_report(out, keys, seeds, prof, epochs, methods=table, labels=labels,
                               title=f"Semi-supervised 2-D segmentation, {n} labelled patients", file=f"semi_l{n}.md",
                               report=f"report_l{n}")
    if written is None:
        raise ConfigError(f"{out}: no finished run of {', '.join(table)} (seeds {list(seeds)}) to report")
    return written


SUITE = BenchmarkSuite(family="seg", methods=SEMI_BENCH_METHODS, profiles=SEMI_PROFILES, run=run)
