"""medmodal.data.images: the shared 2-D decoder (grey / rgb), its error class, the shared cache."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medmodal.data.images import CACHE_VERSION, ImageCache, cache_key, decode_image, resize_square
from medmodal.errors import ImageReadError


def test_grey_and_rgb_of_one_file(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert np.array_equal(decode_image(tmp_path / "a.png", "rgb"), rgb)
    grey = decode_image(tmp_path / "a.png")
    assert grey.shape == (9, 7) and grey.dtype == np.uint8
    Image.fromarray(np.full((4, 5), 1000, np.uint16)).save(tmp_path / "deep.png")
    assert (decode_image(tmp_path / "deep.png", "rgb") == 4).all()  # full-range scaling: 1000 / 65535 * 255
    assert (decode_image(tmp_path / "deep.png") == 0).all()  # grey: min..max of a constant image


def test_errors_name_the_file_in_the_callers_class(tmp_path):
    (tmp_path / "t.png").write_text("no")

    class Mine(ValueError):
        pass

    with pytest.raises(ImageReadError, match=r"t\.png: not an image Pillow can read"):
        decode_image(tmp_path / "t.png", "rgb")
    with pytest.raises(Mine, match=r"gone\.png: image file not found"):
        decode_image(tmp_path / "gone.png", error=Mine)


def test_rgb_cache_rows(tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 12, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    cache = ImageCache(paths, tmp_path / "c", 8, loader=lambda p: decode_image(p, "rgb"), resize=resize_square,
                       channels=3)
    first = cache.get(1)
    assert first.shape == (8, 8, 3) and np.array_equal(cache.get(1), first) and cache.decodes == 1
    again = ImageCache(paths, tmp_path / "c", 8, loader=None, resize=resize_square, channels=3)
    assert again.file == cache.file and np.array_equal(again.get(1), first)  # read back, never decoded
    assert cache.file.name == f"images8_{cache_key(cache.paths, 8)}.npy" and CACHE_VERSION == 2
