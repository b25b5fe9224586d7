"""Readers for the endoscopy layouts users hold, without renaming any file.

Supported layouts (``layout=`` argument, or ``"auto"``):

* ``authors`` - the MICS authors' layout: ``<root>/<class>_WLI/x.png`` + ``<root>/<class>_NBI/x.png``.
  Files pair by name without suffix (``x.jpg`` pairs with ``x.png``); the authors' loader instead
  zips the two sorted folder listings, which silently mis-pairs as soon as one file is missing.
* ``wl-nbi`` - public paired data in class folders: ``<root>/WL/<class>/x.jpg`` +
  ``<root>/NBI/<class>/x.jpg`` (Mesejo et al. 2016 colonoscopy lesions as shared in
  github.com/alekpinel/TFG-NAS; ``WLI/``, ``white-light/`` are accepted for ``WL/``). Images
  directly inside ``WL/`` and ``NBI/`` are unlabelled.
* ``kvasir`` - one modality (white light) in class folders at any depth: Kvasir v2
  (``<root>/<class>/*.jpg``) and HyperKvasir (``labeled-images/<tract>/<kind>/<class>/*.jpg``); the
  class is the folder holding the image. Folders named ``masks`` (segmentation masks) are skipped.
  With ``split_file`` (HyperKvasir ``official_splits/{2,5}_fold_split.csv``: ``file-name;class-name;
  split-index``) the label is the split file's class name (it differs from the folder names,
  e.g. ``normal-cecum`` for the folder ``cecum``) and the split is ``fold<index>``.
* ``kvasir-seg`` - Kvasir-SEG: ``<root>/images/*.jpg`` (+ ``masks/``, not read here), all polyps; only
  when asked for (``--layout kvasir-seg``).

A segmentation set (an image folder with a mask folder paired by file name: Kvasir-SEG, PraNet
``image/`` + ``mask/``, CVC-ClinicDB ``Original/`` + ``Ground Truth/``;
:mod:`medmodal.data.segmentation_sets`) is refused by ``auto`` and by the ``kvasir`` reader with one
line saying what it is: its mask folders are not classes of white-light images.
* ``image-folder`` - images directly in ``<root>``, unlabelled white light (e.g. a prediction input).
* ``csv`` - a CSV file with a header: ``wli`` and ``nbi`` (paths, relative to the CSV's folder;
  empty = absent), optional ``label`` (empty = unlabelled), ``split`` and ``sample_id``.

Hidden files and folders (``.DS_Store``, ``._x.jpg``, ``__MACOSX``) are ignored. A file without
its partner stays in the list as a single-modality sample and is named in a warning line with a
count (:func:`medmodal.data.endoscopy.samples.report_unpaired`); nothing is dropped silently.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Sequence

from medmodal.data.layouts import Layout, find_layout, known_layouts, layout_reader, register_layout
from medmodal.data.segmentation_sets import find_segmentation_set, find_segmentation_sets, segmentation_set_message
from medmodal.errors import ConfigError, DataError, LayoutError
from medmodal.data.endoscopy.samples import (MODALITIES, PairedSample, check_unique_ids, image_files,
                                             is_image_file, logger, name_some, report_unpaired, visible_dirs,
                                             warn_lines)
from medmodal.io import atomic_path

LAYOUTS = ("auto", "authors", "wl-nbi", "kvasir", "kvasir-seg", "image-folder", "csv")
#: Key of these readers in :mod:`medmodal.data.layouts`.
FAMILY = "endoscopy"

_AUTHORS_DIR = re.compile(r"^(?P<cls>.+)_(?P<mod>WLI|NBI)$", re.I)
WL_DIR_NAMES = ("wl", "wli", "white-light", "white_light", "whitelight")
NBI_DIR_NAMES = ("nbi", "narrow-band", "narrow_band", "narrowband")
CSV_COLUMNS = {
    "wli": ("wli", "wl", "wli_path", "white_light", "white-light"),
    "nbi": ("nbi", "nbi_path", "narrow_band", "narrow-band"),
    "label": ("label", "class", "class_name", "class-name"),
    "split": ("split", "fold"),
    "sample_id": ("sample_id", "id", "sample"),
}


def _stem_map(files: Sequence[Path], folder: Path) -> dict[str, Path]:
    """``stem -> file``; two files with the same stem (``x.jpg`` and ``x.png``) are ambiguous."""
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise LayoutError(f"{folder}: two images named {f.stem!r} ({out[f.stem].name}, {f.name}); "
                              f"cannot tell which one pairs")
        out[f.stem] = f
    return out


def _pair(wli: dict[str, Path], nbi: dict[str, Path], label: str | None, split: str | None, source: str,
          prefix: str) -> list[PairedSample]:
    return [PairedSample(prefix + stem, wli.get(stem), nbi.get(stem), label, split, source)
            for stem in sorted(set(wli) | set(nbi))]


def _warn_ignored(items: Sequence[Path], why: str) -> None:
    if items:
        warn_lines([f"{p}: ignored ({why})" for p in items], f"{len(items)} item(s) ignored ({why})")


def read_authors_layout(root: str | Path) -> list[PairedSample]:
    """``<class>_WLI/`` + ``<class>_NBI/`` with matching file names (MICS authors)."""
    root = Path(root)
    folders: dict[str, dict[str, Path]] = {}
    ignored = []
    for d in visible_dirs(root):
        m = _AUTHORS_DIR.match(d.name)
        if not m:
            ignored.append(d)
            continue
        mods = folders.setdefault(m["cls"], {})
        mod = m["mod"].lower()
        if mod in mods:
            raise LayoutError(f"{root}: two {mod.upper()} folders for class {m['cls']!r} "
                              f"({mods[mod].name}, {d.name})")
        mods[mod] = d
    if not folders:
        raise LayoutError(f"{root}: no '<class>_WLI' / '<class>_NBI' folders")
    _warn_ignored(ignored, "not a '<class>_WLI' or '<class>_NBI' folder")
    samples, nested = [], []
    for cls, mods in sorted(folders.items()):
        maps = {}
        for mod in MODALITIES:
            if mod in mods:
                maps[mod] = _stem_map(image_files(mods[mod]), mods[mod])
                nested += visible_dirs(mods[mod])
            else:
                maps[mod] = {}
                logger.warning(f"{root}: class {cls!r} has no {cls}_{mod.upper()} folder")
        samples += _pair(maps["wli"], maps["nbi"], cls, None, "authors", f"{cls}/")
    _warn_ignored(nested, "sub-folder inside a class folder")
    return samples


def _modality_dirs(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in visible_dirs(root):
        key = d.name.lower()
        mod = "wli" if key in WL_DIR_NAMES else "nbi" if key in NBI_DIR_NAMES else None
        if mod is None:
            continue
        if mod in found:
            raise LayoutError(f"{root}: two {mod.upper()} folders ({found[mod].name}, {d.name})")
        found[mod] = d
    return found


def read_wl_nbi_layout(root: str | Path) -> list[PairedSample]:
    """``WL/<class>/x.jpg`` + ``NBI/<class>/x.jpg`` (images directly in ``WL/`` / ``NBI/``: unlabelled)."""
    root = Path(root)
    dirs = _modality_dirs(root)
    if not dirs:
        raise LayoutError(f"{root}: no 'WL/' or 'NBI/' folder")
    for mod in MODALITIES:
        if mod not in dirs:
            logger.warning(f"{root}: no {'WL' if mod == 'wli' else 'NBI'} folder; every sample is single-modality")
    per_class: dict[str | None, dict[str, dict[str, Path]]] = {}
    for mod, folder in dirs.items():
        per_class.setdefault(None, {})[mod] = _stem_map(image_files(folder), folder)
        for cls_dir in visible_dirs(folder):
            per_class.setdefault(cls_dir.name, {})[mod] = _stem_map(image_files(cls_dir), cls_dir)
            _warn_ignored(visible_dirs(cls_dir), "sub-folder inside a class folder")
    samples = []
    for cls in sorted(per_class, key=lambda c: (c is not None, c or "")):
        maps = per_class[cls]
        samples += _pair(maps.get("wli", {}), maps.get("nbi", {}), cls, None, "wl-nbi",
                         f"{cls}/" if cls is not None else "")
    return samples


def _normalise_column(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def read_official_split(path: str | Path) -> dict[str, tuple[str, str]]:
    """HyperKvasir official split CSV -> ``{file name: (class name, "fold<index>")}``.

    Format: ``file-name;class-name;split-index`` with a header (``;`` or ``,`` separated).
    Raises ``ValueError`` naming the file for a missing column or a file listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such split file")
    text = path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = ";" if first.count(";") >= first.count(",") and ";" in first else ","
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    header = [_normalise_column(c) for c in rows[0]] if rows else []
    need = ("file_name", "class_name", "split_index")
    missing = [c for c in need if c not in header]
    if missing:
        raise DataError(f"{path}: not a split file (needs columns file-name, class-name, split-index; "
                        f"header is {rows[0] if rows else 'empty'})")
    idx = [header.index(c) for c in need]
    table: dict[str, tuple[str, str]] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise DataError(f"{path}:{n}: expected {len(header)} columns, got {len(row)}")
        name, cls, fold = (row[i].strip() for i in idx)
        if name in table:
            raise DataError(f"{path}:{n}: {name} is listed twice")
        table[name] = (cls, f"fold{fold}")
    return table


