"""A generic folder of single-modality NIfTI volumes, laid out as nnU-Net's raw data, with unlabelled images beside.

Layout ``nifti_folder``::

    <root>/imagesTr/<case>_0000.nii.gz   training images (or <case>.nii.gz)       split train
    <root>/labelsTr/<case>.nii.gz        their labels
    <root>/imagesTs/<case>_0000.nii.gz   optional: test images                    split test
    <root>/labelsTs/<case>.nii.gz        optional: their labels
    <root>/unlabelled/<case>.nii.gz      optional: images without labels         split train, unlabelled
                                         (also imagesUnlabelled/, imagesUnlabeled/, unlabeled/)
    <root>/dataset.json                  optional: {"labels": ...}, {"channel_names" | "modality": ...}

Detected only when ``imagesTr/`` exists. nnU-Net's channel suffix ``_0000`` is dropped from the case id when every
image of a folder carries one (and the labels do not use the full name); a second channel (``_0001``) is refused:
this family reads single-modality volumes. An image without its label (``imagesTr`` or ``imagesTs``) is kept
unlabelled and named in a note; a label without its image is refused.

Classes: ``dataset.json``'s ``labels``, either nnU-Net v2's ``{"name": value}`` or v1's ``{"value": "name"}``, with
values 0..n-1 (region-based labels, value lists, are refused); without ``dataset.json`` the classes are
:data:`BINARY_CLASSES` (noted: such labels must be 0 / 1, or read with ``binary=True``). ``binary=True`` binarises
every label (value > 0 -> 1). Channel: ``channel_names`` (v2) or ``modality`` (v1) when it names one channel, else
``("image",)``. Intensities: per volume, clipped to the volume's 0.5 and 99.5 percentiles, then z-scored (zero mean,
unit standard deviation over the whole volume; :mod:`medmodal.data.seg3d.loading`). The layout has no training
list: ``train_order`` is empty and validation is left to the engine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

from medmodal.data.seg2d.common import some, subdir, unused_note
from medmodal.data.seg3d.common import (BINARY_CLASSES, Seg3DCase, Seg3DSet, make_set, natural_key, nifti_files,
                                        orphan_labels)
from medmodal.errors import LayoutError

__all__ = ["UNLABELLED_FOLDERS", "DATASET_JSON", "detect_nifti_folder", "read_nifti_folder", "dataset_json_classes"]

#: Names of the folder of unlabelled images.
UNLABELLED_FOLDERS = ("unlabelled", "imagesUnlabelled", "imagesUnlabeled", "unlabeled")
DATASET_JSON = "dataset.json"
_CHANNEL = re.compile(r"(?P<case>.+)_(?P<channel>\d{4})")


def detect_nifti_folder(root: Path) -> Optional[Path]:
    """``root`` when it holds an ``imagesTr/`` folder."""
    root = Path(root)
    return root if subdir(root, "imagesTr") is not None else None


def _case_ids(images: dict[str, Path], labels: dict[str, Path], folder: Path) -> dict[str, Path]:
    """``{case id: image}`` of a folder's ``{stem: image}``: nnU-Net's ``_0000`` dropped when every stem has it.

    Raises:
        LayoutError: a second channel (``<case>_0001``) of an nnU-Net named folder.
    """
    if not images or any(stem in labels for stem in images):
        return images
    matches = {stem: _CHANNEL.fullmatch(stem) for stem in images}
    if not all(matches.values()):
        return images
    groups: dict[str, dict[str, Path]] = {}
    for stem, m in matches.items():
        groups.setdefault(m.group("case"), {})[m.group("channel")] = images[stem]
    if not all("0000" in g for g in groups.values()):
        return images
    for case, group in sorted(groups.items()):
        if len(group) > 1:
            second = sorted(k for k in group if k != "0000")[0]
            raise LayoutError(f"{group[second]}: a second channel of {case} in {folder}; the seg3d layouts read "
                              f"single-modality volumes")
    return {case: group["0000"] for case, group in groups.items()}


def dataset_json_classes(path: Path) -> tuple[Optional[tuple[str, ...]], Optional[str]]:
    """``(classes, channel)`` declared by a ``dataset.json`` (``None`` for what it does not declare).

    Raises:
        LayoutError: an unreadable file, labels that are not 0..n-1, region labels, several channels.
    """
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise LayoutError(f"{path}: cannot read the dataset description ({type(err).__name__})") from None
    if not isinstance(content, dict):
        raise LayoutError(f"{path}: expected a JSON object")
    classes = None
    labels = content.get("labels")
    if labels is not None:
        if not isinstance(labels, dict) or not labels:
            raise LayoutError(f"{path}: 'labels' is not a mapping of label values and names")
        by_value: dict[int, str] = {}
        for key, value in labels.items():
            if isinstance(value, list):
                raise LayoutError(f"{path}: label {key!r} is a region ({value}); region-based labels are not read")
            number, name = (key, value) if str(key).lstrip("-").isdigit() else (value, key)
            try:
                number = int(number)
            except (TypeError, ValueError):
                raise LayoutError(f"{path}: label {key!r}: {value!r} has no integer value") from None
            if number in by_value:
                raise LayoutError(f"{path}: label value {number} given twice ({by_value[number]!r}, {name!r})")
            by_value[number] = str(name)
        if sorted(by_value) != list(range(len(by_value))):
            raise LayoutError(f"{path}: label values {sorted(by_value)} are not 0..{len(by_value) - 1}")
        classes = tuple(by_value[i] for i in range(len(by_value)))
    names = content.get("channel_names", content.get("modality"))
    channel = None
    if isinstance(names, dict) and names:
        if len(names) > 1:
            raise LayoutError(f"{path}: {len(names)} channels declared ({', '.join(map(str, names.values()))}); the "
                              f"seg3d layouts read single-modality volumes")
        channel = str(next(iter(names.values())))
    return classes, channel


def read_nifti_folder(path: Path, binary: Optional[bool] = None, require_labels: bool = False) -> Seg3DSet:
    """The generic NIfTI layout (module docstring).

    Args:
        path: the folder holding ``imagesTr/``.
        binary: binarise the labels (value > 0 -> 1, classes :data:`BINARY_CLASSES`); ``None``: as declared.
        require_labels: refuse an image of ``imagesTr`` / ``imagesTs`` without its label.

    Raises:
        LayoutError: no ``imagesTr/``, a label without its image, two files of one stem, a second channel, a case id
            in two folders, an unreadable or unusable ``dataset.json``, an image without label when labels are
            required.
    """
    path = Path(path)
    train_dir = subdir(path, "imagesTr")
    if train_dir is None:
        raise LayoutError(f"{path}: not a NIfTI folder (expected imagesTr/<case>_0000.nii.gz and "
                          f"labelsTr/<case>.nii.gz)")
    notes: list[str] = []
    other: list = []
    cases: list[Seg3DCase] = []
    unlabelled: list = []
    for split, image_name, label_name in (("train", "imagesTr", "labelsTr"), ("test", "imagesTs", "labelsTs")):
        image_dir, label_dir = subdir(path, image_name), subdir(path, label_name)
        if image_dir is None:
            if label_dir is not None:
                raise LayoutError(f"{label_dir}: labels without {image_name}/")
            continue
        labels = nifti_files(label_dir, other)
        images = _case_ids(nifti_files(image_dir, other), labels, image_dir)
        orphan_labels(images, labels, image_dir)
        for case in sorted(images, key=natural_key):
            if case not in labels:
                if require_labels:
                    raise LayoutError(f"{images[case]}: image without its label ({label_name}/{case}.nii.gz)")
                unlabelled.append(images[case])
            cases.append(Seg3DCase(case, split, images[case], labels.get(case), case in labels))
    extra_dir = subdir(path, *UNLABELLED_FOLDERS)
    extra = _case_ids(nifti_files(extra_dir, other), {}, extra_dir or path)
    cases += [Seg3DCase(k, "train", p, None, False) for k, p in extra.items()]
    if not cases:
        raise LayoutError(f"{path}: no NIfTI image in {train_dir}")
    notes += unused_note(other, "in the image and label folders are not NIfTI")
    if unlabelled:
        notes.append(f"{len(unlabelled)} image(s) without a label, kept unlabelled: {some(unlabelled)}")
    if extra:
        notes.append(f"{len(extra)} unlabelled image(s) in {extra_dir} (split train): {some(list(extra.values()))}")
    described = path / DATASET_JSON
    declared, channel = dataset_json_classes(described) if described.is_file() else (None, None)
    if declared is None:
        why = f"{described} declares no 'labels'" if described.is_file() else f"no {DATASET_JSON}"
        notes.append(f"{why}: classes {BINARY_CLASSES} assumed" + ("" if binary else " (labels must be 0 / 1; "
                                                                               "binary=True binarises others)"))
    binary = bool(binary)
    if binary:
        classes, source = BINARY_CLASSES, declared or ()
        notes.append("labels binarised when loaded: every value > 0 -> 1 foreground")
    else:
        classes, source = declared or BINARY_CLASSES, ()
    return make_set("nifti_folder", path, "nifti", cases, classes, (channel or "image",), notes, [], binary, source)
