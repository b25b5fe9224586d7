"""A 2-D segmentation folder the user makes: pictures with integer masks, unlabelled pictures beside them.

Layout ``folder2d``::

    <root>/images/<id>.png        pictures (PNG, JPEG, TIFF, BMP), grey or RGB (not both)
    <root>/masks/<id>.png         masks, same stems: integer class values (grey or palette PNG / TIFF)
    <root>/unlabelled/<id>.png    pictures without masks (also spelt unlabeled/): has_label False
    <root>/classes.txt            optional: one class name per line, background first
    <root>/splits.json            optional: {"train": [...], "val": [...], "test": [...]}

``auto`` picks it only when ``unlabelled/`` (or ``unlabeled/``) lies beside ``images/`` + ``masks/``, or when
``classes.txt`` does; a plain ``images/`` + ``masks/`` folder stays the fundus family's generic layout (or
Kvasir-SEG's with ``--layout kvasir_seg``), and a folder Kvasir-SEG's detector recognises (its bounding-box file,
"kvasir" in its name) stays ``kvasir_seg`` (asked first). Otherwise pass ``--layout folder2d``.

Pairs and cases: images and masks pair by stem (a mask without its image is refused; an image of ``images/``
without its mask is refused when labels are required, else kept unlabelled, noted); every picture of
``unlabelled/`` is a case with ``has_label=False`` (named in ``notes``; also when labels are required: the folder
declares them unlabelled); a stem in both ``images/`` and ``unlabelled/`` is refused. Case ids are the stems;
kind ``image``. Files of other kinds in the three folders are named in ``notes``.

Splits: ``splits.json`` names the cases (stems, or file names) of each split; a name it gives that matches no
picture, a case in two splits or another key is refused; cases it does not name get split ``None`` (noted).
Without ``splits.json`` every case has split ``None``.

Classes: ``classes.txt`` (at least two names, no name twice), else ``background``, ``class1`` ... ``class<K>``
with ``K`` the largest mask value (the masks are read for it; noted); masks of 0 / 255 only are binary:
``background``, ``class1``, 255 read as 1 (noted). More than :data:`MAX_INFERRED_CLASSES` inferred classes are
refused (name them in ``classes.txt``). Mask values (:func:`mask_values`): grey, palette (the palette indices),
1-bit and 16-bit masks as stored; an RGB mask whose channels agree as its grey level; a colour-coded mask is
refused. JPEG masks are lossy: read as binary (grey level > 127 is 1), in two-class folders only. When loaded,
a mask of 0 / 255 in a two-class folder is read as 0 / 1; other values must be class indices.

Channels: from the first picture (``images/`` then ``unlabelled/``, natural order): ``("grey",)`` for grey modes
(``L``, ``LA``, ``1``, 16- / 32-bit), ``("red", "green", "blue")`` for the others (RGB, RGBA, palette, CMYK);
a picture of the other kind is refused (one line naming it). Pictures are decoded by
:func:`medmodal.data.images.decode_image` and divided by 255 (16-bit grey: scaled min..max to 0..255 first).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from medmodal.data.seg2d.common import (FOLDER2D_CLASSES, GREY_CHANNELS, PHOTO_SUFFIXES, RGB_CHANNELS, Seg2DCase,
                                        Seg2DSet, count_note, first_line, make_set, natural_key, some, strip_suffix,
                                        subdir, unused_note)
from medmodal.data.seg2d.polyp import _photos
from medmodal.errors import DataError, ImageReadError, LayoutError

__all__ = ["UNLABELLED_DIRS", "MAX_INFERRED_CLASSES", "JPEG_SUFFIXES", "detect_folder2d", "read_folder2d",
           "mask_values", "picture_channels"]

UNLABELLED_DIRS = ("unlabelled", "unlabeled")
#: Most classes inferred from mask values without ``classes.txt`` (a larger value is more likely a grey level).
MAX_INFERRED_CLASSES = 32
JPEG_SUFFIXES = (".jpg", ".jpeg")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def is_jpeg(path: Path) -> bool:
    return path.name.lower().endswith(JPEG_SUFFIXES)


def picture_channels(path: Path) -> tuple[str, ...]:
    """``("grey",)`` or ``("red", "green", "blue")`` of a picture, from its header's mode.

    Raises:
        ImageReadError: not a picture Pillow can read (one line naming it).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode = image.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: not an image Pillow can read ({first_line(err)})") from None
    return GREY_CHANNELS if mode in _GREY_MODES else RGB_CHANNELS


