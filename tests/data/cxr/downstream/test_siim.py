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
from tests.data.cxr.conftest import (SIIM_DICOM, real_polyp_mask, requires_images_real, requires_kvasir_masks,
                                     write_dicom)
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


def stage2_folder(root, rows):
    """A stage-2 download: ``stage_2_train.csv`` (absolute RLE) + the real SIIM DICOM under each id."""
    folder = root / "dicom-images-train" / "1.2.276.study" / "1.2.276.series"
    folder.mkdir(parents=True)
    for image_id in {image_id for image_id, _ in rows}:
        shutil.copy(SIIM_DICOM, folder / f"{image_id}.dcm")
    (root / "stage_2_train.csv").write_text("ImageId,EncodedPixels\n" + "".join(f"{i},{c}\n" for i, c in rows))
    return root


@requires_images_real
@requires_kvasir_masks
def test_stage2_table_with_absolute_rle(tmp_path):
    """``stage_2_train.csv`` as the challenge serves it (absolute 1-based starts): read from the folder,
    the masks equal the real polyp masks they encode, one note says the form; the same masks in the
    stage-1 form read as before; forcing the wrong form names the file, row and both forms."""
    masks = {"img-a": real_polyp_mask(1024, 0), "img-b": real_polyp_mask(1024, 1)}
    left, right = masks["img-b"].copy(), masks["img-b"].copy()   # img-b: two rows (halves), merged
    left[:, 512:], right[:, :512] = 0, 0
    rows = [("img-a", rle_encode(masks["img-a"], "absolute")), ("img-b", rle_encode(left, "absolute")),
            ("img-b", rle_encode(right, "absolute")), ("img-c", "-1")]
    root = stage2_folder(tmp_path / "stage2", rows)
    result = read_siim(root, balance_train=False)
    got = {s.sample_id: s for s in result.samples}
    assert sorted(got) == ["img-a", "img-b", "img-c"] and got["img-c"].labels == (0.0,)
    for image_id, mask in masks.items():
        assert got[image_id].labels == (1.0,) and got[image_id].image_size == (1024, 1024)
        assert np.array_equal(got[image_id].mask.rasterise(1024, 1024), mask)
    assert [n for n in result.notes if "absolute RLE" in n] == [
        f"{root / 'stage_2_train.csv'}: absolute RLE (the stage-2 form: 1-based starts) read; 3 of 3 rows fit only it, "
        f"0 both forms"]
    assert read_downstream("siim", root, rle="absolute", balance_train=False).samples[0].mask == got["img-a"].mask

    from typer.testing import CliRunner

    from medmodal.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["cxr", "summary", str(root), "-d", "siim", "--no-check-images"])
    assert ok.exit_code == 0 and "note: " in ok.output and "absolute RLE" in ok.output, ok.output
    bad = runner.invoke(app, ["cxr", "summary", str(root), "-d", "siim", "--rle", "relative"])
    assert bad.exit_code == 1 and bad.output.startswith("error: ") and len(bad.output.strip().splitlines()) == 1
    assert "RLE fits only the absolute form" in bad.output, bad.output
    with pytest.raises(CXRDataError, match=r"stage_2_train\.csv:2: RLE fits only the absolute form, but the table is "
                                           r"read as relative offsets \(stage 1\) \(so read, it runs to pixel \d+, "
                                           r"past the 1024 x 1024 image\); set the reader option rle: absolute"):
        read_siim(root, rle="relative")

    relative = [(i, rle_encode(rle_decode(c, 1024, 1024, "absolute")) if c != "-1" else c) for i, c in rows]
    stage1 = stage2_folder(tmp_path / "stage1", relative)
    (stage1 / "stage_2_train.csv").rename(stage1 / "train-rle.csv")
    again = read_siim(stage1, balance_train=False)
    assert not [n for n in again.notes if "RLE" in n]
    assert [s.mask for s in again.samples] == [s.mask for s in result.samples]

    (root / "stage_2_train.csv").write_text("ImageId,EncodedPixels\n" + "".join(f"{i},{c}\n" for i, c in rows)
                                            + "img-d,1048000 100 1000 5\n")
    shutil.copy(SIIM_DICOM, root / "dicom-images-train" / "1.2.276.study" / "1.2.276.series" / "img-d.dcm")
    with pytest.raises(CXRDataError, match=r"stage_2_train\.csv:6: RLE fits neither form: read as absolute 1-based "
                                           r"starts \(stage 2\), run 2 starts at pixel 1000, before the end of run 1 "
                                           r"\(pixel 1048099\); read as relative offsets \(stage 1\), it runs to pixel "
                                           r"1049105, past the 1024 x 1024 image$"):
        read_siim(root)
    skipped = read_siim(root, skip_bad=True, balance_train=False)
    assert len(skipped.skipped) == 1 and sorted(s.sample_id for s in skipped.samples) == ["img-a", "img-b", "img-c"]


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
    (["a, 1000 100"], r":2: RLE fits neither form: read as relative offsets \(stage 1\), it runs to pixel 1100, past "
                      r"the 32 x 32 image; read as absolute 1-based starts \(stage 2\), it runs to pixel 1099, past"),
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
