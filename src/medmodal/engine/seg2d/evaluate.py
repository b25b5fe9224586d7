"""``medmodal seg evaluate`` of a 2-D run (``image_kind: 2d``): score its model on a data set's split on the
native grid and write ``per_case.csv``, ``table.md`` and ``summary.json`` into ``<run>/eval_<data name>_<split>``.

The run's own data set uses the run's ``splits.json`` (``train`` / ``val`` / ``test``); another data set is
scored on its layout's ``test`` split, or every labelled case with ``--split all``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from medmodal.data.seg2d import read_seg2d
from medmodal.engine.run import json_finite
from medmodal.engine.seg2d.train import score_cases, with_classes
from medmodal.errors import CheckpointError, ConfigError, DataError
from medmodal.evaluation.seg2d import markdown_table, score_columns, summarise
from medmodal.inference.segmentation import resolve_device
from medmodal.io import atomic_write_json, atomic_write_text
from medmodal.models.bundles import load_model, stored_meta

__all__ = ["is_seg2d_run", "evaluate_seg2d_run", "Seg2DEvaluation", "EVAL_SPLITS"]

EVAL_SPLITS = ("train", "val", "test", "all")


@dataclass
class Seg2DEvaluation:
    """What :func:`evaluate_seg2d_run` wrote: the report folder, its CSV and table, the markdown and the rows."""

    folder: Path
    csv: Path
    table: Path
    markdown: str
    rows: list


def _run_folder(path: Path) -> Path:
    path = Path(path)
    if path.is_file():
        path = path.parent
    if path.name in ("model", "checkpoints"):
        return path.parent
    return path


def is_seg2d_run(run: str | Path) -> bool:
    """Whether ``run`` (a run folder, its bundle, a bundle file or a ``.ckpt``) holds a 2-D model: its bundle's
    ``model.json`` says ``image_kind: 2d``, or its ``config.yaml`` says ``task: 2d``. Never raises."""
    run = Path(run)
    meta = stored_meta(run)
    if meta is not None:
        return meta.get("image_kind") == "2d"
    config = _run_folder(run) / "config.yaml"
    try:
        data = yaml.safe_load(config.read_text()) if config.is_file() else None
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and data.get("task") == "2d"


def evaluate_seg2d_run(run: str | Path, data: str | Path | None = None, split: str = "test",
                       out: str | Path | None = None, device: str = "auto", layout: str = "auto",
                       hd95: bool | None = None) -> Seg2DEvaluation:
    """Score the 2-D model of ``run`` on ``data`` (default: the run's data set) and write the report.

    Raises:
        ConfigError: an unknown split; ``train`` / ``val`` of another data set; no data folder known.
        CheckpointError: no 2-D model in ``run``. LayoutError / DataError: unreadable data; nothing to score.
    """
    if split not in EVAL_SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(EVAL_SPLITS)}")
    run = Path(run)
    folder = _run_folder(run)
    config_path = folder / "config.yaml"
    cfg = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
    own_root = (cfg.get("data") or {}).get("root") if isinstance(cfg, dict) else None
    root = Path(data) if data is not None else (Path(own_root) if own_root else None)
    if root is None:
        raise ConfigError(f"{run}: no config.yaml in the run; give the data folder (--data)")
    own = own_root is not None and root.resolve() == Path(own_root).resolve()
    if own and layout == "auto":
        layout = (cfg.get("data") or {}).get("layout", "auto")
    model, meta = load_model(run, map_location=resolve_device(device))
    if meta.get("image_kind") != "2d":
        raise CheckpointError(f"{meta.get('source', run)}: not a 2-D segmentation model")
    if not root.is_dir():
        where = "the run's data.root" if data is None else "--data"
        raise ConfigError(f"{root}: data folder not found ({where}); give the data folder with --data")
    dataset = read_seg2d(root, layout)
    # a run trained with data.classes (own organs) names the classes of any data set in the same form
    dataset = with_classes(dataset, (cfg.get("data") or {}).get("classes"))
    if list(dataset.classes) != list(meta["classes"]):
        raise DataError(f"{root}: its classes {list(dataset.classes)} are not the model's {list(meta['classes'])}")
    by_id = {c.id: c for c in dataset.cases}
    if split == "all":
        cases = [c for c in dataset.cases if c.has_label]
    elif own and (folder / "splits.json").is_file():
        cases = [by_id[i] for i in json.loads((folder / "splits.json").read_text())[split] if i in by_id]
    elif split == "test":
        cases = [c for c in dataset.cases if c.split == "test" and c.has_label]
    else:
        raise ConfigError(f"split {split!r} exists only for the run's own data set; use --split test or all")
    if not cases:
        raise DataError(f"{root}: no labelled case in the {split!r} split (--split all scores every labelled case)")
    protocol = meta.get("eval", {}).get("protocol", "transunet")
    hd95 = bool(meta.get("eval", {}).get("hd95", True)) if hd95 is None else bool(hd95)
    grid = tuple(int(s) for s in meta["grid"])
    rows = score_cases(model, dataset, cases, grid, protocol, hd95)
    columns = score_columns(dataset.classes, protocol, hd95)
    summary = summarise(rows, columns)
    name = root.resolve().name or "data"
    report = Path(out) if out is not None else folder / f"eval_{name}_{split}"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["case", "slices", *columns], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    csv_path = atomic_write_text(report / "per_case.csv", buf.getvalue())
    unit = "" if protocol == "polyp" else ", HD95 in voxels"
    markdown = (f"## {meta['model_name']} on {name} ({dataset.layout}) - {split} split: {len(rows)} case"
                f"{'' if len(rows) == 1 else 's'}, protocol `{protocol}`{unit}, native grid\n\n"
                + markdown_table({f"{meta['model_name']}": summary}, dataset.classes, protocol) + "\n")
    if dataset.notes:
        markdown += "\n" + "\n".join(f"- {n}" for n in dataset.notes) + "\n"
    table_path = atomic_write_text(report / "table.md", markdown)
    atomic_write_json(report / "summary.json", json_finite({
        "run": str(folder), "model": meta.get("source"), "data": str(root), "layout": dataset.layout, "split": split,
        "protocol": protocol, "cases": len(rows), "scores": summary, "notes": list(dataset.notes)}))
    return Seg2DEvaluation(report, csv_path, table_path, markdown, rows)
