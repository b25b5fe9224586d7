"""One entry point over the chest X-ray layouts: :func:`read_studies` (``medmodal cxr reports``).

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
from medmodal.data.layouts import Layout, find_layout, known_layouts, layout_reader, layout_readers, register_layout
from medmodal.errors import ConfigError, LayoutError

LAYOUTS = ("auto", "mimic", "iu", "openi", "csv")
#: Key of these readers in :mod:`medmodal.data.layouts`.
FAMILY = "cxr"


def _mimic(path: Path) -> Path | None:
    return path if path.is_dir() and is_mimic_root(path) else None


def _iu(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix.lower() == ".json" else None
    return path / "annotation.json" if (path / "annotation.json").is_file() else None


def _openi(path: Path) -> Path | None:
    if path.is_file():
        return path if path.name == REPORTS_NAME else None
    return path / REPORTS_NAME if (path / REPORTS_NAME).is_file() else None


def _csv(path: Path) -> Path | None:
    return path if path.is_file() and path.suffix.lower() == ".csv" else None


# Detection order: a MIMIC-CXR folder, an IU annotation.json, an Open-i indiana_reports.csv, any CSV.
for _layout in (Layout(FAMILY, "mimic", read_mimic_cxr, _mimic), Layout(FAMILY, "iu", read_iu_annotation, _iu),
                Layout(FAMILY, "openi", read_openi_csv, _openi), Layout(FAMILY, "csv", read_csv_table, _csv)):
    register_layout(_layout)


def detect_layout(path: str | Path) -> tuple[str, Path]:
    """``(layout, the file or folder to read)`` for ``path`` (the first registered reader of
    :mod:`medmodal.data.layouts` that recognises it).

    Raises:
        CXRDataError: nothing recognisable at ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise CXRDataError(f"{path}: not found")
    found = find_layout(FAMILY, path)
    if found is not None:
        return found
    if path.is_file():
        raise CXRDataError(f"{path}: not a known chest X-ray layout file (annotation .json, {REPORTS_NAME}, .csv)")
    raise CXRDataError(f"{path}: no MIMIC-CXR tables (mimic-cxr-2.0.0-metadata.csv[.gz]), annotation.json or "
                       f"{REPORTS_NAME} found; give --layout and a file")


#: layout -> reader function (the registered readers' ``read``).
READERS = {reader.name: reader.read for reader in layout_readers(FAMILY)}


def read_studies(path: str | Path, layout: str = "auto", **options) -> ReadResult:
    """Read ``path`` with the reader of ``layout``; options a reader does not take are refused if set.

    Common options: ``views`` (frontal | all), ``rows`` (image | study), ``check_images``,
    ``skip_bad``; per layout: ``reports_root`` / ``merge_val_test`` (mimic), ``image_root`` /
    ``projections`` (iu, openi, csv), column names (csv).

    Raises:
        LayoutError: an unknown layout. ConfigError: an option set that the layout's reader does not take.
    """
    if layout not in known_layouts(FAMILY, LAYOUTS):
        raise LayoutError(f"unknown layout {layout!r}; choose one of {', '.join(known_layouts(FAMILY, LAYOUTS))}")
    detected, target = detect_layout(path)
    if layout == "auto":
        layout = detected
    elif layout in ("iu", "openi") and Path(path).is_dir():
        target = target if detected == layout else Path(path)
    else:
        target = Path(path)
    reader = layout_reader(FAMILY, layout).read
    accepted = set(inspect.signature(reader).parameters)
    unused = sorted(k for k, v in options.items() if v is not None and k not in accepted)
    if unused:
        raise ConfigError(f"the {layout} layout does not take {', '.join(unused)}")
    return reader(target, **{k: v for k, v in options.items() if v is not None and k in accepted})
