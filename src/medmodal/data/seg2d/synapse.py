"""Synapse multi-organ CT (the MICCAI 2015 "Beyond the Cranial Vault" abdomen challenge, BTCV) as users hold it.

Two layouts:

* ``synapse`` - TransUNet's distribution (``Beckschen/TransUNet``, ``datasets/dataset_synapse.py``)::

      <root>/train_npz/case<nnnn>_slice<nnn>.npz    keys image float32 [H, W] in [0, 1], label [H, W] 0..8
      <root>/test_vol_h5/case<nnnn>.npy.h5          datasets image [S, H, W], label [S, H, W]
      <root>/lists/lists_Synapse/train.txt          slice names without extension
      <root>/lists/lists_Synapse/test_vol.txt       case names

  The list folder may also be ``<root>/lists_Synapse/`` or ``<root>/lists/``. Training cases are the slices of
  ``train.txt`` grouped by case (kind ``slices``, split ``train``, slices in slice-number order); test cases
  are the volumes of ``test_vol.txt`` (kind ``volume``, split ``test``). Without a list file every file of its
  folder is read (split from the folder: ``train_npz`` train, ``test_vol_h5`` test), with a note. TransUNet has
  no validation split. A ``test_vol_h5/case<nnnn>.h5`` (without ``.npy``) is accepted too.

* ``synapse_raw`` - the challenge's own files (``RawData/Training``)::

      <root>/img/img<nnnn>.nii.gz      CT in Hounsfield units
      <root>/label/label<nnnn>.nii.gz  BTCV's 13 organ labels

  ``<root>`` may also be the folder holding ``Training/`` (``Testing/``, without labels, is then not read: a
  note says so). The case id is ``case<nnnn>`` (TransUNet's name of the same scan). BTCV's labels are mapped
  to TransUNet's 8 classes (:data:`BTCV_TO_SYNAPSE`; esophagus, inferior vena cava, portal / splenic vein and
  both adrenal glands become background, as in TransUNet's data). The split is TransUNet's (not part of the
  release, so it is noted): :data:`TRANSUNET_TEST_CASES` test, :data:`TRANSUNET_TRAIN_CASES` train, any other
  case ``None``. Intensities are clipped to [-125, 275] HU and scaled to [0, 1] when loaded (TransUNet's
  preprocessing; :mod:`medmodal.data.seg2d.loading`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np

from medmodal.data.seg2d.common import (NIFTI_SUFFIXES, Seg2DCase, Seg2DSet, files_in, is_data_file, labels_of,
                                        make_set, natural_key, read_list, some, split_of_lists, strip_suffix, subdir,
                                        unused_note)
from medmodal.errors import LayoutError

__all__ = ["TRANSUNET_TEST_CASES", "TRANSUNET_TRAIN_CASES", "BTCV_TO_SYNAPSE", "BTCV_LABELS", "BTCV_LUT", "HU_WINDOW",
           "detect_synapse", "read_synapse", "detect_synapse_raw", "read_synapse_raw"]

#: TransUNet's 12 test volumes (``lists/lists_Synapse/test_vol.txt``).
TRANSUNET_TEST_CASES = ("case0001", "case0002", "case0003", "case0004", "case0008", "case0022", "case0025",
                        "case0029", "case0032", "case0035", "case0036", "case0038")
#: The other 18 of the 30 labelled BTCV training scans, TransUNet's training cases (``train.txt``).
TRANSUNET_TRAIN_CASES = ("case0005", "case0006", "case0007", "case0009", "case0010", "case0021", "case0023",
                         "case0024", "case0026", "case0027", "case0028", "case0030", "case0031", "case0033",
                         "case0034", "case0037", "case0039", "case0040")
#: BTCV label value -> index in :data:`~medmodal.data.seg2d.common.SYNAPSE_CLASSES` (absent values -> 0).
BTCV_TO_SYNAPSE = {8: 1, 4: 2, 3: 3, 2: 4, 6: 5, 11: 6, 1: 7, 7: 8}
#: BTCV's label values 1..13 by name (the challenge's ``label<nnnn>.nii.gz``).
BTCV_LABELS = ("background", "spleen", "right kidney", "left kidney", "gallbladder", "esophagus", "liver", "stomach",
               "aorta", "inferior vena cava", "portal and splenic vein", "pancreas", "right adrenal gland",
               "left adrenal gland")
#: ``BTCV_LUT[btcv_value]`` = the Synapse class index (:data:`BTCV_TO_SYNAPSE` as a lookup table over 0..13).
BTCV_LUT = np.zeros(len(BTCV_LABELS), np.int64)
BTCV_LUT[list(BTCV_TO_SYNAPSE)] = list(BTCV_TO_SYNAPSE.values())
#: TransUNet's CT window in HU (``[-125, 275]`` -> ``[0, 1]``).
HU_WINDOW = (-125.0, 275.0)

_SLICE = re.compile(r"(?P<case>case\d+)_slice(?P<slice>\d+)", re.I)
_CASE = re.compile(r"case\d+", re.I)
_TEST_SUFFIXES = (".npy.h5", ".h5")
_LIST_DIRS = (("lists", "lists_Synapse"), ("lists_Synapse",), ("lists",))


# --------------------------------------------------------------------------- TransUNet's npz / h5 form
def detect_synapse(root: Path) -> Optional[Path]:
    """``root`` when it holds ``train_npz/`` or ``test_vol_h5/``."""
    root = Path(root)
    return root if subdir(root, "train_npz") is not None or subdir(root, "test_vol_h5") is not None else None


def _lists_dir(root: Path) -> Optional[Path]:
    for parts in _LIST_DIRS:
        folder = root
        for part in parts:
            folder = subdir(folder, part) if folder is not None else None
        if folder is not None and any((folder / n).is_file() for n in ("train.txt", "test_vol.txt")):
            return folder
    return None


def _listed(list_file: Path, names: list[str], pattern: re.Pattern, form: str, available: dict[str, Path],
            expected: Path, suffix: str) -> dict[str, Path]:
    """``{name: file}`` of the names of a list file; a name that is no ``pattern`` or whose file is missing is
    one :class:`LayoutError` line naming both."""
    out = {}
    for name in names:
        if not pattern.fullmatch(name):
            raise LayoutError(f"{list_file}: {name!r} is not a {form} name")
        if name not in available:
            raise LayoutError(f"{list_file} names {name} but {expected / (name + suffix)} is missing")
        out[name] = available[name]
    return out


def read_synapse(path: Path, require_labels: bool = True) -> Seg2DSet:
    """TransUNet's Synapse distribution (module docstring).

    Args:
        path: the folder holding ``train_npz/`` and / or ``test_vol_h5/``.
        require_labels: refuse a file without ``label`` (else it is kept unlabelled, with a note).

    Raises:
        LayoutError: no data folder, a list name whose file is missing, a case in both lists, no case at all.
        DataError: a file without ``image`` (or without ``label`` when required).
        DamagedFileError: an unreadable file.
    """
    path = Path(path)
    train_dir, test_dir = subdir(path, "train_npz"), subdir(path, "test_vol_h5")
    if train_dir is None and test_dir is None:
        raise LayoutError(f"{path}: not a TransUNet Synapse folder (expected train_npz/ or test_vol_h5/)")
    lists = _lists_dir(path)
    notes: list[str] = []
    slices: dict[str, Path] = {}
    ignored: list[Path] = []
    for p in files_in(train_dir):
        stem = strip_suffix(p.name, (".npz",))
        if stem is not None and _SLICE.fullmatch(stem):
            slices[stem] = p
        elif is_data_file(p):
            ignored.append(p)
    volumes: dict[str, Path] = {}
    for p in files_in(test_dir):
        stem = strip_suffix(p.name, _TEST_SUFFIXES)
        if stem is not None and _CASE.fullmatch(stem) and stem not in volumes:
            volumes[stem] = p
        elif is_data_file(p):
            ignored.append(p)
    notes += unused_note(ignored, "in train_npz/ or test_vol_h5/ match no case<nnnn>_slice<nnn>.npz or "
                                  "case<nnnn>.npy.h5 name")

    train_list = lists / "train.txt" if lists is not None and (lists / "train.txt").is_file() else None
    test_list = lists / "test_vol.txt" if lists is not None and (lists / "test_vol.txt").is_file() else None
    if train_list is not None:
        names, dup = read_list(train_list, (".npz",))
        notes += dup
        used = _listed(train_list, names, _SLICE, "case<nnnn>_slice<nnn>", slices, train_dir or path / "train_npz",
                       ".npz")
        notes += unused_note([p for k, p in sorted(slices.items()) if k not in used],
                             f"in train_npz/ not in {train_list}")
    else:
        used = slices
        if slices:
            notes.append(f"{path}: no train.txt (lists/lists_Synapse/, lists_Synapse/ or lists/): every slice file of "
                         f"train_npz/ read as training data")
    if test_list is not None:
        names, dup = read_list(test_list, _TEST_SUFFIXES)
        notes += dup
        tests = _listed(test_list, names, _CASE, "case<nnnn>", volumes, test_dir or path / "test_vol_h5", ".npy.h5")
        notes += unused_note([p for k, p in sorted(volumes.items()) if k not in tests],
                             f"in test_vol_h5/ not in {test_list}")
    else:
        tests = volumes
        if volumes:
            notes.append(f"{path}: no test_vol.txt (lists/lists_Synapse/, lists_Synapse/ or lists/): every volume of "
                         f"test_vol_h5/ read as test data")
    if lists is not None:
        others = [p for p in files_in(lists) if p.name not in ("train.txt", "test_vol.txt")]
        notes += unused_note(others, f"in {lists} besides train.txt and test_vol.txt")

    groups: dict[str, list[tuple[int, Path]]] = {}
    for name, file in used.items():
        m = _SLICE.fullmatch(name)
        groups.setdefault(m.group("case"), []).append((int(m.group("slice")), file))
    split_of_lists({"train": list(groups), "test": list(tests)}, f"{path}: train.txt and test_vol.txt")
    cases = []
    for case, members in groups.items():
        files = [f for _, f in sorted(members)]
        has = labels_of(files, "npz", require_labels, notes, f"training case {case}")
        cases.append(Seg2DCase(case, "train", "slices", tuple(files), (), has))
    for case, file in tests.items():
        has = labels_of([file], "h5", require_labels, notes, f"test case {case}")
        cases.append(Seg2DCase(case, "test", "volume", (file,), (), has))
    if not cases:
        raise LayoutError(f"{path}: no Synapse case (train_npz/case<nnnn>_slice<nnn>.npz, "
                          f"test_vol_h5/case<nnnn>.npy.h5)")
    return make_set("synapse", path, "synapse", cases, notes)


# --------------------------------------------------------------------------- the challenge's NIfTI files
_IMG = re.compile(r"img(?P<num>\d+)", re.I)
_LABEL = re.compile(r"label(?P<num>\d+)", re.I)


def _raw_folder(root: Path) -> Optional[Path]:
    """``root`` or its ``Training/`` when it holds ``img/img<nnnn>.nii.gz``."""
    for folder in (root, subdir(root, "Training")):
        img = subdir(folder, "img") if folder is not None else None
        if img is not None and any(_IMG.fullmatch(strip_suffix(p.name, NIFTI_SUFFIXES) or "") for p in files_in(img)):
            return folder
    return None


def detect_synapse_raw(root: Path) -> Optional[Path]:
    """``root`` (or its ``Training/``) when it holds ``img/img<nnnn>.nii.gz``."""
    return _raw_folder(Path(root))


def _numbered(folder: Optional[Path], pattern: re.Pattern, what: str, ignored: list[Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in files_in(folder):
        stem = strip_suffix(p.name, NIFTI_SUFFIXES)
        m = pattern.fullmatch(stem) if stem is not None else None
        if m is None:
            if is_data_file(p):
                ignored.append(p)
            continue
        case = f"case{int(m.group('num')):04d}"
        if case in out:
            raise LayoutError(f"{p}: a second {what} for {case} in {folder} (also {out[case].name})")
        out[case] = p
    return out


def read_synapse_raw(path: Path, require_labels: bool = True) -> Seg2DSet:
    """The BTCV challenge layout ``img/`` + ``label/`` (module docstring).

    Args:
        path: the folder holding ``img/`` and ``label/`` (or its parent holding ``Training/``).
        require_labels: refuse an image without its label file (else it is kept unlabelled, with a note).

    Raises:
        LayoutError: no ``img/``, a label without its image, an image without its label (when required), two files
            of one case.
    """
    path = Path(path)
    folder = _raw_folder(path)
    if folder is None:
        raise LayoutError(f"{path}: not a BTCV folder (expected img/img<nnnn>.nii.gz and label/label<nnnn>.nii.gz, "
                          f"or Training/ holding them)")
    notes: list[str] = []
    testing = subdir(path, "Testing") if folder != path else None
    if testing is not None:
        notes.append(f"{testing}: not read (the challenge's unlabelled test scans; pass it as the root to read it)")
    ignored: list[Path] = []
    img_dir, label_dir = subdir(folder, "img"), subdir(folder, "label")
    images = _numbered(img_dir, _IMG, "image", ignored)
    labels = _numbered(label_dir, _LABEL, "label", ignored)
    orphans = [labels[k] for k in sorted(labels) if k not in images]
    if orphans:
        raise LayoutError(f"{some(orphans)}: label without its image (expected {img_dir}/img<nnnn>.nii.gz)")
    unlabelled = [images[k] for k in sorted(images) if k not in labels]
    if unlabelled and require_labels:
        raise LayoutError(f"{some(unlabelled)}: image without its label (expected in {label_dir or folder / 'label'})")
    if unlabelled:
        notes.append(f"{len(unlabelled)} image(s) without a label, kept unlabelled: {some(unlabelled)}")
    notes += unused_note(ignored, "in img/ or label/ match no img<nnnn> / label<nnnn> name")
    notes.append("BTCV labels mapped to TransUNet's 8 classes (aorta 8, gallbladder 4, left kidney 3, right kidney 2, "
                 "liver 6, pancreas 11, spleen 1, stomach 7); esophagus 5, inferior vena cava 9, portal / splenic vein "
                 "10 and the adrenal glands 12, 13 become background")
    split = {c: "test" for c in TRANSUNET_TEST_CASES} | {c: "train" for c in TRANSUNET_TRAIN_CASES}
    notes.append("split: TransUNet's (12 test, 18 train cases of the 30 labelled scans), not part of the BTCV release")
    other = sorted((c for c in images if c not in split), key=natural_key)
    if other:
        notes.append(f"{len(other)} case(s) outside TransUNet's 30, split None: {some(other)}")
    cases = [Seg2DCase(c, split.get(c), "volume", (images[c],), (labels[c],) if c in labels else (), c in labels)
             for c in images]
    if not cases:
        raise LayoutError(f"{img_dir}: no img<nnnn>.nii.gz file")
    return make_set("synapse_raw", folder, "synapse", cases, notes)
