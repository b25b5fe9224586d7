"""SIIM-ACR run-length encoding, and filled rectangles as masks.

The convention of SIIM-ACR's stage-1 ``train-rle.csv`` (the competition's ``mask_functions.py``,
which MGCA / CM-CGNS ``SIIMImageDataset.rle2mask`` re-implements):

* pixels are numbered **column-major** (down the first column, then the next): flat index
  ``i`` is row ``i % height``, column ``i // height``;
* the string is pairs ``offset length``; the FIRST offset is the 0-based index of the first
  run's first pixel, every later offset is **relative**: the number of background pixels
  between the end of the previous run and the start of this one;
* ``-1`` means "no pneumothorax"; an image with several separate regions has one CSV row per
  region (merged by union here).

Example: in a 4 x 4 mask, ``"5 2 6 1"`` sets flat pixels 5, 6 (rows 1, 2 of column 1) and 13
(row 1 of column 3).

Not to be confused with the "standard" Kaggle RLE (1-based absolute starts, as in
``stage_2_train.csv`` of later releases, and many other competitions): that format is not
read here.
"""

from __future__ import annotations

import numpy as np

from medmodal.errors import DataError

NO_MASK = "-1"


def rle_decode(rle: str, height: int, width: int) -> np.ndarray:
    """A SIIM ``EncodedPixels`` string -> uint8 ``[height, width]`` mask of 0 / 1.

    ``"-1"`` (or an empty string) gives an empty mask.

    Raises:
        ValueError: a token that is not a non-negative integer, an odd number of tokens, a run of
            length 0, or runs past the ``height * width`` pixels.
    """
    text = rle.strip()
    flat = np.zeros(height * width, np.uint8)
    if text in ("", NO_MASK):
        return flat.reshape(width, height).T.copy()
    try:
        values = np.array([int(t) for t in text.split()], np.int64)
    except ValueError:
        bad = next(t for t in text.split() if not t.lstrip("-").isdigit())
        raise DataError(f"RLE token {bad!r} is not an integer") from None
    if values.size % 2:
        raise DataError(f"RLE has an odd number of values ({values.size}): expected offset / length pairs")
    if np.any(values < 0):
        raise DataError(f"RLE has a negative value ({int(values[values < 0][0])})")
    offsets, lengths = values[0::2], values[1::2]
    if np.any(lengths == 0):
        raise DataError("RLE has a run of length 0")
    starts = np.cumsum(offsets) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    ends = starts + lengths
    if ends[-1] > flat.size:
        raise DataError(f"RLE runs to pixel {int(ends[-1])}, past the {height} x {width} image "
                        f"({flat.size} pixels)")
    delta = np.zeros(flat.size + 1, np.int64)
    np.add.at(delta, starts, 1)
    np.add.at(delta, ends, -1)
    flat = (np.cumsum(delta[:-1]) > 0).astype(np.uint8)
    return flat.reshape(width, height).T.copy()


def rle_encode(mask: np.ndarray) -> str:
    """A ``[height, width]`` mask (non-zero = foreground) -> SIIM ``EncodedPixels`` (``"-1"`` if empty).

    The inverse of :func:`rle_decode`: ``rle_decode(rle_encode(m), *m.shape) == (m != 0)``.
    """
    flat = (np.asarray(mask) != 0).T.reshape(-1).astype(np.int8)
    edges = np.diff(np.concatenate([[0], flat, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if starts.size == 0:
        return NO_MASK
    previous_ends = np.concatenate([[0], ends[:-1]])
    pairs = np.stack([starts - previous_ends, ends - starts], axis=1).reshape(-1)
    return " ".join(str(int(v)) for v in pairs)


def boxes_to_mask(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Filled ``[N, 4]`` xyxy boxes -> uint8 ``[height, width]`` mask of 0 / 1.

    A box covers the pixels it touches (``floor(x0) .. ceil(x1) - 1``), clipped to the image; for
    integer coordinates this is the reference's ``mask[y0:y1, x0:x1] = 1``.
    """
    mask = np.zeros((height, width), np.uint8)
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        c0, r0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        c1, r1 = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
        if c1 > c0 and r1 > r0:
            mask[r0:r1, c0:c1] = 1
    return mask
