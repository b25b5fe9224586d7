"""Readers for the official layouts of the retinal vessel data sets, without renaming any file.

Layouts (``layout=`` name, or ``"auto"``; detection in this order):

* ``drive`` - DRIVE: ``<root>/{training,test}/images/<nn>_{training,test}.tif``,
  ``1st_manual/<nn>_manual1.gif`` (first observer), ``2nd_manual/<nn>_manual2.gif`` (second observer,
  the test split only in the official release), ``mask/<nn>_{training,test}_mask.gif`` (official FOV).
  ``split`` is ``training`` / ``test``. A split folder may be passed as the root too.
* ``chase_db1`` - CHASE_DB1: flat ``Image_<nn><L|R>.jpg``, ``Image_<nn><L|R>_1stHO.png``,
  ``_2ndHO.png``. The official release has NO FOV masks: the FOV is derived
  (:func:`medmodal.data.fundus.fov.derive_fov`). Some copies carry ``Image_<nn><L|R>_mask.png``
  (made by the copy's author, e.g. ``fundus-real/CHASEDB1``): they are read when present and the
  notes say they are not official.
* ``hrf`` - HRF: ``images/<nn>_{h,dr,g}.jpg``, ``manual1/<nn>_{h,dr,g}.tif``,
  ``mask/<nn>_{h,dr,g}_mask.tif`` (official FOV; one observer).
* ``stare`` - STARE: ``stare-images/im<nnnn>.ppm``, ``labels-ah/im<nnnn>.ah.ppm`` (Hoover, the
  usual reference), ``labels-vk/im<nnnn>.vk.ppm`` (Kouznetsova, second observer); no FOV masks
  (derived). The full release labels 20 of its ~400 images: pass ``require_labels=False`` to keep the
  others as unlabelled samples (they are listed in the notes).
* ``generic`` - ``images/`` + ``masks/`` (+ optional ``fov/``), paired by file stem (a mask or FOV
  stem may add ``_mask``, ``_gt``, ``_manual1``, ``_fov`` ...); FOV derived where ``fov/`` is absent.

Every reader returns a :class:`FundusSet`: the :class:`FundusSample` records (id, image path,
vessel label paths with the first observer first, FOV mask path or ``None``, layout, split) and
``notes``, the lines a ``data summary`` prints (a derived FOV, unofficial masks, unlabelled images).

Pairing is strict: an image without its label and a label (second observer, FOV mask) without its
image raise one :class:`~medmodal.errors.LayoutError` line naming the file (and the count when
several); nothing is dropped silently. Hidden files (``.DS_Store``, ``._x.jpg``, ``__MACOSX``) are
ignored. Files that match no pattern of the layout (``README``, ``SOURCE.md``) are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from medmodal.data.layouts import Layout, find_layout, known_layouts, layout_reader, register_layout
from medmodal.errors import InputError, LayoutError

__all__ = ["FAMILY", "LAYOUTS", "FundusSample", "FundusSet", "read_fundus", "as_fundus_dataset", "detect_layout", "read_drive",
           "read_chase_db1", "read_hrf", "read_stare", "read_generic", "DERIVED_FOV_NOTE"]

#: Key of these readers in :mod:`medmodal.data.layouts` (the image kind the ``seg`` family reads).
FAMILY = "fundus"
LAYOUTS = ("auto", "drive", "chase_db1", "hrf", "stare", "generic")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".bmp")
DERIVED_FOV_NOTE = ("{dataset}: no official field-of-view masks; the FOV is derived from each image "
                    "(red-channel threshold, largest component, holes filled)")


#: layouts whose official release has no FOV masks, so that a mask file found beside the images is a copy's own
UNOFFICIAL_MASK_LAYOUTS = frozenset({"chase_db1"})


@dataclass(frozen=True)
class FundusSample:
    """One fundus photograph and its annotations.

    Attributes:
        id: unique within the set (the image's stem, e.g. ``21_training``, ``Image_01L``, ``im0001``).
        image: the photograph. labels: vessel label files, first observer first (empty: unlabelled).
        fov: the FOV mask file, or ``None`` (derived from the image when needed).
        layout: the layout read. split: ``training`` / ``test`` (DRIVE), else ``None``.
    """

    id: str
    image: Path
    labels: tuple[Path, ...]
    fov: Optional[Path]
    layout: str
    split: Optional[str] = None

    @property
    def label(self) -> Optional[Path]:
        """The first observer's label (the reference), or ``None``."""
        return self.labels[0] if self.labels else None

    @property
    def fov_source(self) -> str:
        """``official`` (the data set's own FOV mask), ``unofficial`` (a mask file that is not part of the
        official release: CHASE_DB1's ``_mask.png``, :data:`UNOFFICIAL_MASK_LAYOUTS`) or ``derived`` (no mask
        file: derived from the image)."""
        if self.fov is None:
            return "derived"
        return "unofficial" if self.layout in UNOFFICIAL_MASK_LAYOUTS else "official"

    @property
    def second_label(self) -> Optional[Path]:
        """The second observer's label, or ``None``."""
        return self.labels[1] if len(self.labels) > 1 else None


@dataclass
class FundusSet:
    """What a reader returns: the samples (sorted by split then id), the layout, the root and notes."""

    samples: list[FundusSample]
    layout: str
    root: Path
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self):
        return iter(self.samples)

    def split(self, name: str) -> list[FundusSample]:
        return [s for s in self.samples if s.split == name]


