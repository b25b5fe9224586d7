"""Recognise a 2-D segmentation set on disk: an image folder with a mask folder paired by file name.

The layouts users hold (polyp sets, and most other 2-D segmentation releases)::

    Kvasir-SEG        <root>/images/x.jpg        + <root>/masks/x.jpg
    PraNet            <root>/image/x.png         + <root>/mask/x.png    (TrainDataset; TestDataset/<set>/images + masks)
    CVC-ClinicDB      <root>/Original/1.tif      + <root>/Ground Truth/1.tif

A classification reader that takes sub-folders as classes would read such a set's mask folder
as a class of white-light images; :func:`find_segmentation_set` lets it refuse the folder with one
line saying what it is (:func:`segmentation_set_message`). A sub-folder is a mask folder when it
is paired by file name with a sibling image folder (most of its images have a partner of the same
stem, or the stem plus ``_mask`` / ``_gt`` / ``_segmentation`` ...) AND either

* its name says so (``mask(s)``, ``ground truth``, ``gt``, ``label(s)``, ``annotation(s)``,
  ``segmentation(s)``, ``manual``, ``truth``; case, spaces, ``-`` and ``_`` ignored), or
* its content does: its first images (up to :data:`CONTENT_SAMPLE`) are binary-looking (grey, nearly
  every pixel near black or white, JPEG ringing allowed) and its partner folder's are not.

A class folder of binary-looking images with no partner of the same names is a class, not a mask
folder. The folder itself, its sub-folders and theirs (depth 2: PraNet's ``TestDataset/<set>/``)
are looked at; a folder is a segmentation set when a pair lies directly in it, or when pairs lie
deeper and no other image does (a classification tree holding one, as HyperKvasir with its
``segmented-images/``, is not: its readers skip the pairs). The segmentation readers (2-D
segmentation family) read these pairs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medmodal.data.images import decode_image

__all__ = ["SegmentationSet", "find_segmentation_set", "find_segmentation_sets", "segmentation_set_message", "MASK_DIR_NAMES",
           "IMAGE_DIR_NAMES"]

#: folder names of masks (normalised: lower case, no spaces, ``-`` or ``_``).
MASK_DIR_NAMES = frozenset({"mask", "masks", "groundtruth", "groundtruths", "gt", "gts", "label", "labels",
                            "annotation", "annotations", "segmentation", "segmentations", "seg", "manual",
                            "manual1", "1stmanual", "truth", "binarymasks"})
#: folder names of the images beside them (used to name the layout; any folder can pair).
IMAGE_DIR_NAMES = frozenset({"image", "images", "original", "originals", "img", "imgs", "input", "inputs", "frames"})
#: stem suffixes a mask file may add to its image's stem.
MASK_STEM_SUFFIXES = ("_mask", "-mask", "_masks", "_gt", "-gt", "_seg", "_segmentation", "_label", "_manual1",
                      "_annotation")
#: share of a mask folder's images that must have a partner of the same name.
PAIRED_SHARE = 0.5
#: images decoded per folder for the content test.
CONTENT_SAMPLE = 3
_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")


@dataclass(frozen=True)
class SegmentationSet:
    """An image folder and a mask folder paired by file name.

    Attributes:
        root: the folder looked at. images / masks: the two folders. paired: masks with an image
            partner; masks: images in the mask folder. by: ``name`` or ``content`` (why ``masks`` is a
            mask folder).
    """

    root: Path
    images: Path
    masks: Path
    paired: int
    mask_files: int
    by: str

    @property
    def kind(self) -> str:
        """The known layout the two folder names match, or a plain description."""
        names = (_norm(self.images.name), _norm(self.masks.name))
        return {("images", "masks"): "Kvasir-SEG / PraNet layout", ("image", "mask"): "PraNet layout",
                ("original", "groundtruth"): "CVC-ClinicDB layout"}.get(names, "image and mask folders")


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


def _visible_dirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX")
    except OSError:
        return []


def _images(folder: Path) -> list[Path]:
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [folder / n for n in names if not n.startswith(".") and n.lower().endswith(_SUFFIXES)
            and (folder / n).is_file()]


def _mask_stem(stem: str) -> str:
    low = stem.lower()
    for suffix in MASK_STEM_SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix):
            return low[:-len(suffix)]
    return low


def _paired(masks: list[Path], images: list[Path]) -> int:
    stems = {p.stem.lower() for p in images}
    return sum(1 for m in masks if m.stem.lower() in stems or _mask_stem(m.stem) in stems)


def _binary_looking(path: Path) -> bool:
    try:
        rgb = decode_image(path, "rgb").astype(np.int16)
    except Exception:  # an unreadable file is no evidence; the readers report it
        return False
    if np.mean(rgb.max(axis=-1) - rgb.min(axis=-1) > 24) > 0.01:
        return False  # colour: a photograph
    grey = rgb.mean(axis=-1)
    return float(np.mean((grey <= 48) | (grey >= 207))) >= 0.97


def _folder_binary(files: list[Path]) -> bool:
    sample = files[:CONTENT_SAMPLE]
    return bool(sample) and all(_binary_looking(p) for p in sample)


def _pairs_in(folder: Path) -> list[SegmentationSet]:
    """Every image / mask folder pair among ``folder``'s sub-folders (a folder in one pair at most)."""
    subs = _visible_dirs(folder)
    if len(subs) < 2:
        return []
    files = {d: _images(d) for d in subs}
    binary: dict[Path, bool] = {}

    def looks_binary(d: Path) -> bool:
        if d not in binary:
            binary[d] = _folder_binary(files[d])
        return binary[d]

    found, used = [], set()
    for masks in subs:
        if not files[masks] or masks in used:
            continue
        by_name = _norm(masks.name) in MASK_DIR_NAMES
        for images in subs:
            if images == masks or images in used or not files[images] or _norm(images.name) in MASK_DIR_NAMES:
                continue
            paired = _paired(files[masks], files[images])
            if paired == 0 or paired < PAIRED_SHARE * len(files[masks]):
                continue
            by = "name" if by_name else "content" if looks_binary(masks) and not looks_binary(images) else None
            if by is not None:
                found.append(SegmentationSet(folder, images, masks, paired, len(files[masks]), by))
                used |= {images, masks}
                break
    return found


