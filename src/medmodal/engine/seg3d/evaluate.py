"""``medmodal seg evaluate`` of a 3-D run (``image_kind: 3d``): score its model on a data set's split by sliding
window, as the run scored its own test split, and write ``per_case.csv``, ``table.md`` and ``summary.json`` into
``<run>/eval_<data name>_<split>``.

The data set is read by :func:`medmodal.data.seg3d.read_seg3d` (any 3-D layout: ``la2018``, ``bhsd``,
``nifti_folder``). The run's own data set uses the run's ``splits.json`` (``train`` / ``val`` / ``test``); another
data set is scored on its layout's ``test`` split, or every labelled case with ``--split all``. Every volume is
loaded as in training (the set's intensity rule, resampled by the bundle's ``scale``), predicted with the bundle's
``patch`` and ``eval.overlap`` (:func:`medmodal.engine.seg3d.module.predict_volume`) and scored on that grid with
:func:`medmodal.evaluation.seg3d.volume_metrics` (Dice, Jaccard, HD95, ASD per class); so the run's own test split
gives the test scores of its ``metrics.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from medmodal.data.seg3d import read_seg3d
from medmodal.engine.run import json_finite
from medmodal.engine.seg2d.evaluate import (_run_folder, _stored_config, eval_cases, eval_model_and_data, is_run_of,
                                            notes_markdown, write_rows)
from medmodal.engine.seg3d.config import Seg3DDataSettings, Seg3DEvalSettings, Seg3DRunConfig
from medmodal.engine.seg3d.train import score_volumes
from medmodal.errors import ConfigError, DataError
from medmodal.evaluation.seg2d import summarise
from medmodal.evaluation.seg3d import metric_columns
from medmodal.io import atomic_write_json, atomic_write_text

__all__ = ["is_seg3d_run", "evaluate_seg3d_run", "Seg3DEvaluation", "EVAL_SPLITS", "markdown_table",
           "distance_unit"]

EVAL_SPLITS = ("train", "val", "test", "all")


@dataclass
class Seg3DEvaluation:
    """What :func:`evaluate_seg3d_run` wrote: the report folder, its CSV, table and summary, the markdown, the rows
    and the summary record."""

    folder: Path
    csv: Path
    table: Path
    summary: Path
    markdown: str
    rows: list
    record: dict


def is_seg3d_run(run: str | Path) -> bool:
    """Whether ``run`` (a run folder, its bundle, a bundle file or a ``.ckpt``) holds a 3-D model: its bundle's
    ``model.json`` says ``image_kind: 3d``, or its ``config.yaml`` says ``task: 3d``. Never raises."""
    return is_run_of(run, "3d")


def distance_unit(layout: str) -> str:
    """The unit of HD95 / ASD for a data set of ``layout`` (LA2018's files store no voxel size)."""
    return "voxels (LA2018 stores no spacing)" if layout == "la2018" else "mm"


def _cell(value: dict | None, scale: float) -> str:
    if not value or value.get("mean") is None:
        return "-"
    return f"{scale * value['mean']:.2f} ± {scale * value['std']:.2f}"


def markdown_table(rows: dict[str, dict], classes: Sequence[str], surface: bool = True) -> str:
    """A markdown table, one row per entry of ``rows`` (``label -> summary`` of
    :func:`medmodal.evaluation.seg2d.summarise` over :func:`~medmodal.evaluation.seg3d.metric_columns`): the
    class-averaged Dice and Jaccard (%) and, with ``surface``, HD95 and ASD, then the same per foreground class
    when there are several. Cells: mean ± std over cases."""
    fg = list(classes[1:])
    metrics = [("Dice", 100), ("Jaccard", 100)] + ([("HD95", 1), ("ASD", 1)] if surface else [])
    head = [""] + [f"{m} (%)" if s == 100 else m for m, s in metrics]
    keys = [(m, s) for m, s in metrics]
    if len(fg) > 1:
        head += [f"{m} {c}" for m, _ in metrics for c in fg]
        keys += [(f"{m}_{c}", s) for m, s in metrics for c in fg]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|"]
    out += ["| " + " | ".join([label, *(_cell(summary.get(k), s) for k, s in keys)]) + " |"
            for label, summary in rows.items()]
    return "\n".join(out)


def _read_data(root: Path, layout: str, classes: list[str]):
    """The set at ``root`` in the model's classes: a set that binarises its labels by default (BHSD) is read with
    its file classes when those are the model's (a run trained on BHSD's five types)."""
    dataset = read_seg3d(root, layout)
    if list(dataset.classes) != classes and list(dataset.source_classes) == classes:
        dataset = read_seg3d(root, layout, binary=False)
    if list(dataset.classes) != classes:
        raise DataError(f"{root}: its classes {list(dataset.classes)} are not the model's {classes}")
    return dataset


def evaluate_seg3d_run(run: str | Path, data: str | Path | None = None, split: str = "test",
                       out: str | Path | None = None, device: str = "auto", layout: str = "auto",
                       surface: bool | None = None) -> Seg3DEvaluation:
    """Score the 3-D model of ``run`` on ``data`` (default: the run's data set) and write the report (module
    docstring). ``surface``: also HD95 and ASD (``None``: the bundle's ``eval.surface``).

    Raises:
        ConfigError: an unknown split; ``train`` / ``val`` of another data set; no data folder known.
        CheckpointError: no 3-D model in ``run``. LayoutError / DataError / DamagedFileError: unreadable data,
            classes other than the model's, nothing to score.
    """
    if split not in EVAL_SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(EVAL_SPLITS)}")
    run = Path(run)
    folder = _run_folder(run)
    cfg = _stored_config(folder)
    own_data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    root, own, layout, model, meta = eval_model_and_data(run, data, own_data, layout, device, "3d")
    classes = list(meta["classes"])
    dataset = _read_data(root, layout, classes)
    by_id = {c.id: c for c in dataset.cases}

    def run_split() -> list:
        ids = json.loads((folder / "splits.json").read_text()).get(split, [])
        return [by_id[i] for i in ids if i in by_id and by_id[i].has_label]

    cases = eval_cases(dataset, split, root, run_split if own and (folder / "splits.json").is_file() else None)
    stored_eval = meta.get("eval") or {}
    surface = bool(stored_eval.get("surface", True)) if surface is None else bool(surface)
    own_eval = cfg.get("eval") if isinstance(cfg.get("eval"), dict) else {}
    settings = Seg3DRunConfig(
        data=Seg3DDataSettings(patch=[int(p) for p in meta["patch"]], scale=float(meta.get("scale", 1.0))),
        eval=Seg3DEvalSettings(overlap=float(stored_eval.get("overlap", 0.5)),
                               sw_batch_size=int(own_eval.get("sw_batch_size", 2)), surface=surface))
    rows = score_volumes(model, dataset, cases, settings)
    columns = metric_columns(dataset.classes, surface)
    summary = summarise(rows, columns)
    empties = {c: sum(1 for r in rows if r.get(f"empty_{c}") == "prediction") for c in dataset.classes[1:]}
    notes = list(dataset.notes)
    if dataset.dataset != meta.get("dataset"):
        notes.append(f"data set kind {dataset.dataset!r} (its intensity rule), the model was trained on "
                     f"{meta.get('dataset')!r}")
    if any(empties.values()):
        notes.append(f"empty prediction(s) {empties}; their HD95 / ASD are left out of the means")
    name = root.resolve().name or "data"
    report = Path(out) if out is not None else folder / f"eval_{name}_{split}"
    csv_path = write_rows(report / "per_case.csv", rows,
                          ["case", *columns, *[f"empty_{c}" for c in dataset.classes[1:]]])
    unit = distance_unit(dataset.layout)
    scale = settings.data.scale
    grid = "native grid" if scale == 1.0 else f"grid scaled by {scale:g}"
    markdown = (f"## {meta['model_name']} on {name} ({dataset.layout}) - {split} split: {len(rows)} volume"
                f"{'' if len(rows) == 1 else 's'}, sliding window {'x'.join(map(str, settings.data.patch))} "
                f"overlap {settings.eval.overlap:g}, {grid}"
                + (f", HD95 / ASD in {unit}" if surface else "") + "\n\n"
                + markdown_table({f"{meta['model_name']}": summary}, dataset.classes, surface) + "\n")
    markdown += notes_markdown(notes)
    table_path = atomic_write_text(report / "table.md", markdown)
    record = json_finite({
        "run": str(folder), "model": meta.get("source"), "model_name": meta["model_name"], "data": str(root),
        "layout": dataset.layout, "dataset": dataset.dataset, "split": split, "classes": list(dataset.classes),
        "cases": len(rows), "patch": list(settings.data.patch), "scale": scale, "overlap": settings.eval.overlap,
        "distance_unit": unit, "scores": summary, "empty_predictions": empties, "notes": notes})
    summary_path = atomic_write_json(report / "summary.json", record)
    return Seg3DEvaluation(report, csv_path, table_path, summary_path, markdown, rows, record)
