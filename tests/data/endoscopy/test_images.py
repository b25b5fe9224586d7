import logging

import numpy as np
import pytest
from PIL import Image

from medmodal.data.endoscopy import images as images_mod
from medmodal.data.endoscopy.images import DecodedImageCache, ImageReadError, check_images, load_image
from medmodal.data.endoscopy.layouts import read_samples
from tests.data.endoscopy.conftest import write_image


def _truncate(path, keep=200):
    path.write_bytes(path.read_bytes()[:keep])
    return path


def test_load_image_modes(tmp_path):
    rgb = load_image(write_image(tmp_path / "a.jpg", size=(30, 20)))
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    Image.fromarray(np.full((5, 6), 77, np.uint8)).save(tmp_path / "grey.png")
    assert load_image(tmp_path / "grey.png").shape == (5, 6, 3)
    Image.fromarray(np.full((5, 6, 4), 200, np.uint8)).save(tmp_path / "rgba.png")
    assert (load_image(tmp_path / "rgba.png") == 200).all()
    Image.fromarray(np.full((5, 6), 65535, np.uint16)).save(tmp_path / "deep.png")
    assert (load_image(tmp_path / "deep.png") == 255).all()


def test_truncated_or_fake_image_is_one_line_naming_the_file(tmp_path):
    bad = _truncate(write_image(tmp_path / "bad.jpg", size=(64, 64)))
    with pytest.raises(ImageReadError, match=r"bad.jpg: unreadable or truncated image \(") as err:
        load_image(bad)
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)
    (tmp_path / "text.png").write_text("not a png")
    with pytest.raises(ImageReadError, match="text.png: not an image Pillow can read"):
        load_image(tmp_path / "text.png")
    with pytest.raises(FileNotFoundError, match="absent.png: no such image file"):
        load_image(tmp_path / "absent.png")


def test_check_images_raises_or_skips_and_names(authors_root, caplog):
    _truncate(write_image(authors_root / "polyps_NBI" / "001.png", size=(64, 64)))
    samples = read_samples(authors_root)
    with pytest.raises(ImageReadError, match="polyps_NBI/001.png: unreadable or truncated image"):
        check_images(samples)
    with caplog.at_level(logging.WARNING, logger="medmodal.data.endoscopy"):
        result = check_images(samples, skip_bad=True)
    assert [p.name for p, _ in result.bad] == ["001.png"]
    assert len(result.samples) == len(samples) - 1  # the whole pair is left out, not turned into WLI-only
    assert "polyps/001" not in {s.sample_id for s in result.samples}
    assert "polyps_NBI/001.png: unreadable or truncated image" in caplog.text
    assert "1 unreadable image file(s) skipped" in caplog.text


@pytest.mark.parametrize("on_disk", [False, True])
def test_cache_decodes_once_and_notices_edits(tmp_path, monkeypatch, on_disk):
    path = write_image(tmp_path / "x.png", size=(40, 30))
    calls = []
    real = images_mod.load_image
    monkeypatch.setattr(images_mod, "load_image", lambda p: calls.append(p) or real(p))
    cache = DecodedImageCache(16, tmp_path / "cache" if on_disk else None)
    first = cache.get(path)
    assert first.shape == (16, 16, 3) and first.dtype == np.uint8
    assert np.array_equal(cache.get(path), first) and len(calls) == 1
    if on_disk:  # a fresh cache object (another process) reads the stored file
        assert np.array_equal(DecodedImageCache(16, tmp_path / "cache").get(path), first) and len(calls) == 1
        assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    write_image(path, seed=5, size=(40, 30))
    import os
    os.utime(path, ns=(1, 1))  # a changed file (size or mtime) is decoded again
    assert not np.array_equal(cache.get(path), first) and len(calls) == 2
