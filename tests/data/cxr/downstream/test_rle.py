"""SIIM-ACR run-length encoding: the file's column-major / relative-offset convention, both ways."""

import numpy as np
import pytest

from medmodal.data.cxr.downstream.rle import (boxes_to_mask, choose_rle_form, rle_decode, rle_encode, rle_problem,
                                              to_relative)
from tests.data.cxr.conftest import real_polyp_mask, requires_kvasir_masks


def reference_loop_decode(rle: str, height: int, width: int) -> np.ndarray:
    """The competition's rle2mask, written out as a loop: a running position, column-major flat index."""
    flat = np.zeros(height * width, np.uint8)
    values = [int(v) for v in rle.split()]
    position = 0
    for offset, length in zip(values[0::2], values[1::2]):
        position += offset
        flat[position:position + length] = 1
        position += length
    return flat.reshape(width, height).T


def test_hand_made_mask_round_trip():
    # 5 rows x 4 columns; column-major numbering: column c holds flat indices 5c .. 5c + 4
    mask = np.array([[0, 0, 0, 1],
                     [1, 0, 0, 1],
                     [1, 0, 0, 0],
                     [0, 0, 1, 0],
                     [0, 0, 1, 0]], np.uint8)
    # runs: flat 1-2 (column 0, rows 1-2), 13-14 (column 2, rows 3-4), 15-16 (column 3, rows 0-1): the last two
    # touch across the column break, so they form ONE run 13..16 of length 4
    expected = "1 2 10 4"
    assert rle_encode(mask) == expected
    assert np.array_equal(rle_decode(expected, 5, 4), mask)
    assert np.array_equal(reference_loop_decode(expected, 5, 4), mask)


def test_documented_example_is_column_major():
    mask = rle_decode("5 2 6 1", 4, 4)
    assert sorted(zip(*np.nonzero(mask))) == [(1, 1), (1, 3), (2, 1)]  # (row, column)


@pytest.mark.parametrize("shape", [(16, 16), (9, 13), (13, 9)])
def test_random_masks_round_trip_and_match_the_loop(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        mask = (rng.random(shape) < rng.uniform(0.05, 0.6)).astype(np.uint8)
        rle = rle_encode(mask)
        assert np.array_equal(rle_decode(rle, *shape), mask)
        assert np.array_equal(reference_loop_decode(rle, *shape), mask)
    assert rle_encode(np.zeros(shape)) == "-1"
    assert not rle_decode("-1", *shape).any() and rle_decode(" -1 ", *shape).shape == shape
    full = np.ones(shape, np.uint8)
    assert rle_encode(full) == f"0 {shape[0] * shape[1]}" and rle_decode(rle_encode(full), *shape).all()


@pytest.mark.parametrize("rle, message", [("1 2 3", "odd number"), ("1 x", "not an integer"), ("1 -2", "negative"),
                                          ("1 0", "length 0"), ("10 7", "past the 4 x 4 image")])
def test_malformed_rle(rle, message):
    with pytest.raises(ValueError, match=message):
        rle_decode(rle, 4, 4)


def test_boxes_to_mask_covers_touched_pixels_and_clips():
    mask = boxes_to_mask(np.array([[1, 1, 3, 2], [2.5, 3.2, 9, 9]]), 5, 4)
    expected = np.zeros((5, 4), np.uint8)
    expected[1:2, 1:3] = 1      # integer box = the reference's mask[y0:y1, x0:x1]
    expected[3:5, 2:4] = 1      # fractional box: every touched pixel, clipped to the image
    assert np.array_equal(mask, expected)


def test_absolute_form_of_the_docstring_example():
    mask = rle_decode("5 2 6 1", 4, 4)
    assert rle_encode(mask, "absolute") == "6 2 14 1"
    assert np.array_equal(rle_decode("6 2 14 1", 4, 4, "absolute"), mask)
    assert to_relative("6 2 14 1", "absolute") == "5 2 6 1"
    with pytest.raises(ValueError, match="before the end of run 1"):
        rle_decode("6 2 7 1", 4, 4, "absolute")
    with pytest.raises(ValueError, match="a start of 0"):
        rle_decode("0 2", 4, 4, "absolute")


@requires_kvasir_masks
@pytest.mark.parametrize("index", [0, 1, 2, 3, 4])
def test_real_polyp_mask_in_both_forms(index):
    """A real Kvasir-SEG mask at SIIM's 1024 x 1024, encoded both ways: each decodes to the mask, each
    read as the other form does not fit (runs out of order or past the image), and a table of either
    is recognised."""
    mask = real_polyp_mask(1024, index)
    assert 0.01 < mask.mean() < 0.6
    relative, absolute = rle_encode(mask), rle_encode(mask, "absolute")
    assert relative != absolute and len(relative.split()) > 20
    assert np.array_equal(rle_decode(relative, 1024, 1024), mask)
    assert np.array_equal(rle_decode(absolute, 1024, 1024, "absolute"), mask)
    assert to_relative(absolute, "absolute") == relative
    pixels = 1024 * 1024
    assert rle_problem(relative, pixels, "relative") is None and rle_problem(absolute, pixels, "absolute") is None
    assert rle_problem(relative, pixels, "absolute") is not None      # offsets read as starts go back
    assert rle_problem(absolute, pixels, "relative").startswith("runs to pixel")
    assert choose_rle_form([(relative, pixels)]) == ("relative", {"relative": 1, "absolute": 0, "both": 0})
    assert choose_rle_form([(absolute, pixels)]) == ("absolute", {"relative": 0, "absolute": 1, "both": 0})


def test_short_rows_fit_both_forms_and_the_file_name_decides():
    one_run = "5 2"   # one run: relative pixels 5-6, absolute (1-based) pixels 4-5
    assert rle_problem(one_run, 16, "relative") is None and rle_problem(one_run, 16, "absolute") is None
    assert choose_rle_form([(one_run, 16)]) == ("relative", {"relative": 0, "absolute": 0, "both": 1})
    assert choose_rle_form([(one_run, 16)], hint_absolute=True)[0] == "absolute"
    assert choose_rle_form([(one_run, 16), ("6 2 14 1", 16)])[0] == "absolute"
