"""One entry point over the chest X-ray layouts: :func:`read_studies` (``medmodal data cxr-reports``).

Layouts (``layout="auto"`` picks by what the path holds):

=============  =============================================================================
``mimic``      a MIMIC-CXR-JPG folder (``mimic-cxr-2.0.0-metadata.csv[.gz]`` inside) + reports
``iu``         an IU X-ray ``annotation.json`` (R2Gen or flat names), or a folder holding one
``openi``      ``indiana_reports.csv`` (+ ``indiana_projections.csv``), or a folder holding it
``csv``        any other CSV: the generic image-report table (:mod:`medmodal.data.cxr.table`)
=============  =============================================================================
"""

from __future__ import annotations

import inspect
from pathlib import Path

from medmodal.data.cxr.iu import REPORTS_NAME, read_iu_annotation, read_openi_csv
from medmodal.data.cxr.mimic import is_mimic_root, read_mimic_cxr
from medmodal.data.cxr.records import CXRDataError, ReadResult
from medmodal.data.cxr.table import read_csv_table
from medmodal.errors import ConfigError

LAYOUTS = ("auto", "mimic", "iu", "openi", "csv")


def detect_layout(path: str | Path) -> tuple[str, Path]:
    """``(layout, the file or folder to read)`` for ``path``.

    Raises:
        CXRDataError: nothing recognisable at ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise CXRDataError(f"{path}: not found")
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "iu", path
        if path.name == REPORTS_NAME:
            return "openi", path
        if path.suffix.lower() == ".csv":
            return "csv", path
        raise CXRDataError(f"{path}: not a known chest X-ray layout file (annotation .json, {REPORTS_NAME}, .csv)")
    if is_mimic_root(path):
        return "mimic", path
    if (path / "annotation.json").is_file():
        return "iu", path / "annotation.json"
    if (path / REPORTS_NAME).is_file():
        return "openi", path / REPORTS_NAME
    raise CXRDataError(f"{path}: no MIMIC-CXR tables (mimic-cxr-2.0.0-metadata.csv[.gz]), annotation.json or "
                       f"{REPORTS_NAME} found; give --layout and a file")


READERS = {"mimic": read_mimic_cxr, "iu": read_iu_annotation, "openi": read_openi_csv, "csv": read_csv_table}


def read_studies(path: str | Path, layout: str = "auto", **options) -> ReadResult:
    """Read ``path`` with the reader of ``layout``; options a reader does not take are refused if set.

    Common options: ``views`` (frontal | all), ``rows`` (image | study), ``check_images``,
    ``skip_bad``; per layout: ``reports_root`` / ``merge_val_test`` (mimic), ``image_root`` /
    ``projections`` (iu, openi, csv), column names (csv).

    Raises:
        ValueError: an unknown layout, or an option set that the layout's reader does not take.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    detected, target = detect_layout(path)
    if layout == "auto":
        layout = detected
    elif layout in ("iu", "openi") and Path(path).is_dir():
        target = target if detected == layout else Path(path)
    else:
        target = Path(path)
    reader = READERS[layout]
    accepted = set(inspect.signature(reader).parameters)
    unused = sorted(k for k, v in options.items() if v is not None and k not in accepted)
    if unused:
        raise ConfigError(f"the {layout} layout does not take {', '.join(unused)}")
    return reader(target, **{k: v for k, v in options.items() if v is not None and k in accepted})