def find_segmentation_sets(root: str | Path, depth: int = 2) -> list[SegmentationSet]:
    """Every image / mask folder pair in ``root`` or its sub-folders (down to ``depth``), outer ones first
    (``SegmentationSet.root`` is ``root``)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found: list[SegmentationSet] = []
    level = [root]
    for _ in range(depth + 1):
        taken = set()
        for folder in level:
            for pair in _pairs_in(folder):
                found.append(SegmentationSet(root, pair.images, pair.masks, pair.paired, pair.mask_files, pair.by))
                taken |= {pair.images, pair.masks}
        level = [d for folder in level for d in _visible_dirs(folder) if d not in taken]
    return found


def _images_outside(root: Path, skip: set[Path]) -> bool:
    """Whether an image file lies under ``root`` outside the folders ``skip`` (stops at the first)."""
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__MACOSX" and here / d not in skip]
        if any(not n.startswith(".") and n.lower().endswith(_SUFFIXES) for n in names):
            return True
    return False


def find_segmentation_set(root: str | Path, depth: int = 2) -> SegmentationSet | None:
    """The first image / mask folder pair when ``root`` is a segmentation set: a pair directly in
    ``root``, or pairs in its sub-folders (down to ``depth``: a release's ``Kvasir-SEG/`` or PraNet's
    ``TrainDataset/`` + ``TestDataset/<set>/``) with no other image under ``root``; else ``None`` (a
    classification tree that also holds a segmentation set, as HyperKvasir's ``segmented-images/``:
    :func:`find_segmentation_sets` names its folders)."""
    root = Path(root)
    sets = find_segmentation_sets(root, depth)
    if not sets:
        return None
    if sets[0].images.parent == root:
        return sets[0]
    inside = {p for s in sets for p in (s.images, s.masks)}
    return None if _images_outside(root, inside) else sets[0]


def segmentation_set_message(found: SegmentationSet, purpose: str = "a classification layout") -> str:
    """One line: what ``found`` is and why it is refused for ``purpose``."""
    def rel(p: Path) -> str:
        try:
            return p.relative_to(found.root).as_posix()
        except ValueError:
            return str(p)

    binary = f", {rel(found.masks)}/ holds binary images" if found.by == "content" else ""
    return (f"{found.root}: a segmentation set ({rel(found.images)}/ with {rel(found.masks)}/ paired by file name, "
            f"{found.paired} of {found.mask_files} masks{binary}: {found.kind}), not {purpose}; mask folders are "
            f"not classes")
