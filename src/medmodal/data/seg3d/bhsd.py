"""BHSD-style head CT with intracranial haemorrhage labels (Wu et al., "BHSD: A 3D Multi-Class Brain Hemorrhage
Segmentation Dataset", MLMI 2023).

Layout ``bhsd``::

    <root>/images/<id>.nii.gz          non-contrast head CT in Hounsfield units
    <root>/labels/<id>.nii.gz          0 background, 1 EDH, 2 IPH, 3 IVH, 4 SAH, 5 SDH (BHSD's values)
    <root>/unlabelled/<id>.nii.gz      optional: images without labels (also ``unlabeled/``)
    <root>/splits.json                 optional: {"train": [ids], "val": [ids], "test": [ids]}
    <root>/train.list  val.list  test.list   optional instead of splits.json (or ``.txt``), one id a line

The released ``label_192`` folder calls the label folder ``ground truths/``; it is accepted (also
``ground_truths/``), as is ``.nii`` for ``.nii.gz``. Images and labels pair by file name; an image without a label
is unlabelled (``has_label`` false, named in a note: BHSD's unlabelled scans can lie beside the labelled ones, the
semi-supervised setting), a label without its image is refused. Without ``splits.json`` or list files every case has
split ``None`` (BHSD defines no split); ``splits.json`` may also be nnU-Net's ``splits_final.json`` form, a list of
folds (fold 0 is read, noted). With a training list, unlabelled images (of ``images/`` or ``unlabelled/``) that no
list names are training data (split ``train``, noted); labelled images that no list names keep split ``None``
(noted). Without a split every case has split ``None``. ``train_order`` is the training list's order (empty without
one). Ids are file names without ``.nii.gz``.

Labels: by default binarised when loaded (value > 0 -> 1, classes :data:`HAEMORRHAGE_CLASSES`), as SWDL (Wang et al.,
arXiv:2506.10325) evaluates BHSD as one haemorrhage class; ``binary=False`` keeps BHSD's five types
(:data:`BHSD_CLASSES`). Either way a note says which. Intensities: the brain window, level 40 HU / width 80 HU,
``[0, 80]`` HU clipped and scaled to [0, 1] when loaded (:data:`BRAIN_WINDOW`; the standard radiological brain
window, in which fresh blood at about 50-80 HU stands out from brain at about 20-40 HU). Spacing and orientation
are the NIfTI header's (:mod:`medmodal.data.seg3d.loading`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from medmodal.data.seg2d.common import read_list, some, subdir, unused_note
from medmodal.data.seg3d.common import (BHSD_CLASSES, HAEMORRHAGE_CLASSES, NIFTI_SUFFIXES, SPLITS, Seg3DCase, Seg3DSet,
                                        listed_split, make_set, nifti_files, orphan_labels)
from medmodal.errors import LayoutError

__all__ = ["BHSD_LABEL_DIRS", "UNLABELLED_DIRS", "BRAIN_WINDOW", "SPLITS_FILE", "detect_bhsd", "read_bhsd",
           "read_split_files"]

#: Names of the label folder (``labels/``; the release's ``ground truths/``).
BHSD_LABEL_DIRS = ("labels", "ground truths", "ground_truths", "groundtruths")
#: Names of a folder of images without labels.
UNLABELLED_DIRS = ("unlabelled", "unlabeled")
#: The brain window in HU (level 40, width 80), scaled to [0, 1] when loaded.
BRAIN_WINDOW = (0.0, 80.0)
#: The optional split file.
SPLITS_FILE = "splits.json"
_LIST_NAMES = tuple((split, f"{split}{ext}") for ext in (".list", ".txt") for split in SPLITS)


def detect_bhsd(root: Path) -> Optional[Path]:
    """``root`` when it holds ``images/`` and ``labels/`` (or ``ground truths/``) with NIfTI files."""
    root = Path(root)
    images, labels = subdir(root, "images"), subdir(root, *BHSD_LABEL_DIRS)
    if images is None or labels is None:
        return None
    return root if nifti_files(images, []) and nifti_files(labels, []) else None


def read_split_files(root: Path, notes: list[str]) -> tuple[dict[str, list[str]], dict[str, Path]]:
    """``({split: ids}, {split: file})`` of ``root/splits.json``, else of ``root``'s list files (``train.list``,
    ``val.list``, ``test.list`` or ``.txt``); empty when there is none. Ids lose a ``.nii.gz`` / ``.nii`` suffix.

    Raises:
        LayoutError: an unreadable or malformed ``splits.json`` or list file.
    """
    path = root / SPLITS_FILE
    names: dict[str, list[str]] = {}
    files: dict[str, Path] = {}
    if path.is_file():
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise LayoutError(f"{path}: cannot read the split file ({type(err).__name__})") from None
        if isinstance(content, list):
            if not content or not isinstance(content[0], dict):
                raise LayoutError(f"{path}: expected {{\"train\": [...], \"val\": [...], \"test\": [...]}} or a list "
                                  f"of such folds")
            notes.append(f"{path}: a list of {len(content)} fold(s); fold 0 read")
            content = content[0]
        if not isinstance(content, dict):
            raise LayoutError(f"{path}: expected {{\"train\": [...], \"val\": [...], \"test\": [...]}}")
        unknown = sorted(k for k in content if k not in SPLITS)
        if unknown:
            notes.append(f"{path}: key(s) {', '.join(map(repr, unknown))} not read (only train / val / test)")
        for split in SPLITS:
            ids = content.get(split, [])
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise LayoutError(f"{path}: {split!r} is not a list of case ids")
            if split in content:
                names[split] = list(dict.fromkeys(_stem(i) for i in ids))
                files[split] = path
        ignored = [root / n for _, n in _LIST_NAMES if (root / n).is_file()]
        if ignored:
            notes.append(f"{some(ignored)}: not read ({SPLITS_FILE} gives the split)")
        return names, files
    second = []
    for split, name in _LIST_NAMES:
        if not (root / name).is_file():
            continue
        if split in files:
            second.append(root / name)
            continue
        names[split], dup = read_list(root / name, NIFTI_SUFFIXES)
        files[split] = root / name
        notes += dup
    if second:
        notes.append(f"{some(second)}: not read (the .list file of the same split is)")
    return names, files


def _stem(name: str) -> str:
    name = name.strip().rsplit("/", 1)[-1]
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_bhsd(path: Path, binary: Optional[bool] = None, require_labels: bool = False) -> Seg3DSet:
    """The BHSD layout (module docstring).

    Args:
        path: the folder holding ``images/`` and ``labels/``.
        binary: binarise the labels (haemorrhage or not); ``None``: the layout's default, ``True``.
        require_labels: refuse an image without its label (else it is kept unlabelled, named in a note).

    Raises:
        LayoutError: not a BHSD folder, a label without its image, two files of one stem, a list naming a missing
            image, an image in two lists, an unreadable split file, an image without label when labels are required.
    """
    path = Path(path)
    image_dir, label_dir = subdir(path, "images"), subdir(path, *BHSD_LABEL_DIRS)
    if image_dir is None:
        raise LayoutError(f"{path}: not a BHSD folder (expected images/<id>.nii.gz and labels/<id>.nii.gz)")
    binary = True if binary is None else bool(binary)
    notes: list[str] = []
    other: list = []
    images = nifti_files(image_dir, other)
    labels = nifti_files(label_dir, other)
    extra_dir = subdir(path, *UNLABELLED_DIRS)
    extra = nifti_files(extra_dir, other)
    notes += unused_note(other, "in images/, labels/ or unlabelled/ are not NIfTI")
    orphan_labels(images, labels, image_dir)
    both = sorted(set(images) & set(extra))
    if both:
        raise LayoutError(f"{extra[both[0]]}: also in {image_dir} ({images[both[0]].name})")
    missing = [images[k] for k in images if k not in labels]
    if missing and require_labels:
        raise LayoutError(f"{missing[0]}: image without its label in {label_dir or path / 'labels'}")
    names, lists = read_split_files(path, notes)
    everything = {**images, **extra}
    splits = listed_split(names, everything, lists, lambda name: image_dir / f"{name}.nii.gz")
    default_extra = "train" if "train" in names else None
    cases = [Seg3DCase(k, splits.get(k, None if k in labels else default_extra), p, labels.get(k), k in labels)
             for k, p in images.items()]
    cases += [Seg3DCase(k, splits.get(k, default_extra), p, None, False) for k, p in extra.items()]
    if not cases:
        raise LayoutError(f"{path}: no NIfTI image in {image_dir}")
    if missing:
        notes.append(f"{len(missing)} image(s) without a label, kept unlabelled: {some(missing)}")
    if extra:
        notes.append(f"{len(extra)} unlabelled image(s) in {extra_dir}: {some(list(extra.values()))}")
    if names:
        counts = " / ".join(f"{len(v)} {k}" for k, v in names.items())
        notes.append(f"split: {', '.join(sorted({f.name for f in lists.values()}))} ({counts}); not part of BHSD")
        outside = [k for k in images if k not in splits and k in labels]
        if outside:
            notes.append(f"{len(outside)} labelled case(s) in no split, split None: {some(outside)}")
        pooled = [k for k in everything if k not in splits and k not in labels]
        if pooled and default_extra:
            notes.append(f"{len(pooled)} unlabelled image(s) in no split, training data (split train): "
                         f"{some(pooled)}")
    if binary:
        notes.append("labels binarised when loaded: BHSD's 1-5 (EDH, IPH, IVH, SAH, SDH) -> 1 haemorrhage (as SWDL); "
                     "binary=False keeps the five types")
        classes, source = HAEMORRHAGE_CLASSES, BHSD_CLASSES
    else:
        notes.append("labels: BHSD's five haemorrhage types (1 EDH, 2 IPH, 3 IVH, 4 SAH, 5 SDH)")
        classes, source = BHSD_CLASSES, ()
    notes.append(f"intensity: brain window [{BRAIN_WINDOW[0]:g}, {BRAIN_WINDOW[1]:g}] HU (level 40, width 80) "
                 f"scaled to [0, 1]")
    return make_set("bhsd", path, "bhsd", cases, classes, ("ct",), notes, names.get("train", []), binary, source)
