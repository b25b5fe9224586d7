"""Per-subset result tables.

Evaluating a model on every subset of sequences gives one *row* per (case, subset)::

    {"case_id": "BraTS20_Training_001", "subset": "flair+t1ce", "Dice_WT": 0.91, ..., "HD95_ET": 2.2}

* :func:`write_rows_csv` / :func:`read_rows_csv` - store rows as CSV (atomic write).
* :func:`subset_table` - mean over cases per subset (papers' order, see
  :func:`medmodal.data.missing.all_subsets`), plus an ``"Average"`` row.
* :func:`markdown_subset_table` - the papers' layout: one ●/○ column per sequence, one column
  per region, one row per subset, then the average.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from medmodal.data.missing import all_subsets, parse_subset, subset_name
from medmodal.errors import DataError
from medmodal.io import atomic_write_text

#: Columns of a row that identify it; every other column is a metric value.
KEY_COLUMNS = ("case_id", "subset")
AVERAGE = "Average"
PRESENT, ABSENT = "●", "○"

_DISPLAY_NAMES = {
    "flair": "FLAIR", "t1": "T1", "t1ce": "T1ce", "t1c": "T1c", "t1gd": "T1Gd", "t2": "T2",
    "t1n": "T1n", "t2w": "T2w", "t2f": "T2-FLAIR", "adc": "ADC", "dwi": "DWI", "ct": "CT", "pet": "PET",
    "c0": "C0", "de": "DE",  # MyoPS: bSSFP cine, LGE (delayed enhancement); "t2" as above
}


def display_name(modality: str) -> str:
    """Readable sequence name: ``"flair"`` -> ``"FLAIR"``, ``"t1ce"`` -> ``"T1ce"``."""
    return _DISPLAY_NAMES.get(modality.lower(), modality[:1].upper() + modality[1:])


def display_subset(mask: Sequence[bool], modalities: Sequence[str]) -> str:
    """Readable subset label, e.g. ``"FLAIR+T1ce"``."""
    return "+".join(display_name(m) for m, present in zip(modalities, mask) if present)


def write_rows_csv(rows: Sequence[dict], path: str | Path, key_columns: Sequence[str] = KEY_COLUMNS) -> Path:
    """Write rows to ``path`` (atomic). Columns: ``key_columns`` (default ``case_id, subset``), then
    every other key in first-seen order; floats at full precision."""
    columns = list(key_columns)
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return atomic_write_text(Path(path), buffer.getvalue())


def _cell(value) -> str:
    """Numbers at full precision (``repr`` round-trips floats exactly), anything else as text."""
    if isinstance(value, (float, int, np.floating, np.integer)) and not isinstance(value, bool):
        return repr(float(value))
    return str(value)


def _parse(value: str) -> float | str:
    if value == "":
        return math.nan
    try:
        return float(value)
    except ValueError:
        return value


def read_rows_csv(path: str | Path) -> list[dict]:
    """Read rows written by :func:`write_rows_csv`; numeric values become floats (blank -> NaN)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metrics CSV not found")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in KEY_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: columns {missing} missing (header: {reader.fieldnames})")
        return [{k: v if k in KEY_COLUMNS else _parse(v) for k, v in raw.items()} for raw in reader]


def _nanmean(values: Iterable[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def subset_table(rows: Sequence[dict], modalities: Sequence[str], regions: Sequence[str],
                 metric: str = "Dice") -> list[dict]:
    """Mean of ``<metric>_<region>`` over cases, per subset.

    Rows are matched to subsets by sequence names (``"t1ce+flair"`` counts as ``"flair+t1ce"``).
    Missing or NaN values are left out of the means; a subset without rows gets NaN.

    Returns:
        ``2**M - 1`` dicts in :func:`~medmodal.data.missing.all_subsets` order, each
        ``{"subset": name, "mask": (bool, ...), "cases": n, <region>: mean, ...}``, then
        ``{"subset": "Average", "mask": None, "cases": n_distinct_cases, <region>: ...}``,
        the mean over the subsets that have values.
    """
    by_subset: dict[tuple[bool, ...], list[dict]] = defaultdict(list)
    for row in rows:
        by_subset[parse_subset(row["subset"], modalities)].append(row)
    table = []
    for mask in all_subsets(len(modalities)):
        group = by_subset.get(mask, [])
        entry = {"subset": subset_name(mask, modalities), "mask": mask, "cases": len(group)}
        for region in regions:
            entry[region] = _nanmean(float(r.get(f"{metric}_{region}", math.nan)) for r in group)
        table.append(entry)
    average = {"subset": AVERAGE, "mask": None, "cases": len({r["case_id"] for r in rows})}
    for region in regions:
        average[region] = _nanmean(entry[region] for entry in table)
    return table + [average]


def _format(value: float, scale: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value * scale:.{digits}f}"


def markdown_subset_table(rows: Sequence[dict], modalities: Sequence[str], regions: Sequence[str],
                          metric: str = "Dice", scale: float | None = None, digits: int = 2) -> str:
    """Markdown table in the papers' layout (no trailing newline).

    Columns: one per sequence (● present, ○ absent), then one per region; rows: the ``2**M - 1``
    subsets in :func:`~medmodal.data.missing.all_subsets` order, then ``Average`` (written in
    the first column). Values are means over cases times ``scale`` (default: 100 for Dice, i.e.
    percent, 1 otherwise, e.g. HD95 in mm); missing values show as ``-``.
    """
    if scale is None:
        scale = 100.0 if metric == "Dice" else 1.0
    header = [display_name(m) for m in modalities] + list(regions)
    lines = ["| " + " | ".join(header) + " |",
             "|" + ":-:|" * len(modalities) + "--:|" * len(regions)]
    for entry in subset_table(rows, modalities, regions, metric):
        if entry["mask"] is None:
            markers = [AVERAGE] + [""] * (len(modalities) - 1)
        else:
            markers = [PRESENT if present else ABSENT for present in entry["mask"]]
        values = [_format(entry[region], scale, digits) for region in regions]
        lines.append("| " + " | ".join(markers + values) + " |")
    return "\n".join(lines)


def mean_std(values: Iterable[float], digits: int = 1, scale: float = 1.0, ddof: int = 0, std: bool = True) -> str:
    """``"mean ± std"`` of the defined (non-NaN) values times ``scale`` (``"-"`` when none; the mean
    alone for one value or ``std=False``); ``ddof``: 0 = population std (numpy's default), 1 = sample std."""
    values = [float(v) * scale for v in values if not math.isnan(float(v))]
    if not values:
        return "-"
    mean = float(np.mean(values))
    if len(values) == 1 or not std:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {float(np.std(values, ddof=ddof)):.{digits}f}"


def csv_text(rows: Sequence[dict]) -> str:
    """``rows`` as CSV text; columns in order of first appearance, missing cells empty."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
