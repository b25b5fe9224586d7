"""The semi-supervised benchmark (``medmodal seg benchmark --task semi``): the same network, data, grid,
optimiser, loss and step budget for every method, at each labelled budget, seed by seed, scored on the test cases.
2-D data (ACDC: :data:`SEMI_BENCH_METHODS`, budgets 3 and 7 patients by default) or 3-D data (LA2018 and the other
:mod:`medmodal.data.seg3d` layouts: :data:`SEMI3D_METHODS`, 8 labelled volumes by default), chosen by the data
folder's layout.

2-D methods:

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

3-D methods: ``supervised``, ``mean_teacher``, ``ua_mt`` (UA-MT's V-Net), ``swdl`` (SWDL-Net), ``swdl_no_feedback``
(its ablation: the dual decoder without the stratum-wise difference feedback), ``full``.

Run folders: ``OUT/runs/<method>_l<patients>/seed<k>/`` (``full``: ``OUT/runs/full/seed<k>/``); a finished run is
skipped, so the benchmark can be split over processes (``--methods`` / ``--seeds`` / ``--labelled``; keep
``eranet`` and ``eranet_cst`` of one seed in one process: the second reads the first's snapshots) and reported
once with ``--report-only``. Report per budget (with the upper bound): ``OUT/report_l<patients>/semi_l<patients>.md``,
``per_case.csv`` and ``summary.json``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from medmodal.config import load_run_config
from medmodal.engine.seg2d.cst import run_conditional_self_training, train_2d
from medmodal.engine.seg3d.config import Seg3DRunConfig
from medmodal.engine.seg3d.train import run_seg3d
from medmodal.errors import ConfigError
from medmodal.experiments.seg.planar import REDUCED_KWARGS, TINY_KWARGS, PlanarProfile, run_config, write_report
from medmodal.experiments.suite import BenchmarkSuite, Method

__all__ = ["SEMI_BENCH_METHODS", "SEMI3D_METHODS", "SEMI_PROFILES", "SEMI3D_PROFILES", "run", "budget_methods",
           "run_config_3d", "is_volume_data", "SUITE"]

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
        note="tests only: tiny models, 64 px, two epochs of 8 items",
        overrides=("data.size=64", "data.batch_size=4", "data.num_workers=0", "trainer.max_epochs=2",
                   "trainer.samples_per_epoch=8", "trainer.precision=32-true", "trainer.progress_bar=false",
                   "trainer.accelerator=cpu", "trainer.devices=1", "eval.hd95=false", "semi.labelled_batch=2",
                   "semi.uncertainty_passes=2", "semi.snapshots=2")),
}


#: the 3-D methods (SWDL-Net's comparison on LA: one network family, V-Net, for the baselines)
SEMI3D_METHODS = {
    "supervised": Method(model="vnet", overrides=("semi.method=none",)),
    "mean_teacher": Method(model="vnet", overrides=("semi.method=mean_teacher",)),
    "ua_mt": Method(model="vnet", overrides=("semi.method=ua_mt",)),
    "swdl": Method(model="swdl_net", overrides=("semi.method=swdl",)),
    "swdl_no_feedback": Method(model="swdl_net", overrides=("semi.method=swdl_no_feedback",), ablation=True),
    "full": Method(model="vnet", overrides=("semi.method=none", "semi.labelled_patients=null")),
}
LABELS3D = {"supervised": "Supervised only (V-Net, labelled part)", "mean_teacher": "Mean Teacher (V-Net)",
            "ua_mt": "UA-MT (V-Net)", "swdl": "SWDL-Net",
            "swdl_no_feedback": "SWDL-Net without the difference feedback (dual decoder only)",
            "full": "Fully supervised V-Net (every training volume)"}
_SMOKE3D = ("data.patch=[32, 32, 16]", "data.scale=1.0", "trainer.max_epochs=1", "trainer.samples_per_epoch=4",
            "model.kwargs={n_filters: 4}", "semi.uncertainty_passes=2", "eval.surface=false")
SEMI3D_PROFILES = {
    "cpu-reduced": PlanarProfile(
        name="cpu-reduced", seeds=(0, 1, 2), preset="train_semi_la_cpu",
        note="LA2018 volumes halved (data.scale 0.5), patch 64 x 64 x 32, V-Net / SWDL-Net with 8 filters, batch 4 "
             "(2 labelled), 20 epochs x 80 patches (400 batches; SWDL-Net makes 3 updates per batch), SGD 0.01 poly, "
             "one CPU thread per run (preset train_semi_la_cpu); from scratch; a proxy organ for SWDL-Net's "
             "haemorrhage CT; not UA-MT's 6,000 iterations"),
    "smoke": PlanarProfile(name="smoke", seeds=(0,), preset="train_semi_la_cpu", overrides=_SMOKE3D,
                           note="tests only: tiny V-Net / SWDL-Net, 32 x 32 x 16 patches, one step"),
}


def is_volume_data(data: Path) -> bool:
    """Whether ``data`` is a 3-D layout (:mod:`medmodal.data.seg3d`: LA2018, BHSD, a NIfTI folder)."""
    from medmodal.data.seg3d import detect_layout as detect_3d
    from medmodal.errors import InputError
    try:
        detect_3d(data)
    except (InputError, OSError):
        return False
    return True


def run_config_3d(key: str, seed: int, profile: PlanarProfile, data: Path, out: Path, epochs: int | None,
                  methods: dict) -> Seg3DRunConfig:
    """The run config of one 3-D (method, seed): the profile's preset and overrides, the method's model and
    overrides (the model's width stays the preset's)."""
    from medmodal.data.seg3d import detect_layout as detect_3d

    entry = methods[key]
    overrides = [*profile.overrides, f"data.layout={detect_3d(data)[0]}", f"model.name={entry.model}", *entry.overrides, f"data.root={data}",
                 f"out_dir={out / 'runs' / key / f'seed{seed}'}", f"trainer.seed={seed}"]
    if epochs is not None:
        overrides.append(f"trainer.max_epochs={epochs}")
    return load_run_config(Seg3DRunConfig, preset=profile.preset, overrides=overrides)


def budget_methods(names: Sequence[str], labelled: Sequence[int], base: dict | None = None,
                   base_labels: dict | None = None) -> tuple[dict, dict]:
    """``(methods, labels)`` keyed by run folder: ``<method>_l<n>`` per budget ``n`` (``full`` once)."""
    base = base or SEMI_BENCH_METHODS
    base_labels = base_labels or (LABELS3D if base is SEMI3D_METHODS else LABELS)
    methods, labels = {}, {}
    for name in names:
        entry = base[name]
        if name == "full":
            methods[name], labels[name] = entry, base_labels[name]
            continue
        for n in labelled:
            key = f"{name}_l{n}"
            methods[key] = replace(entry, overrides=(*entry.overrides, f"semi.labelled_patients={n}"))
            labels[key] = base_labels[name]
    return methods, labels


def run(out: str | Path, profile: str | PlanarProfile = "cpu-reduced", methods: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None, *, data: str | Path | None = None, labelled: Sequence[int] | None = None,
        epochs: int | None = None, report_only: bool = False,
        on_run: Callable[[str], None] | None = None) -> Path:
    """Train (unless ``report_only``) every method x budget x seed on ``data`` and write the reports; returns the
    report folder.

    Raises:
        ConfigError: an unknown method or profile; no data folder; ``report_only`` with no finished run.
    """
    if data is None:
        raise ConfigError("--task semi needs --data (an ACDC folder or an LA2018 folder; a synthetic twin: medmodal "
                          "seg synth --dataset acdc-h5 DIR)")
    volume = is_volume_data(Path(data))
    base, base_labels, profiles = ((SEMI3D_METHODS, LABELS3D, SEMI3D_PROFILES) if volume else
                                   (SEMI_BENCH_METHODS, LABELS, SEMI_PROFILES))
    prof = profile if isinstance(profile, PlanarProfile) else profiles.get(profile)
    if prof is None:
        raise ConfigError(f"unknown --profile {profile!r} for --task semi; choose one of {', '.join(profiles)}")
    names = list(methods or base)
    unknown = [m for m in names if m not in base]
    if unknown:
        raise ConfigError(f"unknown --methods {', '.join(unknown)} for {'3-D' if volume else '2-D'} data; choose "
                          f"from {', '.join(base)}")
    out, seeds = Path(out), tuple(seeds if seeds is not None else prof.seeds)
    labelled = tuple(labelled or ((8,) if volume else (3, 7)))   # LA: 8 of 80 (10 %); ACDC: SSL4MIS's 3 and 7
    table, labels = budget_methods(names, labelled, base, base_labels)
    if not report_only:
        for key in table:
            for seed in seeds:
                if volume:
                    result = run_seg3d(run_config_3d(key, seed, prof, Path(data), out, epochs, table))
                    _say(on_run, key, seed, result)
                    continue
                cfg = run_config(key, seed, prof, Path(data), out, epochs, methods=table)
                if key.startswith("eranet_cst"):   # stage 1 is the eranet run of the same budget and seed
                    stage1 = out / "runs" / key.replace("eranet_cst", "eranet") / f"seed{seed}"
                    result = run_conditional_self_training(cfg, stage1)
                else:
                    result = train_2d(cfg)
                _say(on_run, key, seed, result)
    return write_reports(out, table, labels, seeds, prof, labelled, epochs, "volumes" if volume else "patients")


def _say(on_run, key: str, seed: int, result) -> None:
    if on_run:
        dice = (result.metrics["splits"]["test"]["scores"].get("Dice") or {}).get("mean")
        where = " (finished before)" if result.skipped else ""
        on_run(f"{key} seed {seed}: test mean Dice {100 * dice:.2f}{where}" if dice is not None
               else f"{key} seed {seed}: done{where}")


def write_reports(out: Path, table: dict, labels: dict, seeds: Sequence[int], prof: PlanarProfile,
                  labelled: Sequence[int], epochs: int | None = None, unit: str = "patients") -> Path:
    """One report per budget (its methods and the upper bound) from the finished runs."""
    written = None
    for n in labelled:
        keys = [k for k in table if k.endswith(f"_l{n}")] + [k for k in table if k == "full"]
        if not any((out / "runs" / k / f"seed{s}" / "metrics.json").is_file() for k in keys for s in seeds):
            continue
        written = write_report(out, keys, seeds, prof, epochs, methods=table, labels=labels,
                               title=f"Semi-supervised segmentation, {n} labelled {unit}", file=f"semi_l{n}.md",
                               report=f"report_l{n}", default_epochs=20 if unit == "volumes" else 16,
                               ablation_reference=f"swdl_l{n}")
    if written is None:
        raise ConfigError(f"{out}: no finished run of {', '.join(table)} (seeds {list(seeds)}) to report")
    return written


SUITE = BenchmarkSuite(family="seg", methods=SEMI_BENCH_METHODS, profiles=SEMI_PROFILES, run=run)
