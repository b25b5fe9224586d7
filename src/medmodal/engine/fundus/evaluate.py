"""``medmodal seg evaluate`` on a vessel run: score its model bundle on a fundus data set, on the native grid.

Which images (``split``):

* the run's own source (no ``data``, or ``data`` is the run's ``data.root`` or, for a run on several
  sources, one of them): the run's recorded split (``splits.json`` -> ``source``, or that source's entry
  of ``sources``; ``train`` / ``val`` / ``test``), ``all``: every image;
* any other data set (a target domain): every image is test, as :func:`~medmodal.engine.fundus.train.run_vessels`
  scores its targets (:func:`~medmodal.data.fundus.dataset.fundus_splits` with ``target=True``); ``test``
  and ``all`` are then the same images, ``train`` / ``val`` are refused.

Scores: :func:`~medmodal.engine.fundus.train.score_domain` (the bundle's geometry and threshold; Dice,
sensitivity, specificity, accuracy, AUC-ROC, AUC-PR inside the FOV, whole-image Dice;
:mod:`medmodal.evaluation.vessels`). Written into ``<run>/eval_<data folder name>_<split>/`` (or ``out``):
``per_image.csv`` (one row per image), ``table.md`` (mean ± std over images) and ``summary.json``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from medmodal.data.fundus.dataset import fundus_splits
from medmodal.data.fundus.geometry import FundusGeometry
from medmodal.data.fundus.layouts import read_fundus
from medmodal.engine.fundus.config import VESSEL_MODELS
from medmodal.errors import CheckpointError, ConfigError, DataError
from medmodal.evaluation.vessels import SCORES, scores_table, summarise
from medmodal.io import atomic_write_json, atomic_write_text
from medmodal.models.bundles import load_model, model_geometry, stored_meta

__all__ = ["VesselEvaluation", "is_vessel_run", "evaluate_vessel_run", "EVAL_SPLITS"]

EVAL_SPLITS = ("train", "val", "test", "all")


@dataclass
class VesselEvaluation:
    """What :func:`evaluate_vessel_run` wrote: ``folder``, ``csv``, ``table`` (paths), ``markdown`` (the table's
    text), ``rows`` (:class:`~medmodal.evaluation.vessels.VesselScores` per image)."""

    folder: Path
    csv: Path
    table: Path
    markdown: str
    rows: list


def _run_folder(run: Path) -> Path:
    folder = run if run.is_dir() else run.parent
    if not (folder / "config.yaml").is_file() and (folder.parent / "config.yaml").is_file():
        return folder.parent
    return folder


def _stored_config(folder: Path) -> Optional[dict]:
    path = folder / "config.yaml"
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def is_vessel_run(run: str | Path) -> bool:
    """Whether ``run`` (a run folder, its ``model/`` bundle or a bundle file) holds a fundus vessel model:
    its bundle's ``model.json`` says ``image_kind: fundus``, or (no bundle) its ``config.yaml`` names a
    vessel network (:data:`~medmodal.engine.fundus.config.VESSEL_MODELS`). Never raises."""
    run = Path(run)
    meta = stored_meta(run)
    if meta is not None:
        return meta.get("image_kind") == "fundus"
    cfg = _stored_config(_run_folder(run)) or {}
    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    return model.get("name") in VESSEL_MODELS and isinstance(cfg.get("data"), dict) and "diameter" in cfg["data"]


def _same(a: Path, b: Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def evaluate_vessel_run(run: str | Path, data: str | Path | None = None, split: str = "test",
                        out: str | Path | None = None, device: str = "auto", layout: str = "auto") -> VesselEvaluation:
    """Score the vessel model of ``run`` on ``data`` (default: the run's source) and write the report
    (module docstring).

    Args:
        run: the run folder (or its ``model/`` bundle). data: a fundus data set root. split: one of
            :data:`EVAL_SPLITS`. out: report folder (default ``<run>/eval_<data name>_<split>``).
        device: ``auto`` | ``cpu`` | ``cuda``. layout: the data's layout (``auto`` detects; the run's source
            uses the run's ``data.layout``).
    Returns:
        :class:`VesselEvaluation`.
    Raises:
        CheckpointError: no model bundle in the run (runs trained before bundles were written: retrain).
        ConfigError: an unknown split, ``train`` / ``val`` of a target data set, no ``data`` and no config.
        LayoutError / DataError: unreadable data; no image of the split.
    """
    from medmodal.engine.fundus.train import score_domain
    from medmodal.inference.segmentation import resolve_device

    if split not in EVAL_SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose test or all (train / val: the run's own source only)")
    run = Path(run)
    folder = _run_folder(run)
    cfg = _stored_config(folder) or {}
    source_cfg = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    source_roots = source_cfg.get("root")
    source_roots = [str(source_roots)] if isinstance(source_roots, str) else [str(r) for r in source_roots or []]
    if data is None and len(source_roots) > 1:
        raise ConfigError(f"{run}: the run was trained on {len(source_roots)} sources; give one data folder (--data)")
    root = Path(data) if data is not None else (Path(source_roots[0]) if source_roots else None)
    if root is None:
        raise ConfigError(f"{run}: no config.yaml in the run; give the data folder (--data)")
    own_index = next((i for i, r in enumerate(source_roots) if data is None or _same(root, Path(r))), None)
    own = own_index is not None
    if own and layout == "auto":
        layout = source_cfg.get("layout", "auto")

    device = resolve_device(device)
    model, meta = load_model(run, map_location=device)
    if meta.get("image_kind") != "fundus":
        raise CheckpointError(f"{meta.get('source', run)}: not a fundus vessel model bundle")
    geometry = model_geometry(meta)
    if not isinstance(geometry, FundusGeometry):
        raise CheckpointError(f"{meta.get('source', run)}: the bundle records no fundus geometry")
    threshold = float(meta.get("threshold", 0.5))

    found = read_fundus(root, layout)
    by_id = {s.id: s for s in found.samples}
    if split == "all":
        ids = sorted(by_id)
    elif own:
        splits_file = folder / "splits.json"
        if splits_file.is_file():
            recorded = json.loads(splits_file.read_text())
            if "sources" in recorded:  # several sources: by domain name, in data.root's order
                recorded = {"source": list(recorded["sources"].values())[own_index]}
            ids = recorded["source"][split]
        else:
            ids = fundus_splits(found.samples, float(source_cfg.get("val_fraction", 0.2)),
                                int(source_cfg.get("split_seed", 0)))[split]
    elif split == "test":
        ids = fundus_splits(found.samples, target=True)["test"]
    else:
        raise ConfigError(f"split {split!r} exists only for the run's own source; {root} is another data set: "
                          f"use --split test (every image) or all")
    samples = [by_id[i] for i in ids if i in by_id]
    if not samples:
        raise DataError(f"{root}: no image of the {split!r} split found (--split all scores every image)")

    with_labels = [s for s in samples if s.labels]
    if not with_labels:
        raise DataError(f"{root}: none of the {split!r} images has a vessel label; nothing to score")
    model.eval()
    rows = score_domain(model, with_labels, geometry, threshold=threshold)

    name = root.resolve().name or "data"
    report = Path(out) if out is not None else folder / f"eval_{name}_{split}"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["name", *SCORES])
    writer.writeheader()
    writer.writerows(r.as_dict() for r in rows)
    csv_path = atomic_write_text(report / "per_image.csv", buf.getvalue())
    summary = summarise(rows)
    label = f"{name} ({found.layout}, {split})"
    markdown = (f"## {meta.get('model_name')} on {name} - {split} split ({len(rows)} image{'' if len(rows) == 1 else 's'}, threshold {threshold:g}, "
                f"native grid)\n\n" + scores_table({label: (len(rows), summary)}) + "\n")
    notes = list(found.notes)
    if len(with_labels) < len(samples):
        notes.append(f"{len(samples) - len(with_labels)} unlabelled images not scored")
    if notes:
        markdown += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    table_path = atomic_write_text(report / "table.md", markdown)
    atomic_write_json(report / "summary.json", {
        "run": str(folder), "model": meta.get("source"), "data": str(root), "layout": found.layout, "split": split,
        "role": "source" if own else "target", "threshold": threshold, "geometry": geometry.to_dict(),
        "images": len(rows), "notes": notes,
        "scores": {k: {"mean": _finite(m), "std": _finite(s)} for k, (m, s) in summary.items()}})
    return VesselEvaluation(report, csv_path, table_path, markdown, rows)


def _finite(value: float):
    return None if isinstance(value, float) and math.isnan(value) else value
