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
from typing import Callable, Optional

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


def _stored_config(folder: Path) -> dict:
    """The run's ``config.yaml`` as a dict (``{}``: none, unreadable or not a mapping)."""
    path = folder / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def is_run_of(run: str | Path, kind: str) -> bool:
    """Whether ``run`` (a run folder, its bundle, a bundle file or a ``.ckpt``) holds a model of ``image_kind``
    ``kind`` (``2d`` / ``3d``): its bundle's ``model.json`` says so, or its ``config.yaml`` says ``task: <kind>``.
    Never raises."""
    run = Path(run)
    meta = stored_meta(run)
    if meta is not None:
        return meta.get("image_kind") == kind
    return _stored_config(_run_folder(run)).get("task") == kind


def is_seg2d_run(run: str | Path) -> bool:
    """Whether ``run`` (a run folder, its bundle, a bundle file or a ``.ckpt``) holds a 2-D model: its bundle's
    ``model.json`` says ``image_kind: 2d``, or its ``config.yaml`` says ``task: 2d``. Never raises."""
    return is_run_of(run, "2d")


def eval_model_and_data(run: Path, data: str | Path | None, own_data: dict, layout: str, device: str,
                        kind: str) -> tuple[Path, bool, str, object, dict]:
    """``(root, own, layout, model, meta)`` of a 2-D / 3-D ``seg evaluate``: the data folder (``data``, else the
    run's ``data.root`` from ``own_data``, its stored ``data`` section), whether it is the run's own (then an
    ``auto`` layout is the run's), and the model of ``run``, which must be of ``image_kind`` ``kind``.

    Raises:
        ConfigError: no data folder known, or not found. CheckpointError: not a ``kind`` model.
    """
    own_root = own_data.get("root")
    root = Path(data) if data is not None else (Path(own_root) if own_root else None)
    if root is None:
        raise ConfigError(f"{run}: no config.yaml in the run; give the data folder (--data)")
    own = own_root is not None and root.resolve() == Path(own_root).resolve()
    if own and layout == "auto":
        layout = own_data.get("layout", "auto")
    model, meta = load_model(run, map_location=resolve_device(device))
    if meta.get("image_kind") != kind:
        raise CheckpointError(f"{meta.get('source', run)}: not a {kind[0]}-D segmentation model")
    if not root.is_dir():
        where = "the run's data.root" if data is None else "--data"
        raise ConfigError(f"{root}: data folder not found ({where}); give the data folder with --data")
    return root, own, layout, model, meta


def eval_cases(dataset, split: str, root: Path, run_split: Optional[Callable[[], list]]) -> list:
    """The cases a 2-D / 3-D ``seg evaluate`` scores: every labelled case (``all``), else the run's own split
    (``run_split()``, given for the run's own data set with a ``splits.json``), else the layout's ``test`` split.

    Raises:
        ConfigError: ``train`` / ``val`` of another data set. DataError: no case to score.
    """
    if split == "all":
        cases = [c for c in dataset.cases if c.has_label]
    elif run_split is not None:
        cases = run_split()
    elif split == "test":
        cases = [c for c in dataset.cases if c.split == "test" and c.has_label]
    else:
        raise ConfigError(f"split {split!r} exists only for the run's own data set; use --split test or all")
    if not cases:
        raise DataError(f"{root}: no labelled case in the {split!r} split (--split all scores every labelled case)")
    return cases


def write_rows(path: Path, rows: list[dict], fieldnames: list[str]) -> Path:
    """``rows`` as a CSV of ``fieldnames`` (other keys left out), written atomically (``per_case.csv``)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def notes_markdown(notes: list[str]) -> str:
    """The notes as a markdown list after a blank line (``""`` when there are none)."""
    return "\n" + "\n".join(f"- {n}" for n in notes) + "\n" if notes else ""


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
    own_data = (cfg.get("data") or {}) if isinstance(cfg, dict) else {}
    root, own, layout, model, meta = eval_model_and_data(run, data, own_data, layout, device, "2d")
    dataset = read_seg2d(root, layout)
    # a run trained with data.classes (own organs) names the classes of any data set in the same form
    dataset = with_classes(dataset, (cfg.get("data") or {}).get("classes"))
    if list(dataset.classes) != list(meta["classes"]):
        raise DataError(f"{root}: its classes {list(dataset.classes)} are not the model's {list(meta['classes'])}")
    by_id = {c.id: c for c in dataset.cases}

    def run_split() -> list:
        return [by_id[i] for i in json.loads((folder / "splits.json").read_text())[split] if i in by_id]

    cases = eval_cases(dataset, split, root, run_split if own and (folder / "splits.json").is_file() else None)
    protocol = meta.get("eval", {}).get("protocol", "transunet")
    hd95 = bool(meta.get("eval", {}).get("hd95", True)) if hd95 is None else bool(hd95)
    grid = tuple(int(s) for s in meta["grid"])
    rows = score_cases(model, dataset, cases, grid, protocol, hd95)
    columns = score_columns(dataset.classes, protocol, hd95)
    summary = summarise(rows, columns)
    name = root.resolve().name or "data"
    report = Path(out) if out is not None else folder / f"eval_{name}_{split}"
    csv_path = write_rows(report / "per_case.csv", rows, ["case", "slices", *columns])
    unit = "" if protocol == "polyp" else ", HD95 in voxels"
    markdown = (f"## {meta['model_name']} on {name} ({dataset.layout}) - {split} split: {len(rows)} case"
                f"{'' if len(rows) == 1 else 's'}, protocol `{protocol}`{unit}, native grid\n\n"
                + markdown_table({f"{meta['model_name']}": summary}, dataset.classes, protocol) + "\n")
    markdown += notes_markdown(dataset.notes)
    table_path = atomic_write_text(report / "table.md", markdown)
    atomic_write_json(report / "summary.json", json_finite({
        "run": str(folder), "model": meta.get("source"), "data": str(root), "layout": dataset.layout, "split": split,
        "protocol": protocol, "cases": len(rows), "scores": summary, "notes": list(dataset.notes)}))
    return Seg2DEvaluation(report, csv_path, table_path, markdown, rows)
