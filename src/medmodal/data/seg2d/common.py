"""What every 2-D segmentation reader shares: the family key, the class tuples, the case and set records,
and the small file helpers (folders, list files, HDF5 / NPZ probing, NIfTI and label arrays) whose errors are one
line naming a file.

The records are documented where the engine meets them, in :mod:`medmodal.data.seg2d.layouts`, which
re-exports them.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from medmodal.errors import DamagedFileError, DataError, LayoutError

__all__ = ["FAMILY", "LAYOUTS", "SYNAPSE_CLASSES", "ACDC_CLASSES", "POLYP_CLASSES", "MENISCUS_CLASSES",
           "FOLDER2D_CLASSES", "GREY_CHANNELS", "RGB_CHANNELS", "DATASET_CLASSES", "DATASET_CHANNELS", "SPLITS",
           "Seg2DCase", "Seg2DSet", "patient_of", "case_patient", "percentile_scale"]

#: Key of these readers in :mod:`medmodal.data.layouts`.
FAMILY = "seg2d"
#: The layouts in detection order (``auto`` first; the specific layouts before the looser ones).
LAYOUTS = ("auto", "synapse", "synapse_raw", "acdc_h5", "acdc", "cvc_clinicdb", "kvasir_seg", "meniscus", "folder2d")
#: TransUNet's 8 Synapse organs (``Beckschen/TransUNet`` ``utils.py`` / README), index = label value.
SYNAPSE_CLASSES = ("background", "Aorta", "Gallbladder", "Kidney (L)", "Kidney (R)", "Liver", "Pancreas", "Spleen",
                   "Stomach")
#: The ACDC challenge's label values: 1 right-ventricle cavity, 2 myocardium, 3 left-ventricle cavity.
ACDC_CLASSES = ("background", "RV", "Myo", "LV")
#: Binary polyp masks (CVC-ClinicDB, Kvasir-SEG).
POLYP_CLASSES = ("background", "Polyp")
#: ERANet's OAI knee-MRI label values (``oai_meniscus.py`` ``BaseOAI.CLASSES``, value = index + 1): 1 lateral
#: meniscus, 2 lateral tibial cartilage, 3 medial meniscus, 4 medial tibial cartilage.
MENISCUS_CLASSES = ("background", "lateral meniscus", "lateral tibial cartilage", "medial meniscus",
                    "medial tibial cartilage")
#: A ``folder2d`` folder's classes when it names none and its masks are binary (the reader sets each folder's own).
FOLDER2D_CLASSES = ("background", "class1")
GREY_CHANNELS = ("grey",)
RGB_CHANNELS = ("red", "green", "blue")
DATASET_CLASSES = {"synapse": SYNAPSE_CLASSES, "acdc": ACDC_CLASSES, "polyp": POLYP_CLASSES,
                   "meniscus": MENISCUS_CLASSES, "folder2d": FOLDER2D_CLASSES}
#: Channels per data set (``folder2d``: the default; the reader takes each folder's from its first image).
DATASET_CHANNELS = {"synapse": ("ct",), "acdc": ("cine",), "polyp": RGB_CHANNELS, "meniscus": ("mri",),
                    "folder2d": GREY_CHANNELS}
#: Split names in the order cases are listed (``None`` last).
SPLITS = ("train", "val", "test")

NIFTI_SUFFIXES = (".nii.gz", ".nii")
PHOTO_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
#: Files a reader names when it does not use them (other files, e.g. README or a licence, are not data).
DATA_SUFFIXES = (*NIFTI_SUFFIXES, ".h5", ".hdf5", ".npz", ".npy", *PHOTO_SUFFIXES)


@dataclass
class CaseSet:
    """What the 2-D and 3-D case sets (:class:`Seg2DSet`, :class:`medmodal.data.seg3d.common.Seg3DSet`) share: their
    first fields (documented by each) and, over ``cases``, length, iteration and the cases of a split."""

    layout: str
    root: Path
    dataset: str
    cases: list
    classes: tuple[str, ...]
    channels: tuple[str, ...]
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator:
        return iter(self.cases)

    def split(self, name: Optional[str]) -> list:
        """The cases of split ``name`` (``train`` | ``val`` | ``test``; ``None``: those without a split), in set
        order."""
        return [c for c in self.cases if c.split == name]

    @property
    def has_splits(self) -> bool:
        """True when every case has a split (the layout defines train / val / test)."""
        return all(c.split is not None for c in self.cases)


def sorted_cases(cases: list) -> list:
    """``cases`` sorted by split (:data:`SPLITS` order, ``None`` last), then by id in natural order."""
    rank = {name: i for i, name in enumerate(SPLITS)}
    return sorted(cases, key=lambda c: (rank.get(c.split, len(SPLITS)), natural_key(c.id)))


@dataclass(frozen=True)
class Seg2DCase:
    """One case: a volume, the slices of one volume, or one photograph.

    Attributes:
        id: unique within the set (``case0005``, ``patient001_frame01``, ``1`` for CVC-ClinicDB, the image stem
            for Kvasir-SEG and ``folder2d``, the slice file's stem for ``meniscus``).
        split: ``train`` | ``val`` | ``test`` where the layout's list files or official split say so, else ``None``.
        kind: ``volume`` (one file holds the stack), ``slices`` (one file per slice), ``image`` (a photograph or
            2-D picture) or ``npy`` (one 2-D slice in a ``.npy`` file, its label in another).
        image: ``(file,)`` for a volume, photograph or ``.npy`` slice; the slice files in slice order for ``slices``.
        label: separate label files (NIfTI ``label`` / ``_gt``, mask images, label ``.npy``), parallel to ``image``;
            ``()`` when the label is inside the image file (HDF5, NPZ) or absent.
        has_label: whether a label exists for every slice of the case (``False``: an unlabelled case, e.g. of a
            semi-supervised layout's unlabelled pool; :func:`~medmodal.data.seg2d.loading.load_case` gives
            ``label=None``).
        patient: the patient (subject) the case belongs to where the layout says so (``meniscus``: the CSV's subject
            column or the file-name rule); ``None``: derived from the id (:func:`case_patient`).
    """

    id: str
    split: Optional[str]
    kind: str
    image: tuple[Path, ...]
    label: tuple[Path, ...]
    has_label: bool
    patient: Optional[str] = None


@dataclass
class Seg2DSet(CaseSet):
    """What a reader returns: the cases (sorted by split, then by id in natural order) and what was noticed.

    Attributes:
        layout: the layout read (one of :data:`LAYOUTS` or a registered one).
        root: the folder read.
        dataset: ``synapse`` | ``acdc`` | ``polyp`` | ``meniscus`` | ``folder2d`` (which classes, channels and
            normalisation apply).
        cases: the cases.
        classes: the class names, index = label value (:data:`SYNAPSE_CLASSES`, :data:`ACDC_CLASSES`,
            :data:`POLYP_CLASSES`, :data:`MENISCUS_CLASSES`; ``folder2d``: the folder's ``classes.txt`` or
            ``background``, ``class1`` ... up to the largest mask value).
        channels: the image channels: ``("ct",)``, ``("cine",)``, ``("mri",)``, ``("grey",)`` or
            ``("red", "green", "blue")``.
        notes: one line each: every file skipped, ignored or guessed at (named, count and up to 3 examples), and
            every unofficial or derived thing (a split that is not part of the release, a label mapping).
        train_order: the training case ids in the order of the layout's training list (SSL4MIS's
            ``train_slices.list``: its first patients are the labelled ones of the semi-supervised budgets);
            empty when the layout has no such list.
    """

    cases: list[Seg2DCase]
    train_order: tuple[str, ...] = ()


# --------------------------------------------------------------------------- helpers of the readers
def make_set(layout: str, root: Path, dataset: str, cases: list[Seg2DCase], notes: list[str],
             train_order: tuple[str, ...] = (), classes: Optional[tuple[str, ...]] = None,
             channels: Optional[tuple[str, ...]] = None) -> Seg2DSet:
    """A :class:`Seg2DSet` of ``dataset`` with the cases sorted (split order, then natural id order); ``classes`` /
    ``channels`` replace the data set's (:data:`DATASET_CLASSES`, :data:`DATASET_CHANNELS`) for a folder that
    names its own."""
    return Seg2DSet(layout, Path(root), dataset, sorted_cases(cases), tuple(classes or DATASET_CLASSES[dataset]),
                    tuple(channels or DATASET_CHANNELS[dataset]), notes, tuple(train_order))


def patient_of(case_id: str) -> str:
    """The patient of a case id: ``patient001`` of ACDC's ``patient001_frame01`` (the unit of the ACDC splits);
    other ids are their own patient."""
    return case_id.split("_frame")[0]


def case_patient(case: Seg2DCase) -> str:
    """The patient (the unit that must not straddle splits or labelled budgets) of ``case``: the reader's
    :attr:`Seg2DCase.patient` where the layout names one (``meniscus``), else :func:`patient_of` its id."""
    patient = getattr(case, "patient", None)   # 3-D cases (medmodal.data.seg3d) are one patient each
    return patient if patient else patient_of(case.id)


def percentile_scale(image: np.ndarray, low: float = 10.0, high: float = 99.0) -> np.ndarray:
    """float32 ``image`` clipped to its ``low``..``high`` percentiles and scaled to [0, 1] (ERANet's
    ``histogram_normalize``: ``skimage.exposure.rescale_intensity`` with ``in_range`` the 10th and 99th
    percentiles). Where the two percentiles agree (a nearly constant slice) min..max is used; a constant image
    becomes 0."""
    x = np.asarray(image, np.float32)
    lo, hi = (float(v) for v in np.percentile(x, (low, high)))
    if hi <= lo:
        lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros_like(x)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def natural_key(text: str) -> list:
    """Sort key that orders ``case2`` before ``case10`` (numbers compared as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def visible(path: Path) -> bool:
    """False for hidden files and macOS debris (``.DS_Store``, ``._x``, ``__MACOSX``)."""
    return not (path.name.startswith(".") or path.name == "__MACOSX")


def files_in(folder: Optional[Path]) -> list[Path]:
    """Visible files directly in ``folder`` (sorted; empty when ``folder`` is ``None``)."""
    if folder is None or not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and visible(p))


