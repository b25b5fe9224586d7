"""What every 3-D segmentation reader shares: the family key, the class tuples, the case and set records, and the
NIfTI / list helpers whose errors are one line naming a file.

The records are documented where the engine meets them, in :mod:`medmodal.data.seg3d.layouts`, which re-exports
them. The small folder and list helpers (natural sort, hidden-file filter, list files, HDF5 probing), the split
names and case order (:data:`SPLITS`, ``sorted_cases``) and the base of the set record (``CaseSet``: its first
fields and split methods) are the 2-D family's (:mod:`medmodal.data.seg2d.common`), so both families name files
and order cases alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from medmodal.data.seg2d.common import (NIFTI_SUFFIXES, SPLITS, CaseSet, files_in, natural_key, sorted_cases,
                                        split_of_lists, strip_suffix)
from medmodal.errors import LayoutError

__all__ = ["FAMILY", "LAYOUTS", "SPLITS", "LA_CLASSES", "BHSD_CLASSES", "BINARY_CLASSES", "HAEMORRHAGE_CLASSES",
           "NIFTI_SUFFIXES", "Seg3DCase", "Seg3DSet"]

#: Key of these readers in :mod:`medmodal.data.layouts`.
FAMILY = "seg3d"
#: The layouts in detection order (``auto`` first; the specific layouts before the generic one).
LAYOUTS = ("auto", "la2018", "bhsd", "nifti_folder")
#: UA-MT's left-atrium labels (``label`` of ``mri_norm2.h5``: 0 background, 1 atrium).
LA_CLASSES = ("background", "left atrium")
#: BHSD's label values (Wu et al., MLMI 2023): 1 epidural (EDH), 2 intraparenchymal (IPH), 3 intraventricular (IVH),
#: 4 subarachnoid (SAH), 5 subdural (SDH) haemorrhage.
BHSD_CLASSES = ("background", "EDH", "IPH", "IVH", "SAH", "SDH")
#: BHSD binarised (every haemorrhage type one class, as SWDL trains): the default classes of the ``bhsd`` layout.
HAEMORRHAGE_CLASSES = ("background", "haemorrhage")
#: The classes of a binarised label without names (``nifti_folder`` with ``binary=True`` or no ``dataset.json``).
BINARY_CLASSES = ("background", "foreground")

#: Files a reader names when it does not use them (other visible files are named too, see each reader).
DATA_SUFFIXES = (*NIFTI_SUFFIXES, ".h5", ".hdf5", ".nrrd", ".mha", ".mhd", ".npz", ".npy")


@dataclass(frozen=True)
class Seg3DCase:
    """One volume.

    Attributes:
        id: unique within the set (LA: the patient folder name, e.g. ``06SR5RBREL16DQ6M8LWS``; NIfTI layouts: the
            file name without ``.nii.gz`` and without nnU-Net's channel suffix ``_0000``).
        split: ``train`` | ``val`` | ``test`` where the layout's list files or folders say so, else ``None``.
        image: the image file (LA: ``mri_norm2.h5``, which also holds the label).
        label: the separate label file (NIfTI), or ``None`` when the label is inside the image file (HDF5) or absent.
        has_label: whether a label exists.
    """

    id: str
    split: Optional[str]
    image: Path
    label: Optional[Path]
    has_label: bool


@dataclass
class Seg3DSet(CaseSet):
    """What a reader returns: the cases (sorted by split, then by id in natural order) and what was noticed.

    Attributes:
        layout: the layout read (one of :data:`LAYOUTS` or a registered one).
        root: the folder read.
        dataset: ``la`` | ``bhsd`` | ``nifti`` (which intensity normalisation applies, with the layout).
        cases: the cases.
        classes: the class names, index = label value after loading (:data:`LA_CLASSES`,
            :data:`HAEMORRHAGE_CLASSES` or :data:`BHSD_CLASSES`, a ``dataset.json``'s labels, :data:`BINARY_CLASSES`).
        channels: the image channels (one: ``("mri",)``, ``("ct",)``, or a ``dataset.json``'s channel name).
        notes: one line each: every file skipped or ignored (count and up to 3 examples), every unlabelled image,
            and every unofficial, derived or guessed thing (a binarised label, an unknown voxel size).
        train_order: the training case ids in the order of the layout's training list (UA-MT's ``train.list``: the
            labelled budget of the semi-supervised benchmarks is its first k ids, as UA-MT and SSL4MIS take it);
            empty when the layout has no training list (the engine then uses set order).
        binary: labels are binarised when loaded (file value > 0 -> 1).
        source_classes: the classes of the label values in the files, when they differ from :attr:`classes`
            (BHSD binarised: :data:`BHSD_CLASSES`); empty when the files hold :attr:`classes` themselves.
    """

    cases: list[Seg3DCase]
    train_order: list[str] = field(default_factory=list)
    binary: bool = False
    source_classes: tuple[str, ...] = ()

    def case(self, case_id: str) -> Seg3DCase:
        """The case ``case_id``.

        Raises:
            KeyError: no such case.
        """
        for c in self.cases:
            if c.id == case_id:
                return c
        raise KeyError(case_id)

    @property
    def labelled(self) -> list[Seg3DCase]:
        """The cases with a label, in set order."""
        return [c for c in self.cases if c.has_label]

    @property
    def unlabelled(self) -> list[Seg3DCase]:
        """The cases without a label, in set order."""
        return [c for c in self.cases if not c.has_label]


# --------------------------------------------------------------------------- helpers of the readers
def make_set(layout: str, root: Path, dataset: str, cases: list[Seg3DCase], classes: tuple[str, ...],
             channels: tuple[str, ...], notes: list[str], train_order: list[str] | tuple[str, ...] = (),
             binary: bool = False, source_classes: tuple[str, ...] = ()) -> Seg3DSet:
    """A :class:`Seg3DSet` with the cases sorted (split order, then natural id order).

    Raises:
        LayoutError: two cases with one id.
    """
    seen: dict[str, Seg3DCase] = {}
    for case in cases:
        if case.id in seen:
            raise LayoutError(f"{case.image}: a second case {case.id!r} (also {seen[case.id].image})")
        seen[case.id] = case
    return Seg3DSet(layout, Path(root), dataset, sorted_cases(cases), tuple(classes), tuple(channels), notes,
                    list(train_order), binary, tuple(source_classes))


def nifti_files(folder: Optional[Path], other: list[Path]) -> dict[str, Path]:
    """``{stem: file}`` of the NIfTI files directly in ``folder`` (``.nii.gz`` / ``.nii``); every other visible
    file goes to ``other`` (the caller names them in a note).

    Raises:
        LayoutError: two files with one stem (``x.nii`` and ``x.nii.gz``).
    """
    out: dict[str, Path] = {}
    for p in files_in(folder):
        stem = strip_suffix(p.name, NIFTI_SUFFIXES)
        if stem is None or not stem:
            other.append(p)
            continue
        if stem in out:
            raise LayoutError(f"{p}: two files with the stem {stem!r} in {folder} (also {out[stem].name})")
        out[stem] = p
    return out


def listed_split(names: dict[str, list[str]], files: dict[str, Path], lists: dict[str, Path],
                 expected: Callable[[str], object]) -> dict[str, str]:
    """``{case id: split}`` of list files (``names`` = ``{split: ids}``, ``lists`` = ``{split: list file}``), every
    id checked against ``files`` (``{case id: image file}``); ``expected(id)`` names the file a missing id needs.

    Raises:
        LayoutError: an id naming no case (naming the list file and the missing file), an id in two lists.
    """
    for split, ids in names.items():
        for name in ids:
            if name not in files:
                raise LayoutError(f"{lists[split]} names {name} but {expected(name)} is missing")
    where = ", ".join(str(lists[s]) for s in names)
    return split_of_lists(names, where or "the list files")


def orphan_labels(images: dict[str, Path], labels: dict[str, Path], image_dir: Path) -> None:
    """Refuse label files without their image.

    Raises:
        LayoutError: the first label whose stem names no image (and how many more).
    """
    orphans = [labels[k] for k in sorted(labels, key=natural_key) if k not in images]
    if orphans:
        more = f" (and {len(orphans) - 1} more)" if len(orphans) > 1 else ""
        raise LayoutError(f"{orphans[0]}: label without its image in {image_dir}{more}")