def _walk_images(root: Path, skip: frozenset[Path] = frozenset()) -> tuple[list[Path], list[Path]]:
    """Image files under ``root`` at any depth, skipping hidden entries; also the ``masks`` folders (and
    ``skip``) skipped."""
    found, masks = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            if d.startswith(".") or d == "__MACOSX" or here / d in skip:
                continue
            if d.lower() == "masks":
                masks.append(here / d)
                continue
            keep.append(d)
        dirnames[:] = keep
        found += [here / f for f in sorted(filenames) if is_image_file(here / f)]
    return found, masks


def read_class_folders(root: str | Path, split_file: str | Path | None = None,
                       modality: str = "wli") -> list[PairedSample]:
    """Single-modality class folders (Kvasir v2, HyperKvasir), optionally with an official split file."""
    root = Path(root)
    if modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r}; choose wli or nbi")
    refuse_segmentation_set(root)
    pairs = [p for s in find_segmentation_sets(root) for p in (s.images, s.masks)]
    _warn_ignored(pairs, "a segmentation set's images or masks (paired by file name), not a class")
    files, masks = _walk_images(root, frozenset(pairs))
    _warn_ignored(masks, "segmentation masks, not class images")
    if not files:
        raise LayoutError(f"{root}: no image files in class folders")
    table = read_official_split(split_file) if split_file is not None else None
    samples, unlisted = [], []
    for f in files:
        rel = f.relative_to(root)
        label = rel.parent.name if rel.parent != Path(".") else None
        split = None
        if table is not None:
            if f.name in table:
                label, split = table[f.name]
            else:
                unlisted.append(f)
        sid = rel.with_suffix("").as_posix()
        samples.append(PairedSample(sid, f if modality == "wli" else None, f if modality == "nbi" else None,
                                    label, split, "kvasir"))
    if table is not None:
        if unlisted:  # one line with the count and the first names, however many there are
            logger.warning(f"{len(unlisted)} of {len(files)} images are not in the split file {split_file} (no split; "
                           f"label from their folder): {name_some([str(f.relative_to(root)) for f in unlisted], 5)}")
        names = {f.name for f in files}
        absent = [n for n in table if n not in names]
        if absent:
            logger.warning(f"{split_file}: {len(absent)} of {len(table)} listed images are not under {root} "
                           f"(e.g. {name_some(absent, 3)})")
    return samples


