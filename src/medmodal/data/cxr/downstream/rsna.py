"""RSNA Pneumonia Detection Challenge (Kaggle 2018) as distributed: a box table + DICOM images.

Layout::

    stage_2_train_labels.csv           patientId,x,y,width,height,Target   (several rows per image)
    stage_2_detailed_class_info.csv    patientId,class                     (optional; kept in extra)
    stage_2_train_images/<patientId>.dcm

A ``Target`` 1 row is one pneumonia box (``x, y`` its top-left corner, pixels of the 1024 x 1024
image); an image with ``Target`` 0 has one row with blank coordinates. One image per patient,
so the patient is the image. ``stage_1_*`` files are read the same way when no stage-2 table exists.

Per image (MGCA / CM-CGNS ``preprocess/rsna.py``): label ``Pneumonia`` = Target (1-logit BCE),
boxes xyxy ``(x, y, x + width, y + height)`` (detection), and the mask of the filled boxes
(segmentation, as the reference draws it).

Splits by patient (seed 0): ``classification`` 70 / 15 / 15 (the reference: 18,678 / 4,003 /
4,003; here 18,679 / 4,003 / 4,002 of the 26,684 images); ``detection`` and ``segmentation``
60 / 20 / 20 (the reference's ``test_size = 5337 * 2``: 16,010 / 5,337 / 5,337, the same counts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medmodal.data.cxr.downstream.base import (DownstreamDataset, DownstreamReadResult, DownstreamSample, MaskSource,
                                               boxes_array, check_box, parse_number, read_csv_rows)
from medmodal.data.cxr.downstream.splits import check_no_leakage, split_by_group
from medmodal.data.cxr.downstream.synthetic import (check_twin_args, dicom_uid, draw, fake_uuid, rng_for, save_dicom,
                                                    side, severity, write_csv, zone)
from medmodal.data.cxr.findings import Finding
from medmodal.data.cxr.images import read_image_size
from medmodal.data.cxr.records import CXRDataError

COLUMNS = ("patientId", "x", "y", "width", "height", "Target")
CLASSIFICATION_FRACTIONS = (0.70, 0.15, 0.15)
DENSE_FRACTIONS = (0.60, 0.20, 0.20)
CLASSES = ("Lung Opacity", "No Lung Opacity / Not Normal", "Normal")

DESCRIPTOR = DownstreamDataset(
    name="rsna", title="RSNA Pneumonia Detection Challenge (stage 2)",
    tasks=("classification", "detection", "segmentation"), label_names=("Pneumonia",), label_kind="multilabel",
    metrics={"classification": "auroc", "detection": "map_40_75", "segmentation": "dice"},
    box_label_names=("Pneumonia",), classification_augment="crop",
    splits={"train": "70 % (classification) / 60 % (detection, segmentation) of patients",
            "val": "15 % / 20 %", "test": "15 % / 20 %"})


def find_rsna_table(root: str | Path) -> Path:
    """``stage_2_train_labels.csv`` (else ``stage_1_train_labels.csv``) at ``root`` (or ``root`` itself)."""
    root = Path(root)
    if root.is_file():
        return root
    for stage in ("stage_2", "stage_1"):
        if (root / f"{stage}_train_labels.csv").is_file():
            return root / f"{stage}_train_labels.csv"
    raise CXRDataError(f"{root}: no stage_2_train_labels.csv (RSNA Pneumonia box table)")


def read_rsna(root: str | Path, task: str = "classification", seed: int = 0, image_dir: str | Path | None = None,
              check_images: bool = True, skip_bad: bool = False) -> DownstreamReadResult:
    """Read RSNA Pneumonia (module docstring) with the split protocol of ``task``.

    Args:
        root: the competition folder, or the labels CSV.
        image_dir: DICOM folder (default: ``stage_2_train_images`` beside the table).
        check_images: every image must exist; images with boxes have their DICOM header read so
            boxes are checked against the image (and clipped within 2 px).

    Raises:
        CXRDataError: a missing table / column, rows of one image that disagree on Target, a
            Target 1 row without a box, a non-numeric or empty box, a box outside its image, a
            missing image (each but the first two skipped and counted under ``skip_bad``).
        ValueError: an unknown task.
    """
    DESCRIPTOR.check_task(task)
    table = find_rsna_table(root)
    stage = table.name.split("_train_labels")[0]
    image_dir = Path(image_dir) if image_dir is not None else table.parent / f"{stage}_train_images"
    result = DownstreamReadResult(dataset=DESCRIPTOR, task=task)
    groups: dict[str, list[tuple[int, dict]]] = {}
    for line, row in read_csv_rows(table, COLUMNS, result, skip_bad):
        if not row["patientId"]:
            result.bad(CXRDataError(f"{table}:{line}: empty patientId"), skip_bad, table)
            continue
        groups.setdefault(row["patientId"], []).append((line, row))
    classes = _read_classes(table.parent / f"{stage}_detailed_class_info.csv")
    for patient, rows in groups.items():
        try:
            sample = _sample(patient, rows, table, image_dir, check_images)
        except CXRDataError as err:
            result.bad(err, skip_bad, table)
            continue
        if patient in classes:
            sample.extra["class"] = classes[patient]
        result.samples.append(sample)
    split_by_group(result.samples, CLASSIFICATION_FRACTIONS if task == "classification" else DENSE_FRACTIONS, seed)
    check_no_leakage(result.samples)
    return result


def _read_classes(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return {row["patientId"]: row["class"] for _, row in read_csv_rows(path, ("patientId", "class"))}


def _sample(patient: str, rows: list[tuple[int, dict]], table: Path, image_dir: Path,
            check_images: bool) -> DownstreamSample:
    first = f"{table}:{rows[0][0]}"
    targets = {row["Target"] for _, row in rows}
    if not targets <= {"0", "1"}:
        raise CXRDataError(f"{first}: Target {sorted(targets - {'0', '1'})[0]!r} is not 0 or 1")
    if len(targets) > 1:
        raise CXRDataError(f"{first}: the rows of patient {patient} disagree on Target (0 and 1)")
    image = image_dir / f"{patient}.dcm"
    if check_images and not image.is_file():
        raise CXRDataError(f"{first}: image {image} not found")
    positive = targets == {"1"}
    size = read_image_size(image) if positive and check_images else None
    boxes = []
    for line, row in rows if positive else []:
        where = f"{table}:{line}"
        if not all(row[c] for c in ("x", "y", "width", "height")):
            raise CXRDataError(f"{where}: Target 1 row without x, y, width, height")
        x, y, w, h = (parse_number(row[c], where, c) for c in ("x", "y", "width", "height"))
        boxes.append(check_box((x, y, x + w, y + h), *(size or (None, None)), where))
    boxes = boxes_array(boxes)
    return DownstreamSample(sample_id=patient, patient_id=patient, image_path=image, labels=(float(positive),),
                            boxes=boxes, box_labels=np.zeros(len(boxes), np.int64),
                            mask=MaskSource(boxes=tuple(tuple(float(v) for v in b) for b in boxes)),
                            image_size=size, source=first)


# ------------------------------------------------------------------------------------------- twin

def synth_rsna(out: str | Path, images: int = 120, size: int = 128, seed: int = 0) -> dict:
    """Write an RSNA twin: ``out/stage_2_train_labels.csv``, ``stage_2_detailed_class_info.csv`` and
    ``stage_2_train_images/<patientId>.dcm`` (8-bit MONOCHROME2, ``size x size``).

    Findings (generator -> RSNA): pneumonia (p 0.3) = a lobar Consolidation (half) or 1-2 patchy
    Lung Opacities (bilateral with p 0.3), Target 1, boxes = the generator's lesion boxes with
    overlapping ones merged; otherwise "Normal" (no finding) or "No Lung Opacity / Not Normal"
    (Cardiomegaly, Pleural Effusion, Nodule or Support Devices), Target 0.
    """
    check_twin_args(images, size)
    root = Path(out)
    rows, classes = [list(COLUMNS)], [["patientId", "class"]]
    n_positive = n_boxes = 0
    for k in range(images):
        rng = rng_for("rsna", seed, k)
        patient = fake_uuid(rng)
        findings, label = _draw_findings(rng)
        picture = draw(findings, size, rng)
        boxes = merge_overlapping(picture.boxes_of(("Lung Opacity", "Consolidation")))
        if label == "Lung Opacity" and not boxes:
            label = "No Lung Opacity / Not Normal"
        save_dicom(root / "stage_2_train_images" / f"{patient}.dcm", picture.image,
                   sop_uid=dicom_uid("rsna", seed, k, "sop"), study_uid=dicom_uid("rsna", seed, k, "study"),
                   series_uid=dicom_uid("rsna", seed, k, "series"), patient_id=patient,
                   sex=str(rng.choice(["M", "F"])), age=f"{int(rng.integers(18, 90)):03d}Y",
                   view=str(rng.choice(["PA", "AP"])))
        if label == "Lung Opacity":
            n_positive += 1
            n_boxes += len(boxes)
            rows += [[patient, f"{x0:.1f}", f"{y0:.1f}", f"{x1 - x0:.1f}", f"{y1 - y0:.1f}", 1]
                     for x0, y0, x1, y1 in boxes]
        else:
            rows.append([patient, "", "", "", "", 0])
        classes.append([patient, label])
    write_csv(root / "stage_2_detailed_class_info.csv", classes)
    write_csv(root / "stage_2_train_labels.csv", rows)
    return {"dataset": "rsna", "root": str(root), "images": images, "positives": {"Pneumonia": n_positive},
            "boxes": n_boxes}


def _draw_findings(rng: np.random.Generator) -> tuple[list[Finding], str]:
    if rng.random() < 0.3:
        if rng.random() < 0.5:
            return [Finding("Consolidation", side(rng), str(rng.choice(["upper", "lower"])), kind="lobar")], \
                "Lung Opacity"
        where = "bilateral" if rng.random() < 0.3 else side(rng)
        return [Finding("Lung Opacity", where, zone(rng), multiple=bool(rng.random() < 0.4))], "Lung Opacity"
    if rng.random() < 0.5:
        return [], "Normal"
    other = str(rng.choice(["Cardiomegaly", "Pleural Effusion", "Nodule", "Support Devices"]))
    finding = {"Cardiomegaly": Finding("Cardiomegaly", severity=severity(rng)),
               "Pleural Effusion": Finding("Pleural Effusion", side(rng), severity=severity(rng)),
               "Nodule": Finding("Nodule", side(rng), zone(rng)),
               "Support Devices": Finding("Support Devices", kind="catheter")}[other]
    return [finding], "No Lung Opacity / Not Normal"


def merge_overlapping(boxes: list[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float]]:
    """Union of boxes that overlap, until none do (RSNA annotators drew one box per opacity region)."""
    boxes = [tuple(b) for b in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes
