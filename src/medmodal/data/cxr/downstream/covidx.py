"""COVIDx (COVID-Net, Wang et al. 2020) as distributed: space-separated label files + image folders.

Layout (COVID-Net ``labels/`` or the Kaggle "COVIDx CXR" release)::

    train_COVIDx9A.txt      patient_id filename label source      (no header)
    test_COVIDx9A.txt
    train/<filename>        images of the train file
    test/<filename>         images of the test file

Label files (:func:`pick_label_files`): ``train*.txt`` / ``test*.txt`` in the folder, else in its
``labels/`` subfolder. A file's version is its name after ``train`` / ``test`` (``_COVIDx9A``,
``_COVIDx5_subset``). Given one of the two files (``train_file`` / ``test_file``), the other is
looked for beside it first, then in the folder, then in ``labels/``; where one holds several, the
one of the same version is taken; several and none of that version is refused. Without a given
file, the first folder holding label files must hold one of each (several are refused, naming
them). A note names the two files read (and, when one was picked, the label files left unread).

Labels: ``normal`` / ``pneumonia`` / ``COVID-19`` -> class 0 / 1 / 2 (MGCA / CM-CGNS
``preprocess/covidx.py``; 3-way softmax CE, top-1 accuracy); files of the binary releases
(``negative`` / ``positive``, e.g. ``test_COVIDx9B.txt``) read as classes 0 / 1. The reference
maps every label it does not know to COVID-19; here an unknown label is bad input, and other
spellings of the three names (case, ``COVID19``) are accepted with a note.

Irregular rows of the real files, tolerated and reported (notes):

* 3-column rows without ``source`` (``test_COVIDx5.txt``: its 197 RSNA rows): source ``""``;
* the source typo ``rnsa`` (199 rows of ``train_COVIDx9A.txt``): read as ``rsna``;
* rows with more than 4 fields (reported by COVID-Net users; none in the four files of commit
  6599980): read from the right when that is unambiguous: the last three fields are ``filename
  label source`` (the label a known one, the file name the row's only field with an image suffix,
  the source neither), and the fields before them are the patient id: a repeated field (the id
  written twice) is dropped, other extra fields are part of an id with a space (joined by one
  space). One note per file counts them.

Any other row (2 fields, more than 4 that do not read so) is bad input (named by file and line).

Splits (MGCA): the official train file is cut 80 / 20 into train / val (seed 0), BY PATIENT (the
reference cuts rows, so a patient's images can land in both), the official test file is the
test split. Patient ids are taken as given (in ``train_COVIDx9A.txt`` no id is shared by two
sources).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import numpy as np

from medmodal.data.cxr.downstream.base import DownstreamDataset, DownstreamReadResult, DownstreamSample
from medmodal.data.cxr.downstream.splits import check_no_leakage, split_by_group
from medmodal.data.cxr.downstream.synthetic import check_twin_args, draw, fake_uuid, rng_for, save_picture, side
from medmodal.data.cxr.findings import Finding
from medmodal.data.cxr.records import CXRDataError, decode_lenient, has_undecodable
from medmodal.io import atomic_write_text

THREE_CLASS = ("normal", "pneumonia", "COVID-19")
BINARY = ("negative", "positive")
SPELLINGS = {"normal": "normal", "pneumonia": "pneumonia", "covid-19": "COVID-19", "covid19": "COVID-19",
             "covid_19": "COVID-19", "negative": "negative", "positive": "positive"}
SOURCE_TYPOS = {"rnsa": "rsna"}
VAL_FRACTION = 0.2

DESCRIPTOR = DownstreamDataset(
    name="covidx", title="COVIDx (COVID-Net label files)", tasks=("classification",), label_names=THREE_CLASS,
    label_kind="multiclass", metrics={"classification": "accuracy"}, classification_augment="crop",
    splits={"train": "80 % of the official train file's patients", "val": "20 % of them",
            "test": "official test file"})


def _label_files(folder: Path, kind: str) -> list[Path]:
    return sorted(p for p in folder.glob(f"{kind}*.txt") if p.is_file()) if folder.is_dir() else []


def _version(path: Path, kind: str) -> str:
    """What follows ``train`` / ``test`` in the file name (``_COVIDx9A``), compared case-insensitively."""
    return path.stem[len(kind):].lower()


_OPTION = {"train": "--train-file (reader option train_file)", "test": "--test-file (reader option test_file)"}


def pick_label_files(root: Path, train_file: str | Path | None = None,
                     test_file: str | Path | None = None) -> tuple[dict[str, Path], list[str]]:
    """``({"train": path, "test": path}, notes)``: the given files, the others found (module docstring).

    Raises:
        CXRDataError: a given file does not exist; no label file; an ambiguous choice (one line
            listing the candidates and the option to give).
    """
    given = {"train": Path(train_file) if train_file else None, "test": Path(test_file) if test_file else None}
    for kind, path in given.items():
        if path is not None and not path.is_file():
            raise CXRDataError(f"{path}: COVIDx {kind} label file not found ({_OPTION[kind].split(' (')[0]})")
    folders = [root, root / "labels"]
    files: dict[str, Path] = {k: p for k, p in given.items() if p is not None}
    picked: list[str] = []
    if len(files) == 1:
        (kind, path), = files.items()
        other = "test" if kind == "train" else "train"
        files[other] = _pick_beside(path, kind, other, [path.parent] + folders)
        picked.append(other)
    elif not files:
        for folder in folders:
            found = {kind: _label_files(folder, kind) for kind in ("train", "test")}
            if not found["train"] and not found["test"]:
                continue
            for kind in ("train", "test"):
                if len(found[kind]) > 1:
                    raise CXRDataError(f"{folder}: several COVIDx {kind} files "
                                       f"({', '.join(p.name for p in found[kind])}); give {_OPTION[kind]}")
                if not found[kind]:
                    raise CXRDataError(f"{folder}: no COVIDx {kind}*.txt label file beside "
                                       f"{found['test' if kind == 'train' else 'train'][0].name}; give {_OPTION[kind]}")
            files = {kind: found[kind][0] for kind in ("train", "test")}
            picked = ["train", "test"]
            break
        else:
            raise CXRDataError(f"{root}: no COVIDx train*.txt label file (here or in labels/)")
    note = f"COVIDx label files: train {files['train']}, test {files['test']}"
    if _version(files["train"], "train") != _version(files["test"], "test"):
        note += " (of different versions)"
    if picked:
        used = {files["train"].resolve(), files["test"].resolve()}
        others = sorted({p.resolve() for folder in [files["train"].parent, files["test"].parent] + folders
                         for kind in ("train", "test") for p in _label_files(folder, kind)} - used)
        if others:
            note += (f"; not read: {', '.join(str(p) for p in others)} (give --train-file / --test-file to read "
                     f"another)")
    return files, [note]


def _pick_beside(given: Path, kind: str, other: str, folders: list[Path]) -> Path:
    """The ``other`` label file for the given ``kind`` file: the first folder holding any; of several
    there, the one of the same version."""
    seen = set()
    for folder in folders:
        key = folder.resolve() if folder.is_dir() else folder
        if key in seen:
            continue
        seen.add(key)
        found = _label_files(folder, other)
        if not found:
            continue
        same = [p for p in found if _version(p, other) == _version(given, kind)]
        if len(same) == 1:
            return same[0]
        if len(found) == 1:
            return found[0]
        raise CXRDataError(f"{folder}: several COVIDx {other} files ({', '.join(p.name for p in found)}) and none of "
                           f"the version of {given.name}; give {_OPTION[other]}")
    raise CXRDataError(f"{given}: no COVIDx {other}*.txt beside it, in {folders[1]} or in {folders[2]}; "
                       f"give {_OPTION[other]}")


def read_covidx(root: str | Path, task: str = "classification", train_file: str | Path | None = None,
                test_file: str | Path | None = None, seed: int = 0, val_fraction: float = VAL_FRACTION,
                image_root: str | Path | None = None, check_images: bool = True,
                skip_bad: bool = False) -> DownstreamReadResult:
    """Read COVIDx (module docstring).

    Args:
        root: the folder with the label files (or ``labels/``) and the ``train/`` / ``test/`` images.
        train_file / test_file: label files (default: found in ``root``).
        val_fraction: share of the official train file's patients that form val.
        image_root: the folder holding ``train/`` and ``test/`` (default ``root``).
        check_images: every listed image must exist (a missing one is bad input).

    Raises:
        CXRDataError: no / several label files, a row with other than 3 or 4 fields, an unknown
            label, a file listed twice, a train and test file of different label sets, a missing
            image (rows skipped and counted under ``skip_bad``).
        ValueError: a patient in two splits (e.g. in the official train and test files).
    """
    DESCRIPTOR.check_task(task)
    root = Path(root)
    if not root.is_dir():
        raise CXRDataError(f"{root}: not a folder (expected the COVIDx folder with train*.txt / test*.txt)")
    image_root = Path(image_root) if image_root is not None else root
    files, notes = pick_label_files(root, train_file, test_file)
    result = DownstreamReadResult(task=task)
    for note in notes:
        result.note(note)
    label_sets = {}
    for split, path in files.items():
        rows, label_sets[split] = _read_label_file(path, result, skip_bad)
        for line, (patient, filename, label, source) in rows:
            image = image_root / split / filename
            if check_images and not image.is_file():
                result.bad(CXRDataError(f"{path}:{line}: image {image} not found"), skip_bad, path)
                continue
            result.samples.append(DownstreamSample(
                sample_id=f"{split}/{filename}", patient_id=patient, image_path=image, split=split,
                source=f"{path}:{line}", extra={"label": label, "source": source}))
    if label_sets["train"] and label_sets["test"] and label_sets["train"] != label_sets["test"]:
        raise CXRDataError(f"{files['test']}: labels {'/'.join(label_sets['test'])} but {files['train'].name} has "
                           f"{'/'.join(label_sets['train'])}")
    classes = label_sets["train"] or label_sets["test"] or THREE_CLASS
    for s in result.samples:
        s.class_index = classes.index(s.extra["label"])
    result.dataset = dataclasses.replace(DESCRIPTOR, label_names=classes)
    split_by_group([s for s in result.samples if s.split == "train"], (1 - val_fraction, val_fraction), seed,
                   names=("train", "val"))
    check_no_leakage(result.samples)
    return result


def _read_label_file(path: Path, result: DownstreamReadResult, skip_bad: bool):
    """``[(line, (patient, filename, label, source))]`` and the file's label set (3-class or binary)."""
    text = decode_lenient(path)
    rows, seen = [], {}
    three, wide, typos, respelled = 0, 0, Counter(), Counter()
    for line, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        where = f"{path}:{line}"
        if has_undecodable(raw):
            result.bad(CXRDataError(f"{where}: not UTF-8 text"), skip_bad, path)
            continue
        if len(fields) > 4:
            read = _from_the_right(fields)
            if read is None:
                result.bad(CXRDataError(f"{where}: {len(fields)} fields, expected 'patient_id filename label source' "
                                        f"(4, or 3 without source; more only when the last three read as filename, "
                                        f"label, source)"), skip_bad, path)
                continue
            fields, wide = read, wide + 1
        if len(fields) not in (3, 4):
            result.bad(CXRDataError(f"{where}: {len(fields)} fields, expected 'patient_id filename label source' "
                                    f"(4, or 3 without source)"), skip_bad, path)
            continue
        patient, filename, label = fields[:3]
        source = fields[3] if len(fields) == 4 else ""
        three += len(fields) == 3
        canonical = SPELLINGS.get(label.lower())
        if canonical is None:
            result.bad(CXRDataError(f"{where}: unknown label {label!r} (expected normal, pneumonia, COVID-19 or "
                                    f"negative, positive)"), skip_bad, path)
            continue
        if canonical != label:
            respelled[f"{label} -> {canonical}"] += 1
        if source.lower() in SOURCE_TYPOS:
            typos[source] += 1
            source = SOURCE_TYPOS[source.lower()]
        if filename in seen:
            result.bad(CXRDataError(f"{where}: {filename} is already listed on line {seen[filename]}"), skip_bad, path)
            continue
        seen[filename] = line
        rows.append((line, (patient, filename, canonical, source)))
    if wide:
        result.note(f"{path}: {wide} row(s) have more than 4 fields, read from the right (filename label source = "
                    f"the last three; the fields before them = the patient id, a repeated one dropped)")
    if three:
        result.note(f"{path}: {three} row(s) have 3 columns (no source), read with source unknown")
    for typo, n in typos.items():
        result.note(f"{path}: {n} row(s) have source {typo!r}, read as {SOURCE_TYPOS[typo.lower()]!r} (a typo in the "
                    f"COVIDx files)")
    for change, n in respelled.items():
        result.note(f"{path}: {n} label(s) spelt {change}")
    labels = {r[1][2] for r in rows}
    if labels and labels <= set(THREE_CLASS):
        return rows, THREE_CLASS
    if labels and labels <= set(BINARY):
        return rows, BINARY
    if labels:
        raise CXRDataError(f"{path}: mixes 3-class (normal / pneumonia / COVID-19) and binary (negative / positive) "
                           f"labels")
    return rows, ()


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".bmp", ".tif", ".tiff")