def mask_values(path: Path) -> np.ndarray:
    """A mask's stored values ``[H, W]`` (module docstring): grey / palette / 1-bit / 16-bit as stored, an RGB mask
    whose channels agree as one channel, a JPEG as 0 / 1 (> 127). The EXIF orientation is applied, as to pictures.

    Raises:
        ImageReadError: not a readable picture. DataError: a colour-coded mask, non-integer values.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: image file not found")
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image) or image
            mode = image.mode
            if is_jpeg(path):
                values = np.asarray(image.convert("L"))
                return (values > 127).astype(np.uint8)
            if mode == "LA":
                values = np.asarray(image.getchannel("L"))
            elif mode in ("RGB", "RGBA"):
                values = np.asarray(image.convert("RGB"))
            elif mode in ("1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
                values = np.asarray(image)
            else:
                values = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: not a readable mask image ({first_line(err)})") from None
    if values.ndim == 3:
        if (values != values[..., :1]).any():
            raise DataError(f"{path}: a colour mask (its channels differ); masks hold integer class values (grey or "
                            f"palette images)")
        values = values[..., 0]
    if values.dtype == bool:
        return values.astype(np.uint8)
    if values.dtype.kind == "f" and (not np.isfinite(values).all() or (values != np.round(values)).any()):
        raise DataError(f"{path}: mask holds non-integer values")
    return values


def _has_subdirs(root: Path) -> bool:
    return subdir(root, "images") is not None and subdir(root, "masks") is not None


def detect_folder2d(root: Path) -> Optional[Path]:
    """``root`` when it holds ``images/`` + ``masks/`` and either ``unlabelled/`` (``unlabeled/``) or
    ``classes.txt`` (module docstring)."""
    root = Path(root)
    if not root.is_dir() or not _has_subdirs(root):
        return None
    return root if subdir(root, *UNLABELLED_DIRS) is not None or (root / "classes.txt").is_file() else None


def _read_classes(path: Path) -> tuple[str, ...]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise LayoutError(f"{path}: cannot read the class names ({type(err).__name__})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) < 2:
        raise LayoutError(f"{path}: needs at least two class names, one a line, background first (got {len(names)})")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise LayoutError(f"{path}: class name(s) given twice: {some(twice)}")
    return tuple(names)


def _infer_classes(masks: list[Path], notes: list[str], root: Path) -> tuple[str, ...]:
    """``background``, ``class1`` ... from the largest mask value (module docstring), with the notes."""
    if not masks:
        notes.append(f"{root}: no mask and no classes.txt: classes background, class1 assumed")
        return FOLDER2D_CLASSES
    largest, binary255, top = 0, [], None
    for mask in masks:
        values = np.unique(mask_values(mask))
        if values.size and (values.min() < 0):
            raise DataError(f"{mask}: negative mask values ({values.min()})")
        if not is_jpeg(mask) and values.size and set(values.tolist()) <= {0, 255} and 255 in values:
            binary255.append(mask)
            continue
        peak = int(values.max()) if values.size else 0
        if peak > largest:
            largest, top = peak, mask
    if binary255 and largest > 1:
        raise LayoutError(f"{top}: mask values up to {largest} beside masks of 0 / 255 ({some(binary255)}); give "
                          f"every mask class indices 0, 1, 2 ... (or 0 / 255 for all of a binary folder)")
    if binary255:
        notes.append(f"{len(binary255)} mask(s) of 0 / 255 read as binary (255 -> 1): {some(binary255)}")
        largest = max(largest, 1)
    if largest > MAX_INFERRED_CLASSES:
        raise LayoutError(f"{top}: mask value {largest}: more than {MAX_INFERRED_CLASSES} classes inferred (masks hold "
                          f"class indices 0, 1, 2 ..., or 0 / 255); name the classes in {root / 'classes.txt'}")
    largest = max(largest, 1)
    classes = ("background", *(f"class{k}" for k in range(1, largest + 1)))
    notes.append(f"classes from the largest mask value ({largest}): {', '.join(classes)} (name them in "
                 f"{root / 'classes.txt'}, background first)")
    jpegs = [m for m in masks if is_jpeg(m)]
    if jpegs and len(classes) != 2:
        raise LayoutError(f"{jpegs[0]}: a JPEG mask (lossy: read as binary) among masks of {len(classes)} classes; "
                          f"save the masks as PNG")
    if jpegs:
        notes.append(f"{len(jpegs)} JPEG mask(s) read as binary (grey level > 127): {some(jpegs)}")
    return classes


def _read_splits(path: Path, stems: dict[str, Path]) -> dict[str, str]:
    """``{stem: split}`` from ``splits.json`` (module docstring).

    Raises:
        LayoutError: unreadable JSON, another key, a name that matches no picture, a case in two splits.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LayoutError(f"{path}: not a readable JSON file ({first_line(err)})") from None
    if not isinstance(data, dict):
        raise LayoutError(f"{path}: expected an object {{\"train\": [...], \"val\": [...], \"test\": [...]}}")
    out: dict[str, str] = {}
    for split, names in data.items():
        if split not in ("train", "val", "test"):
            raise LayoutError(f"{path}: unknown split {split!r} (expected train, val, test)")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise LayoutError(f"{path}: {split!r} is not a list of names")
        for name in names:
            stem = strip_suffix(Path(name).name, PHOTO_SUFFIXES) or Path(name).name
            if stem not in stems:
                raise LayoutError(f"{path}: {split} names {name!r}, but no picture of that name is in images/ or "
                                  f"unlabelled/")
            if stem in out and out[stem] != split:
                raise LayoutError(f"{path}: {name!r} is in both the {out[stem]} and the {split} split")
            out[stem] = split
    return out


