"""Colonoscopy polyp photographs with binary masks: CVC-ClinicDB and Kvasir-SEG, as released.

* ``cvc_clinicdb`` - CVC-ClinicDB (Bernal et al., 2015)::

      <root>/Original/<n>.tif        RGB frames (PNG copies: <n>.png)
      <root>/Ground Truth/<n>.tif    masks, same stems (grey or RGB; any channel > 127 is polyp)

  ``Ground Truth`` may also be spelt ``GroundTruth`` or ``Ground_Truth``.

* ``kvasir_seg`` - Kvasir-SEG (Jha et al., 2020)::

      <root>/images/<id>.jpg         RGB photographs
      <root>/masks/<id>.jpg          JPEG masks, same stems (grey level > 127 is polyp: JPEG leaves artefacts)
      <root>/kavsir_bboxes.json      bounding boxes (the official zip's spelling; not read)

  Because a plain ``images/`` + ``masks/`` folder is also the fundus family's generic layout, ``auto`` picks
  ``kvasir_seg`` only when the folder holds ``kavsir_bboxes.json`` (or ``kvasir_bboxes.json``) or its name
  contains "kvasir" (any case), or when it holds one such ``Kvasir-SEG/`` folder (then that folder is read);
  otherwise pass ``--layout kvasir_seg``.

Neither data set has an official split: every case has split ``None``. Images and masks pair by file stem;
a mask without its image is refused, and so is an image without its mask when labels are required
(else it is kept unlabelled, with a note).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from medmodal.data.seg2d.common import (PHOTO_SUFFIXES, Seg2DCase, Seg2DSet, files_in, is_data_file, make_set, some,
                                        strip_suffix, subdir, visible)
from medmodal.errors import LayoutError

__all__ = ["KVASIR_BBOX_FILES", "detect_cvc_clinicdb", "read_cvc_clinicdb", "detect_kvasir_seg", "read_kvasir_seg"]

#: Names of Kvasir-SEG's bounding-box file (the official zip spells it ``kavsir``).
KVASIR_BBOX_FILES = ("kavsir_bboxes.json", "kvasir_bboxes.json")
_CVC_MASK_DIRS = ("Ground Truth", "GroundTruth", "Ground_Truth")


def _photos(folder: Path, ignored: list[Path]) -> dict[str, Path]:
    """``{stem: file}`` of the images in ``folder``; other data files go to ``ignored``.

    Raises:
        LayoutError: two images with one stem.
    """
    out: dict[str, Path] = {}
    for p in files_in(folder):
        stem = strip_suffix(p.name, PHOTO_SUFFIXES)
        if stem is None:
            if is_data_file(p):
                ignored.append(p)
            continue
        if stem in out:
            raise LayoutError(f"{p}: two files with the stem {stem!r} in {folder} (also {out[stem].name})")
        out[stem] = p
    return out


def _read_pairs(root: Path, image_dir: Path, mask_dir: Optional[Path], layout: str, require_labels: bool) -> Seg2DSet:
    """Images and masks paired by stem (module docstring)."""
    ignored: list[Path] = []
    images = _photos(image_dir, ignored)
    if not images:
        raise LayoutError(f"{image_dir}: no image (.tif, .png, .jpg ...)")
    masks = _photos(mask_dir, ignored) if mask_dir is not None else {}
    orphans = [masks[k] for k in sorted(masks) if k not in images]
    if orphans:
        raise LayoutError(f"{some(orphans)}: mask without its image (expected in {image_dir})")
    notes: list[str] = []
    unpaired = [images[k] for k in sorted(images) if k not in masks]
    where = mask_dir if mask_dir is not None else root / ("Ground Truth" if layout == "cvc_clinicdb" else "masks")
    if unpaired and require_labels:
        raise LayoutError(f"{some(unpaired)}: image without its mask (expected in {where})")
    if unpaired:
        notes.append(f"{len(unpaired)} image(s) without a mask, kept unlabelled: {some(unpaired)}")
    if ignored:
        notes.append(f"{len(ignored)} file(s) that are no image, not used: {some(ignored)}")
    cases = [Seg2DCase(k, None, "image", (images[k],), (masks[k],) if k in masks else (), k in masks) for k in images]
    return make_set(layout, root, "polyp", cases, notes)


# --------------------------------------------------------------------------- CVC-ClinicDB
def detect_cvc_clinicdb(root: Path) -> Optional[Path]:
    """``root`` when it holds ``Original/`` and ``Ground Truth/``."""
    root = Path(root)
    return root if subdir(root, "Original") is not None and subdir(root, *_CVC_MASK_DIRS) is not None else None


def read_cvc_clinicdb(path: Path, require_labels: bool = True) -> Seg2DSet:
    """CVC-ClinicDB (module docstring).

    Args:
        path: the folder holding ``Original/`` and ``Ground Truth/``.
        require_labels: refuse an image without its mask (else it is kept unlabelled, with a note).

    Raises:
        LayoutError: no ``Original/``, no image, unpaired files, two files with one stem.
    """
    path = Path(path)
    image_dir = subdir(path, "Original")
    if image_dir is None:
        raise LayoutError(f"{path}: not a CVC-ClinicDB folder (expected Original/ and Ground Truth/)")
    return _read_pairs(path, image_dir, subdir(path, *_CVC_MASK_DIRS), "cvc_clinicdb", require_labels)


# --------------------------------------------------------------------------- Kvasir-SEG
def _kvasir_like(folder: Path) -> bool:
    if subdir(folder, "images") is None or subdir(folder, "masks") is None:
        return False
    return "kvasir" in folder.name.lower() or any((folder / name).is_file() for name in KVASIR_BBOX_FILES)


def detect_kvasir_seg(root: Path) -> Optional[Path]:
    """``root`` (or its single ``*kvasir*/`` sub-folder) when it holds ``images/`` + ``masks/`` and either the
    bounding-box file or "kvasir" in its name (module docstring)."""
    root = Path(root)
    if not root.is_dir():
        return None
    if _kvasir_like(root):
        return root
    inner = [p for p in root.iterdir() if p.is_dir() and visible(p) and "kvasir" in p.name.lower() and _kvasir_like(p)]
    return inner[0] if len(inner) == 1 else None


def read_kvasir_seg(path: Path, require_labels: bool = True) -> Seg2DSet:
    """Kvasir-SEG (module docstring).

    Args:
        path: the folder holding ``images/`` and ``masks/``.
        require_labels: refuse an image without its mask (else it is kept unlabelled, with a note).

    Raises:
        LayoutError: no ``images/``, no image, unpaired files, two files with one stem.
    """
    path = Path(path)
    if subdir(path, "images") is None and (inner := detect_kvasir_seg(path)) is not None:
        path = inner  # the folder holding the official zip's Kvasir-SEG/
    image_dir = subdir(path, "images")
    if image_dir is None:
        raise LayoutError(f"{path}: not a Kvasir-SEG folder (expected images/ and masks/)")
    return _read_pairs(path, image_dir, subdir(path, "masks"), "kvasir_seg", require_labels)
