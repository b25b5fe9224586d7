"""The record every chest X-ray reader returns, the error it raises, and how bad input is handled.

A reader turns one dataset layout into a list of :class:`Study` rows plus an account of what
it left out (:class:`ReadResult`). Two kinds of leaving-out are kept apart:

* **dropped** studies and **excluded** images (counted by reason, never an error): what the
  reference pipeline filters by design. ``dropped`` counts *studies* left out whole (a MIMIC
  study with neither FINDINGS nor IMPRESSION, a report with fewer than three word tokens, a study
  whose every image was excluded: :data:`DROP_NO_IMAGE_LEFT`); ``excluded`` counts *images* left
  out of a study that is kept (a lateral image when only frontal views are read); the images of
  a study that is dropped or skipped are not counted there.
* **bad input** (:class:`CXRDataError`, one line naming the file): an unreadable image, a
  report that is empty or only de-identification tokens, non-UTF-8 text, an annotation entry
  whose image is missing. By default the first one raises; with ``skip_bad=True`` each is
  skipped, counted and named in :attr:`ReadResult.skipped` (the CLI prints them as warnings).
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from medmodal.data.cxr.errors import CXRDataError, CXRDataWarning
from medmodal.data.images import image_problem
from medmodal.errors import ConfigError, DataError

#: Labels of a study: finding name -> 1 (positive), 0 (negative), -1 (uncertain, CheXpert's
#: convention) or ``None`` (not mentioned / unknown).
Labels = dict[str, Optional[int]]


@dataclass
class Study:
    """One training row: an image (``image_paths[0]``) and the report of its study.

    Attributes:
        study_id: the dataset's study identifier (MIMIC ``s<study>`` without the ``s``; IU uid
            or R2Gen id). Several rows share it when a study has several selected images.
        patient_id: MIMIC ``subject_id``; IU X-ray has no patient identifiers, so its readers
            use the study id (each study taken as its own patient).
        image_paths: absolute image files of the row, the one the dataset loads first (frontal
            first). Readers emit one image per row by default (``rows="image"``, as the
            reference uses every frontal MIMIC DICOM as a row); ``rows="study"`` keeps all
            selected images of a study in one row.
        view_positions: one per image (``PA``, ``AP``, ``LATERAL``, ``Frontal`` ...; ``""`` if unknown).
        findings / impression: the report sections (``""`` when absent). Sources that give one
            undivided report text (R2Gen, flat-name annotations, generic CSV) put it in
            ``findings``.
        sentences: cleaned sentences (:func:`medmodal.data.cxr.text.split_report_into_sentences`
            of impression + findings, the reference's order).
        split: ``train`` | ``val`` | ``test`` or ``None`` (no official split; see
            :func:`medmodal.data.cxr.splits.assign_patient_splits`).
        labels: :data:`Labels` or ``None``.
        source: the file the report came from (report ``.txt``, annotation JSON or CSV).
    """

    study_id: str
    patient_id: str
    image_paths: list[Path]
    view_positions: list[str]
    findings: str
    impression: str
    sentences: list[str]
    split: Optional[str] = None
    labels: Optional[Labels] = None
    source: Optional[Path] = None

    @property
    def image_path(self) -> Path:
        """The image the dataset loads for this row."""
        return self.image_paths[0]


@dataclass
class ReadAccount:
    """What a reader left out and assumed (shared by :class:`ReadResult` and the downstream readers).

    Attributes:
        dropped: reason -> number of studies left out whole by the documented rules (downstream
            readers: images / rows).
        excluded: reason -> number of images left out of a study that is kept (e.g. non-frontal
            views); a study left without image is counted in ``dropped`` instead, and the images of
            a dropped or skipped study are not counted.
        skipped: ``(file, problem)`` for every bad input skipped under ``skip_bad=True``.
        notes: assumptions the reader made that a user should know (printed by the CLI).
        image_check: the check run on every kept image file
            (:data:`medmodal.data.images.IMAGE_CHECKS`; ``None``: not checked).
        images_checked: image files that check was run on.
    """

    dropped: Counter = field(default_factory=Counter)
    excluded: Counter = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    image_check: Optional[str] = None
    images_checked: int = 0

    def bad_image(self, paths, where: str | Path | None = None) -> Optional[tuple[Path, CXRDataError]]:
        """Run :attr:`image_check` on ``paths`` in order: ``(file, error)`` of the first bad file, or ``None``.

        The message names the file: ``<where>: image <file> not found`` /
        ``<where>: image <file>: <problem>`` (``<file>: <problem>`` without ``where``).
        """
        if self.image_check is None:
            return None
        for path in paths:
            self.images_checked += 1
            problem = image_problem(path, self.image_check)
            if problem is None:
                continue
            if where is None:
                return path, CXRDataError(f"{path}: {problem}")
            if problem == "image file not found":
                return path, CXRDataError(f"{where}: image {path} not found")
            return path, CXRDataError(f"{where}: image {path}: {problem}")
        return None

    def bad(self, error: CXRDataError | str, skip_bad: bool, file: str | Path = "") -> None:
        """Raise ``error`` unless ``skip_bad``; then record it (and warn, so it is never silent)."""
        err = error if isinstance(error, CXRDataError) else CXRDataError(f"{file}: {error}")
        if not skip_bad:
            raise err
        self.skipped.append((str(file), str(err)))

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)
            warnings.warn(message, CXRDataWarning, stacklevel=3)


@dataclass
class ReadResult(ReadAccount):
    """What an image-report reader returns: the rows kept (``studies``) and the :class:`ReadAccount`."""

    def account_line(self) -> str:
        """``studies dropped: ...; studies skipped as bad input: N; images excluded from kept studies: ...``.

        What the CLI prints: the two study counts first, then the image count (units named).
        """
        def counts(counter):
            return ", ".join(f"{reason}: {n}" for reason, n in sorted(counter.items())) or "none"

        return (f"studies dropped: {counts(self.dropped)}; studies skipped as bad input: {len(self.skipped)}; "
                f"images excluded from kept studies: {counts(self.excluded)}")

    studies: list[Study] = field(default_factory=list)

    def summary(self) -> dict:
        """Counts for printing: kept rows, studies, patients, dropped by reason, skipped."""
        return {
            "rows": len(self.studies),
            "studies": len({s.study_id for s in self.studies}),
            "patients": len({s.patient_id for s in self.studies}),
            "splits": dict(sorted(Counter(s.split or "none" for s in self.studies).items())),
            "dropped": dict(self.dropped),
            "excluded_images": dict(self.excluded),
            "skipped_bad": len(self.skipped),
        }


def _read_bytes(path: Path) -> bytes:
    """Bytes of ``path``; :class:`CXRDataError` naming it when it is missing or unreadable."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CXRDataError(f"{path}: file not found") from None
    except OSError as err:
        raise CXRDataError(f"{path}: cannot read ({err.strerror or err})") from None


def read_utf8(path: str | Path) -> str:
    """Text of ``path`` decoded as UTF-8 (a BOM is accepted).

    Raises:
        CXRDataError: the file cannot be read or is not UTF-8 (naming the byte offset).
    """
    path = Path(path)
    data = _read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CXRDataError(f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})") from None


