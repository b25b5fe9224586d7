"""IU X-ray (Indiana University / Open-i) in the layouts users hold.

1. **R2Gen** ``annotation.json``: ``{"train"|"val"|"test": [{"id": "CXR2384_IM-0942",
   "report": ..., "image_path": ["CXR2384_IM-0942/0.png", "CXR2384_IM-0942/1.png"],
   "split": ...}]}`` with the images under ``images/``. R2Gen records no view position. With
   ``indiana_projections.csv`` (given, or found next to the annotation file or in its parent
   folder) the views are read from it: the id is the original file name without its last part
   (``CXR2384_IM-0942`` -> ``2384_IM-0942-1001.dcm.png``, ``2384_IM-0942-2001.dcm.png``) and
   ``<k>.png`` is taken as the study's k-th file in file-name order (the order the flat-name
   annotations list them); in the real annotation 296 of 2,955 studies list a lateral first
   (286 then a frontal, which is kept; 10 two laterals, dropped). A study whose file count there differs from its images
   (155 real studies), and every study without the table, keeps the common convention (image
   ``0.png`` taken as frontal, as report-generation code using one IU image does), and a note
   says how many studies' views could not be checked. ``views="all"`` keeps every image.
2. **Flat names** (``annotation.json`` of MRG_RL and others): the same lists with the original
   NLMCXR_png names ``CXR<uid>_IM-<series>-<k>.png`` directly under ``images/``. Views come from
   Open-i's ``indiana_projections.csv`` when given (or found next to the annotation file or in
   its parent folder); without it the views are unknown and every image is kept, with a note.
   A top-level *list* of entries is read too, the split then coming from each entry's
   ``split`` field (or a ``split_*`` field such as ``split_in_MRG_RL``).
3. **Open-i CSV pair** (:func:`read_openi_csv`): ``indiana_reports.csv`` (``uid, MeSH, Problems,
   image, indication, comparison, findings, impression``) + ``indiana_projections.csv``
   (``uid, filename, projection``), images ``<uid>_IM-....dcm.png`` under
   ``images/images_normalized/`` (the Kaggle copy) or ``images/``. It has FINDINGS and
   IMPRESSION separately; a study with neither is dropped and counted (as MIMIC); no official
   split (split ``None``: use :func:`medmodal.data.cxr.splits.assign_patient_splits`); labels
   from the MeSH terms (:func:`medmodal.data.cxr.findings.labels_from_mesh`).

Split keys ``train`` / ``val`` / ``test`` (also ``valid``, ``validation``); a blank key (the
real R2Gen copy in the shared data stores its test list under ``"    "``, four spaces) is
tolerated: its split is read from the entries' ``split`` field, and a note says so. IU X-ray
has no patient identifiers: each study is its own patient (``patient_id = study_id``), which
is also how R2Gen splits it. The undivided ``report`` text is stored as the study's
``findings``. ``labels.csv`` next to the annotation file (written by ``medmodal cxr
synth``: ``image_path`` relative to ``images/`` + one column per finding, 1 / 0 / -1 /
blank) is attached when present.

Bad input (:class:`~medmodal.data.cxr.records.CXRDataError`, or skipped and named under
``skip_bad``): invalid JSON, an entry without id / report / images, a report that is empty or
only ``XXXX``, non-UTF-8 text in an entry, an image file that is missing, unreadable or truncated. Reports with fewer
than three tokens are dropped and counted.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Optional

from medmodal.data.cxr.images import resolve_image_check
from medmodal.data.cxr.records import (DROP_NO_IMAGE_LEFT, CXRDataError, ReadResult, Study, check_row_options,
                                       decode_lenient, has_undecodable, is_frontal, make_rows, parse_label)
from medmodal.data.cxr.text import check_report, report_text, split_report_into_sentences, too_short

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "validate": "val", "test": "test", "testing": "test"}
PROJECTIONS_NAME = "indiana_projections.csv"
REPORTS_NAME = "indiana_reports.csv"
LABELS_NAME = "labels.csv"
DROP_SHORT = "report has fewer than 3 tokens"
EXCLUDE_VIEW = "view not frontal"
EXCLUDE_VIEW_UNKNOWN = "view unknown"
DROP_NO_SECTIONS = "no FINDINGS or IMPRESSION"
DROP_NO_IMAGE = "no image listed"


def _note_no_patient_ids(path: Path, result: ReadResult) -> None:
    result.note(f"{path}: IU X-ray has no patient ids: patient_id is the study id (each study its own patient, "
                f"so a split by patient is a split by study)")


def _image_key(name: str) -> str:
    """Open-i key of an NLMCXR image name.

    ``CXR12_IM-0001-1001.png`` and ``12_IM-0001-1001.dcm.png`` both give ``12_IM-0001-1001``.
    """
    base = Path(name).name
    base = re.sub(r"(\.dcm)?\.png$", "", base, flags=re.IGNORECASE)
    return base[3:] if base.upper().startswith("CXR") else base


def read_projections(path: str | Path) -> dict[str, str]:
    """``indiana_projections.csv`` -> {image key: projection} (keys as :func:`_image_key`)."""
    path = Path(path)
    table = list(csv.DictReader(io.StringIO(decode_lenient(path))))
    if table and not {"filename", "projection"} <= set(table[0]):
        raise CXRDataError(f"{path}: expected columns uid, filename, projection; got {', '.join(table[0])}")
    return {_image_key(row["filename"]): (row["projection"] or "").strip() for row in table}


def _find_beside(path: Path, name: str) -> Optional[Path]:
    for folder in (path.parent, path.parent.parent):
        if (folder / name).is_file():
            return folder / name
    return None


def _split_of_key(key: str, entries: list, path: Path, result: ReadResult) -> list[Optional[str]]:
    """Split of every entry of the list stored under ``key``."""
    name = SPLIT_ALIASES.get(key.strip().lower())
    if name is not None:
        return [name] * len(entries)
    if key.strip():
        raise CXRDataError(f"{path}: unknown split key {key!r} (expected train, val or test)")
    if not entries:
        result.note(f"{path}: the list under the blank key {key!r} ({len(key)} spaces) is empty")
        return []
    found = [SPLIT_ALIASES.get(str(e.get("split", "")).strip().lower()) if isinstance(e, dict) else None
             for e in entries]
    if any(f is None for f in found):
        raise CXRDataError(f"{path}: the list under the blank key {key!r} has entries without a train/val/test "
                           f"'split' field")
    result.note(f"{path}: the list under the key {key!r} ({len(key)} spaces) is read with its entries' 'split' "
                f"field ({', '.join(sorted(set(found)))})")
    return found


def _entry_split(entry: dict, path: Path, result: ReadResult) -> Optional[str]:
    for key, value in entry.items():
        if key == "split" or key.startswith("split_"):
            if key != "split":
                result.note(f"{path}: a list of entries: split read from their {key!r} field")
            return SPLIT_ALIASES.get(str(value).strip().lower())
    return None


def read_labels_csv(path: str | Path) -> dict[str, dict]:
    """``labels.csv`` (``image_path`` + one column per finding) -> {image_path: labels}."""
    path = Path(path)
    rows = list(csv.DictReader(io.StringIO(decode_lenient(path))))
    if rows and "image_path" not in rows[0]:
        raise CXRDataError(f"{path}: expected an 'image_path' column")
    out = {}
    for n, row in enumerate(rows, start=2):
        try:
            out[row["image_path"]] = {k: parse_label(v) for k, v in row.items() if k != "image_path"}
        except ValueError as err:
            raise CXRDataError(f"{path}: line {n}: {err}") from None
    return out


def _load_json(path: Path):
    try:
        return json.loads(decode_lenient(path))
    except json.JSONDecodeError as err:
        raise CXRDataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None


def read_iu_annotation(path: str | Path, image_root: str | Path | None = None, *, views: str = "frontal",
                       rows: str = "image", projections: str | Path | None = None, check_images: bool = True,
                       skip_bad: bool = False, labels: str | Path | None = "auto") -> ReadResult:
    """Read an IU X-ray ``annotation.json`` in the R2Gen or flat-name layout (module docstring).

    Args:
        path: the annotation JSON.
        image_root: folder the ``image_path`` entries are relative to (default
            ``<annotation folder>/images``).
        views: ``"frontal"`` (default) or ``"all"``.
        rows: ``"image"`` (one row per image) or ``"study"``.
        projections: ``indiana_projections.csv``, the views of flat names and of the R2Gen layout (default:
            found beside the file or in its parent folder).
        check_images: the check of every selected image (off to read the text of an annotation
            file without its images): ``True`` / ``"verify"`` (exists, header, complete file),
            ``"decode"``, ``"exists"``, ``False``; see :func:`medmodal.data.cxr.images.image_problem`.
        skip_bad: skip and record bad entries instead of raising.
        labels: ``labels.csv`` path, ``"auto"`` (beside the annotation file if present) or ``None``.

    Returns:
        :class:`ReadResult`; ``dropped`` counts studies with short reports or every image excluded,
        ``excluded`` non-frontal images (and, with flat names, images of unknown view).

    Raises:
        CXRDataError: bad file or (without ``skip_bad``) a bad entry, naming the file.
    """
    check_row_options(views, rows)
    path = Path(path)
    image_root = Path(image_root) if image_root is not None else path.parent / "images"
    data = _load_json(path)
    result = ReadResult(image_check=resolve_image_check(check_images))
    _note_no_patient_ids(path, result)
    if isinstance(data, dict):
        groups = [(entries, _split_of_key(key, entries, path, result)) for key, entries in data.items()
                  if isinstance(entries, list)]
        if not groups:
            raise CXRDataError(f"{path}: no train/val/test lists of entries")
    elif isinstance(data, list):
        groups = [(data, [_entry_split(e, path, result) if isinstance(e, dict) else None for e in data])]
    else:
        raise CXRDataError(f"{path}: expected a JSON object of split lists or a list of entries")

    if labels == "auto":
        labels = path.parent / LABELS_NAME if (path.parent / LABELS_NAME).is_file() else None
    label_table = read_labels_csv(labels) if labels is not None else {}
    proj_table, proj_path = None, None
    r2gen = Counter()  # R2Gen-layout studies: checked / lateral_first / unchecked
    proj_index: dict[str, list[tuple[str, str]]] = {}

    for entries, splits in groups:
        for number, (entry, split) in enumerate(zip(entries, splits)):
            where = f"{path}: entry {entry.get('id', number) if isinstance(entry, dict) else number}"
            if not isinstance(entry, dict) or not {"id", "report", "image_path"} <= set(entry):
                result.bad(CXRDataError(f"{where}: expected keys id, report, image_path"), skip_bad, path)
                continue
            study_id, report = str(entry["id"]), entry["report"]
            names = entry["image_path"] if isinstance(entry["image_path"], list) else [entry["image_path"]]
            if has_undecodable(study_id, report, *names):
                result.bad(CXRDataError(f"{where}: not UTF-8 text"), skip_bad, path)
                continue
            try:
                check_report(report if isinstance(report, str) else "", where)
            except CXRDataError as err:
                result.bad(err, skip_bad, path)
                continue
            sentences = split_report_into_sentences(report_text(report, ""))
            if too_short(sentences):
                result.dropped[DROP_SHORT] += 1
                continue
            excluded = Counter()  # added to result.excluded only if the study is kept
            if proj_table is None:
                proj_path = Path(projections) if projections is not None else _find_beside(path, PROJECTIONS_NAME)
                proj_table = read_projections(proj_path) if proj_path is not None else {}
                for key, view in proj_table.items():  # study prefix (name less its last part) -> files
                    proj_index.setdefault(key.rsplit("-", 1)[0], []).append((key, view))
            if proj_path is None and any(not ("/" in n or "\\" in n) for n in names):
                result.note(f"{path}: flat image names without {PROJECTIONS_NAME}: view positions unknown, "
                            f"every image is kept (give the projections table to keep frontal views only)")
            images = _select_images(study_id, names, views, proj_index, r2gen, excluded)
            if images is None:  # flat names: views from the projections table
                images = []
                for name in names:
                    view = proj_table.get(_image_key(name), "")
                    if views == "frontal" and proj_table and not is_frontal(view):
                        excluded[EXCLUDE_VIEW if view else EXCLUDE_VIEW_UNKNOWN] += 1
                        continue
                    images.append((name, view))
            bad = result.bad_image([image_root / n for n, _ in images], where)
            if bad is not None:
                result.bad(bad[1], skip_bad, path)
                continue
            if not images:
                result.dropped[DROP_NO_IMAGE_LEFT] += 1
                continue
            template = Study(study_id=study_id, patient_id=study_id, image_paths=[], view_positions=[],
                             findings=report.strip(), impression="", sentences=sentences, split=split, source=path)
            for row in make_rows(template, [(image_root / n, v) for n, v in images], rows):
                rel = [p.relative_to(image_root).as_posix() for p in row.image_paths]
                if label_table:
                    row.labels = label_table.get(rel[0])
                result.studies.append(row)
            result.excluded.update(excluded)
    _note_r2gen_views(path, proj_path, r2gen, result)
    return result


#: written beside ``annotation.json`` by :func:`medmodal.data.cxr.synthetic.synth_cxr` (frontal views only)
SYNTHETIC_MARKER = "synth_meta.json"


def _note_r2gen_views(path: Path, proj_path: Optional[Path], r2gen: Counter, result: ReadResult) -> None:
    studies = r2gen["checked"] + r2gen["unchecked"]
    if not studies:
        return
    if proj_path is None and (path.parent / SYNTHETIC_MARKER).is_file():
        return  # drawn by medmodal cxr synth: every image is a frontal view, nothing to check
    if proj_path is None:
        result.note(f"{path}: the R2Gen layout records no view position and no {PROJECTIONS_NAME} was given or "
                    f"found beside it: image 0 of each study is taken as the frontal view; the views of "
                    f"{r2gen['unchecked']} of {studies} studies cannot be checked (give the projections table to "
                    f"check them; views='all' keeps every image)")
        return
    result.note(f"{path}: R2Gen views read from {proj_path} (<k>.png = the study's k-th file in file-name order): "
                f"{r2gen['checked']} of {studies} studies checked, {r2gen['lateral_first']} of them list a lateral "
                f"image first")
    if r2gen["unchecked"]:
        result.note(f"{path}: the views of {r2gen['unchecked']} of {studies} R2Gen studies cannot be checked (their "
                    f"file count in {proj_path.name} differs from their images, or they are not in it): image 0 "
                    f"of each study is taken as the frontal view")


def _r2gen_views(study_id: str, count: int, proj_index: dict) -> Optional[list[str]]:
    """Views of an R2Gen study's ``0.png``, ``1.png`` ... from the projections table, or ``None`` if unmatched.

    ``CXR2384_IM-0942`` holds the files ``2384_IM-0942-<n>``; the k-th of them in name order is ``<k>.png``.
    """
    files = sorted(proj_index.get(_image_key(study_id), []))
    if len(files) != count:
        return None
    return [view for _, view in files]


def _select_images(study_id: str, names: list[str], views: str, proj_index: dict, r2gen: Counter,
                   excluded: Counter):
    """R2Gen names (``<id>/<k>.png``): views from the projections table, else image 0 frontal by
    convention (module docstring); ``None`` for flat names."""
    if not all("/" in n or "\\" in n for n in names):
        return None
    known = _r2gen_views(study_id, len(names), proj_index) if proj_index else None
    if known is None:
        r2gen["unchecked"] += 1
        if views == "all" or len(names) == 1:
            return [(n, "Frontal" if i == 0 else "Lateral") for i, n in enumerate(names)]
        excluded[EXCLUDE_VIEW] += len(names) - 1
        return [(names[0], "Frontal")]
    r2gen["checked"] += 1
    r2gen["lateral_first"] += not is_frontal(known[0])
    if views == "all":
        return list(zip(names, known))
    kept = [(n, v) for n, v in zip(names, known) if is_frontal(v)]
    excluded[EXCLUDE_VIEW] += len(names) - len(kept)
    return kept


def read_openi_csv(reports: str | Path, projections: str | Path | None = None, image_root: str | Path | None = None,
                   *, views: str = "frontal", rows: str = "image", check_images: bool = True,
                   skip_bad: bool = False) -> ReadResult:
    """Read the Open-i CSV pair (module docstring, layout 3).

    Args:
        reports: ``indiana_reports.csv`` (or its folder).
        projections: ``indiana_projections.csv`` (default: beside ``reports``).
        image_root: the PNG folder (default ``images/images_normalized`` or ``images`` beside
            the CSVs, the first that exists).
        views, rows, check_images, skip_bad: as :func:`read_iu_annotation`.

    Returns:
        :class:`ReadResult` with MeSH-derived labels; split ``None`` for every row.
    """
    from medmodal.data.cxr.findings import labels_from_mesh

    check_row_options(views, rows)
    reports = Path(reports)
    if reports.is_dir():
        reports = reports / REPORTS_NAME
    projections = Path(projections) if projections is not None else reports.parent / PROJECTIONS_NAME
    if image_root is None:
        candidates = [reports.parent / "images" / "images_normalized", reports.parent / "images"]
        image_root = next((c for c in candidates if c.is_dir()), candidates[-1])
    image_root = Path(image_root)
    table = list(csv.DictReader(io.StringIO(decode_lenient(reports))))
    need = {"uid", "findings", "impression"}
    if table and not need <= set(table[0]):
        raise CXRDataError(f"{reports}: expected columns {', '.join(sorted(need))}; got {', '.join(table[0])}")
    proj_rows = list(csv.DictReader(io.StringIO(decode_lenient(projections))))
    if proj_rows and not {"uid", "filename", "projection"} <= set(proj_rows[0]):
        raise CXRDataError(f"{projections}: expected columns uid, filename, projection")
    by_uid: dict[str, list[tuple[str, str]]] = {}
    for row in proj_rows:
        by_uid.setdefault(row["uid"].strip(), []).append((row["filename"].strip(), (row["projection"] or "").strip()))
    result = ReadResult(image_check=resolve_image_check(check_images))
    result.note(f"{reports}: Open-i has no official split: rows are read without one")
    _note_no_patient_ids(reports, result)
    for line, row in enumerate(table, start=2):
        uid = (row["uid"] or "").strip()
        where = f"{reports}: line {line} (uid {uid})"
        if has_undecodable(*row.values()):
            result.bad(CXRDataError(f"{where}: not UTF-8 text"), skip_bad, reports)
            continue
        findings, impression = (row["findings"] or "").strip(), (row["impression"] or "").strip()
        if not findings and not impression:
            result.dropped[DROP_NO_SECTIONS] += 1
            continue
        try:
            check_report(report_text(findings, impression), where)
        except CXRDataError as err:
            result.bad(err, skip_bad, reports)
            continue
        sentences = split_report_into_sentences(report_text(findings, impression))
        if too_short(sentences):
            result.dropped[DROP_SHORT] += 1
            continue
        images = by_uid.get(uid, [])
        if not images:
            result.dropped[DROP_NO_IMAGE] += 1
            continue
        selected = [(n, v) for n, v in images if views == "all" or is_frontal(v)]
        bad = result.bad_image([image_root / n for n, _ in selected], where)
        if bad is not None:
            result.bad(bad[1], skip_bad, reports)
            continue
        if not selected:
            result.dropped[DROP_NO_IMAGE_LEFT] += 1
            continue
        template = Study(study_id=uid, patient_id=uid, image_paths=[], view_positions=[], findings=findings,
                         impression=impression, sentences=sentences, split=None,
                         labels=labels_from_mesh(row.get("MeSH", "")), source=reports)
        result.studies.extend(make_rows(template, [(image_root / n, v) for n, v in selected], rows))
        if len(images) > len(selected):  # counted for kept studies only
            result.excluded[EXCLUDE_VIEW] += len(images) - len(selected)
    return result