def _from_the_right(fields: list[str]) -> list[str] | None:
    """A row of more than 4 fields as ``[patient, filename, label, source]``, or ``None`` when the last
    three are not unambiguously ``filename label source`` (module docstring)."""
    *head, filename, label, source = fields

    def image(token: str) -> bool:
        return token.lower().endswith(_IMAGE_SUFFIXES)

    if SPELLINGS.get(label.lower()) is None or not image(filename) or image(source) or SPELLINGS.get(source.lower()):
        return None
    head = [t for t in head if t != filename]          # the file name written twice
    if not head or any(image(t) for t in head):        # another file name: which one is the image?
        return None
    patient = []
    for token in head:
        if token not in patient:                       # the id written twice
            patient.append(token)
    return [" ".join(patient), filename, label, source]


# ------------------------------------------------------------------------------------------- twin

#: COVID-19 sources of the real files and how they name patients / files.
_COVID_SOURCES = ("cohen", "sirm", "ricord", "bimcv", "stonybrook")


def synth_covidx(out: str | Path, images: int = 120, size: int = 128, seed: int = 0) -> dict:
    """Write a COVIDx twin: ``out/train_COVIDx9A.txt``, ``test_COVIDx9A.txt``, ``train/``, ``test/``.

    Classes -> drawn findings (the generator's documented kinds): ``COVID-19`` = bilateral
    peripheral ground-glass opacities, lower (or middle) zones, several patches (``peripheral``);
    ``pneumonia`` = a lobar consolidation of one lung, upper or lower zone (``lobar``);
    ``normal`` = nothing. About 40 / 30 / 30 %; 15 % of the images form the test file (new
    patients). Sources as in the real files (normal / pneumonia from ``rsna``, 1 in 10 of them
    written ``rnsa``; COVID-19 from cohen, sirm, ricord, bimcv, stonybrook), some patients with
    2-3 images, PNG and JPEG, a few RGB, non-square shapes; the test file's rsna rows have 3
    columns (no source), as ``test_COVIDx5.txt``.
    """
    check_twin_args(images, size)
    root = Path(out)
    n_test = max(3, round(0.15 * images))
    lines = {"train": [], "test": []}
    counts = Counter()
    k = patient_no = 0
    for split, count in (("train", images - n_test), ("test", n_test)):
        done = 0
        while done < count:
            patient_no += 1
            meta = rng_for("covidx", seed, 10**6 + patient_no)
            label = str(meta.choice(THREE_CLASS, p=[0.3, 0.3, 0.4]))
            source = "rsna" if label != "COVID-19" else str(meta.choice(_COVID_SOURCES))
            patient = fake_uuid(meta) if source == "rsna" else _patient_id(source, patient_no)
            series = int(meta.integers(2, 4)) if source in ("cohen", "stonybrook") and meta.random() < 0.4 else 1
            for j in range(min(series, count - done)):
                rng = rng_for("covidx", seed, k)
                filename = _filename(source, patient, j, rng)
                shape = [(size, size), (size, round(0.85 * size)), (round(0.85 * size), size)][int(rng.integers(3))]
                picture = draw(_findings(label, rng), size, rng, shape)
                save_picture(root / split / filename, picture.image, rgb=source == "cohen" and j == 0)
                written = "rnsa" if source == "rsna" and split == "train" and rng.random() < 0.1 else source
                fields = [patient, filename, label] + ([] if split == "test" and source == "rsna" else [written])
                lines[split].append(" ".join(fields))
                counts[(split, label)] += 1
                k += 1
                done += 1
    atomic_write_text(root / "test_COVIDx9A.txt", "\n".join(lines["test"]) + "\n")
    atomic_write_text(root / "train_COVIDx9A.txt", "\n".join(lines["train"]) + "\n")
    return {"dataset": "covidx", "root": str(root), "images": images, "patients": patient_no,
            "classes": {f"{s} {c}": n for (s, c), n in sorted(counts.items())}}


def _findings(label: str, rng: np.random.Generator) -> list[Finding]:
    if label == "COVID-19":
        return [Finding("Lung Opacity", "bilateral", str(rng.choice(["lower", "middle"], p=[0.7, 0.3])), "",
                        True, "peripheral")]
    if label == "pneumonia":
        return [Finding("Consolidation", side(rng), str(rng.choice(["upper", "lower"], p=[0.3, 0.7])), kind="lobar")]
    return []


def _patient_id(source: str, number: int) -> str:
    return {"cohen": str(number), "sirm": f"sirm-{number}", "ricord": f"419639-{number:06d}",
            "bimcv": f"sub-S{number:05d}", "stonybrook": f"A{800000 + number}"}[source]


def _filename(source: str, patient: str, j: int, rng: np.random.Generator) -> str:
    if source == "rsna":
        return f"{patient}.png"
    if source == "ricord":
        return f"MIDRC-RICORD-1C-{patient}-{int(rng.integers(10000, 99999))}-{j}.png"
    suffix = ".jpeg" if source == "cohen" else ".jpg" if source == "sirm" else ".png"
    return f"{re.sub(r'[^A-Za-z0-9-]', '', patient)}-{j}{suffix}"
