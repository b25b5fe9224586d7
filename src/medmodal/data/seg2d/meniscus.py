"""Knee-MRI meniscus slices as ERANet releases them (``SiYueLi-MRIandAI/ERANet-SemiSupervised-MeniscusSegmentation``,
``code/dataloaders/oai_meniscus.py``, OAI 3-D DESS): 2-D slices stored as ``.npy`` image / label pairs listed in
CSV files, some of them unlabelled (the semi-supervised pool).

Layout ``meniscus``::

    <root>/train_lb.csv  train_unlb.csv  val.csv  test.csv     (or in <root>/splits/, lists/ or csv/)
    <root>/<anything>/<image>.npy  <label>.npy                 paths as the CSV rows give them

The CSV files and their roles (file names compared without case):

* labelled training: ``train.csv``, ``train_lb.csv`` (ERANet's ``--csv_train_lb``), ``train_labeled.csv``,
  ``train_labelled.csv``, ``training.csv``;
* validation: ``val.csv`` (ERANet's ``--csv_vali``), ``vali.csv``, ``valid.csv``, ``validation.csv``, ``val_lb.csv``;
* test: ``test.csv``, ``test_lb.csv``, ``testing.csv``;
* unlabelled: ``train_unlb.csv`` (ERANet's ``--csv_train_unlb``), ``unlb.csv``, ``unlabeled.csv``,
  ``unlabelled.csv``, ``train_unlabeled.csv``, ``train_unlabelled.csv``. Its slices are training slices without
  a label: split ``train``, ``has_label=False`` (named in ``notes``), also when ``require_labels`` (the pool is
  unlabelled by declaration). A label path in such a row (ERANet's own unlabelled CSV keeps one, unused) is not
  read (noted).

Other ``.csv`` files are not read (named in ``notes``).

Columns. ERANet reads its CSVs without a header (``pandas.read_csv(csv, header=None)``): column 1 the image path,
column 2 the label path; the same is read here (a first row with a cell that looks like a path, i.e. holds a
``/`` or ends in a suffix such as ``.npy``, means no header;
further columns are not read, noted). A CSV may instead start with a header naming its columns (case-insensitive):
the image (``image``, ``img``, ``image_path``, ``img_path``, ``image_file``, ``mri``), the label (``label``,
``mask``, ``label_path``, ``mask_path``, ``label_file``, ``mask_file``, ``seg``; optional) and the patient
(``subject``, ``subject_id``, ``patient``, ``patient_id``, ``participant``, ``participant_id``; optional); other
columns are not read (noted). A row of a labelled CSV without a label path is refused when labels are required,
else kept unlabelled (noted).

Paths: absolute, or relative to the CSV's folder; a relative path not found there is looked for under ``<root>``
(ERANet joins the rows to its ``--oai_path`` data folder). A row naming a missing file is a
:class:`~medmodal.errors.LayoutError` naming the CSV, its line and the file.

Cases: one per slice (kind ``npy``: ``image = (image.npy,)``, ``label = (label.npy,)`` or ``()``), id the image
file's stem (its path under ``<root>`` without ``.npy``, ``/`` kept, when two images share a stem), the split
from the CSV's role. One slice listed twice in one CSV is read once (noted); a slice in two of train / val / test
is refused; a slice both in a labelled CSV and in the unlabelled one is read once, labelled (noted).
:attr:`Seg2DSet.train_order` is the labelled training slices in CSV order.

Patients (the unit that must not straddle splits or labelled budgets, :func:`~medmodal.data.seg2d.common.case_patient`):
the subject column where the CSV has one, else from the image file name (:func:`patient_from_name`: the stem
without a leading ``img_`` / ``image_`` / ``im_`` / ``mri_`` and without its trailing slice number, ``_<n>``,
``-<n>`` or ``[_]slice[_]<n>``: ``img_9001104_R_030.npy`` -> ``9001104_R``, as ERANet's ``basename[4:-8]``; a stem
that is only a number is named by its folder: ``9001104/030.npy`` -> ``9001104``), noted as derived.

Arrays (:func:`medmodal.data.seg2d.loading.load_case`): the image ``.npy`` is ``[H, W]`` or has singleton axes
(ERANet's ``[1, H, W]``, squeezed as ERANet does); the label ``.npy`` is a class-value map ``[H, W]`` (0
background, 1 lateral meniscus, 2 lateral tibial cartilage, 3 medial meniscus, 4 medial tibial cartilage:
ERANet's ``CLASSES`` order, value = index + 1) or a 5-channel one-hot ``[5, H, W]`` / ``[H, W, 5]`` (channel =
value, background first, as ERANet's ``one_hot_encode`` builds it). Intensities are clipped to the slice's 10th
and 99th percentiles and scaled to [0, 1] (ERANet's ``histogram_normalize``).
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Optional

from medmodal.data.seg2d.common import Seg2DCase, Seg2DSet, count_note, files_in, make_set, natural_key, some, subdir
from medmodal.errors import LayoutError

__all__ = ["LIST_ROLES", "LIST_DIRS", "detect_meniscus", "read_meniscus", "patient_from_name"]

#: CSV file stems (lower case) per role: ``train`` / ``val`` / ``test`` (labelled) or ``unlabelled``.
LIST_ROLES = {
    "train": ("train", "train_lb", "train_labeled", "train_labelled", "training"),
    "val": ("val", "vali", "valid", "validation", "val_lb"),
    "test": ("test", "test_lb", "testing"),
    "unlabelled": ("train_unlb", "unlb", "unlabeled", "unlabelled", "train_unlabeled", "train_unlabelled"),
}
#: Sub-folders of the root also searched for the CSV files.
LIST_DIRS = ("splits", "lists", "csv")
_IMAGE_COLUMNS = ("image", "img", "image_path", "img_path", "image_file", "mri")
_LABEL_COLUMNS = ("label", "mask", "label_path", "mask_path", "label_file", "mask_file", "seg")
_PATIENT_COLUMNS = ("subject", "subject_id", "patient", "patient_id", "participant", "participant_id")
_ROLE_OF = {stem: role for role, stems in LIST_ROLES.items() for stem in stems}
_PREFIX = re.compile(r"(?:img|image|im|mri)[_-](?P<rest>.+)", re.I)
_SLICE_TAIL = re.compile(r"(?P<patient>.+?)(?:[_-]?slice[_-]?\d+|[_-]\d+)", re.I)
_SPLIT_OF_ROLE = {"train": "train", "val": "val", "test": "test", "unlabelled": "train"}


def patient_from_name(image: Path) -> str:
    """The patient of a slice file without a subject column (module docstring): ``img_9001104_R_030.npy`` ->
    ``9001104_R``; ``9001104/030.npy`` -> ``9001104``."""
    stem = image.name[:-4] if image.name.lower().endswith(".npy") else image.stem
    m = _PREFIX.fullmatch(stem)
    rest = m.group("rest") if m else stem
    if rest.isdigit():
        return image.parent.name or rest
    m = _SLICE_TAIL.fullmatch(rest)
    return m.group("patient") if m else rest


def _csv_files(root: Path) -> tuple[list[tuple[str, Path]], list[Path]]:
    """``([(role, csv)], other csv files)`` in ``root`` and its list folders (roles in :data:`LIST_ROLES` order)."""
    found: list[tuple[str, Path]] = []
    others: list[Path] = []
    folders = [root] + [d for d in (subdir(root, name) for name in LIST_DIRS) if d is not None]
    for folder in folders:
        for p in files_in(folder):
            if not p.name.lower().endswith(".csv"):
                continue
            role = _ROLE_OF.get(p.name[:-4].lower())
            if role is None:
                others.append(p)
            else:
                found.append((role, p))
    order = list(LIST_ROLES)
    found.sort(key=lambda rp: (order.index(rp[0]), natural_key(str(rp[1]))))
    return found, others


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    """``[(line number, cells)]`` of a CSV file, blank rows skipped.

    Raises:
        LayoutError: the file cannot be read as CSV text.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            return [(reader.line_num, [c.strip() for c in row]) for row in reader if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise LayoutError(f"{path}: cannot read the CSV file ({type(err).__name__})") from None


def _lists_npy(path: Path) -> bool:
    """Whether the first data row of a CSV names a ``.npy`` file (read a few lines only)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            for i, row in enumerate(csv.reader(handle)):
                cells = [c.strip() for c in row]
                if any(c.lower().endswith(".npy") for c in cells):
                    return True
                if i >= 1:
                    return False
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return False


def detect_meniscus(root: Path) -> Optional[Path]:
    """``root`` when it (or its ``splits/`` / ``lists/`` / ``csv/``) holds a train / val / test / unlabelled CSV
    (module docstring) whose first rows name ``.npy`` files."""
    root = Path(root)
    if not root.is_dir():
        return None
    found, _ = _csv_files(root)
    return root if any(_lists_npy(p) for _, p in found) else None


def _looks_like_path(cell: str) -> bool:
    """A cell that names a file (a suffix or a folder), not a column name."""
    return "/" in cell or "\\" in cell or bool(re.search(r"\.\w+$", cell))


class _Columns:
    """Where the image, label and patient are in the rows of one CSV."""

    def __init__(self, path: Path, rows: list[tuple[int, list[str]]], notes: list[str]):
        self.header = False
        self.image, self.label, self.patient = 0, 1, None
        if not rows or any(_looks_like_path(c) for c in rows[0][1]):
            wide = [line for line, cells in rows if len(cells) > 2 and any(cells[2:])]
            if wide:
                notes.append(f"{path}: columns after the second (image, label) not read ({len(wide)} row(s), "
                             f"first at line {wide[0]})")
            return
        names = [c.lower() for c in rows[0][1]]
        self.header = True

        def find(candidates: tuple[str, ...]) -> Optional[int]:
            return next((names.index(c) for c in candidates if c in names), None)

        image = find(_IMAGE_COLUMNS)
        if image is None:
            raise LayoutError(f"{path}: no image column (a header naming one of {', '.join(_IMAGE_COLUMNS)}, or rows "
                              f"of image.npy[,label.npy] without a header; line 1 is {','.join(rows[0][1])!r})")
        self.image, self.label, self.patient = image, find(_LABEL_COLUMNS), find(_PATIENT_COLUMNS)
        unread = [rows[0][1][i] for i in range(len(names)) if i not in (self.image, self.label, self.patient)]
        if unread:
            notes.append(f"{path}: column(s) not read: {some(unread)}")

    def cell(self, cells: list[str], index: Optional[int]) -> str:
        return cells[index] if index is not None and index < len(cells) else ""


def _resolve(cell: str, csv_path: Path, root: Path, line: int) -> Path:
    """The file a CSV cell names (absolute, else beside the CSV, else under ``root``).

    Raises:
        LayoutError: the file is in neither place (naming the CSV, its line and the file).
    """
    given = Path(cell)
    if given.is_absolute():
        candidates = [Path(os.path.normpath(given))]
    else:
        candidates = list(dict.fromkeys(Path(os.path.normpath(base / given)) for base in (csv_path.parent, root)))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    also = f" (nor {candidates[1]})" if len(candidates) > 1 else ""
    raise LayoutError(f"{csv_path}: line {line} names {cell}, but {candidates[0]} is missing{also}")


def read_meniscus(path: Path, require_labels: bool = True) -> Seg2DSet:
    """The ERANet meniscus layout (module docstring).

    Args:
        path: the folder holding the CSV files (or their ``splits/`` / ``lists/`` / ``csv/`` folder).
        require_labels: refuse a row of a labelled CSV without a label path (else it is kept unlabelled, noted);
            the rows of the unlabelled CSV are unlabelled either way.

    Raises:
        LayoutError: no CSV file, a CSV without an image column, a row naming a missing or non-``.npy`` file, a
            slice in two splits, no slice at all (one line naming the CSV and the row).
    """
    path = Path(path)
    lists, others = _csv_files(path)
    if not lists:
        raise LayoutError(f"{path}: not a meniscus folder (expected train_lb.csv / train.csv, val.csv, test.csv and "
                          f"train_unlb.csv / unlabeled.csv listing .npy image [and label] slices)")
    notes: list[str] = []
    # image file -> (role, csv, line, label file or None, patient cell)
    rows_of: dict[Path, tuple[str, Path, int, Optional[Path], str]] = {}
    order: list[Path] = []
    subject_column = False
    for role, csv_path in lists:
        rows = _rows(csv_path)
        columns = _Columns(csv_path, rows, notes)
        subject_column |= columns.patient is not None
        unread_labels, no_label, dups, also_labelled = [], [], [], []
        for line, cells in rows[1:] if columns.header else rows:
            image_cell, label_cell = columns.cell(cells, columns.image), columns.cell(cells, columns.label)
            if not image_cell:
                raise LayoutError(f"{csv_path}: line {line} names no image")
            for cell in (image_cell,) if role == "unlabelled" else (image_cell, label_cell):
                if cell and not cell.lower().endswith(".npy"):
                    raise LayoutError(f"{csv_path}: line {line} names {cell}, which is not a .npy file")
            image = _resolve(image_cell, csv_path, path, line)
            label = None
            if role == "unlabelled":
                if label_cell:
                    unread_labels.append(line)
            elif label_cell:
                label = _resolve(label_cell, csv_path, path, line)
            elif require_labels:
                raise LayoutError(f"{csv_path}: line {line} names {image_cell} without a label (unlabelled slices "
                                  f"belong in train_unlb.csv / unlabeled.csv)")
            else:
                no_label.append(image)
            entry = (role, csv_path, line, label, columns.cell(cells, columns.patient))
            if image in rows_of:
                before = rows_of[image]
                if before[1] == csv_path:
                    dups.append(line)
                    continue
                if role == "unlabelled" and before[0] != "unlabelled":  # the unlabelled lists are read last
                    also_labelled.append(image)
                    continue
                if _SPLIT_OF_ROLE[before[0]] != _SPLIT_OF_ROLE[role]:
                    raise LayoutError(f"{csv_path}: line {line} names {image_cell}, which {before[1]} (line "
                                      f"{before[2]}) puts in {_SPLIT_OF_ROLE[before[0]]}")
                dups.append(line)
                continue
            rows_of[image] = entry
            order.append(image)
        if dups:
            notes.append(f"{csv_path}: {len(dups)} slice(s) listed again, read once (line(s) {some(dups)})")
        notes += count_note(also_labelled, "slice(s) also in a labelled list, read once, labelled", f"{csv_path}: ")
        if unread_labels:
            notes.append(f"{csv_path}: the label column of the unlabelled list is not read ({len(unread_labels)} "
                         f"row(s))")
        notes += count_note(no_label, "row(s) without a label path, kept unlabelled", f"{csv_path}: ")
    if not rows_of:
        raise LayoutError(f"{path}: the CSV files list no slice ({some(p for _, p in lists)})")

    ids = _case_ids(path, order)
    cases, unlabelled, train_order = [], [], []
    derived = False
    for image in order:
        role, csv_path, _, label, patient = rows_of[image]
        if not patient:
            patient, derived = patient_from_name(image), True
        case = Seg2DCase(ids[image], _SPLIT_OF_ROLE[role], "npy", (image,), (label,) if label else (),
                         label is not None, patient)
        cases.append(case)
        if role == "unlabelled":
            unlabelled.append(case.id)
        elif role == "train" and label is not None:
            train_order.append(case.id)
    if unlabelled:
        where = some(dict.fromkeys(str(p) for r, p in lists if r == "unlabelled"))
        notes.append(f"{len(unlabelled)} unlabelled slice(s) of {where} (split train, has_label False): "
                     f"{some(unlabelled)}")
    if derived:
        notes.append("patients derived from the image file names (stem without img_ / image_ prefix and trailing "
                     "slice number; a numeric stem: its folder)" + ("" if not subject_column else
                                                                    " where the subject column is empty"))
    if any(ids[p] != p.name[:-4] for p in order):
        notes.append("two image files share a stem: case ids are the paths under the root without .npy")
    notes += _unlisted(order, [rows_of[p][3] for p in order])
    notes.append("split: the CSV files' (train / val / test lists; the unlabelled list's slices train unlabelled); "
                 "intensities scaled per slice from the 10th..99th percentile to [0, 1] (ERANet)")
    if others:
        notes.append(f"{len(others)} CSV file(s) not read (not a train / val / test / unlabelled list): "
                     f"{some(others)}")
    return make_set("meniscus", path, "meniscus", cases, notes, train_order=tuple(train_order))


def _case_ids(root: Path, images: list[Path]) -> dict[Path, str]:
    """``{image: id}``: the stems, or the paths under ``root`` without ``.npy`` when two stems collide."""
    stems = [p.name[:-4] for p in images]
    if len(set(stems)) == len(stems):
        return dict(zip(images, stems))
    out = {}
    for p in images:
        try:
            out[p] = p.relative_to(root).as_posix()[:-4]
        except ValueError:
            out[p] = p.as_posix()[:-4]
    return out


def _unlisted(images: list[Path], labels: list[Optional[Path]]) -> list[str]:
    """A note naming the ``.npy`` files in the folders of the listed slices that no CSV names."""
    used = set(images) | {p for p in labels if p is not None}
    folders = {p.parent for p in used}
    extra = sorted((p for d in folders for p in files_in(d) if p.name.lower().endswith(".npy") and p not in used),
                   key=lambda p: natural_key(str(p)))
    return [f"{len(extra)} .npy file(s) beside the listed slices named by no CSV, not used: {some(extra)}"] if extra \
        else []
