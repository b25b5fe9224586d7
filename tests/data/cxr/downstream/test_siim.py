"""SIIM-ACR: the twin (RLE CSV + nested DICOM folders), merged rows, the by-image split, the balanced
training subset, a REAL SIIM DICOM with a hand-made RLE, and malformed rows."""

import shutil

import numpy as np
import pytest
from scipy import ndimage

from medmodal.data.cxr.downstream import (SegmentationDataset, check_no_leakage, read_downstream, rle_decode,
                                          rle_encode)
from medmodal.data.cxr.downstream.siim import DROP_BALANCE, read_siim
from medmodal.data.cxr.images import resize_and_pad_mask
from medmodal.data.cxr.records import CXRDataError
from tests.data.cxr.conftest import SIIM_DICOM, requires_images_real, write_dicom
from tests.data.cxr.downstream.conftest import TWIN_SIZE

pytestmark = pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")


def rle_rows(root):
    rows = {}
    for line in (root / "train-rle.csv").read_text().splitlines()[1:]:
        image_id, code = line.split(",", 1)
        rows.setdefault(image_id, []).append(code.strip())
    return rows


def test_twin_rows_merge_into_one_mask_per_image(twins):
    root = twins["siim"]
    rows = rle_rows(root)
    result = read_siim(root, balance_train=False)
    assert len(result.samples) == len(rows)
    multi = [s for s in result.samples if len(rows[s.sample_id]) > 1]
    assert multi, "the twin has images with several RLE rows"
    for s in result.samples:
        assert s.labels == (float(rows[s.sample_id] != ["-1"]),)
        if s.labels[0]:
            mask = s.mask.rasterise(*s.image_size)
            assert mask.sum() > 0 and s.image_size == (TWIN_SIZE, TWIN_SIZE)
            parts = [rle_decode(code, *s.image_size) for code in rows[s.sample_id]]
            assert mask.sum() == sum(p.sum() for p in parts)  # separate regions, one row each: a disjoint union
            assert ndimage.label(mask, structure=np.ones((3, 3)))[1] == len(parts)
    split_of = {s.sample_id: s.split for s in result.samples}
    assert len(split_of) == len(rows)  # one split per image, whatever its number of rows
    check_no_leakage(result.samples)


def test_balanced_training_subset_and_patient_grouping(twins):
    full = read_siim(twins["siim"], balance_train=False)
    balanced = read_downstream("siim", twins["siim"])
    train_full, train = full.select("train"), balanced.select("train")
    positives = sum(s.labels[0] == 1 for s in train_full)
    assert sum(s.labels[0] == 1 for s in train) == positives and len(train) == 2 * positives
    assert balanced.dropped[DROP_BALANCE] == len(train_full) - len(train)
    assert [s.sample_id for s in balanced.select("test")] == [s.sample_id for s in full.select("test")]
    by_patient = read_siim(twins["siim"], patients="dicom", balance_train=False)
    assert len({s.patient_id for s in by_patient.samples}) < len(by_patient.samples)
    check_no_leakage(by_patient.samples)


def test_segmentation_item_mask_matches_the_rle(twins):
    result = read_siim(twins["siim"])
    positive = next(s for s in result.samples if s.labels[0])
    data = SegmentationDataset([positive], train=False, image_size=256)
    expected = resize_and_pad_mask(positive.mask.rasterise(*positive.image_size))
    assert np.array_equal(data[0]["mask"].numpy(), expected.astype(np.float32))
    augmented = SegmentationDataset([positive], train=True, image_size=128)
    assert set(np.unique(augmented[0]["mask"].numpy())) <= {0.0, 1.0}


@requires_images_real
def test_real_siim_dicom_with_a_hand_made_rle(tmp_path):
    image_id = SIIM_DICOM.stem
    folder = tmp_path / "siim" / "dicom-images-train" / "1.2.276.study" / "1.2.276.series"
    folder.mkdir(parents=True)
    shutil.copy(SIIM_DICOM, folder / SIIM_DICOM.name)
    mask = np.zeros((1024, 1024), np.uint8)
    mask[100:300, 700:900] = 1          # two regions, one row each, as in the released file
    mask[600:650, 50:400] = 1
    top, bottom = mask.copy(), mask.copy()
    top[500:], bottom[:500] = 0, 0
    (tmp_path / "siim" / "train-rle.csv").write_text(
        f"ImageId, EncodedPixels\n{image_id}, {rle_encode(top)}\n{image_id}, {rle_encode(bottom)}\n")
    result = read_siim(tmp_path / "siim", balance_train=False)
    (sample,) = result.samples
    assert sample.image_size == (1024, 1024) and sample.labels == (1.0,)
    assert np.array_equal(sample.mask.rasterise(1024, 1024), mask)
    item = SegmentationDataset([sample], train=False, image_size=224)[0]
    assert item["image"].shape == (3, 224, 224) and abs(item["mask"].sum().item() / 224 ** 2 - mask.mean()) < 0.005


def write_siim(root, lines, size=32):
    (root / "dicom-images-train" / "s" / "r").mkdir(parents=True, exist_ok=True)
    for image_id in {line.split(",")[0] for line in lines}:
        write_dicom(root / "dicom-images-train" / "s" / "r" / f"{image_id}.dcm", np.full((size, size), 9, np.uint16))
    (root / "train-rle.csv").write_text("ImageId, EncodedPixels\n" + "\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("lines, message", [
    (["a, 1 2 3"], r":2: malformed RLE \(3 values"),
    (["a, 1 x"], r":2: malformed RLE \(token 'x'"),
    (["a, 5 0"], r":2: malformed RLE \(a run of length 0\)"),
    (["a, 1000 100"], r":2: RLE runs to pixel 1100, past the 32 x 32 image"),
    (["a, 1 2", "a, -1"], r":2: image a has both '-1' and RLE rows"),
    (["a, 1 2", "b, 1 2, 3"], r":3: 3 fields, the header has 2"),
])
def test_malformed_rows_name_the_line(tmp_path, lines, message):
    root = write_siim(tmp_path / "siim", lines + ["c, -1"])
    with pytest.raises(CXRDataError, match=r"train-rle\.csv" + message):
        read_siim(root)
    skipped = read_siim(root, skip_bad=True, balance_train=False)
    assert len(skipped.skipped) == 1 and "c" in {s.sample_id for s in skipped.samples}


def test_missing_image_and_folder(tmp_path):
    root = write_siim(tmp_path / "siim", ["a, -1", "b, -1"])
    (root / "dicom-images-train" / "s" / "r" / "b.dcm").unlink()
    with pytest.raises(CXRDataError, match=r"train-rle\.csv:3: image b\.dcm not found"):
        read_siim(root)
    shutil.rmtree(root / "dicom-images-train")
    with pytest.raises(CXRDataError, match="dicom-images-train: DICOM folder not found"):
        read_siim(root)