def _kvasir_seg_root(root: Path) -> Path | None:
    def has(d: Path) -> bool:
        return (d / "images").is_dir() and (d / "masks").is_dir()

    if has(root):
        return root
    subs = visible_dirs(root)
    return subs[0] if len(subs) == 1 and has(subs[0]) else None


def read_kvasir_seg(root: str | Path) -> list[PairedSample]:
    """Kvasir-SEG ``images/`` (labelled ``polyps``; the masks are not read by this classifier's reader)."""
    root = Path(root)
    base = _kvasir_seg_root(root)
    if base is None:
        raise LayoutError(f"{root}: no Kvasir-SEG 'images/' + 'masks/' folders")
    files = image_files(base / "images")
    if not files:
        raise LayoutError(f"{base / 'images'}: no image files")
    return [PairedSample(f"images/{f.stem}", f, None, "polyps", None, "kvasir-seg") for f in files]


def read_image_folder(root: str | Path, modality: str = "wli") -> list[PairedSample]:
    """Images directly inside ``root``: unlabelled, one modality."""
    root = Path(root)
    files = image_files(root)
    if not files:
        raise LayoutError(f"{root}: no image files")
    _stem_map(files, root)
    return [PairedSample(f.stem, f if modality == "wli" else None, f if modality == "nbi" else None,
                         None, None, "image-folder") for f in files]