def read_folder2d(path: Path, require_labels: bool = True) -> Seg2DSet:
    """A user's ``images/`` + ``masks/`` + ``unlabelled/`` folder (module docstring).

    Args:
        path: the folder.
        require_labels: refuse an image of ``images/`` without its mask (else it is kept unlabelled, noted); the
            pictures of ``unlabelled/`` are unlabelled either way.

    Raises:
        LayoutError: neither ``images/`` nor ``unlabelled/``, no picture, unpaired files, a stem twice, grey and
            RGB pictures mixed, a bad ``classes.txt`` / ``splits.json``, masks that name no classes.
        DataError / ImageReadError: a mask that cannot be read for its classes.
    """
    path = Path(path)
    image_dir, mask_dir = subdir(path, "images"), subdir(path, "masks")
    free_dir = subdir(path, *UNLABELLED_DIRS)
    if image_dir is None and free_dir is None:
        raise LayoutError(f"{path}: not a folder2d folder (expected images/ + masks/, and unlabelled/ for pictures "
                          f"without masks)")
    ignored: list[Path] = []
    images = _photos(image_dir, ignored) if image_dir is not None else {}
    masks = _photos(mask_dir, ignored) if mask_dir is not None else {}
    free = _photos(free_dir, ignored) if free_dir is not None else {}
    if not images and not free:
        raise LayoutError(f"{path}: no picture (.png, .jpg, .tif ...) in images/ or unlabelled/")
    orphans = [masks[k] for k in sorted(masks, key=natural_key) if k not in images]
    if orphans:
        raise LayoutError(f"{some(orphans)}: mask without its image (expected in {image_dir or path / 'images'})")
    both = [free[k] for k in sorted(free, key=natural_key) if k in images]
    if both:
        raise LayoutError(f"{both[0]}: the stem {both[0].stem!r} is both in {image_dir} and {free_dir}")
    notes: list[str] = []
    unpaired = [images[k] for k in sorted(images, key=natural_key) if k not in masks]
    if unpaired and require_labels:
        raise LayoutError(f"{some(unpaired)}: image without its mask (expected in {mask_dir or path / 'masks'}; "
                          f"pictures without masks belong in unlabelled/)")
    notes += count_note(unpaired, "image(s) without a mask, kept unlabelled")
    notes += count_note(sorted(free, key=natural_key), f"unlabelled picture(s) in {free_dir} (has_label False)")
    notes += unused_note(ignored, "that are no picture")

    channels = None
    first = None
    for stem in [*sorted(images, key=natural_key), *sorted(free, key=natural_key)]:
        picture = images.get(stem) or free[stem]
        kind = picture_channels(picture)
        if channels is None:
            channels, first = kind, picture
        elif kind != channels:
            what = {GREY_CHANNELS: "grey", RGB_CHANNELS: "colour"}
            raise LayoutError(f"{picture}: a {what[kind]} picture among {what[channels]} ones (the first, {first}, is "
                              f"{what[channels]}); make them all grey or all RGB")

    classes_file = path / "classes.txt"
    if classes_file.is_file():
        classes = _read_classes(classes_file)
        jpegs = [masks[k] for k in sorted(masks, key=natural_key) if is_jpeg(masks[k])]
        if jpegs and len(classes) != 2:
            raise LayoutError(f"{jpegs[0]}: a JPEG mask (lossy: read as binary) in a folder of {len(classes)} classes "
                              f"({classes_file}); save the masks as PNG")
    else:
        classes = _infer_classes([masks[k] for k in sorted(masks, key=natural_key)], notes, path)

    splits_file = path / "splits.json"
    split_of: dict[str, str] = {}
    if splits_file.is_file():
        split_of = _read_splits(splits_file, {**images, **free})
        unnamed = [k for k in [*images, *free] if k not in split_of]
        if unnamed:
            notes.append(f"{splits_file}: {len(unnamed)} case(s) in no split (split None): "
                         f"{some(sorted(unnamed, key=natural_key))}")
    cases = [Seg2DCase(k, split_of.get(k), "image", (p,), (masks[k],) if k in masks else (), k in masks)
             for k, p in images.items()]
    cases += [Seg2DCase(k, split_of.get(k), "image", (p,), (), False) for k, p in free.items()]
    return make_set("folder2d", path, "folder2d", cases, notes, classes=classes, channels=channels)