def decode_lenient(path: str | Path) -> str:
    """Text of ``path`` with undecodable bytes kept as lone surrogates (``surrogateescape``).

    Used for tables (CSV / JSON) so that one non-UTF-8 row can be named and skipped instead of
    failing the whole file; :func:`has_undecodable` finds those rows.
    """
    path = Path(path)
    data = _read_bytes(path)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.decode("utf-8", errors="surrogateescape")


def has_undecodable(*values: object) -> bool:
    """True when any string among ``values`` holds a byte that was not valid UTF-8."""
    return any(isinstance(v, str) and any("\udc80" <= ch <= "\udcff" for ch in v) for v in values)


#: ``dropped`` reason of a study whose every image was excluded (views, split table).
DROP_NO_IMAGE_LEFT = "every image excluded"

#: View positions read as frontal: MIMIC ``ViewPosition`` PA / AP (the reference's filter) and
#: Open-i's ``Frontal`` projection.
FRONTAL_VIEWS = frozenset({"PA", "AP", "FRONTAL"})
ROW_MODES = ("image", "study")


def is_frontal(view: str) -> bool:
    return str(view).strip().upper() in FRONTAL_VIEWS


def check_row_options(views: str, rows: str) -> None:
    if views not in ("frontal", "all"):
        raise ConfigError(f"views must be 'frontal' or 'all', got {views!r}")
    if rows not in ROW_MODES:
        raise ConfigError(f"rows must be one of {', '.join(ROW_MODES)}, got {rows!r}")


def make_rows(template: Study, images: list[tuple[Path, str]], rows: str) -> list[Study]:
    """Rows of one study: one per image (``rows="image"``) or one with all images, frontal first."""
    import dataclasses

    ordered = sorted(images, key=lambda iv: not is_frontal(iv[1]))
    if rows == "study":
        return [dataclasses.replace(template, image_paths=[p for p, _ in ordered],
                                    view_positions=[v for _, v in ordered])]
    return [dataclasses.replace(template, image_paths=[p], view_positions=[v]) for p, v in ordered]


def parse_label(value: object) -> Optional[int]:
    """``"1"``/``"1.0"`` -> 1, ``"0"`` -> 0, ``"-1"`` -> -1, blank / NaN -> ``None``.

    Raises:
        ValueError: any other value.
    """
    text = str(value).strip() if value is not None else ""
    if text == "" or text.lower() in ("nan", "none", "na"):
        return None
    number = float(text)
    if number not in (1.0, 0.0, -1.0):
        raise DataError(f"label value {text!r} is not 1, 0, -1 or blank")
    return int(number)
