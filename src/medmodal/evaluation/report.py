"""``medmodal seg evaluate``: score a trained model on every case x every subset and write the report.

Cases are brought to the model's training geometry (recorded in its bundle) and scored on their
native grid against the label as stored (:mod:`medmodal.evaluation.evaluator`).

Outputs in ``<run>/eval_<split>/``, ``<run>/eval_<data>_<split>/`` for another dataset given by
``data`` (``<run>`` is the run folder also when a bundle or checkpoint inside it is given), or
``out``: ``subset_metrics.csv`` (one row per case and subset: Dice and HD95 per region, and the ``protocol`` column), ``table.md`` (the papers' layout:
Dice and HD95 tables, rows = subsets marked by present sequences, plus the average; the
evaluation protocol is named in the title and above the tables), ``dice_heatmap.png``.

The protocol (:mod:`medmodal.evaluation.protocols`) is ``protocol`` when given, else the one
the model bundle records (``eval.protocol`` of its training config); bundles written before
protocols existed are scored with ``monai-max-directed``, so their numbers do not change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from medmodal.config import ExperimentConfig, load_config
from medmodal.data.volumes.dataset import CaseDataset
from medmodal.data.volumes.layouts import discover_cases
from medmodal.data.cache import default_cache_dir
from medmodal.data.volumes.preprocess import PreprocessedCache
from medmodal.data.volumes.spec import get_spec
from medmodal.data.splits import load_or_make_splits, read_splits
from medmodal.data.volumes.loading import DEFAULT_AFFINE_TOLERANCE
from medmodal.errors import ConfigError, DataError
from medmodal.evaluation.evaluator import SubsetEvaluation, evaluate_subsets
from medmodal.evaluation.plots import subset_heatmap
from medmodal.evaluation.protocols import EvaluationProtocol, get_protocol, protocol_of_run
from medmodal.evaluation.tables import markdown_subset_table, write_rows_csv
from medmodal.inference.segmentation import resolve_device
from medmodal.io import atomic_write_text, ensure_writable_dir
from medmodal.models.bundles import check_modalities, load_model, model_geometry


@dataclass
class EvaluationResult:
    rows: list[dict]
    markdown: str
    csv: Path
    table: Path
    heatmap: Path
    protocol: str = ""


def _run_config(run: Path) -> ExperimentConfig | None:
    path = run / "config.yaml" if run.is_dir() else None
    return load_config(path) if path is not None and path.is_file() else None


def _select_cases(run: Path, cfg: ExperimentConfig | None, data: Path | None, split: str, layout: str,
                  mapping: str | None, labels: str | None, modalities):
    root = data or (Path(cfg.data.root) if cfg else None)
    if root is None:
        raise ConfigError(f"{run}: no config.yaml in the run; give the data folder (data)")
    if cfg is not None and data is None and layout == "auto" and mapping is None:
        layout, mapping, labels = cfg.data.layout, cfg.data.mapping, labels or cfg.data.labels
    cases = {c.case_id: c for c in discover_cases(root, layout, mapping, modalities, labels)}
    if split == "all":
        return root, list(cases.values())
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown split {split!r}; choose train, val, test or all")
    split_file = run / "splits.json"
    if split_file.is_file() and data is None:
        ids = read_splits(split_file)[split]
    else:
        ids = load_or_make_splits(root, list(cases), cfg.data.split_seed if cfg else 0, write=False)[split]
    chosen = [cases[i] for i in ids if i in cases]
    if not chosen:
        raise DataError(f"{root}: no case of the {split!r} split found (split 'all' scores every case of another "
                        f"dataset)")
    return root, chosen


def run_evaluation(run: str | Path, data: str | Path | None = None, split: str = "test", out: str | Path | None = None,
                   device: str = "auto", layout: str = "auto", mapping: str | None = None, labels: str | None = None,
                   hd95: bool | None = None, progress: bool = True, precision: str = "auto",
                   protocol: str | None = None, affine_tolerance: float = DEFAULT_AFFINE_TOLERANCE,
                   skip_invalid: bool = False) -> EvaluationResult:
    """Evaluate the model of ``run`` (a run folder, bundle or .ckpt) on all subsets; write the report.

    ``protocol``: an evaluation protocol name (or ``auto``); ``None`` = the one the bundle records.
    ``hd95``: also compute HD95; ``None`` = the run's ``eval.hd95`` (``True`` without a run config).
    ``affine_tolerance``: allowed affine difference between a case's files (fraction of a voxel);
    ``skip_invalid``: constant / all-zero sequences are treated as missing (the report lists them).
    """
    run = Path(run)
    data = Path(data) if data is not None else None
    device = resolve_device(device)
    cfg = _run_config(run)
    model, meta = load_model(run, map_location=device)
    spec = get_spec(meta["spec"])
    root, cases = _select_cases(run, cfg, data, split, layout, mapping, labels, spec.modalities)
    for case in cases:
        check_modalities(meta, list(case.images), f"case {case.case_id}")
    geometry = model_geometry(meta)
    cache_dir = cfg.data.cache_dir if (cfg and cfg.data.cache_dir and data is None) else default_cache_dir(root)
    cache = PreprocessedCache(cache_dir, spec, affine_tolerance, geometry=geometry, skip_invalid=skip_invalid)
    dataset = CaseDataset(cache, cases, native=True)
    ev = meta.get("eval", {})
    if hd95 is None:
        hd95 = bool(cfg.eval.hd95) if cfg is not None else bool(ev.get("hd95", True))
    chosen = get_protocol(protocol, spec) if protocol is not None else protocol_of_run(ev, spec)
    note = "" if protocol is not None or "protocol" in ev else \
        "(the model bundle records no protocol: it predates them and keeps its scoring; choose one with --protocol)"
    chosen.columns(spec)  # a protocol for other regions: fail before predicting anything
    settings = SubsetEvaluation(tuple(ev.get("roi_size", (80, 80, 80))), ev.get("overlap", 0.5),
                                ev.get("sw_batch_size", 2), ev.get("et_min_voxels"), hd95=hd95,
                                precision=precision, protocol=chosen)
    with torch.inference_mode():
        rows = evaluate_subsets(model, dataset, spec, settings, device=device, progress=progress)
    return write_report(rows, spec, Path(out) if out else default_output(run, data, split),
                        title=f"{meta['model_name']} - {split} split ({len(cases)} cases)", hd95=hd95,
                        protocol=chosen, et_min_voxels=settings.et_min_voxels, note=note,
                        notes=_input_notes(cache, cases, geometry))


def _run_folder(run: Path) -> Path:
    """The run folder of ``run``: itself, or the run folder (the one with ``config.yaml``) holding the
    bundle folder / bundle file / checkpoint given (``RUN/model``, ``RUN/checkpoints/best.ckpt``)."""
    folder = run if run.is_dir() else run.parent
    if not (folder / "config.yaml").is_file() and (folder.parent / "config.yaml").is_file():
        return folder.parent
    return folder


def default_output(run: Path, data: Path | None, split: str) -> Path:
    """``<run folder>/eval_<split>`` for the run's own data; ``<run folder>/eval_<data folder name>_<split>``
    for another dataset given by ``data``, so that two datasets do not overwrite each other's report."""
    folder = _run_folder(run)
    cfg = _run_config(folder)
    own = cfg is not None and cfg.data.root and data is not None and \
        Path(cfg.data.root).resolve() == Path(data).resolve()
    if data is None or own:
        return folder / f"eval_{split}"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(data).resolve().name) or "data"
    return folder / f"eval_{name}_{split}"


