"""``medmodal score``: score a folder of predicted label maps against a folder of references.

The folder evaluation nnU-Net users know (``nnUNetv2_evaluate_folder``: per-case metrics and a
``summary.json``), under a named evaluation protocol (:mod:`medmodal.evaluation.protocols`).

* **Predictions**: NIfTI label maps directly in ``pred_dir``, one per case, named
  ``<case>.nii.gz`` (or ``.nii``) as ``medmodal seg predict``, nnU-Net and the BraTS submission
  format write them. Other files (``<case>.json``, ``.npz``, hidden temporary files) are ignored.
* **References**: any layout the readers know (:func:`medmodal.data.volumes.layouts.discover_cases`:
  BraTS 2020/2023 case folders, also with the label file only, nnU-Net raw with ``labelsTr``,
  MyoPS, ``--map`` globs), or a flat folder of ``<case>.nii.gz`` labels (e.g. nnU-Net's
  ``labelsTr`` itself). Label values are read in the references' convention (``labels``: BraTS
  2020 0/1/2/4, BraTS 2023 ET = 3, MyoPS 2020), the predictions in the same convention unless
  ``pred_labels`` says otherwise.
* Cases are matched by id. A case on one side only is listed in the result, the printed output,
  ``summary.json`` and ``summary.md``, never silently dropped.
* A prediction whose grid differs from its reference's (shape, or affine beyond
  ``affine_tolerance``, a fraction of the smallest voxel size) is an error naming both files:
  scoring on different grids gives wrong numbers, and resampling is the caller's decision.

Outputs (atomic writes) in ``out_dir``: ``per_case.csv`` (one row per scored case: Dice and
HD95/HD per region, the protocol, both file paths), ``summary.json`` (protocol, mean / std /
median / n per region and metric, per-case metrics, the unmatched cases) and ``summary.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from medmodal.data.volumes.layouts import Case, LayoutError, discover_cases, strip_nifti_suffix
from medmodal.data.volumes.loading import (DEFAULT_AFFINE_TOLERANCE, CaseError, check_label_values, label_spec_for,
                                           read_nifti)
from medmodal.data.volumes.spec import SPECS, DatasetSpec, get_spec, resolve_declared_labels
from medmodal.errors import CaseError, ConfigError, DataError
from medmodal.evaluation.metrics import region_metrics
from medmodal.evaluation.protocols import EvaluationProtocol, et_threshold, get_protocol
from medmodal.evaluation.tables import write_rows_csv
from medmodal.io import atomic_write_json, atomic_write_text, ensure_writable_dir

#: every sequence name of the registered datasets (reference discovery only needs the labels)
_ALL_SEQUENCES = tuple(dict.fromkeys(m for spec in SPECS.values() for m in spec.modalities))
SUMMARY_STATS = ("mean", "std", "median", "n")


@dataclass
class ScoreResult:
    """What :func:`score_folders` computed and wrote.

    Attributes:
        rows: one dict per scored case (``case_id``, ``Dice_<column>``, ``<HD95|HD>_<column>``, ...).
        summary: the content of ``summary.json``.
        missing_predictions: reference cases without a prediction.
        missing_references: predictions without a reference.
    """

    rows: list[dict]
    summary: dict
    protocol: EvaluationProtocol
    markdown: str
    out_dir: Path
    csv: Path
    json: Path
    table: Path
    missing_predictions: list[str] = field(default_factory=list)
    missing_references: list[str] = field(default_factory=list)


def discover_predictions(pred_dir: str | Path) -> dict[str, Path]:
    """``{case_id: file}`` for the NIfTI files directly in ``pred_dir`` (hidden files skipped).

    Raises:
        FileNotFoundError / LayoutError: no such folder, or no prediction in it; the same case
            twice (``.nii`` and ``.nii.gz``).
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"{pred_dir}: no such prediction folder")
    found: dict[str, Path] = {}
    for path in sorted(pred_dir.iterdir()):
        stem = strip_nifti_suffix(path.name)
        if stem is None or path.name.startswith(".") or not path.is_file():
            continue
        if stem in found:
            raise LayoutError(f"{pred_dir}: two predictions for case {stem!r}: {found[stem].name} and {path.name}")
        found[stem] = path
    if not found:
        raise LayoutError(f"{pred_dir}: no prediction files (<case>.nii.gz) found")
    return found


