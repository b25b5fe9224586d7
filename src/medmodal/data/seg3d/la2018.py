"""The left atrium of the 2018 Atrial Segmentation Challenge (LGE-MRI) in UA-MT's pre-processed HDF5 form.

Layout ``la2018`` - the copy distributed with UA-MT (``yulequan/UA-MT``, ``data/``; also used by SSL4MIS and most
semi-supervised 3-D papers)::

    <root>/2018LA_Seg_Training Set/<ID>/mri_norm2.h5    datasets image float32, label uint8 {0, 1}
    <root>/train.list                                   80 ids, one a line (UA-MT's training volumes)
    <root>/test.list                                    20 ids (UA-MT's test volumes)

``<root>`` may also be the training-set folder itself, with the list files one level up (UA-MT's own
``--root_path`` points there and reads ``<root_path>/../train.list``). The folder may be spelt
``2018LA_Seg_TrainingSet`` (UA-MT's README). A ``val.list`` beside the others is read as the validation split; UA-MT
has none, and none is made up here (the engine carves validation from ``train``).

Cases: one per ``<ID>/`` folder holding ``mri_norm2.h5``; the id is the folder name (20 upper-case letters and
digits in the release). Splits: from the list files (``train_order`` = ``train.list`` order: a labelled budget of k
volumes is its first k ids, as UA-MT's ``LAHeart(num=k)``); an id in no list keeps split ``None`` (named in a note);
a list naming a missing folder is refused (naming the list file). Without any list file every volume has split
``None`` (noted). Folders without ``mri_norm2.h5``, and any other file (the release's ``desktop.ini``, raw
``lgemri.nrrd`` / ``laendo.nrrd`` kept beside the HDF5), are named in notes. Every file is probed when read (HDF5
header only): an unreadable file is a :class:`~medmodal.errors.DamagedFileError`, a file without ``image`` or with
an ``image`` and ``label`` of different shapes a :class:`~medmodal.errors.DataError`.

What UA-MT's ``code/dataloaders/la_heart_processing.py`` did (read in the repository): it reads the challenge's
``lgemri.nrrd`` and ``laendo.nrrd`` (label = ``laendo == 255``), z-scores the image over the whole volume, crops x
and y to the atrium's bounding box plus a random 10-20 voxel margin (z is not cropped: every volume keeps its 88
slices), and writes ``image`` and ``label`` with gzip compression. It does **not** resample and stores **no voxel
size**: the voxels are the challenge's LGE-MRI voxels, reported as 0.625 mm isotropic by the challenge (Xiong et
al., Med. Image Anal. 2021), but nothing in the file says so. The loader therefore gives these volumes a spacing of
``(1, 1, 1)`` (voxel units, noted in every set); UA-MT's 95HD and ASD are in voxels too.

Arrays keep the file's axis order, which is pynrrd's ``(x, y, z)`` of the challenge's files, e.g. ``(183, 140, 88)``
(:mod:`medmodal.data.seg3d.loading`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from medmodal.data.seg2d.common import files_in, h5_shapes, read_list, some, subdir, unused_note, visible
from medmodal.data.seg3d.common import LA_CLASSES, Seg3DCase, Seg3DSet, listed_split, make_set, natural_key
from medmodal.errors import DataError, LayoutError

__all__ = ["LA_FILE", "LA_TRAINING_DIRS", "LA_LISTS", "LA_SPACING", "LA_NATIVE_SPACING_MM", "detect_la2018",
           "read_la2018", "la_paths"]

#: The HDF5 file of each case folder (UA-MT: ``mri_norm2.h5``).
LA_FILE = "mri_norm2.h5"
#: Names of the training-set folder (the release's, and UA-MT's README spelling).
LA_TRAINING_DIRS = ("2018LA_Seg_Training Set", "2018LA_Seg_TrainingSet")
#: The list files read, by split (UA-MT ships ``train.list`` and ``test.list``).
LA_LISTS = {"train": "train.list", "val": "val.list", "test": "test.list"}
#: The spacing the loader gives these volumes: voxel units (the files store no voxel size; module docstring).
LA_SPACING = (1.0, 1.0, 1.0)
#: The challenge's reported LGE-MRI voxel size in mm (isotropic); documentation only, not stored in the files.
LA_NATIVE_SPACING_MM = 0.625


def _case_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and visible(p)), key=lambda p: natural_key(p.name))


def _holds_cases(folder: Optional[Path]) -> bool:
    return folder is not None and folder.is_dir() and any((d / LA_FILE).is_file() for d in _case_dirs(folder))


def la_paths(root: Path) -> Optional[tuple[Path, Path]]:
    """``(training-set folder, folder of the list files)`` of an ``la2018`` root, or ``None``: the root holding
    ``2018LA_Seg_Training Set/`` (lists beside it), or the training-set folder itself (lists one level up)."""
    root = Path(root)
    if not root.is_dir():
        return None
    data = subdir(root, *LA_TRAINING_DIRS)
    if _holds_cases(data):
        return data, root
    if _holds_cases(root):
        return root, root.parent
    return None


def detect_la2018(root: Path) -> Optional[Path]:
    """``root`` when it holds ``2018LA_Seg_Training Set/<ID>/mri_norm2.h5``, or is such a training-set folder
    (any folder of ``<ID>/mri_norm2.h5`` case folders)."""
    return Path(root) if la_paths(root) is not None else None


def read_la2018(path: Path, binary: Optional[bool] = None, require_labels: bool = False) -> Seg3DSet:
    """UA-MT's LA layout (module docstring).

    Args:
        path: the folder holding ``2018LA_Seg_Training Set/`` and the list files, or the training-set folder.
        binary: accepted for every layout; the LA labels are binary already.
        require_labels: refuse a file without ``label`` (else it is kept unlabelled, named in a note).

    Raises:
        LayoutError: not an LA folder, a list naming a missing case, an id in two lists, a list file that cannot
            be read.
        DataError: a file without ``image`` (or ``label`` when required), a non-3-D ``image``, an ``image`` and a
            ``label`` of different shapes.
        DamagedFileError: an unreadable HDF5 file.
    """
    path = Path(path)
    found = la_paths(path)
    if found is None:
        raise LayoutError(f"{path}: not a UA-MT LA folder (expected 2018LA_Seg_Training Set/<ID>/{LA_FILE} with "
                          f"train.list / test.list beside it)")
    data, list_dir = found
    notes: list[str] = []
    files: dict[str, Path] = {}
    no_file: list[Path] = []
    other: list[Path] = files_in(data)
    for folder in _case_dirs(data):
        h5 = folder / LA_FILE
        if not h5.is_file():
            no_file.append(folder)
            continue
        files[folder.name] = h5
        other += [p for p in files_in(folder) if p.name != LA_FILE]
        other += [p for p in folder.iterdir() if p.is_dir() and visible(p)]
    if no_file:
        notes.append(f"{len(no_file)} folder(s) in {data} without {LA_FILE}, not used: {some(no_file)}")
    notes += unused_note(other, f"in {data} other than <ID>/{LA_FILE}")

    lists = {split: list_dir / name for split, name in LA_LISTS.items() if (list_dir / name).is_file()}
    names: dict[str, list[str]] = {}
    for split, file in lists.items():
        names[split], dup = read_list(file, ("/" + LA_FILE, "/"))
        notes += dup
    splits = listed_split(names, files, lists, lambda name: data / name / LA_FILE)
    if data == path:
        notes.append(f"{path}: the training-set folder itself; list files read from {list_dir}")
    if lists:
        counts = " / ".join(f"{len(names[s])} {s}" for s in names)
        notes.append(f"split: UA-MT's {', '.join(f.name for f in lists.values())} ({counts}), not part of the "
                     f"challenge" + ("" if "val" in lists else "; no validation list (none is made up here)"))
        outside = sorted((i for i in files if i not in splits), key=natural_key)
        if outside:
            notes.append(f"{len(outside)} case(s) in no list file, split None: {some(outside)}")
    else:
        notes.append(f"{list_dir}: no list file ({', '.join(LA_LISTS.values())}): every volume read without a split")

    cases, unlabelled = [], []
    for case_id, h5 in files.items():
        has = _probe(h5, require_labels)
        if not has:
            unlabelled.append(h5)
        cases.append(Seg3DCase(case_id, splits.get(case_id), h5, None, has))
    if not cases:
        raise LayoutError(f"{data}: no <ID>/{LA_FILE} case folder")
    if unlabelled:
        notes.append(f"{len(unlabelled)} file(s) without a 'label' dataset, kept unlabelled: {some(unlabelled)}")
    notes.append(f"spacing: {LA_FILE} stores no voxel size (UA-MT's la_heart_processing.py crops and z-scores "
                 f"without resampling; the challenge reports {LA_NATIVE_SPACING_MM} mm isotropic voxels): volumes "
                 f"are loaded with spacing (1, 1, 1), in voxels")
    return make_set("la2018", path, "la", cases, LA_CLASSES, ("mri",), notes, names.get("train", []))


def _probe(h5: Path, require_labels: bool) -> bool:
    """Whether ``h5`` holds a ``label`` (shapes checked from the header).

    Raises:
        DataError: no ``image``, a non-3-D ``image``, a ``label`` of another shape, no ``label`` when required.
        DamagedFileError: not a readable HDF5 file.
    """
    shapes = h5_shapes(h5)
    if "image" not in shapes:
        raise DataError(f"{h5}: no 'image' dataset (found: {', '.join(sorted(shapes)) or 'none'})")
    if len(shapes["image"]) != 3:
        raise DataError(f"{h5}: expected a 3-D 'image', got shape {shapes['image']}")
    if "label" not in shapes:
        if require_labels:
            raise DataError(f"{h5}: no 'label' dataset")
        return False
    if shapes["label"] != shapes["image"]:
        raise DataError(f"{h5}: image {shapes['image']} and label {shapes['label']} differ in shape")
    return True
