"""Readers for the layouts of single-modality 3-D segmentation volumes (semi-supervised training: a few labelled
volumes, many unlabelled ones), without renaming any file, and the records the 3-D segmentation engine reads.

Layouts (``layout=`` name, or ``"auto"``; detection in this order):

* ``la2018`` - UA-MT's pre-processed left-atrium HDF5 files, ``2018LA_Seg_Training Set/<ID>/mri_norm2.h5`` +
  ``train.list`` / ``test.list`` (:mod:`medmodal.data.seg3d.la2018`);
* ``bhsd`` - BHSD-style head CT, ``images/`` + ``labels/`` (or ``ground truths/``) NIfTI files, haemorrhage labels
  binarised by default (:mod:`medmodal.data.seg3d.bhsd`);
* ``nifti_folder`` - a generic nnU-Net-like folder, ``imagesTr/`` + ``labelsTr/`` [+ ``imagesTs/`` + ``labelsTs/``]
  [+ ``unlabelled/``] [+ ``dataset.json``]; detected only when ``imagesTr/`` exists
  (:mod:`medmodal.data.seg3d.nifti_folder`).

Every reader returns a :class:`Seg3DSet`: the :class:`Seg3DCase` records (id, split, image and label files,
whether labelled), the classes and the channel, ``train_order`` (the order of the layout's training list, whose
first k ids are the labelled budget of the semi-supervised benchmarks), and ``notes``: one line for every file found
but not used (count and up to three names), every unlabelled image, and every derived or guessed thing (a split that
is not the data set's own, binarised labels, an unknown voxel size). A problem of the user's folder is one
:class:`~medmodal.errors.LayoutError` line naming the file (a list naming a missing case, a label without its
image); a problem of a file one :class:`~medmodal.errors.DataError` or :class:`~medmodal.errors.DamagedFileError`
line. Arrays are loaded by :func:`medmodal.data.seg3d.loading.load_volume`.

Reader options (``read(path, **options)`` of every layout): ``binary`` (``None``: the layout's default; ``True``:
labels binarised, value > 0 -> 1; ``False``: the file's classes) and ``require_labels`` (refuse unlabelled images).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from medmodal.data.layouts import detect_family_layout, layout_reader, register_layouts, resolve_layout
from medmodal.data.seg3d.bhsd import detect_bhsd, read_bhsd
from medmodal.data.seg3d.common import (BHSD_CLASSES, BINARY_CLASSES, FAMILY, HAEMORRHAGE_CLASSES, LA_CLASSES, LAYOUTS,
                                        Seg3DCase, Seg3DSet)
from medmodal.data.seg3d.la2018 import detect_la2018, read_la2018
from medmodal.data.seg3d.nifti_folder import detect_nifti_folder, read_nifti_folder

__all__ = ["FAMILY", "LAYOUTS", "LA_CLASSES", "BHSD_CLASSES", "HAEMORRHAGE_CLASSES", "BINARY_CLASSES", "Seg3DCase",
           "Seg3DSet", "read_seg3d", "detect_layout", "EXPECTED_LAYOUTS_LINE"]

#: What ``auto`` looks for, in one line (error messages and ``--help``).
EXPECTED_LAYOUTS_LINE = ("UA-MT's 2018LA_Seg_Training Set/<ID>/mri_norm2.h5 with train.list / test.list, BHSD "
                         "images/ + labels/ NIfTI files, or an imagesTr/ (+ labelsTr/) NIfTI folder")

_READERS: tuple[tuple[str, Callable, Callable], ...] = (
    ("la2018", read_la2018, detect_la2018),
    ("bhsd", read_bhsd, detect_bhsd),
    ("nifti_folder", read_nifti_folder, detect_nifti_folder),
)
register_layouts(FAMILY, _READERS)


def detect_layout(root: str | Path) -> tuple[str, Path]:
    """``(layout, path to read)`` of the 3-D segmentation data folder ``root``.

    Raises:
        LayoutError: ``root`` is missing or matches no layout (one line naming :data:`EXPECTED_LAYOUTS_LINE`).
    """
    return detect_family_layout(FAMILY, root, "3-D segmentation", EXPECTED_LAYOUTS_LINE)


def read_seg3d(root: str | Path, layout: str = "auto", binary: Optional[bool] = None,
               require_labels: bool = False) -> Seg3DSet:
    """Read a 3-D segmentation data folder in ``layout`` (one of :data:`LAYOUTS` or a registered one).

    Args:
        root: the data folder.
        layout: a layout name, or ``auto`` to detect it (module docstring).
        binary: binarise the labels (value > 0 -> 1); ``None``: the layout's default (``bhsd``: binarised; the
            others: the file's classes).
        require_labels: refuse images without labels (else they are kept with ``has_label=False``, named in notes).

    Returns:
        The :class:`Seg3DSet` (cases sorted by split, then id).

    Raises:
        LayoutError: unknown layout, missing or unrecognised folder, a folder or list problem (one line).
        DataError: a file without the arrays the layout needs, an HDF5 image and label of different shapes.
        DamagedFileError: an unreadable HDF5 file.
    """
    layout, path = resolve_layout(FAMILY, root, layout, LAYOUTS, "3-D segmentation", detect_layout)
    return layout_reader(FAMILY, layout).read(path, binary=binary, require_labels=require_labels)
