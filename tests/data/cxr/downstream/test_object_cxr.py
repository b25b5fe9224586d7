"""Object-CXR: annotation strings (rectangles, ellipses, polygons), the twin, box checks, splits."""

import csv

import numpy as np
import pytest

from medmodal.data.cxr.downstream import DetectionDataset, check_no_leakage, collate_detection, read_downstream
from medmodal.data.cxr.downstream.object_cxr import parse_annotation, read_object_cxr
from medmodal.data.cxr.records import CXRDataError
from tests.data.cxr.downstream.conftest import grey_picture

pytestmark = pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")


def test_parse_annotation_shapes():
    objects = parse_annotation("0 30 40 10 20;1 5 6 15 16;2 3 9 12 2 20 30 1 25;", "f:2")
    assert [shape for shape, _ in objects] == ["rectangle", "ellipse", "polygon"]
    assert [b.tolist() for _, b in objects] == [[10, 20, 30, 40], [5, 6, 15, 16], [1, 2, 20, 30]]
    assert parse_annotation("", "f:2") == [] and parse_annotation(" ; ", "f:2") == []


@pytest.mark.parametrize("text, message", [
    ("3 1 2 3 4", r"object type '3' is not 0"), ("0 1 2 3", r"rectangle with an odd number of coordinates \(3\)"),
    ("2 1 2 3 4", r"polygon with 2 point\(s\), needs at least 3"), ("1 1 2 a 4", "ellipse with coordinate 'a'"),
    ("0 1 2", r"rectangle with 1 point\(s\), needs at least 2")])
def test_malformed_annotations(text, message):
    with pytest.raises(CXRDataError, match=r"f:7: " + message):
        parse_annotation(text, "f:7")


def test_twin(twins):
    root = twins["object-cxr"]
    result = read_downstream("object-cxr", root)
    check_no_leakage(result.samples)
    with open(root / "train.csv", newline="") as fh:
        train = list(csv.DictReader(fh))
    assert len(result.select("train")) + len(result.select("val")) == len(train)
    assert len(result.select("val")) == round(0.1 * len(train))
    assert all(s.sample_id.endswith(".jpg") for s in result.select("test"))
    shapes = {shape for s in result.samples for shape in s.extra["shapes"]}
    assert shapes == {"rectangle", "ellipse", "polygon"}
    for s in result.samples:
        assert s.labels == (float(len(s.boxes) > 0),) and len(s.boxes) == len(s.extra["shapes"])
        if len(s.boxes):  # every object is bright (metal) inside its box
            from PIL import Image

            image = np.asarray(Image.open(s.image_path))
            for x0, y0, x1, y1 in s.boxes.astype(int):
                assert image[y0:y1, x0:x1].max() > 200
    data = DetectionDataset(result.select("train"), train=True, image_size=128)
    batch = collate_detection([data[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 128, 128) and len(batch["boxes"]) == 4
    assert all(b.shape[1] == 4 and (b >= 0).all() and (b <= 128).all() for b in batch["boxes"])


def write_object_cxr(root, train_rows, dev_rows=(("d.jpg", ""),), header=("image_name", "annotation")):
    for table, rows, folder in (("train.csv", train_rows, "train"), ("dev.csv", dev_rows, "dev")):
        root.mkdir(parents=True, exist_ok=True)
        with open(root / table, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        for name, _ in rows:
            grey_picture(root / folder / name, 50, 40)
    return root


def test_boxes_are_checked_against_the_image(tmp_path):
    root = write_object_cxr(tmp_path / "ocxr", [("a.jpg", "0 10 10 41 51"), ("b.jpg", "1 30 30 60 60"),
                                                ("c.jpg", "")], header=("image_name", "ANNOTATION"))
    with pytest.raises(CXRDataError, match=r"train\.csv:3: box \(30, 30, 60, 60\) lies outside the 40 x 50 image"):
        read_object_cxr(root)
    result = read_object_cxr(root, skip_bad=True)
    assert len(result.skipped) == 1 and len(result.samples) == 3
    a = next(s for s in result.samples if s.sample_id == "a.jpg")
    assert a.boxes.tolist() == [[10, 10, 40, 50]] and a.image_size == (50, 40)  # 1 px over: clipped
    (root / "train" / "c.jpg").unlink()
    with pytest.raises(CXRDataError, match=r"train\.csv:4: image .*c\.jpg not found"):
        read_object_cxr(root, box_tolerance=100)
    (root / "dev.csv").write_text("name,boxes\nd.jpg,\n")
    with pytest.raises(CXRDataError, match="expected columns image_name, annotation"):
        read_object_cxr(root, box_tolerance=100, skip_bad=True)


def test_unreadable_image_and_images_without_objects(tmp_path):
    root = write_object_cxr(tmp_path / "ocxr", [("a.jpg", "1 5 5 20 20"), ("b.jpg", ""), ("c.jpg", "")])
    (root / "train" / "a.jpg").write_text("not an image")
    with pytest.raises(CXRDataError, match=r"train/a\.jpg: not an image Pillow can read"):
        read_object_cxr(root)
    result = read_object_cxr(root, skip_bad=True)
    assert [s.sample_id for s in result.samples if s.split != "test"] == ["b.jpg", "c.jpg"]
    item = DetectionDataset(result.samples, train=False, image_size=64)[0]
    assert item["boxes"].shape == (0, 4) and item["labels"].shape == (0,) and item["labels"].dtype.is_signed