def _flat_label_cases(root: Path, labels: str | None) -> list[Case]:
    """A flat folder of ``<case>.nii[.gz]`` label files (nnU-Net ``labelsTr``, BraTS submissions)."""
    files = [p for p in sorted(root.iterdir()) if p.is_file() and not p.name.startswith(".")
             and strip_nifti_suffix(p.name) is not None]
    return [Case(strip_nifti_suffix(p.name), {}, p, "flat", labels or "brats2020") for p in files]


def _has_nifti(root: Path) -> bool:
    return any(p.is_file() and strip_nifti_suffix(p.name) is not None for p in root.iterdir())


def discover_references(ref_dir: str | Path, layout: str = "auto", mapping: str | None = None,
                        labels: str | None = None) -> list[Case]:
    """Reference cases (those with a label file) under ``ref_dir``.

    ``layout="auto"`` without ``mapping``: the layouts :func:`discover_cases` recognises; else BraTS
    case folders holding only their label (``<case>-seg`` / ``<case>_seg``), MyoPS ``*_gd`` label
    folders, or a flat folder of ``<case>.nii[.gz]`` labels.

    Raises:
        FileNotFoundError / LayoutError: nothing usable, naming the folder.
    """
    root = Path(ref_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such reference folder")
    if layout != "auto" or mapping is not None:
        cases = discover_cases(root, layout, mapping, _ALL_SEQUENCES, labels, labels_only=True)
    else:
        cases = _auto_references(root, labels)
    labelled = [c for c in cases if c.label is not None]
    if not labelled:
        raise LayoutError(f"{root}: no reference label files found ({len(cases)} cases without a label); "
                          f"give a layout, or a mapping with a seg= pattern")
    return labelled


def _auto_references(root: Path, labels: str | None) -> list[Case]:
    try:
        return discover_cases(root, "auto", None, _ALL_SEQUENCES, labels)
    except LayoutError as err:
        first_error = err
    if _has_nifti(root):  # a flat folder: MyoPS <case>_gd labels, else one <case>.nii.gz label per case
        try:
            cases = discover_cases(root, "myops2020", None, _ALL_SEQUENCES, labels)
            if any(c.label is not None for c in cases):
                return cases
        except LayoutError:
            pass
        return _flat_label_cases(root, labels)
    for layout in ("brats2023", "brats2020"):  # case folders holding their label file only
        try:
            cases = discover_cases(root, layout, None, _ALL_SEQUENCES, labels)
        except LayoutError:
            continue
        if any(c.label is not None for c in cases):
            return cases
    raise LayoutError(f"{first_error} (no label-only case folders either)")


def _summary_stats(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean, sample std (ddof=1, as pandas), median and count of the defined (non-NaN) values."""
    finite = np.array([v for v in values if not math.isnan(v)], float)
    if finite.size == 0:
        return {"mean": None, "std": None, "median": None, "n": 0}
    std = float(np.std(finite, ddof=1)) if finite.size > 1 else None
    return {"mean": float(finite.mean()), "std": std, "median": float(np.median(finite)), "n": int(finite.size)}


def _json_value(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def _check_grid(pred_path: Path, pred, ref_path: Path, ref, tolerance: float) -> None:
    """Same shape; affines equal within ``tolerance`` x the reference's smallest voxel size (as the
    case check of :mod:`medmodal.data.volumes.loading`)."""
    if pred.shape != ref.shape:
        raise CaseError(f"{pred_path}: shape {pred.shape} differs from its reference {ref_path} {ref.shape}")
    diff = float(np.abs(pred.affine - ref.affine).max())
    zooms = [tuple(round(float(z), 4) for z in img.header.get_zooms()[:3]) for img in (pred, ref)]
    allowed = tolerance * min(zooms[1])
    if diff > allowed:
        raise CaseError(f"{pred_path}: affine differs from its reference {ref_path} by up to {diff:.3g} mm "
                        f"(tolerance {tolerance:g} of a voxel; voxel sizes {zooms[0]} vs {zooms[1]} mm); resample "
                        f"the prediction onto the reference grid first")


def score_case(pred_path: Path, reference: Case, spec: DatasetSpec, pred_spec: DatasetSpec,
               protocol: EvaluationProtocol, et_min_voxels: int | None = None,
               affine_tolerance: float = DEFAULT_AFFINE_TOLERANCE) -> dict:
    """Scores of one prediction file against its reference case (see :func:`score_folders`)."""
    ref_img, pred_img = read_nifti(reference.label), read_nifti(pred_path)
    _check_grid(pred_path, pred_img, reference.label, ref_img, affine_tolerance)
    ref_spec = label_spec_for(reference, spec)
    ref_data, pred_data = np.asanyarray(ref_img.dataobj), np.asanyarray(pred_img.dataobj)
    check_label_values(reference.label, ref_data, ref_spec)
    if np.issubdtype(pred_data.dtype, np.floating) and not np.array_equal(pred_data, np.round(pred_data)):
        raise CaseError(f"{pred_path}: holds non-integer values; a prediction must be a label map "
                        f"(integer class values), not probabilities")
    try:
        check_label_values(pred_path, pred_data, pred_spec)
    except CaseError as err:
        raise CaseError(f"{err} (predictions are read as {pred_spec.name} labels: set --pred-labels)") from None
    spacing = tuple(float(z) for z in ref_img.header.get_zooms()[:3])
    scores = region_metrics(pred_spec.encode_labels(pred_data), ref_spec.encode_labels(ref_data), spec,
                            spacing=spacing, protocol=protocol, et_min_voxels=et_min_voxels)
    return {"case_id": reference.case_id, "protocol": protocol.name, **scores,
            "prediction": str(pred_path), "reference": str(reference.label)}


def _reference_convention(case: Case) -> str:
    """The dataset whose classes a reference's labels describe: its layout's convention, or for a
    ``dataset.json`` declaration the first known dataset whose classes the declaration fits."""
    if not case.declared_labels:
        return case.source_labels
    for name, candidate in SPECS.items():
        try:
            resolve_declared_labels(case.declared_labels, candidate)
        except ValueError:
            continue
        return name
    raise DataError(f"{case.extra.get('dataset_json', 'dataset.json')}: the declared labels "
                    f"{case.declared_labels} fit none of the known datasets ({', '.join(SPECS)})")


def _label_specs(references: Sequence[Case], labels: str | None, pred_labels: str | None
                 ) -> tuple[DatasetSpec, DatasetSpec]:
    """``(spec, prediction spec)``: the dataset of the references' label convention, and the
    convention the predictions are read in."""
    conventions = sorted({_reference_convention(c) for c in references})
    spec = get_spec(labels or conventions[0])
    for name in conventions:
        if get_spec(name).class_names != spec.class_names:
            raise ConfigError(f"references mix label conventions {conventions}; give labels (their convention)")
    pred_spec = get_spec(pred_labels) if pred_labels else spec
    if pred_spec.class_names != spec.class_names:
        raise ConfigError(f"prediction labels {pred_spec.name!r} do not describe the classes of the references' "
                          f"{spec.name!r} ({', '.join(spec.class_names)})")
    return spec, pred_spec


def score_folders(pred_dir: str | Path, ref_dir: str | Path, protocol: str | EvaluationProtocol = "auto",
                  out_dir: str | Path | None = None, labels: str | None = None, pred_labels: str | None = None,
                  layout: str = "auto", mapping: str | None = None, et_min_voxels: int | None = None,
                  affine_tolerance: float = DEFAULT_AFFINE_TOLERANCE,
                  on_case: Callable[[str, dict], None] | None = None) -> ScoreResult:
    """Score every prediction of ``pred_dir`` against its reference in ``ref_dir``; write the report.

    Args:
        pred_dir: folder of ``<case>.nii[.gz]`` label maps.
        ref_dir: reference folder in any known layout (see the module docstring).
        protocol: evaluation protocol name (``auto``: the dataset's reference protocol).
        out_dir: output folder (default ``<pred_dir>/score_<protocol>``).
        labels: label convention of the references (default: the layout's; ``brats2020`` for a
            flat folder); ``pred_labels``: of the predictions (default: ``labels``).
        layout, mapping: reference layout / globs, as for every other command.
        et_min_voxels: ET post-processing threshold (default: the protocol's).
        affine_tolerance: tolerance of the grid check, as a fraction of the reference's smallest voxel size.
        on_case: called with ``(case_id, row)`` after each case.

    Raises:
        DataError / LayoutError / CaseError / FileNotFoundError: no case in common, a grid
            mismatch or bad label values (naming the files).
        ConfigError: (``UnknownNameError``) the same folder twice, an unknown protocol or convention.
            All but ``FileNotFoundError`` are :class:`~medmodal.errors.InputError` (a ``ValueError``).
    """
    if Path(pred_dir).resolve() == Path(ref_dir).resolve():
        raise ConfigError(f"{Path(pred_dir).resolve()}: predictions and references are the same folder; every "
                          f"prediction would be scored against itself")
    predictions = discover_predictions(pred_dir)
    references = {c.case_id: c for c in discover_references(ref_dir, layout, mapping, labels)}
    spec, pred_spec = _label_specs(list(references.values()), labels, pred_labels)
    protocol = get_protocol(protocol, spec)
    columns = protocol.columns(spec)
    common = sorted(set(predictions) & set(references))
    missing_predictions = sorted(set(references) - set(predictions))
    missing_references = sorted(set(predictions) - set(references))
    if not common:
        hint = ""
        if all(c.layout == "flat" for c in references.values()):
            hint = (f"; {ref_dir} was read as a flat folder of label files (<case>.nii.gz, one per case): for a case "
                    f"folder whose files have other names give --map 'seg=*seg*.nii.gz'")
        raise DataError(f"no case id is in both {pred_dir} ({_preview(predictions)}) and {ref_dir} "
                        f"({_preview(references)}){hint}")
    rows = []
    for case_id in common:
        rows.append(score_case(predictions[case_id], references[case_id], spec, pred_spec, protocol,
                               et_min_voxels, affine_tolerance))
        on_case and on_case(case_id, rows[-1])
    metrics = ["Dice"] + [protocol.distance]
    summary = {
        "protocol": {"name": protocol.name, "summary": protocol.summary_for(et_min_voxels), "source": protocol.source,
                     "et_min_voxels": et_threshold(protocol, et_min_voxels) if protocol.et_postprocess != "none"
                     else None, "distance_unit": protocol.distance_unit},
        "dataset": spec.name, "prediction_labels": pred_spec.name,
        "prediction_folder": str(pred_dir), "reference_folder": str(ref_dir),
        "cases": len(rows),
        **{stat: {c: {m: _summary_stats([r[f"{m}_{c}"] for r in rows])[stat] for m in metrics} for c in columns}
           for stat in SUMMARY_STATS},
        "missing_predictions": missing_predictions, "missing_references": missing_references,
        "metric_per_case": [{"case_id": r["case_id"], "prediction": r["prediction"], "reference": r["reference"],
                             "metrics": {c: {m: _json_value(r[f"{m}_{c}"]) for m in metrics} for c in columns}}
                            for r in rows],
    }
    out = ensure_writable_dir(Path(out_dir) if out_dir else Path(pred_dir) / f"score_{protocol.name}")
    csv = write_rows_csv(rows, out / "per_case.csv", key_columns=("case_id", "protocol"))
    json_path = atomic_write_json(out / "summary.json", summary)
    markdown = summary_markdown(summary, columns, metrics)
    table = atomic_write_text(out / "summary.md", markdown)
    return ScoreResult(rows, summary, protocol, markdown, out, csv, json_path, table,
                       missing_predictions, missing_references)


def _preview(ids, n: int = 5) -> str:
    ids = sorted(ids)
    return ", ".join(ids[:n]) + (f", ... ({len(ids)} in all)" if len(ids) > n else "")


def _format(stats: dict, metric: str, column: str, key: str, scale: float) -> str:
    value = stats[key][column][metric]
    return "-" if value is None else f"{value * scale:.2f}"


def summary_markdown(summary: dict, columns: Sequence[str], metrics: Sequence[str]) -> str:
    """``summary.md``: protocol, one row per region (n, mean ± std, median per metric), unmatched cases."""
    unit = summary["protocol"]["distance_unit"]
    head = ["region"] + [f"{m} {'(%)' if m == 'Dice' else f'({unit})'} {s}" for m in metrics
                         for s in ("n", "mean ± std", "median")]
    cases = f"{summary['cases']} case{'' if summary['cases'] == 1 else 's'}"
    lines = [f"# Scores of {cases} - protocol `{summary['protocol']['name']}`", "",
             summary["protocol"]["summary"], "",
             "| " + " | ".join(head) + " |", "|:--|" + "--:|" * (len(head) - 1)]
    for column in columns:
        cells = [column]
        for metric in metrics:
            scale = 100.0 if metric == "Dice" else 1.0
            std = _format(summary, metric, column, "std", scale)
            cells += [str(summary["n"][column][metric]),
                      f"{_format(summary, metric, column, 'mean', scale)} ± {std}",
                      _format(summary, metric, column, "median", scale)]
        lines.append("| " + " | ".join(cells) + " |")
    for key, what in (("missing_predictions", "reference cases without a prediction (not scored)"),
                      ("missing_references", "predictions without a reference (not scored)")):
        if summary[key]:
            lines += ["", f"{len(summary[key])} {what}: {', '.join(summary[key])}"]
    return "\n".join(lines) + "\n"