def subdir(root: Path, *names: str) -> Optional[Path]:
    """The first sub-folder of ``root`` named like one of ``names`` (case-insensitive), else ``None``."""
    if not root.is_dir():
        return None
    found = {p.name.lower(): p for p in root.iterdir() if p.is_dir() and visible(p)}
    for name in names:
        if name.lower() in found:
            return found[name.lower()]
    return None


def some(paths: Iterable, limit: int = 3) -> str:
    """``a, b, c (and 4 more)``: up to ``limit`` examples of ``paths``."""
    paths = list(paths)
    shown = ", ".join(str(p) for p in paths[:limit])
    return shown + (f" (and {len(paths) - limit} more)" if len(paths) > limit else "")


def count_note(items: list, what: str, prefix: str = "") -> list[str]:
    """One note ``<prefix><count> <what>: <some(items)>`` (``[]`` when there are none)."""
    return [f"{prefix}{len(items)} {what}: {some(items)}"] if items else []


def unused_note(paths: list[Path], why: str) -> list[str]:
    """One note naming the files not used (``[]`` when there are none)."""
    return count_note(paths, f"file(s) {why}, not used")


def is_data_file(path: Path) -> bool:
    return path.name.lower().endswith(DATA_SUFFIXES)


def strip_suffix(name: str, suffixes: tuple[str, ...]) -> Optional[str]:
    """``name`` without the first of ``suffixes`` it ends with (case-insensitive), else ``None``."""
    low = name.lower()
    for suffix in suffixes:
        if low.endswith(suffix):
            return name[: len(name) - len(suffix)]
    return None


