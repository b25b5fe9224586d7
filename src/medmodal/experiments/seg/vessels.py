"""The retinal vessel benchmark: DGSSA, each of its components alone, ERM, RandConv and the Frangi floor,
seed by seed (``medmodal seg benchmark --task vessels``), under one of two protocols (:data:`PROTOCOLS`):

* ``single-source`` (default): trained on one source data set and scored on its test split (in-domain)
  and on every target data set (cross-domain);
* ``lodo`` (leave one domain out; ``--protocol lodo --data A --data B --data C``): for each given data set
  D, trained on all the others (the union of their train splits; validation drawn from their training
  images only, :func:`medmodal.engine.fundus.train.run_vessels` with several ``data.root``) and scored on
  D (every image) and on the sources' test splits.

Every trained method is the same network, data, crops, epochs and optimiser; only its
``--set`` overrides differ (:data:`VESSEL_METHODS`):

==============  =================================================================================
method          what it adds to ERM (standard flips / rotations / colour jitter)
==============  =================================================================================
``erm``         nothing
``style``       DGSSA's style augmentation: PixMix (procedural mixing set) + DSU (p = 0.5)
``structure``   DGSSA's structure augmentation: pix2pix-rendered pseudo-fundus pairs of synthetic trees
``dgssa``       both (the method)
``randconv``    RandConv on every training batch (the random-convolution baseline)
``frangi``      no training: Frangi vesselness, threshold chosen on the source's training images
                (under ``lodo``: on the training images of every source of the fold, pooled)
==============  =================================================================================

Run folders: ``OUT/runs/<method>/seed<k>/`` (single-source) or ``OUT/runs/lodo-<D>/<method>/seed<k>/``
(lodo, D the held-out data set's folder name) (:func:`medmodal.engine.fundus.train.run_vessels`; a
finished run is skipped, so a benchmark can be resumed or split over processes with ``--methods`` /
``--seeds`` and reported once at the end); Frangi's maps: ``OUT/runs/frangi/`` (``OUT/runs/lodo-<D>/frangi/``).
Report (``OUT/report/``), single-source: ``vessels.md`` (the cross-domain table: mean +- std over seeds of
each run's mean over images; the Dice drop from the source's test split to each target), ``per_image.csv``
(every method, seed, domain and image), ``summary.json`` and ``overlays.png`` (one example image per domain:
the image, the first observer, ERM and DGSSA at seed 0). Lodo: ``vessels.md`` (per score, the LODO table:
a row per method, a column per held-out domain and the mean over held-out domains, mean +- std over seeds;
and the sources' in-domain Dice per fold), ``per_image.csv`` (with a ``held_out`` column) and
``summary.json`` (``protocol: lodo``); no overlay figure.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from medmodal.engine.run import json_finite
from medmodal.errors import ConfigError
from medmodal.experiments.suite import BenchmarkSuite, Method, Profile
from medmodal.io import atomic_write_json, atomic_write_text, ensure_writable_dir

__all__ = ["VESSEL_METHODS", "VESSEL_PROFILES", "VesselProfile", "run", "data_notes", "SUITE", "TRAINED", "FRANGI", "PROTOCOLS"]

FRANGI = "frangi"
#: PixMix + DSU: DGSSA's style augmentation (DSU's paper probability 0.5)
STYLE = ("data.pixmix=true", "model.kwargs.dsu_p=0.5")
#: pix2pix-rendered synthetic pairs: DGSSA's structure augmentation
STRUCTURE = ("structure.source=pix2pix",)
VESSEL_METHODS = {
    "erm": Method(),
    "style": Method(overrides=STYLE),
    "structure": Method(overrides=STRUCTURE),
    "dgssa": Method(overrides=STYLE + STRUCTURE),
    "randconv": Method(overrides=("model.randconv=true",)),
    FRANGI: Method(model=None),
}
TRAINED = tuple(name for name in VESSEL_METHODS if name != FRANGI)
#: the benchmark's protocols: one source, every other data set a target | leave one domain out
PROTOCOLS = ("single-source", "lodo")
#: the report's tables, in order: (score, title)
SCORE_TITLES = (("dice", "Dice (FOV)"), ("dice_whole", "Dice (whole image)"), ("auc_roc", "AUC-ROC"),
                ("auc_pr", "AUC-PR"), ("sensitivity", "Sensitivity"), ("specificity", "Specificity"),
                ("accuracy", "Accuracy"))
LABELS = {"erm": "ERM", "style": "+style (PixMix + DSU)", "structure": "+structure (pix2pix pairs)",
          "dgssa": "DGSSA (style + structure)", "randconv": "RandConv", FRANGI: "Frangi (unsupervised)"}


@dataclass(kw_only=True)
class VesselProfile(Profile):
    """A vessel benchmark budget.

    Attributes:
        model: the network of every trained method. diameter: FOV diameter of the network grid (px).
        crop / batch_size: training crops. epochs / samples_per_epoch: the training budget.
        threads: torch CPU threads per run (``None``: torch's default).
        extra: further ``--set`` items of every trained method (e.g. a shorter pix2pix training).
    """

    model: str = "deeplabv3plus_mobilenetv2"
    diameter: int = 540
    crop: int = 256
    batch_size: int = 8
    epochs: int = 100
    samples_per_epoch: int = 160
    threads: int | None = None
    extra: tuple[str, ...] = ()

    def overrides(self) -> list[str]:
        """The ``--set`` items of the budget (``extra`` last)."""
        return [f"model.name={self.model}", f"data.diameter={self.diameter}", f"data.crop={self.crop}",
                f"data.batch_size={self.batch_size}", f"trainer.max_epochs={self.epochs}",
                f"trainer.samples_per_epoch={self.samples_per_epoch}", *self.extra]


VESSEL_PROFILES = {
    "cpu-reduced": VesselProfile(
        name="cpu-reduced", seeds=(0, 1, 2), model="unet_mobilenetv2", diameter=270, crop=128, epochs=12,
        threads=1, note="2 CPU cores, ~45 min with two processes: reduced resolution (FOV 270 px), U-Net / "
        "MobileNetV2 (DeepLabV3+'s stride-4 output loses the 1-2 px vessels of this grid), 12 x 160 crops"),
    "smoke": VesselProfile(
        name="smoke", seeds=(0,), model="unet_mobilenetv2", diameter=96, crop=64, batch_size=4, epochs=1,
        samples_per_epoch=8, threads=1, extra=("structure.steps=2", "structure.crop=64", "structure.calibrate=false"),
        note="a few seconds: the pipeline runs, no result"),
    "full": VesselProfile(
        name="full", seeds=(0, 1, 2), note="GPU: DRIVE's native FOV (540 px), DeepLabV3+ / MobileNetV2 "
        "(the paper's network), 100 x 160 crops of 256 px"),
}


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _fmt(mean_std: tuple[float, float], scale: float = 100.0, runs: int = 2) -> str:
    """``mean ± std`` (percent); a single run (one seed, or the deterministic Frangi) shows its value alone."""
    mean, std = mean_std
    if math.isnan(mean):
        return "-"
    return f"{scale * mean:.2f}" if runs < 2 else f"{scale * mean:.2f} ± {scale * std:.2f}"


def _train(runs: Path, sources: Sequence[Path], targets: Sequence[Path], profile: VesselProfile, method: str,
           seed: int, on_run: Callable[[str], None] | None) -> dict:
    """The run ``runs/<method>/seed<seed>``: trained on ``sources`` (one root: ``data.root`` a folder; several:
    a list), scored on their test splits and ``targets``."""
    import torch

    from medmodal.config import load_run_config
    from medmodal.engine.fundus.config import VesselRunConfig
    from medmodal.engine.fundus.train import run_vessels
    from medmodal.engine.run import config_changes

    run_dir = runs / method / f"seed{seed}"
    overrides = [*profile.overrides(), *VESSEL_METHODS[method].overrides, f"trainer.seed={seed}"]
    cfg = load_run_config(VesselRunConfig, overrides=overrides, validate=False)
    cfg.data.root = str(sources[0]) if len(sources) == 1 else [str(r) for r in sources]
    cfg.data.targets, cfg.out_dir = tuple(str(t) for t in targets), str(run_dir)
    cfg.validate()
    if (run_dir / "metrics.json").is_file():  # finished (by this or another process): read it if it is this run
        changed = config_changes(run_dir, cfg)
        if changed:
            shown = ", ".join(changed[:6]) + (", ..." if len(changed) > 6 else "")
            raise ConfigError(f"{run_dir}: the finished run there was trained with another config (differs: "
                              f"{shown}), not as the {profile.name} profile's {method} run; give the --profile "
                              f"(and --epochs) it was run with, or another --out")
        return json.loads((run_dir / "metrics.json").read_text())
    if on_run:
        on_run(f"{method} seed {seed}: {run_dir}")
    threads = torch.get_num_threads()
    if profile.threads:
        torch.set_num_threads(profile.threads)
    try:
        result = run_vessels(cfg)
    finally:
        torch.set_num_threads(threads)
    return json.loads((Path(result.run_dir) / "metrics.json").read_text())


def _frangi(runs: Path, sources: Sequence[Path], targets: Sequence[Path]) -> dict:
    """Frangi on the native grid (cached in ``runs/frangi/``): threshold with the best mean FOV Dice on the
    sources' training images (train and validation ids of :func:`fundus_splits`, every source pooled),
    applied to each source's test split and every target."""
    from medmodal.data.fundus import load_fov, load_image, load_label, read_fundus
    from medmodal.data.fundus.dataset import fundus_splits
    from medmodal.evaluation.vessels import choose_threshold, summarise, vessel_scores
    from medmodal.models.fundus.frangi import FrangiVessels

    cached = runs / FRANGI / "metrics.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    start = time.perf_counter()
    model = FrangiVessels()

    def maps(samples):
        for s in samples:
            image = load_image(s)
            fov = load_fov(s, image)
            yield s.id, model.predict(image, fov), load_label(s, 0, image.shape[:2]), fov

    fit_samples, domains = [], {}
    for source in sources:
        src = read_fundus(source)
        by_id = {s.id: s for s in src.samples}
        splits = fundus_splits(src.samples)
        fit_samples += [by_id[i] for i in splits["train"] + splits["val"]]
        domains[source.name] = ("source", [by_id[i] for i in splits["test"]])
    threshold, _ = choose_threshold((p, y, f) for _, p, y, f in maps(fit_samples))
    for root in targets:
        tgt = read_fundus(root)
        tid = {s.id: s for s in tgt.samples}
        domains[root.name] = ("target", [tid[i] for i in fundus_splits(tgt.samples, target=True)["test"]])
    results, rows = {}, []
    for name, (role, samples) in domains.items():
        scores = [vessel_scores(p, y, f, threshold=threshold, name=i) for i, p, y, f in maps(samples)]
        summary = summarise(scores)
        results[name] = {"role": role, "images": len(scores),
                         "scores": {k: {"mean": m, "std": s} for k, (m, s) in summary.items()}}
        rows += [{"domain": name, "role": role, **r.as_dict()} for r in scores]
    metrics = {"threshold": threshold, "threshold_chosen_on": f"{' + '.join(r.name for r in sources)} training images",
               "domains": results,
               "seconds": round(time.perf_counter() - start, 1), "per_image": rows}
    ensure_writable_dir(cached.parent)
    atomic_write_json(cached, json_finite(metrics))
    return json.loads(cached.read_text())


def _per_image(runs: Path, method: str, seed: int | None) -> list[dict]:
    if method == FRANGI:
        rows = json.loads((runs / FRANGI / "metrics.json").read_text())["per_image"]
    else:
        with open(runs / method / f"seed{seed}" / "per_image.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    return [{"method": method, "seed": "" if seed is None else seed, **row} for row in rows]


def _table(results: dict[str, list[dict]], domains: list[tuple[str, str]], methods: Sequence[str],
           score: str) -> str:
    """One row per method: ``score`` per domain (mean ± std over seeds) and the drop source -> each target."""
    source = next(name for name, role in domains if role == "source")
    targets = [name for name, role in domains if role == "target"]
    head = ["method", "seeds", *(f"{name} ({'in-domain' if role == 'source' else 'cross-domain'})"
                                 for name, role in domains), *(f"drop {source} -> {t}" for t in targets)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in methods:
        runs = results.get(method) or []
        if not runs:
            continue
        cells = [LABELS.get(method, method), str(len(runs)) if method != FRANGI else "-"]
        per = {name: [(r["domains"][name]["scores"][score]["mean"]) for r in runs] for name, _ in domains}
        n = len(runs)
        cells += [_fmt(_mean_std([v if v is not None else math.nan for v in per[name]]), runs=n) for name, _ in domains]
        for t in targets:
            drops = [s - g for s, g in zip(per[source], per[t]) if s is not None and g is not None]
            cells.append(_fmt(_mean_std(drops), runs=n))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(out: str | Path, profile: str | VesselProfile = "cpu-reduced", methods: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None, *, protocol: str = "single-source",
        data: str | Path | Sequence[str | Path] | None = None, targets: Sequence[str | Path] = (),
        epochs: int | None = None, report_only: bool = False, on_run: Callable[[str], None] | None = None) -> Path:
    """Train and score every ``methods`` x ``seeds`` run and write the report (module docstring). Returns the
    report folder.

    ``protocol``: ``single-source`` (``data``: the one source, scored with ``targets``) | ``lodo`` (``data``:
    two or more data sets, no ``targets``; each is held out in turn and the others trained on).
    ``report_only``: train nothing; report the finished runs found (a run still missing is named in the report).

    Raises:
        ConfigError: an unknown profile, method or protocol; single-source: no source, several, or no target;
        lodo: fewer than two data sets, two with one folder name, or a target.
    """
    if isinstance(profile, str):
        if profile not in VESSEL_PROFILES:
            raise ConfigError(f"unknown vessel benchmark profile {profile!r}; choose one of {', '.join(VESSEL_PROFILES)}")
        profile = VESSEL_PROFILES[profile]
    if epochs is not None:
        profile = replace(profile, epochs=int(epochs))
    methods = list(methods or VESSEL_METHODS)
    unknown = [m for m in methods if m not in VESSEL_METHODS]
    if unknown:
        raise ConfigError(f"unknown vessel method(s) {', '.join(unknown)}; choose from {', '.join(VESSEL_METHODS)}")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown vessel benchmark protocol {protocol!r}; choose {' or '.join(PROTOCOLS)}")
    roots = [] if data is None else [Path(data)] if isinstance(data, (str, Path)) else [Path(r) for r in data]
    seeds = tuple(seeds if seeds is not None else profile.seeds)
    if protocol == "lodo":
        return _run_lodo(Path(out), profile, methods, seeds, roots, targets, report_only, on_run)
    if len(roots) > 1:
        raise ConfigError(f"the single-source protocol trains on one data set, got {len(roots)} (--data); "
                          f"several: --protocol lodo")
    if not roots or not targets:
        raise ConfigError("the vessel benchmark needs a source data set (--data) and at least one target (--target)")
    out, source, targets = Path(out), roots[0], [Path(t) for t in targets]
    ensure_writable_dir(out)

    results: dict[str, list[dict]] = {}
    missing: list[str] = []
    for method in methods:
        if method == FRANGI:
            results[method] = [_frangi(out / "runs", [source], targets)]
            continue
        for seed in seeds:
            done = out / "runs" / method / f"seed{seed}" / "metrics.json"
            if report_only and not done.is_file():
                missing.append(f"{method} seed {seed}")
                continue
            metrics = _train(out / "runs", [source], targets, profile, method, seed, on_run)
            metrics["seed"] = seed
            results.setdefault(method, []).append(metrics)
    return write_report(out, profile, methods, seeds, results, missing, notes=data_notes([source, *targets]))


def _run_lodo(out: Path, profile: VesselProfile, methods: Sequence[str], seeds: Sequence[int], roots: list[Path],
              targets: Sequence, report_only: bool, on_run: Callable[[str], None] | None) -> Path:
    """Leave-one-domain-out: for each data set D of ``roots``, every method x seed trained on the others into
    ``OUT/runs/lodo-<D>/`` and scored on D (and the sources' test splits); then :func:`write_lodo_report`."""
    if targets:
        raise ConfigError("--target belongs to the single-source protocol; under lodo each --data set is held out "
                          "in turn")
    if len(roots) < 2:
        raise ConfigError(f"the lodo protocol needs at least two data sets (--data), got {len(roots)}")
    names = [r.name for r in roots]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"the lodo protocol names each held-out domain by its folder; {', '.join(twice)} is given "
                          f"more than once")
    ensure_writable_dir(out)
    results: dict[str, dict[str, list[dict]]] = {}
    missing: list[str] = []
    for held in roots:
        runs, sources = out / "runs" / f"lodo-{held.name}", [r for r in roots if r != held]
        fold = results.setdefault(held.name, {})
        for method in methods:
            if method == FRANGI:
                fold[method] = [_frangi(runs, sources, [held])]
                continue
            for seed in seeds:
                if report_only and not (runs / method / f"seed{seed}" / "metrics.json").is_file():
                    missing.append(f"lodo-{held.name} {method} seed {seed}")
                    continue
                metrics = _train(runs, sources, [held], profile, method, seed, on_run)
                metrics["seed"] = seed
                fold.setdefault(method, []).append(metrics)
    return write_lodo_report(out, profile, methods, seeds, names, results, missing, notes=data_notes(roots))


def _fold_value(run: dict, held: str, score: str, in_domain: bool) -> float:
    """A run's mean ``score`` on its held-out domain; ``in_domain``: the mean over its sources' test splits."""
    domains = run["domains"]
    values = ([d["scores"][score]["mean"] for d in domains.values() if d["role"] == "source"] if in_domain
              else [domains[held]["scores"][score]["mean"]])
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _lodo_table(results: dict[str, dict[str, list[dict]]], held_out: Sequence[str], methods: Sequence[str],
                score: str, in_domain: bool = False) -> str:
    """One row per method: ``score`` per held-out domain (mean ± std over seeds) and the mean over held-out
    domains (per seed, over the domains; then mean ± std over seeds; a seed missing a fold is left out)."""
    head = ["method", "seeds", *(f"sources of lodo-{h} (in-domain)" if in_domain else f"{h} (held out)"
                                 for h in held_out), "mean over folds" if in_domain else "mean over held-out domains"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in methods:
        per = {h: {r.get("seed"): _fold_value(r, h, score, in_domain) for r in results.get(h, {}).get(method, [])}
               for h in held_out}
        seen = sorted({k for fold in per.values() for k in fold}, key=lambda k: -1 if k is None else k)
        if not seen:
            continue
        cells = [LABELS.get(method, method), str(len(seen)) if method != FRANGI else "-"]
        cells += [_fmt(_mean_std(list(per[h].values())), runs=len(per[h])) for h in held_out]
        means = [float(np.mean([per[h][k] for h in held_out])) for k in seen
                 if all(k in per[h] and not math.isnan(per[h][k]) for h in held_out)]
        cells.append(_fmt(_mean_std(means), runs=len(means)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def data_notes(roots: Sequence[Path]) -> list[str]:
    """What the fundus readers say about each data set (a derived or unofficial FOV, a missing second observer,
    ...), each note once: the report's "Data" section."""
    from medmodal.data.fundus import read_fundus

    return list(dict.fromkeys(note for root in roots for note in read_fundus(root).notes))


def _notes_section(notes: Sequence[str]) -> list[str]:
    return ["## Data", "", *[f"- {n}" for n in notes], ""] if notes else []


def write_report(out: Path, profile: VesselProfile, methods: Sequence[str], seeds: Sequence[int],
                 results: dict[str, list[dict]], missing: Sequence[str], notes: Sequence[str] = ()) -> Path:
    """``OUT/report/``: ``vessels.md``, ``per_image.csv``, ``summary.json``, ``overlays.png``; ``notes``: the
    readers' notes on the data sets (:func:`data_notes`), listed under "Data" and in ``summary.json``."""
    report = out / "report"
    ensure_writable_dir(report)
    first = next(iter(r for runs in results.values() for r in runs))
    domains = [(name, d["role"]) for name, d in first["domains"].items()]
    parts = [f"# Retinal vessels: {domains[0][0]} -> {', '.join(n for n, r in domains if r == 'target')}", "",
             f"Profile {profile.name}: {profile.note}. Seeds {', '.join(map(str, seeds))}; each cell is the mean "
             f"± std over seeds of a run's mean over the domain's test images (one run: its value alone). Scores inside the FOV on the native "
             f"grid, threshold 0.5 (Frangi: its threshold chosen on the source's training images).", ""]
    for score, title in SCORE_TITLES:
        parts += [f"## {title} (%)", "", _table(results, domains, methods, score), ""]
    if missing:
        parts += ["Runs not finished (not in the table): " + ", ".join(missing), ""]
    parts += _notes_section(notes)
    atomic_write_text(report / "vessels.md", "\n".join(parts))

    rows = [row for method, runs in results.items() for r in runs
            for row in _per_image(out / "runs", method, None if method == FRANGI else r["seed"])]
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(report / "per_image.csv", buf.getvalue())
    summary = {method: [{k: r[k] for k in ("seed", "domains", "best_val_dice", "train_seconds", "threshold")
                         if k in r} for r in runs] for method, runs in results.items()}
    atomic_write_json(report / "summary.json", json_finite({"profile": profile.name, "seeds": list(seeds),
                                                         "results": summary, "missing": list(missing),
                                                         "data_notes": list(notes)}))
    overlay_figure(out, results, report / "overlays.png")
    return report


def write_lodo_report(out: Path, profile: VesselProfile, methods: Sequence[str], seeds: Sequence[int],
                      held_out: Sequence[str], results: dict[str, dict[str, list[dict]]],
                      missing: Sequence[str], notes: Sequence[str] = ()) -> Path:
    """``OUT/report/``: ``vessels.md`` (the LODO tables), ``per_image.csv`` (with a ``held_out`` column),
    ``summary.json`` (``protocol: lodo``, results per held-out domain). No overlay figure."""
    report = out / "report"
    ensure_writable_dir(report)
    parts = [f"# Retinal vessels: leave-one-domain-out over {', '.join(held_out)}", "",
             f"Profile {profile.name}: {profile.note}. Seeds {', '.join(map(str, seeds))}. Each method is trained "
             f"on every data set but one (validation drawn from the sources' training images only) and scored on "
             f"the held-out one (every image); each cell is the mean ± std over seeds of a run's mean over the "
             f"held-out domain's images, the last column the mean over held-out domains (per seed, then mean ± std "
             f"over seeds). Scores inside the FOV on the native grid, threshold 0.5 (Frangi: its threshold chosen "
             f"on the sources' training images).", ""]
    for score, title in SCORE_TITLES:
        parts += [f"## {title} (%)", "", _lodo_table(results, held_out, methods, score), ""]
    parts += ["## In-domain Dice (FOV) (%): the sources' test splits", "",
              "Per fold: the mean over its sources of each source's mean Dice over its own test split.", "",
              _lodo_table(results, held_out, methods, "dice", in_domain=True), ""]
    if missing:
        parts += ["Runs not finished (not in the table): " + ", ".join(missing), ""]
    parts += _notes_section(notes)
    atomic_write_text(report / "vessels.md", "\n".join(parts))

    rows = [{"held_out": held, **row} for held, fold in results.items() for method, runs in fold.items()
            for r in runs for row in _per_image(out / "runs" / f"lodo-{held}", method,
                                                 None if method == FRANGI else r["seed"])]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(report / "per_image.csv", buf.getvalue())
    summary = {held: {method: [{k: r[k] for k in ("seed", "domains", "best_val_dice", "train_seconds", "threshold")
                                if k in r} for r in runs] for method, runs in fold.items()}
               for held, fold in results.items()}
    atomic_write_json(report / "summary.json", json_finite({"protocol": "lodo", "profile": profile.name,
                                                         "seeds": list(seeds), "held_out": list(held_out),
                                                         "results": summary, "missing": list(missing),
                                                         "data_notes": list(notes)}))
    return report


def load_run_network(run_dir: Path):
    """``(network in eval mode, FundusGeometry)`` of a finished vessel run: its ``config.yaml`` and the
    checkpoint its ``metrics.json`` names (loaded with ``weights_only=True``)."""
    import torch

    from medmodal.config import config_to_dict, load_run_config
    from medmodal.data.fundus.geometry import FundusGeometry
    from medmodal.engine.fundus.config import VesselRunConfig
    from medmodal.engine.fundus.module import VesselModule

    cfg = load_run_config(VesselRunConfig, run_dir / "config.yaml")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    module = VesselModule(config_to_dict(cfg))
    state = torch.load(metrics["checkpoint"], map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    return module.model.eval(), FundusGeometry.from_dict(metrics["geometry"])


def overlay_figure(out: Path, results: dict[str, list[dict]], path: Path) -> Path | None:
    """One example image per domain (its first test image): the photograph, the first observer, and the
    vessels (threshold 0.5) of ERM and DGSSA at seed 0 (else the first two trained methods that ran), each on
    the native grid. ``None``: no trained run to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from medmodal.data.fundus import load_label, read_fundus
    from medmodal.data.fundus.dataset import FundusVesselDataset
    from medmodal.data.fundus.geometry import to_native

    order = ["erm", "dgssa", *(m for m in TRAINED if m not in ("erm", "dgssa"))]
    shown = [m for m in order if any(r.get("seed") == 0 for r in results.get(m, []))][:2]
    if not shown:
        return None
    first = next(r for r in results[shown[0]] if r.get("seed") == 0)
    run_dir = Path(first["run_dir"])
    splits = json.loads((run_dir / "splits.json").read_text())
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    roots = [cfg["data"]["root"], *cfg["data"]["targets"]]
    networks = {m: load_run_network(Path(next(r for r in results[m] if r.get("seed") == 0)["run_dir"]))
                for m in shown}
    columns = ["image", "1st observer", *(LABELS[m] for m in shown)]
    fig, axes = plt.subplots(len(roots), len(columns), figsize=(2.6 * len(columns), 2.6 * len(roots)),
                             squeeze=False)
    for row, ((name, domain), root) in enumerate(zip(first["domains"].items(), roots)):
        ids = splits["source"]["test"] if domain["role"] == "source" else splits[name]["test"]
        sample = next(s for s in read_fundus(root).samples if s.id == ids[0])
        panels = []
        for method in shown:
            net, geometry = networks[method]
            item = FundusVesselDataset([sample], geometry, train=False)[0]
            with torch.inference_mode():
                prob = torch.sigmoid(net(item["image"][None]))[0, 0].float().numpy()
            panels.append(to_native(prob, item["grid"]) >= 0.5)
        from medmodal.data.fundus import load_image

        image = load_image(sample)
        panels = [image, load_label(sample, 0, image.shape[:2]), *panels]
        for col, (panel, title) in enumerate(zip(panels, columns)):
            ax = axes[row, col]
            ax.imshow(panel, cmap=None if panel.ndim == 3 else "gray")
            ax.set_title(f"{name} {sample.id}: {title}" if col == 0 else title, fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


SUITE = BenchmarkSuite("seg-vessels", VESSEL_METHODS, VESSEL_PROFILES, run)