def read_csv_samples(path: str | Path) -> list[PairedSample]:
    """A CSV with a header naming ``wli``, ``nbi`` and optionally ``label``, ``split``, ``sample_id``.

    Paths are relative to the CSV's folder (or absolute). Raises ``ValueError`` naming the file and
    row for a missing column, a row with neither image, or a listed image that does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CSV file")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise DataError(f"{path}: empty CSV file")
    header = [_normalise_column(c) for c in rows[0]]
    cols = {}
    for key, aliases in CSV_COLUMNS.items():
        hits = [i for i, c in enumerate(header) if c in {_normalise_column(a) for a in aliases}]
        if hits:
            cols[key] = hits[0]
    if "wli" not in cols and "nbi" not in cols:
        raise DataError(f"{path}: the header needs a 'wli' and/or an 'nbi' column (got {rows[0]})")
    base = path.parent
    samples = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue

        def cell(key, row=row):
            i = cols.get(key)
            value = row[i].strip() if i is not None and i < len(row) else ""
            return value or None

        files = {}
        for mod in MODALITIES:
            value = cell(mod)
            if value is None:
                files[mod] = None
                continue
            p = Path(value)
            p = p if p.is_absolute() else base / p
            if not p.is_file():
                raise FileNotFoundError(f"{path}:{n}: {p} does not exist")
            files[mod] = p
        if files["wli"] is None and files["nbi"] is None:
            raise DataError(f"{path}:{n}: row has neither a WLI nor an NBI image")
        sid = cell("sample_id") or (files["wli"] or files["nbi"]).stem
        samples.append(PairedSample(sid, files["wli"], files["nbi"], cell("label"), cell("split"), "csv"))
    if not samples:
        raise DataError(f"{path}: no rows")
    return samples


def write_samples_csv(path: str | Path, samples: Sequence[PairedSample]) -> Path:
    """Write ``samples`` in the generic CSV format (absolute paths), readable by :func:`read_csv_samples`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["sample_id", "wli", "nbi", "label", "split"])
            for s in samples:
                w.writerow([s.sample_id, s.wli.resolve() if s.wli else "", s.nbi.resolve() if s.nbi else "",
                            s.label or "", s.split or ""])
    return path


def _folder_detector(test):
    """``detect`` of a folder layout: ``root`` when it is a folder that passes ``test``."""
    return lambda root: root if root.is_dir() and test(root) else None


def _has_class_folders_of_images(root: Path) -> bool:
    return any(is_image_file(f) for d in visible_dirs(root) for f in _iter_files(d))


def refuse_segmentation_set(root: Path) -> None:
    """:class:`LayoutError` (one line saying what it is) when ``root`` holds a segmentation set."""
    found = find_segmentation_set(root)
    if found is not None:
        if (found.images.name, found.masks.name) == ("images", "masks"):
            hint = " (--layout kvasir-seg reads its images/ alone as one 'polyps' class)"
        else:
            hint = f" (to predict on its images alone, unlabelled, give {found.images} itself)"
        raise LayoutError(segmentation_set_message(found) + hint)