def read_list(path: Path, strip: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """The names of a list file (one per line; blank lines skipped; a trailing ``strip`` suffix removed) and
    the notes (duplicate lines, named and dropped).

    Raises:
        LayoutError: the file cannot be read as text (one line naming it).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LayoutError(f"{path}: cannot read the list file ({type(err).__name__})") from None
    names, seen, dups = [], set(), []
    for line in text.splitlines():
        name = line.strip()
        if not name:
            continue
        name = strip_suffix(name, strip) or name
        if name in seen:
            dups.append(name)
            continue
        seen.add(name)
        names.append(name)
    notes = [f"{path}: {len(dups)} duplicate line(s) read once: {some(dups)}"] if dups else []
    return names, notes


def split_of_lists(lists: dict[str, list[str]], what: str) -> dict[str, str]:
    """``{name: split}`` of the names of several list files (``{split: names}``).

    Raises:
        LayoutError: a name is in two lists.
    """
    out: dict[str, str] = {}
    for split, names in lists.items():
        for name in names:
            if name in out and out[name] != split:
                raise LayoutError(f"{what}: {name} is in both the {out[name]} and the {split} list")
            out[name] = split
    return out


# --------------------------------------------------------------------------- HDF5 / NPZ probing
def h5_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """``{dataset name: shape}`` of the top-level datasets of an HDF5 file (no data read).

    Raises:
        DamagedFileError: the file cannot be opened as HDF5.
    """
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            return {k: tuple(v.shape) for k, v in h5.items() if isinstance(v, h5py.Dataset)}
    except (OSError, RuntimeError, ValueError, KeyError) as err:
        raise DamagedFileError(f"{path}: not a readable HDF5 file ({first_line(err)})") from None


def npz_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """``{array name: shape}`` of an ``.npz`` file, from the array headers (no data read).

    Raises:
        DamagedFileError: not a readable NPZ archive.
    """
    out = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as handle:
                    version = np.lib.format.read_magic(handle)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    out[info.filename[:-4]] = tuple(read(handle)[0])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DamagedFileError(f"{path}: not a readable .npz file ({first_line(err)})") from None
    return out


def probe_labelled(path: Path, kind: str) -> bool:
    """Whether an HDF5 (``kind="h5"``) or NPZ (``"npz"``) file holds a ``label`` next to its ``image``.

    Raises:
        DataError: the file holds no ``image``.
        DamagedFileError: the file cannot be read.
    """
    keys = h5_shapes(path) if kind == "h5" else npz_shapes(path)
    noun = "dataset" if kind == "h5" else "array"
    if "image" not in keys:
        raise DataError(f"{path}: no 'image' {noun} (found: {', '.join(sorted(keys)) or 'none'})")
    return "label" in keys


def labels_of(files: list[Path], kind: str, require: bool, notes: list[str], what: str) -> bool:
    """Probe ``files`` (the HDF5 / NPZ files of one case) for a ``label``: ``True`` when all have one.

    Raises:
        DataError: a file without ``label`` while labels are required (naming the file).
    """
    missing = [p for p in files if not probe_labelled(p, kind)]
    if missing and require:
        noun = "dataset" if kind == "h5" else "array"
        raise DataError(f"{missing[0]}: no 'label' {noun}" + (f" (and {len(missing) - 1} more files of {what})"
                                                               if len(missing) > 1 else ""))
    if missing:
        notes.append(f"{what}: {len(missing)} file(s) without a 'label', kept unlabelled: {some(missing)}")
    return not missing


def first_line(err: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (or its type name), shortened to ``limit`` characters."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- NIfTI and label arrays
def load_nifti(path: Path):
    """The nibabel image of ``path`` (header only; the 2-D and 3-D loaders).

    Raises:
        DamagedFileError: not a readable NIfTI file.
    """
    import nibabel as nib

    try:
        return nib.load(str(path))
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as err:
        raise DamagedFileError(f"{path}: not a readable NIfTI file ({first_line(err)})") from None


def nifti_shape(path: Path, img) -> tuple[int, int, int]:
    """The 3-D shape of a NIfTI image (a 4-D file with one volume counts as 3-D).

    Raises:
        DataError: not one 3-D volume.
    """
    shape = tuple(int(s) for s in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise DataError(f"{path}: expected a 3-D volume, got shape {shape}")
    return shape


def nifti_array(path: Path, img, floating: bool) -> np.ndarray:
    """The voxels of a NIfTI image in the file's axis order, shaped :func:`nifti_shape` (``floating``: float32
    scaled by the header, else the stored values).

    Raises:
        DataError: not one 3-D volume. DamagedFileError: unreadable or truncated data.
    """
    shape = nifti_shape(path, img)
    try:
        data = img.get_fdata(dtype=np.float32) if floating else np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, MemoryError) as err:
        raise DamagedFileError(f"{path}: unreadable or truncated NIfTI data ({first_line(err)})") from None
    return np.asarray(data).reshape(shape)


def label_ints(values: np.ndarray, path: Path, count: int, outside: str) -> np.ndarray:
    """Integer label values ``0..count-1`` as int64.

    Args:
        values: the stored label (integer, boolean, or float holding whole numbers).
        path: the file (messages). count: how many classes. outside: the allowed values in words, for the message
            ``label values ... outside <outside>``.

    Raises:
        DataError: non-integer, non-numeric or out-of-range values (naming up to 8 of them).
    """
    values = np.asarray(values)
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or (values != np.round(values)).any():
            raise DataError(f"{path}: label holds non-integer values")
    elif values.dtype.kind not in "iub":
        raise DataError(f"{path}: label of type {values.dtype} is not numeric")
    ints = values.astype(np.int64)
    bad = np.unique(ints[(ints < 0) | (ints >= count)])
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:8]) + (" ..." if bad.size > 8 else "")
        raise DataError(f"{path}: label values {shown} outside {outside}")
    return ints
