"""RSNA Pneumonia: the twin (CSV + DICOM) through the real reader, per-task splits, boxes, bad rows."""

import csv

import numpy as np
import pydicom
import pytest

from medmodal.data.cxr.downstream import DetectionDataset, SegmentationDataset, check_no_leakage, read_downstream
from medmodal.data.cxr.downstream.rsna import merge_overlapping, read_rsna
from medmodal.data.cxr.records import CXRDataError
from tests.data.cxr.conftest import write_dicom
from tests.data.cxr.downstream.conftest import TWIN_IMAGES, TWIN_SIZE

pytestmark = pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")


def test_twin_boxes_labels_and_dicom(twins):
    root = twins["rsna"]
    with open(root / "stage_2_train_labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    boxes = {}
    for r in rows:
        boxes.setdefault(r["patientId"], [])
        if r["Target"] == "1":
            x, y, w, h = (float(r[c]) for c in ("x", "y", "width", "height"))
            boxes[r["patientId"]].append([x, y, x + w, y + h])
    result = read_rsna(root, task="detection")
    assert len(result.samples) == len(boxes) == TWIN_IMAGES
    assert any(len(b) > 1 for b in boxes.values()) or sum(map(len, boxes.values())) > 0
    for s in result.samples:
        assert np.allclose(s.boxes, np.asarray(boxes[s.sample_id]).reshape(-1, 4))
        assert s.labels == (float(bool(boxes[s.sample_id])),) and s.patient_id == s.sample_id
        assert s.extra["class"] in ("Lung Opacity", "No Lung Opacity / Not Normal", "Normal")
    positive = next(s for s in result.samples if len(s.boxes))
    ds = pydicom.dcmread(positive.image_path)
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.PatientID == positive.sample_id
    assert ds.SOPInstanceUID.is_valid and ds.StudyInstanceUID.is_valid and (ds.Rows, ds.Columns) == (TWIN_SIZE,) * 2


def test_split_protocol_depends_on_the_task(twins):
    counts = {}
    for task in ("classification", "detection", "segmentation"):
        result = read_downstream("rsna", twins["rsna"], task=task)
        check_no_leakage(result.samples)
        counts[task] = tuple(len(result.select(s)) for s in ("train", "val", "test"))
    assert counts["classification"] == (34, 7, 7)   # 70 / 15 / 15 of 48
    assert counts["detection"] == counts["segmentation"] == (29, 10, 9)  # 60 / 20 / 20 (largest remainders)


def test_segmentation_masks_are_the_boxes(twins):
    result = read_rsna(twins["rsna"], task="segmentation")
    positives = [s for s in result.samples if len(s.boxes)][:3]
    data = SegmentationDataset(positives, train=False, image_size=TWIN_SIZE)
    for i, s in enumerate(positives):
        mask = data[i]["mask"].numpy()
        box_area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in merge_overlapping(s.boxes.tolist()))
        assert abs(mask.sum() - box_area) <= 0.15 * box_area + 4 * TWIN_SIZE / 8  # 96 -> 256 -> 96 round trip
        x0, y0, x1, y1 = s.boxes[0]
        assert mask[int((y0 + y1) / 2), int((x0 + x1) / 2)] == 1
    det = DetectionDataset(positives, train=False, image_size=TWIN_SIZE)
    assert np.allclose(det[0]["boxes"].numpy(), positives[0].boxes, atol=0.01)  # square image: same frame


def write_rsna(root, lines, size=64):
    root.mkdir(parents=True, exist_ok=True)
    (root / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\n" + "\n".join(lines) + "\n")
    for pid in {line.split(",")[0] for line in lines}:
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", np.full((size, size), 100, np.uint16))
    return root


@pytest.mark.parametrize("lines, message", [
    (["a,10,10,5,5,1", "a,,,,,0"], r":2: the rows of patient a disagree on Target"),
    (["a,,,,,1"], r":2: Target 1 row without x, y, width, height"),
    (["a,10,10,x,5,1"], r":2: width 'x' is not a number"),
    (["b,,,,,0", "a,50,50,30,10,1"], r":3: box \(50, 50, 80, 60\) lies outside the 64 x 64 image"),
    (["a,10,10,0,5,1"], r":2: box .* is empty"),
    (["a,,,,,2"], r":2: Target '2' is not 0 or 1"),
])
def test_bad_rows_name_the_line(tmp_path, lines, message):
    root = write_rsna(tmp_path / "rsna", lines)
    with pytest.raises(CXRDataError, match=r"stage_2_train_labels\.csv" + message):
        read_rsna(root)
    assert len(read_rsna(root, skip_bad=True).skipped) == 1


def test_box_within_tolerance_is_clipped_and_missing_image(tmp_path):
    root = write_rsna(tmp_path / "rsna", ["a,50,50,15,15,1", "b,,,,,0", "c,,,,,0"])
    result = read_rsna(root)
    assert np.allclose(next(s for s in result.samples if s.sample_id == "a").boxes, [[50, 50, 64, 64]])
    (root / "stage_2_train_images" / "c.dcm").unlink()
    with pytest.raises(CXRDataError, match=r"stage_2_train_labels\.csv:4: image .*c\.dcm not found"):
        read_rsna(root)
    assert [p for _, p in read_rsna(root, skip_bad=True).skipped][0].endswith("c.dcm not found")
    with pytest.raises(CXRDataError, match="no stage_2_train_labels.csv"):
        read_rsna(tmp_path)
