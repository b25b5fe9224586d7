"""ACDC cardiac cine MRI (Bernard et al., 2018; the MICCAI 2017 Automated Cardiac Diagnosis Challenge).

Two layouts:

* ``acdc_h5`` - the HDF5 form of the SSL4MIS benchmark (``HiLab-git/SSL4MIS``,
  ``code/dataloaders/acdc_data_processing.py``)::

      <root>/data/patient<nnn>_frame<mm>.h5                volumes: image float32 [S, H, W] in [0, 1], label uint8
      <root>/data/slices/patient<nnn>_frame<mm>_slice_<k>.h5   slices: image [H, W], label [H, W]
      <root>/train_slices.list  train.list  val.list  test.list   names without .h5

  Slices may also lie beside the volumes in ``data/`` (as some copies keep them). Training cases are the slices
  of ``train_slices.list`` grouped by volume (kind ``slices``, slices in slice-number order), or else the volumes
  of ``train.list``; validation and test cases are the volumes of ``val.list`` / ``test.list``. Files in ``data/``
  that no list used names are noted (e.g. the training volumes when the slices are read); ``all_slices.list`` is
  not read (noted). Without any list file every volume is read with split ``None`` (and slices of volumes that
  are not there are grouped into slice cases), with a note. The same form holds other organs under any case
  name (``<case>.h5``, ``<case>_slice_<k>.h5``: letters, digits, ``.``, ``-``, ``_``); such a folder is detected
  when a list file lies beside ``data/`` (ACDC's own names are detected without one); name its classes with
  ``data.classes``.

* ``acdc`` - the challenge's own files::

      <root>/[training/ | testing/]patient<nnn>/patient<nnn>_frame<mm>.nii.gz
                                                patient<nnn>_frame<mm>_gt.nii.gz
                                                patient<nnn>_4d.nii.gz   Info.cfg

  One case per frame file (the end-diastolic and end-systolic frames, which carry a ``_gt`` label).
  ``patient<nnn>_4d.nii.gz`` (the whole cine series) and ``Info.cfg`` (ED / ES frame numbers, group, height,
  weight) are not needed and are skipped without a note. Label values are the challenge's: 0 background,
  1 right-ventricle cavity, 2 myocardium, 3 left-ventricle cavity. The split is SSL4MIS's, by patient
  (:data:`SSL4MIS_VAL_PATIENTS`, :data:`SSL4MIS_TEST_PATIENTS`, the other patients of 1-100 train; not part of
  the challenge, so it is noted); patients 101-150 (the challenge's ``testing/``) have split ``None`` (noted).
  Images are min-max scaled to [0, 1] per volume when loaded (SSL4MIS's preprocessing).

Case ids are ``patient<nnn>_frame<mm>`` in both layouts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from medmodal.data.seg2d.common import (NIFTI_SUFFIXES, Seg2DCase, Seg2DSet, files_in, is_data_file, labels_of,
                                        make_set, natural_key, patient_of, read_list, some, split_of_lists,
                                        strip_suffix, subdir, unused_note, visible)
from medmodal.errors import LayoutError

__all__ = ["SSL4MIS_VAL_PATIENTS", "SSL4MIS_TEST_PATIENTS", "patient_of", "detect_acdc_h5", "read_acdc_h5",
           "detect_acdc", "read_acdc"]

#: SSL4MIS's 10 validation patients (``data/ACDC/val.list``).
SSL4MIS_VAL_PATIENTS = (2, 19, 28, 30, 39, 45, 78, 82, 85, 87)
#: SSL4MIS's 20 test patients (``data/ACDC/test.list``).
SSL4MIS_TEST_PATIENTS = (1, 7, 8, 11, 13, 22, 24, 33, 52, 59, 64, 65, 66, 68, 75, 80, 81, 83, 84, 93)

# ACDC's names are patient<nnn>_frame<mm>[_slice_<k>]; the same form holds other organs under any case name
# (letters, digits, ., - and _), slices being <case>_slice_<k>
_VOLUME = re.compile(r"(?![\w.-]*_slice_\d+$)[\w.-]+", re.I)
_SLICE = re.compile(r"(?P<volume>[\w.-]+)_slice_(?P<slice>\d+)", re.I)
_ACDC_NAME = re.compile(r"patient\d+_frame\d+(_slice_\d+)?", re.I)
_LISTS = ("train_slices.list", "train.list", "val.list", "test.list")


# --------------------------------------------------------------------------- SSL4MIS HDF5
def _h5_files(folder: Optional[Path]) -> dict[str, Path]:
    out = {}
    for p in files_in(folder):
        stem = strip_suffix(p.name, (".h5",))
        if stem is not None and (_VOLUME.fullmatch(stem) or _SLICE.fullmatch(stem)):
            out[stem] = p
    return out


def detect_acdc_h5(root: Path) -> Optional[Path]:
    """``root`` when ``data/`` (or ``data/slices/``) holds ``patient<nnn>_frame<mm>[_slice_<k>].h5`` files, or holds
    ``.h5`` files of any case name beside one of the SSL4MIS list files (``train.list``, ``val.list`` ...)."""
    root = Path(root)
    data = subdir(root, "data")
    if data is None:
        return None
    names = [*_h5_files(data), *_h5_files(subdir(data, "slices"))]
    if any(_ACDC_NAME.fullmatch(n) for n in names):
        return root
    return root if names and any((root / name).is_file() for name in _LISTS) else None


def read_acdc_h5(path: Path, require_labels: bool = True) -> Seg2DSet:
    """The SSL4MIS HDF5 layout (module docstring).

    Args:
        path: the folder holding ``data/`` and the list files.
        require_labels: refuse a file without ``label`` (else it is kept unlabelled, with a note).

    Raises:
        LayoutError: no ``data/``, a listed file that is missing, a volume in two lists, no case at all.
        DataError: a file without ``image`` (or ``label`` when required).
        DamagedFileError: an unreadable file.
    """
    path = Path(path)
    data = subdir(path, "data")
    if data is None:
        raise LayoutError(f"{path}: not an SSL4MIS ACDC folder (expected data/patient<nnn>_frame<mm>.h5 and "
                          f"train_slices.list / val.list / test.list)")
    slice_dir = subdir(data, "slices")
    found, in_slice_dir = _h5_files(data), _h5_files(slice_dir)
    volumes = {k: p for k, p in found.items() if _VOLUME.fullmatch(k)}
    slices = {k: p for k, p in found.items() if _SLICE.fullmatch(k)}
    slices.update((k, p) for k, p in in_slice_dir.items() if _SLICE.fullmatch(k))  # data/slices/ (SSL4MIS) first
    notes: list[str] = []
    matched = set(found.values()) | {p for k, p in in_slice_dir.items() if _SLICE.fullmatch(k)}
    ignored = [p for p in files_in(data) + files_in(slice_dir) if is_data_file(p) and p not in matched]
    notes += unused_note(ignored, "in data/ match no <case>[_slice_<k>].h5 name")
    lists = {name: path / name for name in _LISTS if (path / name).is_file()}
    if (path / "all_slices.list").is_file():
        notes.append(f"{path / 'all_slices.list'}: not read (the slices of every split; training reads "
                     f"train_slices.list)")
    names: dict[str, list[str]] = {}
    for name, file in lists.items():
        names[name], dup = read_list(file, (".h5",))
        notes += dup

    def listed(list_name: str, pool: dict[str, Path], pattern: re.Pattern, form: str, where: Path) -> dict:
        out = {}
        for name in names[list_name]:
            if not pattern.fullmatch(name):
                raise LayoutError(f"{lists[list_name]}: {name!r} is not a {form} name")
            if name not in pool:
                raise LayoutError(f"{lists[list_name]} names {name} but {where / (name + '.h5')} is missing")
            out[name] = pool[name]
        return out

    split_volumes: dict[str, dict[str, Path]] = {}
    slice_groups: dict[str, list[tuple[int, Path]]] = {}
    used: set[Path] = set()
    if "train_slices.list" in names:
        for name, file in listed("train_slices.list", slices, _SLICE, "<case>_slice_<k>",
                                 slice_dir or data).items():
            m = _SLICE.fullmatch(name)
            slice_groups.setdefault(m.group("volume"), []).append((int(m.group("slice")), file))
        if "train.list" in names:
            # SSL4MIS keeps the training volumes too; they are the same slices, read once from train_slices.list
            whole = {volumes[n] for n in names["train.list"] if n in volumes}
            used.update(whole)
            kept = f"; its {len(whole)} volumes in data/ not used" if whole else ""
            notes.append(f"{lists['train.list']}: not read (training reads the slices of train_slices.list{kept})")
    elif "train.list" in names:
        split_volumes["train"] = listed("train.list", volumes, _VOLUME, "<case>", data)
    for split in ("val", "test"):
        if f"{split}.list" in names:
            split_volumes[split] = listed(f"{split}.list", volumes, _VOLUME, "<case>", data)
    split_of_lists({"train": list(slice_groups) + list(split_volumes.get("train", {})),
                    **{s: list(v) for s, v in split_volumes.items() if s != "train"}}, f"{path}: the list files")

    if not lists:
        notes.append(f"{path}: no list file ({', '.join(_LISTS)}): every volume of data/ read without a split")
        split_volumes[None] = volumes
        for name, file in slices.items():
            m = _SLICE.fullmatch(name)
            if m.group("volume") not in volumes:
                slice_groups.setdefault(m.group("volume"), []).append((int(m.group("slice")), file))
    slice_split = "train" if "train_slices.list" in names else None
    cases = []
    for volume, members in slice_groups.items():
        files = [f for _, f in sorted(members)]
        used.update(files)
        has = labels_of(files, "h5", require_labels, notes, f"{volume} slices")
        cases.append(Seg2DCase(volume, slice_split, "slices", tuple(files), (), has))
    for split, chosen in split_volumes.items():
        for volume, file in chosen.items():
            used.add(file)
            has = labels_of([file], "h5", require_labels, notes, volume)
            cases.append(Seg2DCase(volume, split, "volume", (file,), (), has))
    if not cases:
        raise LayoutError(f"{path}: no ACDC case (data/patient<nnn>_frame<mm>.h5 listed in val.list / test.list / "
                          f"train.list, or slices in train_slices.list)")
    unused = sorted((p for p in matched if p not in used), key=lambda p: natural_key(str(p)))
    if lists:
        notes += unused_note(unused, f"in data/ named by none of {', '.join(n for n in _LISTS if n in lists)}")
    else:
        notes += unused_note(unused, "are slices of volumes that are read whole")
    notes += _patient_overlap(cases)
    if "train_slices.list" in names:  # volumes in the order their first slice is listed (SSL4MIS's budgets)
        order = tuple(dict.fromkeys(_SLICE.fullmatch(n).group("volume") for n in names["train_slices.list"]))
    else:
        order = tuple(names.get("train.list", ()))
    return make_set("acdc_h5", path, "acdc", cases, notes, train_order=order)


def _patient_overlap(cases: list[Seg2DCase]) -> list[str]:
    """A note for each patient whose frames are in two splits (a leak between training and testing)."""
    splits: dict[str, set] = {}
    for case in cases:
        splits.setdefault(patient_of(case.id), set()).add(case.split)
    mixed = sorted((p for p, s in splits.items() if len(s) > 1), key=natural_key)
    return [f"{len(mixed)} patient(s) with frames in two splits: {some(mixed)}"] if mixed else []


# --------------------------------------------------------------------------- challenge NIfTI
_PATIENT_DIR = re.compile(r"patient(?P<num>\d+)", re.I)
_FRAME = re.compile(r"(?P<id>patient\d+_frame\d+)", re.I)
_GT = re.compile(r"(?P<id>patient\d+_frame\d+)_gt", re.I)
_SKIPPED = re.compile(r"patient\d+_4d", re.I)


def _patient_dirs(folder: Optional[Path]) -> list[Path]:
    if folder is None or not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and visible(p) and _PATIENT_DIR.fullmatch(p.name)),
                  key=lambda p: natural_key(p.name))


def _has_frames(folder: Path) -> bool:
    return any(_FRAME.fullmatch(strip_suffix(p.name, NIFTI_SUFFIXES) or "") for p in files_in(folder))


def _acdc_patients(root: Path) -> list[Path]:
    """The patient folders under ``root``, ``root/training`` and ``root/testing`` that hold a frame file."""
    dirs = _patient_dirs(root) + _patient_dirs(subdir(root, "training")) + _patient_dirs(subdir(root, "testing"))
    return [d for d in dirs if _has_frames(d)]


def detect_acdc(root: Path) -> Optional[Path]:
    """``root`` when it (or its ``training/`` / ``testing/``) holds ``patient<nnn>/patient<nnn>_frame<mm>.nii.gz``."""
    root = Path(root)
    return root if _acdc_patients(root) else None


def read_acdc(path: Path, require_labels: bool = True) -> Seg2DSet:
    """The ACDC challenge layout (module docstring).

    Args:
        path: the folder holding the ``patient<nnn>/`` folders (or ``training/`` and ``testing/``).
        require_labels: refuse a frame without its ``_gt`` file (else it is kept unlabelled, with a note).

    Raises:
        LayoutError: no patient folder, a ``_gt`` without its frame, a frame without ``_gt`` (when required), a
            frame of another patient or a second copy of a patient.
    """
    path = Path(path)
    patients = _acdc_patients(path)
    if not patients:
        raise LayoutError(f"{path}: not an ACDC folder (expected patient<nnn>/patient<nnn>_frame<mm>.nii.gz, "
                          f"directly or under training/ and testing/)")
    notes: list[str] = []
    ignored: list[Path] = []
    unlabelled: list[Path] = []
    seen: dict[str, Path] = {}
    cases = []
    for folder in patients:
        key = folder.name.lower()
        if key in seen:
            raise LayoutError(f"{folder}: a second folder of {folder.name} (also {seen[key]})")
        seen[key] = folder
        frames, gts = {}, {}
        for p in files_in(folder):
            stem = strip_suffix(p.name, NIFTI_SUFFIXES)
            if stem is None:
                if is_data_file(p):
                    ignored.append(p)
                continue
            if _SKIPPED.fullmatch(stem):
                continue
            m = _GT.fullmatch(stem) or _FRAME.fullmatch(stem)
            if m is None:
                ignored.append(p)
                continue
            if patient_of(m.group("id")).lower() != key:
                raise LayoutError(f"{p}: a frame of another patient in {folder}")
            chosen = gts if m.re is _GT else frames
            if m.group("id") in chosen:
                raise LayoutError(f"{p}: a second copy of {chosen[m.group('id')].name} in {folder}")
            chosen[m.group("id")] = p
        orphans = [gts[k] for k in sorted(gts) if k not in frames]
        if orphans:
            raise LayoutError(f"{some(orphans)}: label without its frame in {folder}")
        for frame in sorted(frames, key=natural_key):
            if frame not in gts:
                if require_labels:
                    raise LayoutError(f"{frames[frame]}: frame without its label ({frame}_gt.nii.gz in {folder})")
                unlabelled.append(frames[frame])
            label = (gts[frame],) if frame in gts else ()
            cases.append(Seg2DCase(frame, _acdc_split(int(_PATIENT_DIR.fullmatch(folder.name).group("num"))),
                                   "volume", (frames[frame],), label, frame in gts))
    if unlabelled:
        notes.append(f"{len(unlabelled)} frame(s) without a _gt label, kept unlabelled: {some(unlabelled)}")
    notes += unused_note(ignored, "in the patient folders match no patient<nnn>_frame<mm>[_gt].nii.gz name")
    notes.append("split: SSL4MIS's by patient (val: patients " + ", ".join(map(str, SSL4MIS_VAL_PATIENTS))
                 + "; test: " + ", ".join(map(str, SSL4MIS_TEST_PATIENTS)) + "; the other patients of 1-100 train), "
                 "not part of the challenge")
    outside = sorted({patient_of(c.id) for c in cases if c.split is None}, key=natural_key)
    if outside:
        notes.append(f"{len(outside)} patient(s) outside 1-100 (the challenge's testing set), split None: "
                     f"{some(outside)}")
    return make_set("acdc", path, "acdc", cases, notes)


def _acdc_split(patient: int) -> Optional[str]:
    if patient in SSL4MIS_VAL_PATIENTS:
        return "val"
    if patient in SSL4MIS_TEST_PATIENTS:
        return "test"
    return "train" if 1 <= patient <= 100 else None
