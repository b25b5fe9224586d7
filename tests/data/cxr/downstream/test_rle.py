"""SIIM-ACR run-length encoding: the file's column-major / relative-offset convention, both ways."""

import numpy as np
import pytest

from medmodal.data.cxr.downstream.rle import boxes_to_mask, rle_decode, rle_encode


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
