"""MIMIC-CXR-JPG images with the MIMIC-CXR free-text reports, as PhysioNet distributes them.

Layout read (MIMIC-CXR-JPG 2.0.0 / 2.1.0 and the MIMIC-CXR report archive)::

    ROOT/mimic-cxr-2.0.0-metadata.csv[.gz]   dicom_id, subject_id, study_id, ViewPosition, ...
    ROOT/mimic-cxr-2.0.0-split.csv[.gz]      dicom_id, study_id, subject_id, split (train | validate | test)
    ROOT/mimic-cxr-2.0.0-chexpert.csv[.gz]   subject_id, study_id, 14 CheXpert labels (1 / 0 / -1 / blank), optional
    ROOT/files/pXX/p<subject>/s<study>/<dicom_id>.jpg
    REPORTS/files/pXX/p<subject>/s<study>.txt  (REPORTS: ROOT, ROOT/mimic-cxr-reports or its sibling folder)

Rules, as the MGCA / CM-CGNS preprocessing (``extract_text=True``):

* Sections: FINDINGS and IMPRESSION of each report (:mod:`medmodal.data.cxr.sections`); a study
  with neither is dropped and counted ("no FINDINGS or IMPRESSION"; MGCA issue #42 reports
  ~9,000 such rows), as is a report with fewer than three tokens.
* Views: ``ViewPosition`` PA or AP (``views="frontal"``, the reference's filter; other
  images counted in ``excluded``, a study left without image in ``dropped``), or every image
  (``views="all"``). Every selected DICOM is a row (``rows="image"``), as in the reference's
  ``master.csv``; ``rows="study"`` groups them.
* Split: the official ``split`` column: ``train`` -> ``train``, ``validate`` -> ``val``,
  ``test`` -> ``test``. The reference merges validate and test into one validation set and has
  no held-out test; ``merge_val_test=True`` does the same (both -> ``val``). The split is
  checked to be patient-disjoint (:func:`medmodal.data.cxr.splits.check_patient_splits`).
* Labels: the 14 CheXpert labels of ``mimic-cxr-2.0.0-chexpert.csv`` per study (1 / 0 / -1 /
  ``None``), when that file is present.

Bad input (raised, or skipped and named with ``skip_bad=True``): a missing, unreadable or
non-UTF-8 report file, a report whose sections hold only de-identification tokens (``___``),
a missing, unreadable or truncated image (``check_images``). A missing metadata or split table is always an error.
A folder of the MIMIC-CXR DICOM release (``<dicom_id>.dcm`` beside a missing ``.jpg``, or its
``cxr-record-list.csv`` without the JPG tables) is named as such: this reader reads the JPG release.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter, defaultdict
from pathlib import Path

from medmodal.data.cxr.images import resolve_image_check
from medmodal.data.cxr.records import (DROP_NO_IMAGE_LEFT, CXRDataError, ReadResult, Study, check_row_options,
                                       has_undecodable, is_frontal, make_rows, parse_label, read_utf8)
from medmodal.data.cxr.sections import extract_sections
from medmodal.data.cxr.splits import check_patient_splits
from medmodal.data.cxr.text import check_report, report_text, split_report_into_sentences, too_short

PREFIX = "mimic-cxr-2.0.0-"
SPLIT_NAMES = {"train": "train", "validate": "val", "test": "test"}
CHEXPERT_LABELS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
                   "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
                   "Pneumothorax", "Support Devices")
DROP_NO_SECTIONS = "no FINDINGS or IMPRESSION"
DROP_SHORT = "report has fewer than 3 tokens"
EXCLUDE_VIEW = "view not PA/AP"
EXCLUDE_NO_SPLIT = "not in the split table"
DICOM_RELEASE_HINT = ("medmodal reads the MIMIC-CXR-JPG release (its mimic-cxr-2.0.0-*.csv tables and "
                      "files/.../<dicom_id>.jpg): give the MIMIC-CXR-JPG folder (physionet.org/content/mimic-cxr-jpg)")


def find_table(root: Path, name: str, required: bool = True) -> Path | None:
    """``ROOT/mimic-cxr-2.0.0-<name>.csv`` or ``.csv.gz``."""
    for suffix in (".csv.gz", ".csv"):
        path = root / f"{PREFIX}{name}{suffix}"
        if path.is_file():
            return path
    if required:
        if any((root / f"cxr-record-list{suffix}").is_file() for suffix in (".csv.gz", ".csv")):
            raise CXRDataError(f"{root}: {PREFIX}{name}.csv[.gz] not found; cxr-record-list.csv is there: this looks "
                               f"like the MIMIC-CXR DICOM release. {DICOM_RELEASE_HINT}")
        raise CXRDataError(f"{root}: {PREFIX}{name}.csv[.gz] not found (is this the MIMIC-CXR-JPG folder?)")
    return None


def _dicom_release_error(path: Path, error: CXRDataError) -> CXRDataError:
    """A missing ``<dicom_id>.jpg`` with ``<dicom_id>.dcm`` beside it: name the DICOM release."""
    dicom = path.with_suffix(".dcm")
    if str(error).endswith("image file not found") and dicom.is_file():
        return CXRDataError(f"{path}: image file not found, but {dicom.name} is beside it: this folder looks like the "
                            f"MIMIC-CXR DICOM release (files/pXX/p<subject>/s<study>/<dicom_id>.dcm). "
                            f"{DICOM_RELEASE_HINT}")
    return error


def read_table(path: Path, columns: set[str]) -> list[dict]:
    """Rows of a CSV or gzipped CSV, checking its columns (non-UTF-8 bytes kept as surrogates)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise CXRDataError(f"{path}: cannot read ({err})") from None
    text = raw.decode("utf-8-sig", errors="surrogateescape")
    reader = csv.DictReader(io.StringIO(text))
    missing = columns - set(reader.fieldnames or ())
    if missing:
        raise CXRDataError(f"{path}: missing columns {', '.join(sorted(missing))}")
    return list(reader)


