"""Radiograph files -> uint8 grey, the reference's resize + pad, and the decode-once cache."""

import os

import numpy as np
import pytest
from PIL import Image

from medmodal.data.cxr.images import ImageCache, load_image, resize_and_pad
from medmodal.data.cxr.records import CXRDataError
from tests.data.cxr.conftest import (IU_REAL, SIIM_DICOM, TXRV_TESTS, requires_images_real, requires_iu_real,
                                     write_dicom, write_png)


def test_png_modes(tmp_path):
    grey = write_png(tmp_path / "g.png", (20, 30))
    assert np.array_equal(load_image(grey), np.asarray(Image.open(grey)))  # 8-bit grey kept as stored
    rgb = load_image(write_png(tmp_path / "c.png", (20, 30), mode="RGB"))
    assert rgb.shape == (20, 30) and rgb.dtype == np.uint8
    deep = load_image(write_png(tmp_path / "d.png", (20, 30), mode="I;16"))
    assert deep.min() == 0 and deep.max() == 255  # 12-bit values stretched, not divided by 256
    Image.fromarray(np.full((8, 8, 4), 200, np.uint8)).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png").shape == (8, 8)
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "j.jpg", quality=95)
    assert abs(int(load_image(tmp_path / "j.jpg")[7, 7]) - 63) < 4


def test_bad_images_name_the_file(tmp_path):
    path = write_png(tmp_path / "t.png", (200, 200))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CXRDataError, match=r"t\.png: unreadable or truncated"):
        load_image(path)
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(CXRDataError, match=r"x\.png: not an image"):
        load_image(tmp_path / "x.png")
    with pytest.raises(CXRDataError, match=r"gone\.png: image file not found"):
        load_image(tmp_path / "gone.png")


def test_dicom_monochrome1_window_and_errors(tmp_path):
    ramp = np.tile(np.arange(0, 4000, 40, dtype=np.uint16), (10, 1))  # 10 x 100
    m2 = load_image(write_dicom(tmp_path / "m2.dcm", ramp))
    m1 = load_image(write_dicom(tmp_path / "m1.dcm", ramp, photometric="MONOCHROME1"))
    assert m2[0, 0] == 0 and m2[0, -1] == 255
    assert np.abs(m1.astype(int) - (255 - m2.astype(int))).max() <= 1  # MONOCHROME1 inverted
    windowed = load_image(write_dicom(tmp_path / "w.dcm", ramp, window=(2000, 1000)))
    # window 1500..2500: everything below saturates to 0, above to 255
    assert windowed[0, :35].max() == 0 and windowed[0, 65:].min() == 255
    assert 0 < windowed[0, 50] < 255
    rescaled = load_image(write_dicom(tmp_path / "r.dcm", ramp, rescale=(2.0, -100.0)))
    assert np.array_equal(rescaled, m2)  # a linear modality LUT does not change the stretched image
    bad = write_dicom(tmp_path / "p.dcm", ramp, photometric="PALETTE COLOR")
    with pytest.raises(CXRDataError, match=r"p\.dcm: unknown photometric interpretation 'PALETTE COLOR'"):
        load_image(bad)
    cut = write_dicom(tmp_path / "cut.dcm", ramp)
    cut.write_bytes(cut.read_bytes()[:-500])
    with pytest.raises(CXRDataError, match=r"cut\.dcm"):
        load_image(cut)


@requires_images_real
def test_real_images_load():
    dicom = load_image(SIIM_DICOM)
    assert dicom.shape == (1024, 1024) and dicom.std() > 20
    for name in ("00000001_000.png", "16747_3_1.jpg", "covid-19-pneumonia-58-prior.jpg"):
        image = load_image(TXRV_TESTS / name)
        assert image.ndim == 2 and image.std() > 20
        out = resize_and_pad(image)
        assert out.shape == (256, 256)


def test_resize_and_pad_keeps_aspect():
    image = np.full((100, 50), 200, np.uint8)
    out = resize_and_pad(image, 64)
    cols = np.flatnonzero(out.max(0))
    assert out.shape == (64, 64) and out[:, 0].max() == 0 and len(cols) == 32 and cols[0] == 16
    assert resize_and_pad(np.full((10, 20), 7, np.uint8), 64)[32, 32] == 7  # enlarging works


