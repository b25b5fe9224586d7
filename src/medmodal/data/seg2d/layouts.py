"""Readers for the layouts of the 2-D segmentation data sets (Synapse, ACDC, CVC-ClinicDB, Kvasir-SEG, ERANet's
knee-MRI meniscus slices, a user's own picture folder), without renaming any file, and the records the 2-D
segmentation engine reads.

Layouts (``layout=`` name, or ``"auto"``; detection in this order, each detector specific to its data set):

* ``synapse`` - TransUNet's Synapse ``train_npz/`` + ``test_vol_h5/`` + ``lists/lists_Synapse/``
  (:mod:`medmodal.data.seg2d.synapse`);
* ``synapse_raw`` - the BTCV challenge's ``img/`` + ``label/`` NIfTI files, labels mapped to TransUNet's 8 organs;
* ``acdc_h5`` - SSL4MIS's ACDC HDF5 ``data/`` + list files (:mod:`medmodal.data.seg2d.acdc`);
* ``acdc`` - the ACDC challenge's ``patient<nnn>/`` NIfTI folders;
* ``cvc_clinicdb`` - ``Original/`` + ``Ground Truth/`` (:mod:`medmodal.data.seg2d.polyp`);
* ``kvasir_seg`` - ``images/`` + ``masks/`` with ``kavsir_bboxes.json`` or "kvasir" in the folder name (a
  plain ``images/`` + ``masks/`` folder needs ``layout="kvasir_seg"``);
* ``meniscus`` - ERANet's knee-MRI ``.npy`` slices listed in ``train_lb.csv`` / ``val.csv`` / ``test.csv`` /
  ``train_unlb.csv`` (unlabelled) (:mod:`medmodal.data.seg2d.meniscus`); detected by a train / val / test /
  unlabelled CSV whose rows name ``.npy`` files;
* ``folder2d`` - a user's ``images/`` + ``masks/`` + ``unlabelled/`` pictures with optional ``classes.txt`` and
  ``splits.json`` (:mod:`medmodal.data.seg2d.folder2d`); detected only with ``unlabelled/`` or ``classes.txt``
  beside ``images/`` + ``masks/`` (else ``layout="folder2d"``).

Unlabelled cases (``has_label=False``; :func:`~medmodal.data.seg2d.loading.load_case` gives ``label=None``): images
kept without their label when ``require_labels`` is false, and the declared unlabelled pools of ``meniscus`` (the
unlabelled CSV, split ``train``) and ``folder2d`` (``unlabelled/``), which are read whatever ``require_labels``
says and named in ``notes``.

Every reader returns a :class:`Seg2DSet`: the :class:`Seg2DCase` records (id, split, kind, image and label
files, whether labelled), the data set's classes and channels, and ``notes``: one line for every file found
but not used (count and up to three names) and for every unofficial or derived thing (a split taken from
TransUNet or SSL4MIS, BTCV's label mapping). A problem of the user's folder is one
:class:`~medmodal.errors.LayoutError` line naming the file (a list naming a missing file, a mask without its
image); a problem of a file one :class:`~medmodal.errors.DataError` or
:class:`~medmodal.errors.DamagedFileError` line. Arrays are loaded by
:func:`medmodal.data.seg2d.loading.load_case`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from medmodal.data.layouts import detect_family_layout, layout_reader, register_layouts, resolve_layout
from medmodal.data.seg2d.acdc import detect_acdc, detect_acdc_h5, read_acdc, read_acdc_h5
from medmodal.data.seg2d.common import (ACDC_CLASSES, FAMILY, LAYOUTS, MENISCUS_CLASSES, POLYP_CLASSES,
                                        SYNAPSE_CLASSES, Seg2DCase, Seg2DSet)
from medmodal.data.seg2d.folder2d import detect_folder2d, read_folder2d
from medmodal.data.seg2d.meniscus import detect_meniscus, read_meniscus
from medmodal.data.seg2d.polyp import detect_cvc_clinicdb, detect_kvasir_seg, read_cvc_clinicdb, read_kvasir_seg
from medmodal.data.seg2d.synapse import detect_synapse, detect_synapse_raw, read_synapse, read_synapse_raw
from medmodal.errors import InputError

__all__ = ["FAMILY", "LAYOUTS", "SYNAPSE_CLASSES", "ACDC_CLASSES", "POLYP_CLASSES", "MENISCUS_CLASSES", "Seg2DCase",
           "Seg2DSet",
           "read_seg2d", "detect_layout", "as_seg2d_dataset", "EXPECTED_LAYOUTS_LINE"]

#: What ``auto`` looks for, in one line (error messages and ``--help``).
EXPECTED_LAYOUTS_LINE = ("Synapse train_npz/ or test_vol_h5/, BTCV img/ + label/, ACDC data/patient<nnn>_frame<mm>.h5 "
                         "or patient<nnn>/ folders, CVC-ClinicDB Original/ + Ground Truth/, Kvasir-SEG images/ + "
                         "masks/ with kavsir_bboxes.json, meniscus train_lb.csv / val.csv / test.csv / "
                         "train_unlb.csv listing .npy slices, images/ + masks/ + unlabelled/ or classes.txt")

_READERS: tuple[tuple[str, Callable, Callable], ...] = (
    ("synapse", read_synapse, detect_synapse),
    ("synapse_raw", read_synapse_raw, detect_synapse_raw),
    ("acdc_h5", read_acdc_h5, detect_acdc_h5),
    ("acdc", read_acdc, detect_acdc),
    ("cvc_clinicdb", read_cvc_clinicdb, detect_cvc_clinicdb),
    ("kvasir_seg", read_kvasir_seg, detect_kvasir_seg),
    ("meniscus", read_meniscus, detect_meniscus),
    ("folder2d", read_folder2d, detect_folder2d),
)
register_layouts(FAMILY, _READERS)


def detect_layout(root: str | Path) -> tuple[str, Path]:
    """``(layout, path to read)`` of a 2-D segmentation data folder.

    Args:
        root: the data folder.

    Raises:
        LayoutError: ``root`` is missing or matches no layout (one line naming what was expected).
    """
    return detect_family_layout(FAMILY, root, "2-D segmentation",
                                f"{EXPECTED_LAYOUTS_LINE}; a plain images/ + masks/ folder needs --layout kvasir_seg "
                                f"(polyps) or --layout folder2d")


def read_seg2d(root: str | Path, layout: str = "auto", require_labels: bool = True) -> Seg2DSet:
    """Read a 2-D segmentation data folder in ``layout`` (one of :data:`LAYOUTS` or a registered one).

    Args:
        root: the data folder.
        layout: a layout name, or ``auto`` to detect it (module docstring).
        require_labels: refuse images without labels (else they are kept with ``has_label=False``, noted).

    Returns:
        The :class:`Seg2DSet` (cases sorted by split, then id).

    Raises:
        LayoutError: unknown layout, missing or unrecognised folder, a folder or list problem (one line).
        DataError: a file without the arrays the layout needs.
        DamagedFileError: an unreadable HDF5 / NPZ file.
    """
    layout, path = resolve_layout(FAMILY, root, layout, LAYOUTS, "2-D segmentation", detect_layout)
    return layout_reader(FAMILY, layout).read(path, require_labels=require_labels)


def as_seg2d_dataset(folder: str | Path) -> Seg2DSet | None:
    """``folder`` read as a 2-D segmentation data set with at least one case (labels not required), else ``None``.

    For checks such as "is this output folder a data set?" that must not fail on an ordinary folder: never
    raises :class:`~medmodal.errors.InputError`.

    Args:
        folder: any path.
    """
    if not Path(folder).is_dir():
        return None
    try:
        found = read_seg2d(folder, "auto", require_labels=False)
    except InputError:
        return None
    return found if found.cases else None