def is_mimic_root(path: Path) -> bool:
    return path.is_dir() and find_table(path, "metadata", required=False) is not None


def report_path(reports_root: Path, subject: str, study: str) -> Path:
    return reports_root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"


def image_path(root: Path, subject: str, study: str, dicom: str) -> Path:
    return root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg"


def _find_reports_root(root: Path, subject: str, study: str) -> Path:
    candidates = [root, root / "mimic-cxr-reports", root.parent / "mimic-cxr-reports"]
    for candidate in candidates:
        if report_path(candidate, subject, study).is_file():
            return candidate
    raise CXRDataError(f"{root}: MIMIC-CXR report files (files/pXX/p<subject>/s<study>.txt) not found in "
                       f"{', '.join(str(c) for c in candidates)}; give the reports folder")


def read_mimic_cxr(root: str | Path, reports_root: str | Path | None = None, *, views: str = "frontal",
                   rows: str = "image", merge_val_test: bool = False, check_images: bool = True,
                   skip_bad: bool = False) -> ReadResult:
    """Read MIMIC-CXR-JPG + reports (module docstring).

    Args:
        root: the MIMIC-CXR-JPG folder (with the ``mimic-cxr-2.0.0-*.csv[.gz]`` tables and ``files/``).
        reports_root: folder holding ``files/pXX/p<subject>/s<study>.txt`` (default: found
            in ``root``, ``root/mimic-cxr-reports`` or ``root/../mimic-cxr-reports``).
        views: ``frontal`` (PA / AP) or ``all``.
        rows: ``image`` (one row per DICOM) or ``study``.
        merge_val_test: the reference's validate + test -> ``val``.
        check_images: the check of every selected JPEG: ``True`` / ``"verify"`` (exists, header,
            complete file), ``"decode"``, ``"exists"``, ``False`` (none); see
            :func:`medmodal.data.cxr.images.image_problem`.
        skip_bad: skip and record bad reports / missing images instead of raising.

    Returns:
        :class:`ReadResult`; ``dropped`` counts studies without sections, with short reports or
        with every image excluded; ``excluded`` counts non-frontal images and images missing from
        the split table.

    Raises:
        CXRDataError: a missing table, a bad report or image (without ``skip_bad``);
        ValueError: a patient in two official splits.
    """
    check_row_options(views, rows)
    root = Path(root)
    metadata = read_table(find_table(root, "metadata"), {"dicom_id", "subject_id", "study_id", "ViewPosition"})
    split_rows = read_table(find_table(root, "split"), {"dicom_id", "split"})
    split_of = {r["dicom_id"]: r["split"].strip().lower() for r in split_rows}
    chexpert_path = find_table(root, "chexpert", required=False)
    labels_of: dict[str, dict] = {}
    result = ReadResult(image_check=resolve_image_check(check_images))
    if chexpert_path is not None:
        for n, row in enumerate(read_table(chexpert_path, {"study_id"}), start=2):
            try:
                labels_of[row["study_id"]] = {k: parse_label(row[k]) for k in CHEXPERT_LABELS if k in row}
            except ValueError as err:
                raise CXRDataError(f"{chexpert_path}: line {n}: {err}") from None
    else:
        result.note(f"{root}: no {PREFIX}chexpert.csv: studies have no labels")
    if merge_val_test:
        result.note("MIMIC-CXR validate and test are merged into 'val' (the reference's setting)")

    studies: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in metadata:
        studies[(row["subject_id"].strip(), row["study_id"].strip())].append(row)
    if not studies:
        raise CXRDataError(f"{root}: the metadata table lists no image")
    if reports_root is None:
        reports_root = _find_reports_root(root, *next(iter(studies)))
    reports_root = Path(reports_root)

    for (subject, study), images in studies.items():
        report_file = report_path(reports_root, subject, study)
        try:
            sections = extract_sections(read_utf8(report_file))
        except CXRDataError as err:
            result.bad(err, skip_bad, report_file)
            continue
        if not sections.findings and not sections.impression:
            result.dropped[DROP_NO_SECTIONS] += 1
            continue
        text = report_text(sections.findings, sections.impression)
        try:
            check_report(text, report_file)
        except CXRDataError as err:
            result.bad(err, skip_bad, report_file)
            continue
        sentences = split_report_into_sentences(text)
        if too_short(sentences):
            result.dropped[DROP_SHORT] += 1
            continue
        selected, split, excluded = [], None, Counter()
        for row in images:
            view = (row.get("ViewPosition") or "").strip()
            if views == "frontal" and not is_frontal(view):
                excluded[EXCLUDE_VIEW] += 1
                continue
            official = split_of.get(row["dicom_id"])
            if official not in SPLIT_NAMES:
                excluded[EXCLUDE_NO_SPLIT] += 1
                continue
            split = "val" if merge_val_test and official == "test" else SPLIT_NAMES[official]
            selected.append((image_path(root, subject, study, row["dicom_id"].strip()), view))
        bad = result.bad_image([p for p, _ in selected])
        if bad is not None:
            result.bad(_dicom_release_error(*bad), skip_bad, bad[0])
            continue
        if not selected:
            result.dropped[DROP_NO_IMAGE_LEFT] += 1
            continue
        template = Study(study_id=study, patient_id=subject, image_paths=[], view_positions=[],
                         findings=sections.findings, impression=sections.impression, sentences=sentences,
                         split=split, labels=labels_of.get(study), source=report_file)
        if has_undecodable(*(r["dicom_id"] for r in images)):
            result.bad(CXRDataError(f"{root}: study {study}: metadata is not UTF-8"), skip_bad, root)
            continue
        result.studies.extend(make_rows(template, selected, rows))
        result.excluded.update(excluded)  # counted for kept studies only
    check_patient_splits(result.studies)
    return result
