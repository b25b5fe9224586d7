"""Issue 25, items 1 and 2, on real images: the EXIF orientation is applied, damaged files are refused.

Expected values are the right answers: a radiograph / endoscopy frame stored sideways with EXIF
Orientation 6 loads as every viewer shows it (the original); a real JPEG cut short and closed with
an end marker, a PNG with a flipped IDAT byte and a TIFF cut short are refused with one line naming
the file (load, ``image_problem``, ``endoscopy summary``, ``cxr reports``) or skipped and counted;
every undamaged real image decodes to exactly Pillow's pixels, as before.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.data.cxr.images import load_image as load_radiograph
from medmodal.data.cxr.records import CXRDataError
from medmodal.data.endoscopy.images import DecodedImageCache
from medmodal.data.endoscopy.images import load_image as load_endoscopy
from medmodal.data.images import CACHE_VERSION, ImageCache, decode_image, image_problem, read_image_size
from medmodal.errors import ImageReadError
from tests.conftest import REAL_DATA
from tests.data.endoscopy.conftest import authors_root  # noqa: F401  (fixture)

COVID = REAL_DATA / "cxr-images-real" / "covid-chestxray-dataset" / "images"
RADIOGRAPH = COVID / "covid-19-pneumonia-7-PA.jpg"  # baseline JPEG, 2840 x 2972
KVASIR = REAL_DATA / "endoscopy-real" / "public" / "images" / "kvasir"
POLYP = KVASIR / "polyp.jpg"  # progressive JPEG, 400 x 474
requires_real_images = pytest.mark.skipif(not (RADIOGRAPH.is_file() and POLYP.is_file()),
                                          reason=f"real images not found under {REAL_DATA}")
pytestmark = [requires_real_images, pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")]
runner = CliRunner()


def _pillow(path: Path, mode: str) -> np.ndarray:
    with Image.open(path) as image:
        image.load()
        return np.asarray(image.convert(mode))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


def _save_oriented(stored: np.ndarray, path: Path, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    fmt = "PNG" if path.suffix == ".png" else "JPEG"
    extra = {"exif": exif} if fmt == "PNG" else {"exif": exif.tobytes(), "quality": 95}
    Image.fromarray(stored).save(path, format=fmt, **extra)
    return path


def _cut_and_closed(src: Path, path: Path) -> Path:
    """The first half of a real JPEG, closed with an end-of-image marker (a broken download / copy)."""
    data = src.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2] + b"\xff\xd9")
    return path


# --------------------------------------------------------------------------- 1. EXIF orientation
def test_radiograph_stored_sideways_with_orientation_6_loads_as_the_viewer_shows_it(tmp_path):
    viewer = load_radiograph(RADIOGRAPH)[:1200, :1000]  # a real radiograph, cropped to keep the test fast
    stored = np.ascontiguousarray(np.rot90(viewer, 1))  # a viewer turns Orientation 6 by 90 degrees clockwise
    path = _save_oriented(stored, tmp_path / "film.jpg", 6)
    loaded = load_radiograph(path)
    assert loaded.shape == viewer.shape and _corr(loaded, viewer) > 0.99
    assert read_image_size(path) == viewer.shape  # the header's size as decoded (boxes are placed with it)
    assert abs(_corr(_pillow(path, "L")[:1000, :1000], viewer[:1000, :1000])) < 0.5  # as stored: not the viewer's
    # the shared cache (the key's version changed with the decoder) gives the turned frame too
    assert CACHE_VERSION == 2
    cache = ImageCache([path], tmp_path / "cache", 64)
    assert _corr(cache.get(0), ImageCache([RADIOGRAPH], None, 64).get(0)) > 0.5


@pytest.mark.parametrize("orientation, turn", [(3, lambda a: np.rot90(a, 2)), (6, lambda a: np.rot90(a, 1)),
                                                (8, lambda a: np.rot90(a, -1)), (2, lambda a: a[:, ::-1])])
def test_every_orientation_is_undone_exactly(tmp_path, orientation, turn):
    viewer = load_radiograph(RADIOGRAPH)[:300, :200]
    path = _save_oriented(np.ascontiguousarray(turn(viewer)), tmp_path / f"o{orientation}.png", orientation)
    assert np.array_equal(decode_image(path), viewer)  # PNG: lossless, so exactly the viewer's pixels


def test_endoscopy_frame_with_orientation_6_loads_as_the_viewer_shows_it(tmp_path):
    viewer = load_endoscopy(POLYP)
    path = _save_oriented(np.ascontiguousarray(np.rot90(viewer, 1)), tmp_path / "polyp_rot.jpg", 6)
    loaded = load_endoscopy(path)
    assert loaded.shape == viewer.shape and _corr(loaded, viewer) > 0.99
    cached = DecodedImageCache(32, tmp_path / "c").get(path)
    assert _corr(cached, DecodedImageCache(32).get(POLYP)) > 0.99


def test_undamaged_real_images_decode_exactly_as_before():
    """No false alarm and no changed pixel: every real PNG / JPEG is Pillow's decode (no EXIF turn in them)."""
    files = [p for folder in (COVID, KVASIR) for p in sorted(folder.iterdir())
             if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    assert len(files) >= 20
    for path in files:
        assert np.array_equal(decode_image(path, "rgb"), _pillow(path, "RGB")), path
        assert image_problem(path, "decode") is None, path


# --------------------------------------------------------------------------- 2. damaged files
@pytest.mark.parametrize("src", [RADIOGRAPH, POLYP], ids=["baseline", "progressive"])
def test_jpeg_cut_short_and_closed_is_refused_by_load_and_decode_check(tmp_path, src):
    bad = _cut_and_closed(src, tmp_path / f"cut_{src.name}")
    assert Image.open(bad).load() is not None  # Pillow alone decodes it silently (half grey)
    line = rf"^{re.escape(str(bad))}: unreadable or truncated image \(premature end of JPEG data: [^\n]*$"
    with pytest.raises(CXRDataError, match=line):
        load_radiograph(bad)
    with pytest.raises(ImageReadError, match=line):
        load_endoscopy(bad)
    assert "(premature end of JPEG data" in image_problem(bad, "decode")
    assert image_problem(bad, "verify") is None  # no cheap check sees it: only a decode (README)


def test_jpeg_with_stray_bytes_in_its_header_is_refused(tmp_path):
    data = RADIOGRAPH.read_bytes()
    second = data.index(b"\xff", 2 + int.from_bytes(data[4:6], "big"))  # the marker after the first segment
    bad = tmp_path / "stray.jpg"
    bad.write_bytes(data[:second] + b"\x00" * 11 + data[second:])
    assert "(corrupt JPEG data: 11 extraneous bytes" in image_problem(bad, "verify")
    with pytest.raises(CXRDataError, match="11 extraneous bytes"):
        load_radiograph(bad)


def test_png_with_a_flipped_idat_byte_is_refused(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(load_radiograph(RADIOGRAPH)[:512, :512]).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    idat = data.index(b"IDAT")
    data[idat + 4 + (int.from_bytes(data[idat - 4:idat], "big") // 2)] ^= 0x01
    bad = tmp_path / "flipped.png"
    bad.write_bytes(bytes(data))
    for check in ("verify", "decode"):
        assert "(corrupt PNG data: CRC mismatch in the IDAT chunk" in image_problem(bad, check)
    line = rf"^{re.escape(str(bad))}: unreadable or truncated image \(corrupt PNG data: CRC mismatch in the IDAT chunk"
    with pytest.raises(CXRDataError, match=line):
        load_radiograph(bad)
    with pytest.raises(ImageReadError, match="CRC mismatch"):
        load_endoscopy(bad)


@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
def test_tiff_cut_short_is_refused(tmp_path, compression):
    buffer = io.BytesIO()
    Image.fromarray(load_endoscopy(POLYP)).save(buffer, format="TIFF", compression=compression)
    data = buffer.getvalue()
    bad = tmp_path / "cut.tif"
    bad.write_bytes(data[: int(len(data) * 0.9)])
    for check in ("verify", "decode"):
        assert image_problem(bad, check) is not None
    with pytest.raises(CXRDataError, match=rf"^{re.escape(str(bad))}: "):
        load_radiograph(bad)
    with pytest.raises(ImageReadError, match=rf"^{re.escape(str(bad))}: "):
        load_endoscopy(bad)


def test_endoscopy_summary_refuses_or_skips_a_cut_jpeg(authors_root):
    (authors_root / "polyps_WLI" / "002.png").unlink()
    _cut_and_closed(POLYP, authors_root / "polyps_WLI" / "002.jpg")
    result = runner.invoke(app, ["endoscopy", "summary", str(authors_root)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "002.jpg: unreadable or truncated image (premature end of JPEG data" in result.output
    result = runner.invoke(app, ["endoscopy", "summary", str(authors_root), "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "1 unreadable skipped" in result.output and "7 samples" in result.output


def test_cxr_reports_decode_check_refuses_or_skips_a_cut_jpeg(tmp_path):
    from tests.data.cxr.conftest import REPORTS

    good = tmp_path / "img" / "good.jpg"
    good.parent.mkdir(parents=True)
    good.write_bytes((COVID / "covid-19-pneumonia-19.jpg").read_bytes())
    bad = _cut_and_closed(RADIOGRAPH, tmp_path / "img" / "cut.jpg")
    table = tmp_path / "pairs.csv"
    table.write_text("Path,Report,subject_id,View\n"
                     f'img/good.jpg,"{REPORTS[0]}",P1,PA\n'
                     f'img/cut.jpg,"{REPORTS[1]}",P2,PA\n')
    out = tmp_path / "t.csv"
    failed = runner.invoke(app, ["cxr", "reports", str(table), "-o", str(out), "--image-check", "decode"])
    assert failed.exit_code == 1 and len(failed.output.strip().splitlines()) == 1, failed.output
    assert f"{bad}: unreadable or truncated image (premature end of JPEG data" in failed.output and not out.exists()
    skipped = runner.invoke(app, ["cxr", "reports", str(table), "-o", str(out), "--image-check", "decode",
                                  "--skip-bad"])
    assert skipped.exit_code == 0, skipped.output
    assert "skipped as bad input: 1" in skipped.output and "cut.jpg" not in out.read_text()
