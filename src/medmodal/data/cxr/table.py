"""A generic CSV of image-report pairs, and the study table ``medmodal cxr reports`` writes.

Generic CSV (:func:`read_csv_table`): one row per image (or several images separated by
``;``), with columns found by name, case-insensitively, unless given:

* image (required): ``image``, ``image_path``, ``path``, ``filename``, ``file``, ``image_paths``;
  relative paths are relative to ``image_root`` (default: the CSV's folder);
* report (required, unless findings / impression columns exist): ``report``, ``text``;
  ``findings`` and ``impression`` columns are read as those sections (the undivided report
  otherwise goes to ``findings``);
* optional: study (``study_id``, ``study``, ``uid``, ``id``; default: the image file's stem),
  patient (``patient_id``, ``patient``, ``subject_id``; default: the study, with a note), split
  (``split``: train / val / test, also validate / valid), view (``view``, ``view_position``,
  ``view_positions``, ``ViewPosition``, ``projection``), labels: the ``label_cols`` given, or
  every column named ``label:<finding>`` (1 / 0 / -1 / blank).

Rows of the same study must carry the same report. ``views="frontal"`` needs a view column.

Study table (:func:`write_study_table`): ``study_id, patient_id, split, image_paths,
view_positions, findings, impression, num_sentences, label:<finding>...``, images and views
``;``-separated; it is itself a generic CSV, so it reads back with :func:`read_csv_table`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from medmodal.data.cxr.images import resolve_image_check
from medmodal.data.cxr.records import (DROP_NO_IMAGE_LEFT, CXRDataError, ReadResult, Study, check_row_options,
                                       decode_lenient, has_undecodable, is_frontal, make_rows, parse_label)
from medmodal.data.cxr.text import check_report, report_text, split_report_into_sentences, too_short
from medmodal.io import atomic_write_text

COLUMN_NAMES = {
    "image": ("image", "image_path", "path", "filename", "file", "image_paths"),
    "report": ("report", "text"),
    "findings": ("findings",),
    "impression": ("impression",),
    "study": ("study_id", "study", "uid", "id"),
    "patient": ("patient_id", "patient", "subject_id"),
    "split": ("split",),
    "view": ("view", "view_position", "view_positions", "viewposition", "projection"),
}
SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validate": "val", "validation": "val",
                 "test": "test"}
LABEL_PREFIX = "label:"
DROP_SHORT = "report has fewer than 3 tokens"
EXCLUDE_VIEW = "view not frontal"


def _column(fields: Sequence[str], given: str | None, kind: str, path: Path) -> str | None:
    if given is not None:
        if given not in fields:
            raise CXRDataError(f"{path}: no column {given!r} (columns: {', '.join(fields)})")
        return given
    lower = {f.lower().strip(): f for f in fields}
    return next((lower[n] for n in COLUMN_NAMES[kind] if n in lower), None)


def read_csv_table(path: str | Path, *, image_col: str | None = None, report_col: str | None = None,
                   findings_col: str | None = None, impression_col: str | None = None, study_col: str | None = None,
                   patient_col: str | None = None, split_col: str | None = None, view_col: str | None = None,
                   label_cols: Sequence[str] | None = None, image_root: str | Path | None = None,
                   views: str = "all", rows: str = "image", check_images: bool = True,
                   skip_bad: bool = False) -> ReadResult:
    """Read a generic image-report CSV (module docstring).

    Raises:
        CXRDataError: no image or report column, an unknown column name, a bad label value, a
            study whose rows disagree on the report; bad rows (blank report, non-UTF-8 text,
            missing, unreadable or truncated image: ``check_images`` as
            :func:`medmodal.data.cxr.mimic.read_mimic_cxr`) unless ``skip_bad``.
    """
    check_row_options(views, rows)
    path = Path(path)
    reader = csv.DictReader(io.StringIO(decode_lenient(path)))
    fields = list(reader.fieldnames or [])
    table = list(reader)
    col = {"image": _column(fields, image_col, "image", path), "report": _column(fields, report_col, "report", path),
           "findings": _column(fields, findings_col, "findings", path),
           "impression": _column(fields, impression_col, "impression", path),
           "study": _column(fields, study_col, "study", path), "patient": _column(fields, patient_col, "patient", path),
           "split": _column(fields, split_col, "split", path), "view": _column(fields, view_col, "view", path)}
    if col["image"] is None:
        raise CXRDataError(f"{path}: no image column (name one of {', '.join(COLUMN_NAMES['image'])}, or give it: "
                           f"--image-col / image_col=)")
    if col["report"] is None and col["findings"] is None and col["impression"] is None:
        raise CXRDataError(f"{path}: no report column (report, text, or findings / impression; or give it: "
                           f"--report-col / report_col=)")
    if views == "frontal" and col["view"] is None:
        raise CXRDataError(f"{path}: views='frontal' needs a view column (view, view_position, projection)")
    labels = list(label_cols) if label_cols is not None else [f for f in fields if f.startswith(LABEL_PREFIX)]
    for name in labels:
        if name not in fields:
            raise CXRDataError(f"{path}: no label column {name!r}")
    image_root = Path(image_root) if image_root is not None else path.parent
    result = ReadResult(image_check=resolve_image_check(check_images))
    if col["patient"] is None:
        result.note(f"{path}: no patient column: each study is taken as its own patient")

    groups: dict[str, list[tuple[int, dict]]] = {}
    for line, row in enumerate(table, start=2):
        names = [n.strip() for n in (row[col["image"]] or "").split(";") if n.strip()]
        study = (row[col["study"]] or "").strip() if col["study"] else (Path(names[0]).stem if names else "")
        groups.setdefault(study or f"line{line}", []).append((line, row))

    for study, members in groups.items():
        line, first = members[0]
        where = f"{path}: line {line}"
        if has_undecodable(*(v for _, r in members for v in r.values())):
            result.bad(CXRDataError(f"{where}: not UTF-8 text"), skip_bad, path)
            continue
        get = (lambda r, k: (r[col[k]] or "").strip() if col[k] else "")
        if col["findings"] or col["impression"]:
            findings, impression = get(first, "findings"), get(first, "impression")
            if not (findings or impression) and col["report"]:
                findings = get(first, "report")
        else:
            findings, impression = get(first, "report"), ""
        texts = {(get(r, "findings"), get(r, "impression"), get(r, "report")) for _, r in members}
        if len(texts) > 1:
            raise CXRDataError(f"{where}: rows of study {study} carry different reports")
        try:
            check_report(report_text(findings, impression), where)
        except CXRDataError as err:
            result.bad(err, skip_bad, path)
            continue
        sentences = split_report_into_sentences(report_text(findings, impression))
        if too_short(sentences):
            result.dropped[DROP_SHORT] += 1
            continue
        try:
            label_values = {n[len(LABEL_PREFIX):] if n.startswith(LABEL_PREFIX) else n: parse_label(first[n])
                            for n in labels} if labels else None
        except ValueError as err:
            raise CXRDataError(f"{where}: {err}") from None
        split = None
        if col["split"] and get(first, "split"):
            split = SPLIT_ALIASES.get(get(first, "split").lower())
            if split is None:
                raise CXRDataError(f"{where}: unknown split {get(first, 'split')!r} (train, val or test)")
        images = []
        for _, row in members:
            names = [n.strip() for n in (row[col["image"]] or "").split(";") if n.strip()]
            row_views = [v.strip() for v in get(row, "view").split(";")] if col["view"] else []
            row_views = row_views if len(row_views) == len(names) else [get(row, "view")] * len(names)
            images += [(image_root / n, v) for n, v in zip(names, row_views)]
        selected = [(p, v) for p, v in images if views == "all" or is_frontal(v)]
        if not images:
            result.bad(CXRDataError(f"{where}: no image path"), skip_bad, path)
            continue
        bad = result.bad_image([p for p, _ in selected], where)
        if bad is not None:
            result.bad(bad[1], skip_bad, path)
            continue
        if not selected:
            result.dropped[DROP_NO_IMAGE_LEFT] += 1
            continue
        patient = get(first, "patient") or study
        template = Study(study_id=study, patient_id=patient, image_paths=[], view_positions=[], findings=findings,
                         impression=impression, sentences=sentences, split=split, labels=label_values, source=path)
        result.studies.extend(make_rows(template, selected, rows))
        if len(images) > len(selected):
            result.excluded[EXCLUDE_VIEW] += len(images) - len(selected)
    return result


def write_study_table(studies: Sequence[Study], path: str | Path, relative_to: str | Path | None = None) -> Path:
    """Write the study table (module docstring) atomically; image paths relative to ``relative_to`` if given."""
    from medmodal.data.cxr.dataset import label_names_of

    names = label_names_of(studies)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["study_id", "patient_id", "split", "image_paths", "view_positions", "findings", "impression",
                     "num_sentences", *(LABEL_PREFIX + n for n in names)])
    base = Path(relative_to).resolve() if relative_to is not None else None

    def shown(p: Path) -> str:
        if base is not None:
            try:
                return Path(p).resolve().relative_to(base).as_posix()
            except ValueError:
                pass
        return str(p)

    for s in studies:
        labels = s.labels or {}
        writer.writerow([s.study_id, s.patient_id, s.split or "", ";".join(shown(p) for p in s.image_paths),
                         ";".join(s.view_positions), s.findings, s.impression, len(s.sentences),
                         *("" if labels.get(n) is None else labels[n] for n in names)])
    return atomic_write_text(path, buffer.getvalue())