def detect_layout(root: str | Path) -> str:
    """Name of the layout of ``root`` (see the module docstring), or :class:`LayoutError`: a
    segmentation set (refused), else the first registered reader (:mod:`medmodal.data.layouts`)
    that recognises it."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder or file")
    if root.is_dir():
        refuse_segmentation_set(root)
    found = find_layout(FAMILY, root)
    if found is not None:
        return found[0]
    if root.is_file():
        raise LayoutError(f"{root}: expected a dataset folder or a CSV file")
    raise LayoutError(
        f"{root}: cannot recognise the layout (expected '<class>_WLI/' + '<class>_NBI/' folders, "
        f"'WL/<class>/' + 'NBI/<class>/', class folders of images (Kvasir, HyperKvasir), a folder of images, "
        f"or a CSV file with wli,nbi,label columns). Pass --layout."
    )


def _iter_files(folder: Path):
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__MACOSX"]
        for f in filenames:
            yield Path(dirpath) / f


def read_samples(root: str | Path, layout: str = "auto", split_file: str | Path | None = None) -> list[PairedSample]:
    """Find the samples under ``root`` (a folder, or a CSV file for ``layout="csv"``).

    Args:
        root: dataset folder or CSV file.
        layout: one of :data:`LAYOUTS`; ``"auto"`` detects it (:func:`detect_layout`).
        split_file: official split CSV (HyperKvasir), for the ``kvasir`` layout.

    Returns:
        Samples sorted by id. Samples without a partner image are kept and reported (warning lines).
        Raises :class:`LayoutError` (a ``ValueError``) or ``FileNotFoundError`` naming the path.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder or file")
    if layout not in known_layouts(FAMILY, LAYOUTS):
        raise LayoutError(f"unknown layout {layout!r}; choose one of {', '.join(known_layouts(FAMILY, LAYOUTS))}")
    if layout == "auto":
        layout = detect_layout(root)
    if layout != "csv" and not root.is_dir():
        raise LayoutError(f"{root}: layout {layout!r} needs a folder")
    if split_file is not None and layout != "kvasir":
        raise LayoutError(f"a split file is read with the 'kvasir' layout only (layout here: {layout!r})")
    samples = layout_reader(FAMILY, layout).read(root, split_file=split_file)
    if not samples:
        raise LayoutError(f"{root}: no samples found for layout {layout!r}")
    check_unique_ids(samples, root)
    report_unpaired(samples)
    return sorted(samples, key=lambda s: s.sample_id)


def _read(reader):
    """``read(root, split_file=None)`` of a reader that takes no split file."""
    return lambda root, split_file=None: reader(root)


# Detection order (after detect_layout refuses a segmentation set): a CSV file, then folders: the authors'
# <class>_WLI / <class>_NBI, WL/ + NBI/, class folders of images (Kvasir, HyperKvasir), images directly in
# the folder. Kvasir-SEG is read only when asked for.
for _layout in (
    Layout(FAMILY, "csv", _read(read_csv_samples), lambda root: root if root.is_file() and root.suffix.lower() == ".csv"
           else None),
    Layout(FAMILY, "authors", _read(read_authors_layout),
           _folder_detector(lambda root: any(_AUTHORS_DIR.match(d.name) for d in visible_dirs(root)))),
    Layout(FAMILY, "wl-nbi", _read(read_wl_nbi_layout), _folder_detector(
        lambda root: any(d.name.lower() in WL_DIR_NAMES + NBI_DIR_NAMES for d in visible_dirs(root)))),
    Layout(FAMILY, "kvasir-seg", _read(read_kvasir_seg)),   # asked for only: auto refuses a segmentation set
    Layout(FAMILY, "kvasir", read_class_folders, _folder_detector(_has_class_folders_of_images)),
    Layout(FAMILY, "image-folder", _read(read_image_folder),
           _folder_detector(lambda root: bool(image_files(root)))),
):
    register_layout(_layout)


__all__ = ["LAYOUTS", "LayoutError", "detect_layout", "read_samples", "read_authors_layout", "read_wl_nbi_layout",
           "read_class_folders", "read_kvasir_seg", "read_image_folder", "read_csv_samples", "read_official_split",
           "write_samples_csv"]
