"""SIIM-ACR Pneumothorax Segmentation as distributed: an RLE table + DICOM images.

Layout::

    train-rle.csv                          ImageId, EncodedPixels     (header with a space, as released)
    dicom-images-train/<study>/<series>/<ImageId>.dcm

``EncodedPixels`` is ``-1`` (no pneumothorax) or a run-length string (column-major,
:mod:`~medmodal.data.cxr.downstream.rle`): relative offsets in stage 1's ``train-rle.csv``, absolute
1-based starts in ``stage_2_train.csv`` (the table the challenge serves today; read when the folder
has no ``train-rle.csv``, or given as the table). ``rle="auto"`` decides the table's form from its
rows (each row fits one form, or both when short; a tie follows the file name), ``relative`` /
``absolute`` force one; a row that fits neither (or only the other form) names the file, the row
and what each form reads. An image with several separate regions has several rows, merged here
into one mask (union). Images are found anywhere under the DICOM folder by file name (the
reference walks it the same way).

Per image: label ``Pneumothorax`` and the mask source (the RLE rows; drawn at the DICOM's
``Rows x Columns``, 1024 x 1024 in the release).

Splits (MGCA / CM-CGNS ``preprocess/siim.py``): 70 / 15 / 15, seed 0, BY IMAGE (``patients=
"dicom"``: by the DICOM ``PatientID``, read from every header). The reference splits the table's
ROWS, so an image with several RLE rows can land in two splits with part of its mask in each;
that is fixed here. Training subset (``balance_train``, the reference's segmentation training
set): all positive training images + as many random negatives (``RandomState(42)``), applied
before any label fraction.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from medmodal.data.cxr.downstream.base import (DownstreamDataset, DownstreamReadResult, DownstreamSample, MaskSource,
                                               read_csv_rows)
from medmodal.data.cxr.downstream.rle import NO_MASK, RLE_FORMS, choose_rle_form, rle_encode, rle_problem, to_relative
from medmodal.data.cxr.downstream.splits import balance_positive_negative, check_no_leakage, split_by_group
from medmodal.data.cxr.downstream.synthetic import (check_twin_args, dicom_uid, draw, fake_uuid, rng_for, save_dicom,
                                                    severity, side, write_csv)
from medmodal.data.cxr.findings import Finding
from medmodal.data.cxr.images import read_image_size
from medmodal.data.cxr.records import CXRDataError
from medmodal.errors import ConfigError

TABLE = "train-rle.csv"
STAGE2_TABLE = "stage_2_train.csv"
IMAGE_DIR = "dicom-images-train"
FRACTIONS = (0.70, 0.15, 0.15)
PATIENT_MODES = ("image", "dicom")
BALANCE_SEED = 42
DROP_BALANCE = "training negatives outside the balanced subset (positives + as many negatives)"

DESCRIPTOR = DownstreamDataset(
    name="siim", title="SIIM-ACR Pneumothorax Segmentation", tasks=("segmentation",),
    label_names=("Pneumothorax",), label_kind="multilabel", metrics={"segmentation": "dice"},
    splits={"train": "70 % of images (positives + as many negatives)", "val": "15 % of images",
            "test": "15 % of images"})


def read_siim(root: str | Path, task: str = "segmentation", seed: int = 0, balance_train: bool = True,
              patients: str = "image", image_dir: str | Path | None = None, check_images: bool = True,
              skip_bad: bool = False, rle: str = "auto") -> DownstreamReadResult:
    """Read SIIM-ACR Pneumothorax (module docstring).

    Args:
        root: the folder with ``train-rle.csv`` or ``stage_2_train.csv`` (or the CSV itself).
        balance_train: keep all positive training images + as many negatives (reference).
        patients: ``image`` (each image its own group) | ``dicom`` (DICOM ``PatientID``).
        image_dir: DICOM folder (default ``dicom-images-train`` beside the table).
        check_images: every image must exist; positive images have their header read and their
            RLE checked against ``Rows x Columns``.
        rle: ``auto`` (the table's form decided from its rows) | ``relative`` (stage 1) |
            ``absolute`` (stage 2); the samples hold relative strings either way.

    Raises:
        CXRDataError: a missing table or column, an image with both ``-1`` and RLE rows, a
            malformed RLE row or one past its image, a missing image (skipped and counted under
            ``skip_bad``).
        ValueError: an unknown task or patient mode, an image in two splits.
    """
    DESCRIPTOR.check_task(task)
    if patients not in PATIENT_MODES:
        raise ConfigError(f"patients must be one of {', '.join(PATIENT_MODES)}, got {patients!r}")
    if rle not in ("auto", *RLE_FORMS):
        raise ConfigError(f"rle must be one of auto, {', '.join(RLE_FORMS)}, got {rle!r}")
    root = Path(root)
    table = root if root.is_file() else root / TABLE
    if not root.is_file() and not table.is_file() and (root / STAGE2_TABLE).is_file():
        table = root / STAGE2_TABLE
    image_dir = Path(image_dir) if image_dir is not None else table.parent / IMAGE_DIR
    result = DownstreamReadResult(dataset=DESCRIPTOR, task=task)
    rows = read_csv_rows(table, ("ImageId", "EncodedPixels"), result, skip_bad)
    needed = check_images or patients == "dicom" or image_dir.is_dir()
    files = _index_dicoms(image_dir, result) if needed else {}
    groups: dict[str, list[tuple[int, str]]] = {}
    for line, row in rows:
        if not row["ImageId"]:
            result.bad(CXRDataError(f"{table}:{line}: empty ImageId"), skip_bad, table)
            continue
        groups.setdefault(row["ImageId"], []).append((line, row["EncodedPixels"]))
    for image_id, entries in groups.items():
        try:
            sample = _sample(image_id, entries, table, files.get(image_id, image_dir / f"{image_id}.dcm"),
                             check_images, patients)
        except CXRDataError as err:
            result.bad(err, skip_bad, table)
            continue
        result.samples.append(sample)
    _resolve_rle_form(result, table, rle, skip_bad)
    split_by_group(result.samples, FRACTIONS, seed)
    check_no_leakage(result.samples)
    if balance_train:
        train = [s for s in result.samples if s.split == "train"]
        kept, dropped = balance_positive_negative(train, BALANCE_SEED)
        if dropped:
            keep = {id(s) for s in kept}
            result.samples = [s for s in result.samples if s.split != "train" or id(s) in keep]
            result.dropped[DROP_BALANCE] += dropped
    return result


def _index_dicoms(image_dir: Path, result: DownstreamReadResult) -> dict[str, Path]:
    if not image_dir.is_dir():
        raise CXRDataError(f"{image_dir}: DICOM folder not found (expected {IMAGE_DIR}/**/<ImageId>.dcm)")
    found: dict[str, Path] = {}
    for folder, _, names in os.walk(image_dir):
        for name in names:
            if name.lower().endswith(".dcm"):
                stem = name[:-4]
                if stem in found:
                    result.note(f"{image_dir}: {name} exists twice; using {found[stem]}")
                    continue
                found[stem] = Path(folder) / name
    return found


def _sample(image_id: str, entries: list[tuple[int, str]], table: Path, image: Path, check_images: bool,
            patients: str) -> DownstreamSample:
    first = f"{table}:{entries[0][0]}"
    if check_images and not image.is_file():
        raise CXRDataError(f"{first}: image {image_id}.dcm not found under {image.parent}")
    codes = [code for _, code in entries]
    negative = [c == NO_MASK for c in codes]
    if any(negative) and not all(negative):
        raise CXRDataError(f"{first}: image {image_id} has both '-1' and RLE rows")
    rles = () if all(negative) else tuple(codes)
    size = None
    if rles:
        size = read_image_size(image) if check_images else None
        for line, code in entries:
            _check_rle(code, size, f"{table}:{line}")
    patient = image_id
    if patients == "dicom":
        patient = _patient_id(image) or image_id
    return DownstreamSample(sample_id=image_id, patient_id=patient, image_path=image, labels=(float(bool(rles)),),
                            mask=MaskSource(rle=rles), image_size=size, source=first)


def _check_rle(code: str, size: tuple[int, int] | None, where: str) -> None:
    tokens = code.split()
    if not tokens or not all(t.isdigit() for t in tokens):
        bad = next((t for t in tokens if not t.isdigit()), "(empty)")
        raise CXRDataError(f"{where}: malformed RLE (token {bad!r} is not a non-negative integer)")
    if len(tokens) % 2:
        raise CXRDataError(f"{where}: malformed RLE ({len(tokens)} values, expected offset / length pairs)")
    values = [int(t) for t in tokens]
    if any(v == 0 for v in values[1::2]):
        raise CXRDataError(f"{where}: malformed RLE (a run of length 0)")


def _resolve_rle_form(result: DownstreamReadResult, table: Path, option: str, skip_bad: bool) -> None:
    """Decide the table's RLE form (``option`` or ``auto``), refuse the rows that do not fit it and
    store every mask in the relative form."""
    rows = [(code, s.image_size[0] * s.image_size[1] if s.image_size else None)
            for s in result.samples for code in s.mask.rle]
    if not rows:
        return
    form = option
    if option == "auto":
        form, counts = choose_rle_form(rows, hint_absolute=table.name.lower().startswith("stage_2"))
        if form == "absolute":
            result.note(f"{table}: absolute RLE (the stage-2 form: 1-based starts) read; {counts['absolute']} of "
                        f"{len(rows)} rows fit only it, {counts['both']} both forms")
    kept = []
    for sample in result.samples:
        size = sample.image_size
        pixels = size[0] * size[1] if size else None
        lines = sample.mask.rle
        try:
            for k, code in enumerate(lines):
                problem = rle_problem(code, pixels, form)
                if problem is None:
                    continue
                other = "absolute" if form == "relative" else "relative"
                other_problem = rle_problem(code, pixels, other)
                image = f"the {size[1]} x {size[0]} image" if size else "the image"
                where = f"{sample.source}" + (f" (row {k + 1} of image {sample.sample_id})" if len(lines) > 1 else "")
                def said(text: str) -> str:
                    if text.startswith("runs to pixel"):
                        return f"it {text}, past {image}"
                    return f"it {text}" if text.startswith("has ") else text

                if other_problem is None:
                    raise CXRDataError(
                        f"{where}: RLE fits only the {other} form, but the table is read as {_form_name(form)} "
                        f"(so read, {said(problem)}); set the reader option rle: {other} (`medmodal cxr summary --rle "
                        f"{other}`) if the whole table is {other}")
                raise CXRDataError(f"{where}: RLE fits neither form: read as {_form_name(form)}, {said(problem)}; "
                                   f"read as {_form_name(other)}, {said(other_problem)}")
        except CXRDataError as err:
            result.bad(err, skip_bad, table)
            continue
        if form != "relative":
            sample.mask = MaskSource(rle=tuple(to_relative(code, form) for code in lines))
        kept.append(sample)
    result.samples = kept


def _form_name(form: str) -> str:
    return "relative offsets (stage 1)" if form == "relative" else "absolute 1-based starts (stage 2)"


def _patient_id(path: Path) -> str:
    import pydicom

    try:
        return str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"]).get("PatientID", ""))
    except Exception as err:
        raise CXRDataError(f"{path}: cannot read the DICOM PatientID ({type(err).__name__}: {err})") from None


# ------------------------------------------------------------------------------------------- twin

def synth_siim(out: str | Path, images: int = 120, size: int = 128, seed: int = 0) -> dict:
    """Write a SIIM-ACR twin: ``out/train-rle.csv`` + ``dicom-images-train/<study>/<series>/<ImageId>.dcm``.

    Findings: a Pneumothorax (p 0.3; side, severity; bilateral with p 0.1) whose generator mask
    is the ground truth, one RLE row per connected region (so bilateral ones have two rows);
    otherwise nothing or another finding (Pleural Effusion, Cardiomegaly, Support Devices),
    ``-1``. One patient in ten has a second image (DICOM ``PatientID`` shared).
    """
    check_twin_args(images, size)
    root = Path(out)
    rows = [["ImageId", " EncodedPixels"]]
    positives = regions = 0
    patient = ""
    for k in range(images):
        rng = rng_for("siim", seed, k)
        if not patient or rng.random() >= 0.1:
            patient = fake_uuid(rng)
        findings = _draw_findings(rng)
        picture = draw(findings, size, rng)
        mask = picture.masks["Pneumothorax"]
        image_id = dicom_uid("siim", seed, k, "sop")
        study, series = dicom_uid("siim", seed, k, "study"), dicom_uid("siim", seed, k, "series")
        save_dicom(root / IMAGE_DIR / study / series / f"{image_id}.dcm", picture.image, sop_uid=image_id,
                   study_uid=study, series_uid=series, patient_id=patient, sex=str(rng.choice(["M", "F"])),
                   age=f"{int(rng.integers(18, 90)):03d}Y", view=str(rng.choice(["PA", "AP"])))
        labelled, count = ndimage.label(mask, structure=np.ones((3, 3)))
        if count == 0:
            rows.append([image_id, f" {NO_MASK}"])
            continue
        positives += 1
        regions += count
        rows += [[image_id, " " + rle_encode(labelled == r)] for r in range(1, count + 1)]
    write_csv(root / TABLE, rows)
    return {"dataset": "siim", "root": str(root), "images": images, "positives": {"Pneumothorax": positives},
            "regions": regions}


def _draw_findings(rng: np.random.Generator) -> list[Finding]:
    if rng.random() < 0.3:
        where = "bilateral" if rng.random() < 0.1 else side(rng)
        return [Finding("Pneumothorax", where, "upper", str(rng.choice(["moderate", "severe"], p=[0.6, 0.4])))]
    if rng.random() < 0.5:
        return []
    return [[Finding("Pleural Effusion", side(rng), severity=severity(rng)),
             Finding("Cardiomegaly", severity=severity(rng)),
             Finding("Support Devices", kind="catheter")][int(rng.integers(3))]]