# --------------------------------------------------------------------------- helpers
def _visible(path: Path) -> bool:
    return not (path.name.startswith(".") or path.name == "__MACOSX")


def _files(folder: Path) -> list[Path]:
    """Visible image files directly in ``folder`` (sorted)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and _visible(p)
                  and p.name.lower().endswith(_IMAGE_SUFFIXES))


def _dir(root: Path, *names: str) -> Optional[Path]:
    """The first sub-folder of ``root`` named like one of ``names`` (case-insensitive), else ``None``."""
    if not root.is_dir():
        return None
    wanted = [n.lower() for n in names]
    found = {p.name.lower(): p for p in root.iterdir() if p.is_dir() and _visible(p)}
    for name in wanted:
        if name in found:
            return found[name]
    return None


def _some(paths: list[Path], limit: int = 3) -> str:
    shown = ", ".join(str(p) for p in paths[:limit])
    return shown + (f" (and {len(paths) - limit} more)" if len(paths) > limit else "")


def _match(files: Iterable[Path], pattern: re.Pattern, folder: Path, what: str) -> dict[str, Path]:
    """``{key: file}`` for the files whose name matches ``pattern`` (group ``key``); a duplicate key is refused."""
    out: dict[str, Path] = {}
    for path in files:
        m = pattern.fullmatch(path.name)
        if not m:
            continue
        key = m.group("key").lower()
        if key in out:
            raise LayoutError(f"{path}: a second {what} for {out[key].name} in {folder}")
        out[key] = path
    return out


def _pair(images: dict[str, Path], others: dict[str, Path], what: str, folder: Path, required: bool
          ) -> dict[str, Path]:
    """Check ``others`` (labels / masks keyed like ``images``): a file without its image is an error,
    and so is an image without one when ``required``."""
    orphans = [others[k] for k in sorted(others) if k not in images]
    if orphans:
        raise LayoutError(f"{_some(orphans)}: {what} without its image in {folder}")
    if required:
        missing = [images[k] for k in sorted(images) if k not in others]
        if missing:
            raise LayoutError(f"{_some(missing)}: image without its {what} (expected in {folder})")
    return others


def _check_labels(images: dict[str, Path], labels: dict[str, Path], folder: Path, require: bool,
                  hint: str = "") -> list[str]:
    """Orphan labels are errors; images without a label are errors when ``require``, else noted."""
    _pair(images, labels, "vessel label", folder, required=False)
    missing = [images[k] for k in sorted(images) if k not in labels]
    if not missing:
        return []
    if require:
        raise LayoutError(f"{_some(missing)}: image without its vessel label (expected in {folder}){hint}")
    return [f"{len(missing)} image(s) without vessel labels, kept unlabelled: {_some(missing)}"]


# --------------------------------------------------------------------------- DRIVE
_DRIVE_SPLITS = ("training", "test")
_DRIVE_IMAGE = re.compile(r"(?P<key>\d+)_(?:training|test)\.tiff?", re.I)
_DRIVE_MANUAL1 = re.compile(r"(?P<key>\d+)_manual1\.(?:gif|png|tiff?)", re.I)
_DRIVE_MANUAL2 = re.compile(r"(?P<key>\d+)_manual2\.(?:gif|png|tiff?)", re.I)
_DRIVE_MASK = re.compile(r"(?P<key>\d+)_(?:training|test)_mask\.(?:gif|png|tiff?)", re.I)


def _drive_split_dirs(root: Path) -> list[tuple[Optional[str], Path]]:
    splits = [(name, d) for name in _DRIVE_SPLITS if (d := _dir(root, name)) is not None
              and _dir(d, "images") is not None]
    if splits:
        return splits
    if _dir(root, "images") is not None and _dir(root, "1st_manual") is not None:  # a split folder itself
        name = root.name.lower()
        return [(name if name in _DRIVE_SPLITS else None, root)]
    return []


def detect_drive(root: Path) -> Optional[Path]:
    root = Path(root)
    for _, folder in _drive_split_dirs(root):
        if _dir(folder, "1st_manual") is not None:
            return root
    return None


def read_drive(path: Path, require_labels: bool = True) -> FundusSet:
    """DRIVE (module docstring). The official FOV masks are used; a split without ``mask/`` gets a derived FOV."""
    path = Path(path)
    splits = _drive_split_dirs(path)
    if not splits:
        raise LayoutError(f"{path}: not a DRIVE folder (expected training/ or test/ with images/ and 1st_manual/)")
    samples, notes = [], []
    for split, folder in splits:
        image_dir = _dir(folder, "images")
        images = _match(_files(image_dir), _DRIVE_IMAGE, image_dir, "image")
        if not images:
            raise LayoutError(f"{image_dir}: no DRIVE images (<nn>_{split or 'training'}.tif)")
        manual1_dir = _dir(folder, "1st_manual")
        manual1 = _match(_files(manual1_dir), _DRIVE_MANUAL1, manual1_dir, "label") if manual1_dir else {}
        notes += _check_labels(images, manual1, manual1_dir or folder / "1st_manual", require_labels)
        manual2_dir = _dir(folder, "2nd_manual")
        manual2 = (_pair(images, _match(_files(manual2_dir), _DRIVE_MANUAL2, manual2_dir, "label"),
                         "second observer's label", manual2_dir, required=True) if manual2_dir else {})
        mask_dir = _dir(folder, "mask")
        masks = (_pair(images, _match(_files(mask_dir), _DRIVE_MASK, mask_dir, "mask"), "FOV mask", mask_dir,
                       required=True) if mask_dir else {})
        if mask_dir is None:
            notes.append(DERIVED_FOV_NOTE.format(dataset=f"DRIVE {split or folder.name} (no mask/ folder)"))
        for key in sorted(images, key=int):
            labels = tuple(p for p in (manual1.get(key), manual2.get(key)) if p is not None)
            if key not in manual1:
                labels = ()
            samples.append(FundusSample(images[key].name.split(".")[0], images[key], labels, masks.get(key),
                                        "drive", split))
    return FundusSet(samples, "drive", path, notes)


# --------------------------------------------------------------------------- CHASE_DB1
_CHASE_IMAGE = re.compile(r"(?P<key>Image_\d+[LR])\.jpe?g", re.I)
_CHASE_1ST = re.compile(r"(?P<key>Image_\d+[LR])_1stHO\.(?:png|gif|tiff?)", re.I)
_CHASE_2ND = re.compile(r"(?P<key>Image_\d+[LR])_2ndHO\.(?:png|gif|tiff?)", re.I)
_CHASE_MASK = re.compile(r"(?P<key>Image_\d+[LR])_mask\.(?:png|gif|tiff?)", re.I)


def detect_chase_db1(root: Path) -> Optional[Path]:
    root = Path(root)
    if root.is_dir() and any(_CHASE_IMAGE.fullmatch(p.name) for p in root.iterdir() if _visible(p)):
        return root
    return None


def read_chase_db1(path: Path, require_labels: bool = True) -> FundusSet:
    """CHASE_DB1 (module docstring): two observers; FOV from unofficial ``_mask.png`` files when present, else derived."""
    path = Path(path)
    if not path.is_dir():
        raise LayoutError(f"{path}: not a folder")
    files = _files(path)
    images = _match(files, _CHASE_IMAGE, path, "image")
    if not images:
        raise LayoutError(f"{path}: no CHASE_DB1 images (Image_<nn><L|R>.jpg)")
    first = _match(files, _CHASE_1ST, path, "label")
    notes = _check_labels(images, first, path, require_labels)
    second = _pair(images, _match(files, _CHASE_2ND, path, "label"), "second observer's label", path, required=False)
    masks = _match(files, _CHASE_MASK, path, "mask")
    if masks:
        _pair(images, masks, "FOV mask", path, required=True)
        notes.append("CHASE_DB1: FOV masks read from the _mask.png files found beside the images; they are NOT "
                     "part of the official release (made by the copy's author)")
    else:
        notes.append(DERIVED_FOV_NOTE.format(dataset="CHASE_DB1"))
    missing2 = [images[k] for k in sorted(images) if k in first and k not in second]
    if missing2:
        notes.append(f"CHASE_DB1: {len(missing2)} image(s) without the second observer's label: {_some(missing2)}")
    samples = []
    for key in sorted(images):
        labels = (first[key], second[key]) if key in first and key in second else (
            (first[key],) if key in first else ())
        samples.append(FundusSample(images[key].stem, images[key], labels, masks.get(key), "chase_db1"))
    return FundusSet(samples, "chase_db1", path, notes)


# --------------------------------------------------------------------------- HRF
_HRF_IMAGE = re.compile(r"(?P<key>\d+_(?:h|dr|g))\.(?:jpe?g|tiff?|png)", re.I)
_HRF_LABEL = re.compile(r"(?P<key>\d+_(?:h|dr|g))\.(?:tiff?|png|gif)", re.I)
_HRF_MASK = re.compile(r"(?P<key>\d+_(?:h|dr|g))_mask\.(?:tiff?|png|gif)", re.I)


def detect_hrf(root: Path) -> Optional[Path]:
    root = Path(root)
    return root if _dir(root, "images") is not None and _dir(root, "manual1") is not None else None


def read_hrf(path: Path, require_labels: bool = True) -> FundusSet:
    """HRF (module docstring): official FOV masks in ``mask/``; derived where that folder is absent."""
    path = Path(path)
    image_dir, label_dir, mask_dir = _dir(path, "images"), _dir(path, "manual1"), _dir(path, "mask")
    if image_dir is None or label_dir is None:
        raise LayoutError(f"{path}: not an HRF folder (expected images/ and manual1/)")
    images = _match(_files(image_dir), _HRF_IMAGE, image_dir, "image")
    if not images:
        raise LayoutError(f"{image_dir}: no HRF images (<nn>_h.jpg, <nn>_dr.jpg, <nn>_g.jpg)")
    labels = _match(_files(label_dir), _HRF_LABEL, label_dir, "label")
    notes = _check_labels(images, labels, label_dir, require_labels)
    masks = _pair(images, _match(_files(mask_dir), _HRF_MASK, mask_dir, "mask"), "FOV mask", mask_dir,
                  required=True) if mask_dir else {}
    if mask_dir is None:
        notes.append(DERIVED_FOV_NOTE.format(dataset="HRF (no mask/ folder)"))
    samples = [FundusSample(images[k].stem, images[k], (labels[k],) if k in labels else (), masks.get(k), "hrf")
               for k in sorted(images, key=lambda k: (int(k.split("_")[0]), k))]
    return FundusSet(samples, "hrf", path, notes)


# --------------------------------------------------------------------------- STARE
_STARE_IMAGE = re.compile(r"(?P<key>im\d+)\.(?:ppm|pgm|png|jpe?g|tiff?)", re.I)
_STARE_AH = re.compile(r"(?P<key>im\d+)\.ah\.(?:ppm|pgm|png|gif)", re.I)
_STARE_VK = re.compile(r"(?P<key>im\d+)\.vk\.(?:ppm|pgm|png|gif)", re.I)


def detect_stare(root: Path) -> Optional[Path]:
    root = Path(root)
    return root if _dir(root, "stare-images") is not None else None


def read_stare(path: Path, require_labels: bool = True) -> FundusSet:
    """STARE (module docstring): ``labels-ah`` is the first observer, ``labels-vk`` the second; FOV derived."""
    path = Path(path)
    image_dir = _dir(path, "stare-images")
    if image_dir is None:
        raise LayoutError(f"{path}: not a STARE folder (expected stare-images/)")
    images = _match(_files(image_dir), _STARE_IMAGE, image_dir, "image")
    if not images:
        raise LayoutError(f"{image_dir}: no STARE images (im<nnnn>.ppm; gunzip the .ppm.gz files first)")
    ah_dir, vk_dir = _dir(path, "labels-ah"), _dir(path, "labels-vk")
    ah = _match(_files(ah_dir), _STARE_AH, ah_dir, "label") if ah_dir else {}
    vk = _match(_files(vk_dir), _STARE_VK, vk_dir, "label") if vk_dir else {}
    notes = _check_labels(images, ah, ah_dir or path / "labels-ah", require_labels,
                          hint="; the full STARE release labels 20 images: pass require_labels=False to keep "
                               "the others unlabelled")
    if vk_dir is not None:
        _pair(images, vk, "second observer's label", vk_dir, required=False)
        without = [images[k] for k in sorted(ah) if k not in vk]
        if without:
            raise LayoutError(f"{_some(without)}: labelled image without its second observer's label in {vk_dir}")
    notes.append(DERIVED_FOV_NOTE.format(dataset="STARE"))
    samples = [FundusSample(images[k].name.split(".")[0], images[k],
                            tuple(p for p in (ah.get(k), vk.get(k)) if p is not None) if k in ah else (), None,
                            "stare") for k in sorted(images)]
    return FundusSet(samples, "stare", path, notes)


# --------------------------------------------------------------------------- generic
_MASK_SUFFIXES = ("", "_mask", "-mask", "_gt", "-gt", "_seg", "_label", "_manual1", "_vessels", "_vessel")
_FOV_SUFFIXES = ("", "_fov", "-fov", "_mask", "-mask")


def detect_generic(root: Path) -> Optional[Path]:
    root = Path(root)
    return root if _dir(root, "images") is not None and _dir(root, "masks") is not None else None


def _by_stem(files: list[Path], suffixes: tuple[str, ...], images: dict[str, Path], folder: Path, what: str
             ) -> dict[str, Path]:
    out: dict[str, Path] = {}
    orphans = []
    for path in files:
        stem = path.name.rsplit(".", 1)[0]
        key = next((stem[: len(stem) - len(s)] for s in suffixes if stem.endswith(s) and stem[: len(stem) - len(s)]
                    in images), None) if stem not in images else stem
        if key is None:
            orphans.append(path)
        elif key in out:
            raise LayoutError(f"{path}: a second {what} for {images[key].name} in {folder}")
        else:
            out[key] = path
    if orphans:
        raise LayoutError(f"{_some(orphans)}: {what} without its image in {folder}")
    return out


def read_generic(path: Path, require_labels: bool = True) -> FundusSet:
    """``images/`` + ``masks/`` (+ ``fov/``) paired by stem (module docstring)."""
    path = Path(path)
    image_dir, mask_dir, fov_dir = _dir(path, "images"), _dir(path, "masks"), _dir(path, "fov")
    if image_dir is None or mask_dir is None:
        raise LayoutError(f"{path}: not an images/ + masks/ folder")
    images: dict[str, Path] = {}
    for p in _files(image_dir):
        stem = p.name.rsplit(".", 1)[0]
        if stem in images:
            raise LayoutError(f"{p}: two images with the stem {stem!r} in {image_dir}")
        images[stem] = p
    if not images:
        raise LayoutError(f"{image_dir}: no images")
    labels = _by_stem(_files(mask_dir), _MASK_SUFFIXES, images, mask_dir, "vessel label")
    notes = _check_labels(images, labels, mask_dir, require_labels)
    fovs = _pair(images, _by_stem(_files(fov_dir), _FOV_SUFFIXES, images, fov_dir, "FOV mask"), "FOV mask", fov_dir,
                 required=True) if fov_dir else {}
    if fov_dir is None:
        notes.append(DERIVED_FOV_NOTE.format(dataset=f"{path.name} (generic layout, no fov/ folder)"))
    samples = [FundusSample(k, images[k], (labels[k],) if k in labels else (), fovs.get(k), "generic")
               for k in sorted(images)]
    return FundusSet(samples, "generic", path, notes)


# --------------------------------------------------------------------------- registry
_READERS: tuple[tuple[str, Callable, Callable], ...] = (
    ("drive", read_drive, detect_drive),
    ("chase_db1", read_chase_db1, detect_chase_db1),
    ("hrf", read_hrf, detect_hrf),
    ("stare", read_stare, detect_stare),
    ("generic", read_generic, detect_generic),
)
for _name, _read, _detect in _READERS:
    register_layout(Layout(FAMILY, _name, read=_read, detect=_detect))


def detect_layout(root: str | Path) -> tuple[str, Path]:
    """``(layout, path to read)`` of a fundus folder.

    Raises:
        LayoutError: ``root`` is missing or matches no layout (one line naming what was expected).
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: fundus data folder not found")
    found = find_layout(FAMILY, root)
    if found is None:
        raise LayoutError(f"{root}: no fundus layout recognised (expected DRIVE training/ + test/, CHASE_DB1 "
                          f"Image_<nn><L|R>.jpg, HRF images/ + manual1/, STARE stare-images/, or images/ + masks/)")
    return found


def read_fundus(root: str | Path, layout: str = "auto", require_labels: bool = True) -> FundusSet:
    """Read a fundus data folder in ``layout`` (one of :data:`LAYOUTS` or a registered one; ``auto`` detects).

    Raises:
        LayoutError: unknown layout, unrecognised folder, or a pairing problem (module docstring).
    """
    if layout not in known_layouts(FAMILY, LAYOUTS):
        raise LayoutError(f"unknown fundus layout {layout!r}; choose one of {', '.join(known_layouts(FAMILY, LAYOUTS))}")
    if layout == "auto":
        layout, path = detect_layout(root)
    else:
        path = Path(root)
        if not path.is_dir():
            raise LayoutError(f"{path}: fundus data folder not found")
    return layout_reader(FAMILY, layout).read(path, require_labels=require_labels)


def as_fundus_dataset(folder: str | Path) -> FundusSet | None:
    """``folder`` read as a fundus data set with at least one photograph (labels not required), else ``None``:
    for checks such as "is this output folder a data set?" that must not fail on an ordinary folder."""
    if not Path(folder).is_dir():
        return None
    try:
        found = read_fundus(folder, "auto", require_labels=False)
    except InputError:
        return None
    return found if found.samples else None