def test_cache_decodes_once_and_invalidates(tmp_path):
    paths = [write_png(tmp_path / f"i{k}.png", (60, 40), seed=k) for k in range(4)]
    cache = ImageCache(paths, tmp_path / "cache", size=32)
    first = [cache.get(k) for k in range(4)]
    assert cache.decodes == 4
    again = [cache.get(k) for k in range(4)]
    assert cache.decodes == 4 and all(np.array_equal(a, b) for a, b in zip(first, again))
    assert np.array_equal(first[2], resize_and_pad(load_image(paths[2]), 32))

    def refuse(path):
        raise AssertionError(f"decoded {path} again")

    reopened = ImageCache(paths, tmp_path / "cache", size=32, loader=refuse)  # a new run: same file, no decode
    assert np.array_equal(reopened.get_path(paths[1]), first[1]) and reopened.decodes == 0
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    write_png(paths[0], (60, 40), seed=99)
    os.utime(paths[0], ns=(1, 1))
    changed = ImageCache(paths, tmp_path / "cache", size=32)
    assert changed.file != cache.file and changed.prefill() == 4
    memory = ImageCache(paths, None, size=32)
    memory.get(0), memory.get(0)
    assert memory.decodes == 1


def test_cache_survives_pickling(tmp_path):
    import pickle

    paths = [write_png(tmp_path / f"i{k}.png", seed=k) for k in range(2)]
    cache = ImageCache(paths, tmp_path / "cache", size=16)
    cache.get(0)
    clone = pickle.loads(pickle.dumps(cache))  # what a DataLoader worker receives
    clone.loader = None  # would fail if it decoded
    assert np.array_equal(clone.get(0), cache.get(0))


@requires_iu_real
def test_real_iu_png_is_grey():
    image = load_image(IU_REAL / "images" / "CXR3_IM-1384-1001.png")
    assert image.shape == (512, 512) and image.dtype == np.uint8


def _cut(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.mark.parametrize("check", ["verify", "decode"])
def test_image_problem_finds_truncated_and_unreadable_files(tmp_path, check):
    from medmodal.data.cxr.images import image_problem

    ramp = np.tile(np.arange(0, 4000, 40, dtype=np.uint16), (10, 1))
    good = [write_png(tmp_path / "g.png", (64, 48)), write_png(tmp_path / "g.jpg", (64, 48)),
            write_dicom(tmp_path / "g.dcm", ramp)]
    assert [image_problem(p, check) for p in good] == [None, None, None]
    padded = tmp_path / "padded.jpg"  # bytes after the end-of-image marker: decodable, not truncated
    padded.write_bytes(good[1].read_bytes() + b"trailing bytes of a scanner")
    assert image_problem(padded, check) is None
    assert "truncated" in image_problem(_cut(write_png(tmp_path / "t.png", (200, 200))), check)
    assert "truncated" in image_problem(_cut(write_png(tmp_path / "t.jpg", (200, 200)), 0.8), check)
    assert "pixel data" in image_problem(_cut(write_dicom(tmp_path / "t.dcm", ramp), 0.8), check)
    (tmp_path / "text.png").write_text("not an image")
    assert "not an image" in image_problem(tmp_path / "text.png", check)
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert image_problem(tmp_path / "empty.jpg", check) in ("empty file", "not an image Pillow can read")
    assert image_problem(tmp_path / "gone.png", check) == "image file not found"
    assert image_problem(_cut(write_png(tmp_path / "e.png", (200, 200))), "exists") is None  # only existence


def test_resolve_image_check():
    from medmodal.data.cxr.images import resolve_image_check

    assert [resolve_image_check(c) for c in (True, False, None, "none", "decode")] == ["verify", None, None, None,
                                                                                     "decode"]
    with pytest.raises(ValueError, match="unknown image check 'full'"):
        resolve_image_check("full")


@requires_images_real
def test_real_images_pass_verify_and_their_truncated_copies_fail(tmp_path):
    from medmodal.data.cxr.images import image_problem

    real = sorted(p for p in TXRV_TESTS.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".dcm"))
    assert len(real) >= 6 and {p.suffix for p in real} >= {".png", ".jpg", ".dcm"}
    for path in real:
        assert image_problem(path, "verify") is None, path
        (tmp_path / path.name).write_bytes(path.read_bytes())
        assert image_problem(_cut(tmp_path / path.name, 0.9), "verify") is not None, path


def test_bad_image_in_a_dataloader_worker_is_one_line(tmp_path):
    """A truncated file met while the cache is filled inside a DataLoader worker: the CLI's error line is
    the original one-line message, not the worker's traceback."""
    from torch.utils.data import DataLoader

    from medmodal.cli.common import error_line
    from medmodal.data.cxr.dataset import ImageReportDataset
    from medmodal.data.cxr.records import Study

    bad = _cut(write_png(tmp_path / "bad.png", (300, 300)))
    rows = [Study("s1", "p1", [bad], ["PA"], "Heart normal.", "", ["heart normal"])]
    loader = DataLoader(ImageReportDataset(rows, None, train=False), batch_size=1, num_workers=1,
                        collate_fn=lambda items: items)
    with pytest.raises(CXRDataError) as caught:
        next(iter(loader))
    assert "Traceback" in str(caught.value)  # what torch re-raises
    line = error_line(caught.value)
    assert line.startswith(f"{bad}: unreadable or truncated image") and "\n" not in line
