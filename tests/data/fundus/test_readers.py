"""medmodal.data.fundus: every layout reads its synthetic twin; the real DRIVE and CHASE_DB1 with their counts."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from medmodal.data.fundus import (FAMILY, LAYOUTS, derive_fov, load_fov, load_image, load_label, read_fundus)
from medmodal.data.fundus.synthetic import SYNTH_LAYOUTS, image_seed, synth_fundus, write_synthetic
from medmodal.data.layouts import find_layout, layout_readers
from medmodal.errors import DataError, ImageReadError, LayoutError
from tests.conftest import REAL_DATA

FUNDUS_REAL = REAL_DATA / "fundus-real"
DRIVE, CHASE = FUNDUS_REAL / "DRIVE", FUNDUS_REAL / "CHASEDB1"
needs_drive = pytest.mark.skipif(not DRIVE.is_dir(), reason=f"real DRIVE not found at {DRIVE}")
needs_chase = pytest.mark.skipif(not CHASE.is_dir(), reason=f"real CHASE_DB1 not found at {CHASE}")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_the_family_registers_its_layouts():
    assert [r.name for r in layout_readers(FAMILY)] == list(LAYOUTS[1:])


def test_synthetic_images_are_deterministic_and_fundus_like():
    a, b = synth_fundus(40, seed=3), synth_fundus(40, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(synth_fundus(40, seed=4)[0], a[0])
    image, label1, label2, fov = synth_fundus(96, seed=1)
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    assert image[~fov].max() < 10 and image[fov][:, 0].mean() > image[fov][:, 2].mean()  # dark outside, red inside
    assert 0.01 < label1.mean() < 0.3 and not (label1 & ~fov).any() and (label2 <= label1).all()
    assert dice(derive_fov(image), fov) > 0.95


EXPECTED = {  # layout -> (samples, labels per sample, FOV files given, splits)
    "drive": (6, [1, 1, 1, 2, 2, 2], True, ["training"] * 3 + ["test"] * 3),
    "chase_db1": (3, [2, 2, 2], False, [None] * 3),
    "hrf": (3, [1, 1, 1], True, [None] * 3),
    "stare": (3, [2, 2, 2], False, [None] * 3),
    "generic": (3, [1, 1, 1], True, [None] * 3),
}


WRITE_ORDER = {"01_h": 0, "01_dr": 1, "01_g": 2}


@pytest.mark.parametrize("layout", SYNTH_LAYOUTS)
def test_every_reader_reads_its_synthetic_twin(tmp_path, layout):
    root = write_synthetic(tmp_path / layout, layout, n=3, size=40, seed=1)
    (root / ".DS_Store").write_bytes(b"\0\1")  # hidden files are ignored
    assert find_layout(FAMILY, root) == (layout, root)
    fundus = read_fundus(root)
    count, labels, fov_given, splits = EXPECTED[layout]
    assert fundus.layout == layout and len(fundus) == count
    assert [len(s.labels) for s in fundus] == labels and [s.split for s in fundus] == splits
    assert all((s.fov is not None) == fov_given for s in fundus)
    assert len({s.id for s in fundus}) == count
    if not fov_given:
        assert any("FOV is derived" in note for note in fundus.notes)
    for i, sample in enumerate(fundus):
        image = load_image(sample)
        seed = image_seed(1, layout, WRITE_ORDER[sample.id] if layout == "hrf" else i)  # HRF ids sort dr, g, h
        want_image, want1, want2, want_fov = synth_fundus(40, seed)
        assert image.shape == (40, 40, 3)
        assert np.array_equal(load_label(sample, 0, image.shape[:2]), want1)
        if len(sample.labels) == 2:
            assert np.array_equal(load_label(sample, 1), want2)
        if fov_given:
            assert np.array_equal(load_fov(sample, image), want_fov)
        else:
            assert dice(load_fov(sample, image), want_fov) > 0.9
        if layout in ("drive", "stare", "generic"):  # lossless formats
            assert np.array_equal(image, want_image)


def test_chase_unofficial_masks_are_read_and_said_unofficial(tmp_path):
    fundus = read_fundus(write_synthetic(tmp_path, "chase_db1", n=2, size=32, unofficial_masks=True))
    assert all(s.fov is not None and s.fov.name.endswith("_mask.png") for s in fundus)
    assert any("NOT part of the official release" in note for note in fundus.notes)


def test_a_missing_label_is_named(tmp_path):
    root = write_synthetic(tmp_path / "drive", "drive", n=2, size=32)
    (root / "training" / "1st_manual" / "22_manual1.gif").unlink()
    with pytest.raises(LayoutError, match=r"22_training\.tif: image without its vessel label"):
        read_fundus(root)
    kept = read_fundus(root, require_labels=False)
    assert [s.id for s in kept if not s.labels] == ["22_training"]
    assert any("without vessel labels" in note for note in kept.notes)


def test_a_label_without_its_image_is_named(tmp_path):
    root = write_synthetic(tmp_path / "chase", "chase_db1", n=2, size=32)
    (root / "Image_01R.jpg").unlink()
    with pytest.raises(LayoutError, match=r"Image_01R_1stHO\.png: vessel label without its image"):
        read_fundus(root, "chase_db1")
    root = write_synthetic(tmp_path / "generic", "generic", n=2, size=32)
    shutil.copy(root / "masks" / "fundus_000.png", root / "masks" / "stray.png")
    with pytest.raises(LayoutError, match=r"stray\.png: vessel label without its image"):
        read_fundus(root)


def test_stare_unlabelled_images_are_named_or_kept(tmp_path):
    root = write_synthetic(tmp_path, "stare", n=2, size=32)
    shutil.copy(root / "stare-images" / "im0001.ppm", root / "stare-images" / "im0099.ppm")
    with pytest.raises(LayoutError, match=r"im0099\.ppm: image without its vessel label.*require_labels=False"):
        read_fundus(root)
    assert [len(s.labels) for s in read_fundus(root, require_labels=False)] == [2, 2, 0]


def test_bad_input_is_one_line(tmp_path):
    with pytest.raises(LayoutError, match="no fundus layout recognised"):
        read_fundus(tmp_path)
    with pytest.raises(LayoutError, match="unknown fundus layout 'nope'"):
        read_fundus(tmp_path, "nope")
    root = write_synthetic(tmp_path / "g", "generic", n=1, size=32)
    (root / "masks" / "fundus_000.png").write_bytes(b"not a png")
    sample = read_fundus(root).samples[0]
    with pytest.raises(ImageReadError, match=r"fundus_000\.png: ") as info:
        load_label(sample)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="no vessel label of observer 2"):
        load_label(sample, 1)


@pytest.mark.realdata
@needs_drive
def test_real_drive_counts():
    fundus = read_fundus(DRIVE)
    assert fundus.layout == "drive" and fundus.notes == []
    assert len(fundus.split("training")) == 20 and len(fundus.split("test")) == 20
    assert all(len(s.labels) == 1 for s in fundus.split("training"))  # 2nd manual: test only
    assert all(len(s.labels) == 2 for s in fundus.split("test"))
    assert all(s.fov is not None for s in fundus)
    sample = fundus.split("test")[0]
    image = load_image(sample)
    assert image.shape == (584, 565, 3)
    second = load_label(sample, 1, image.shape[:2])  # palette GIF decoding to 3 / 253: binarised at > 127
    assert 0.05 < second.mean() < 0.15 and dice(second, load_label(sample)) > 0.7


@pytest.mark.realdata
@needs_chase
def test_real_chase_db1_counts_and_derived_fov():
    fundus = read_fundus(CHASE)
    assert fundus.layout == "chase_db1" and len(fundus) == 28
    assert all(len(s.labels) == 2 for s in fundus)  # two annotators
    assert any("NOT part of the official release" in note for note in fundus.notes)
    # compared: the FOV derived from the photograph (red-channel threshold, largest component, holes
    # filled) with the copy's unofficial Image_01L_mask.png (made by the copy's author), pixel by pixel
    sample = fundus.samples[0]
    image = load_image(sample)
    assert image.shape == (960, 999, 3)
    assert dice(derive_fov(image), load_fov(sample, image)) > 0.95


def test_twins_of_two_layouts_never_share_a_photograph(tmp_path):
    """A DRIVE twin and a CHASE_DB1 twin written with the same seed hold different vessel trees (a cross-domain
    score on the CHASE_DB1 twin must not be scored on the DRIVE twin's training images)."""
    drive = read_fundus(write_synthetic(tmp_path / "DRIVE", "drive", n=2, size=40, seed=0))
    chase = read_fundus(write_synthetic(tmp_path / "CHASEDB1", "chase_db1", n=4, size=40, seed=0))
    trees = [load_label(s, 0, (40, 40)) for s in drive] + [load_label(s, 0, (40, 40)) for s in chase]
    assert all(not np.array_equal(a, b) for i, a in enumerate(trees) for b in trees[i + 1:])