def _input_notes(cache: PreprocessedCache, cases, geometry) -> list[str]:
    """Report lines on the inputs: geometry applied, sequences treated as missing."""
    entries = [cache.get(c) for c in cases]
    changed = [e.case_id for e in entries if e.grid is not None and not e.grid.identity]
    lines = [(f"Training geometry: {geometry.describe() if geometry else 'not recorded (cases used as stored)'}; "
              f"{len(changed)} of {len(entries)} cases reoriented / resampled to it, every case scored on its "
              f"native grid.")]
    for e in entries:
        for name, reason in (e.skipped or {}).items():
            lines.append(f"case {e.case_id}: {name} treated as missing ({reason})")
    return lines


def write_report(rows: list[dict], spec, out_dir: Path, title: str, hd95: bool = True,
                 protocol: str | EvaluationProtocol | None = None, et_min_voxels: int | None = None,
                 note: str = "", notes: list[str] | None = None) -> EvaluationResult:
    """Write ``subset_metrics.csv``, ``table.md`` and ``dice_heatmap.png`` for ``rows`` scored under
    ``protocol`` (``None``: ``monai-max-directed``); each row gets a ``protocol`` column; ``note``
    is appended to the protocol line of ``table.md``; ``notes`` (lines on the inputs: geometry,
    sequences treated as missing) follow it."""
    protocol = get_protocol(protocol, spec)
    out_dir = ensure_writable_dir(out_dir)
    columns = protocol.columns(spec)
    rows = [{**row, "protocol": protocol.name} for row in rows]
    csv = write_rows_csv(rows, out_dir / "subset_metrics.csv")
    line = f"Evaluation protocol {protocol.describe(et_min_voxels)}" + (f" {note}" if note else "")
    parts = [f"# {title} - scored under `{protocol.name}`", "", f"{line}  ", *[f"{n}  " for n in notes or []], "",
             "## Dice (%)", "",
             markdown_subset_table(rows, spec.modalities, columns, metric="Dice", scale=100, digits=2)]
    if hd95:
        parts += ["", f"## {protocol.distance} ({protocol.distance_unit})", "",
                  markdown_subset_table(rows, spec.modalities, columns, metric=protocol.distance, scale=1, digits=2)]
    markdown = "\n".join(parts) + "\n"
    table = atomic_write_text(out_dir / "table.md", markdown)
    heatmap = subset_heatmap(rows, spec.modalities, columns, out_dir / "dice_heatmap.png", metric="Dice",
                             title=f"{title} ({protocol.name})")
    return EvaluationResult(rows, markdown, csv, table, Path(heatmap), protocol.name)
