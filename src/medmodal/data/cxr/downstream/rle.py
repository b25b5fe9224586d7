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

The **absolute** form of ``stage_2_train.csv`` (the table the challenge serves today) and of
most other Kaggle tables: pairs ``start length`` where every start is the **1-based** flat index
(same column-major numbering) of its run's first pixel; starts increase and runs do not overlap.
Example: the 4 x 4 mask above is ``"6 2 14 1"``. ``form="relative" | "absolute"`` picks one in
:func:`rle_decode` / :func:`rle_encode`; :func:`rle_problem` says why a string does not fit a
form and :func:`choose_rle_form` decides a whole table's form (``auto``): the relative form read
as absolute (or the reverse) runs past the image or has runs out of order, so each row fits
one form, or both when it is short (one run: the forms differ by one pixel).
"""

from __future__ import annotations

import numpy as np

from medmodal.errors import DataError

NO_MASK = "-1"
#: RLE conventions: ``relative`` (stage 1 ``train-rle.csv``), ``absolute`` (stage 2, 1-based starts).
RLE_FORMS = ("relative", "absolute")


def _check_form(form: str) -> str:
    if form not in RLE_FORMS:
        raise ValueError(f"unknown RLE form {form!r}; expected one of {', '.join(RLE_FORMS)}")
    return form


def _values(text: str) -> np.ndarray:
    try:
        values = np.array([int(t) for t in text.split()], np.int64)
    except ValueError:
        bad = next(t for t in text.split() if not t.lstrip("-").isdigit())
        raise DataError(f"RLE token {bad!r} is not an integer") from None
    if values.size % 2:
        raise DataError(f"RLE has an odd number of values ({values.size}): expected offset / length pairs")
    if np.any(values < 0):
        raise DataError(f"RLE has a negative value ({int(values[values < 0][0])})")
    if np.any(values[1::2] == 0):
        raise DataError("RLE has a run of length 0")
    return values


def _runs(values: np.ndarray, form: str) -> tuple[np.ndarray, np.ndarray]:
    """0-based run starts and ends (exclusive) of well-formed ``values`` read in ``form``."""
    firsts, lengths = values[0::2], values[1::2]
    if form == "relative":
        starts = np.cumsum(firsts) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    else:
        starts = firsts - 1
    return starts, starts + lengths


def rle_problem(rle: str, pixels: int | None, form: str) -> str | None:
    """Why the well-formed string ``rle`` is not a mask of ``pixels`` pixels in ``form`` (``None``: it is;
    ``pixels=None``: the image size is unknown, only the order of absolute runs is checked)."""
    text = rle.strip()
    if text in ("", NO_MASK):
        return None
    starts, ends = _runs(_values(text), _check_form(form))
    if form == "absolute":
        if starts[0] < 0:
            return "has a start of 0 (absolute starts are 1-based)"
        back = np.flatnonzero(starts[1:] < ends[:-1])
        if back.size:
            k = int(back[0]) + 1
            return (f"run {k + 1} starts at pixel {int(starts[k]) + 1}, before the end of run {k} "
                    f"(pixel {int(ends[k - 1])})")
    if pixels is not None and ends[-1] > pixels:
        return f"runs to pixel {int(ends[-1])}"
    return None


def rle_decode(rle: str, height: int, width: int, form: str = "relative") -> np.ndarray:
    """A SIIM ``EncodedPixels`` string in ``form`` -> uint8 ``[height, width]`` mask of 0 / 1.

    ``"-1"`` (or an empty string) gives an empty mask.

    Raises:
        ValueError: a token that is not a non-negative integer, an odd number of tokens, a run of
            length 0, runs past the ``height * width`` pixels, or (absolute) runs out of order.
    """
    text = rle.strip()
    flat = np.zeros(height * width, np.uint8)
    if text in ("", NO_MASK):
        return flat.reshape(width, height).T.copy()
    values = _values(text)
    starts, ends = _runs(values, _check_form(form))
    if ends[-1] > flat.size:
        raise DataError(f"RLE runs to pixel {int(ends[-1])}, past the {height} x {width} image "
                        f"({flat.size} pixels)")
    problem = rle_problem(text, flat.size, form)
    if problem:
        raise DataError(f"RLE ({form}): {problem}")
    delta = np.zeros(flat.size + 1, np.int64)
    np.add.at(delta, starts, 1)
    np.add.at(delta, ends, -1)
    flat = (np.cumsum(delta[:-1]) > 0).astype(np.uint8)
    return flat.reshape(width, height).T.copy()


def rle_encode(mask: np.ndarray, form: str = "relative") -> str:
    """A ``[height, width]`` mask (non-zero = foreground) -> SIIM ``EncodedPixels`` (``"-1"`` if empty).

    The inverse of :func:`rle_decode`: ``rle_decode(rle_encode(m, f), *m.shape, f) == (m != 0)``.
    """
    _check_form(form)
    flat = (np.asarray(mask) != 0).T.reshape(-1).astype(np.int8)
    edges = np.diff(np.concatenate([[0], flat, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if starts.size == 0:
        return NO_MASK
    previous_ends = np.concatenate([[0], ends[:-1]])
    firsts = starts - previous_ends if form == "relative" else starts + 1
    pairs = np.stack([firsts, ends - starts], axis=1).reshape(-1)
    return " ".join(str(int(v)) for v in pairs)


def to_relative(rle: str, form: str) -> str:
    """The well-formed string ``rle`` of ``form`` in the relative (stage 1) form (``"-1"`` stays)."""
    text = rle.strip()
    if _check_form(form) == "relative" or text in ("", NO_MASK):
        return text
    starts, ends = _runs(_values(text), form)
    previous_ends = np.concatenate([[0], ends[:-1]])
    pairs = np.stack([starts - previous_ends, ends - starts], axis=1).reshape(-1)
    return " ".join(str(int(v)) for v in pairs)


def choose_rle_form(rows: list[tuple[str, int | None]], hint_absolute: bool = False) -> tuple[str, dict[str, int]]:
    """The form of a table whose RLE ``rows`` are ``(string, pixels of its image or None)``.

    Each row fits the relative form, the absolute one, both (short rows) or neither
    (:func:`rle_problem`). The form that more rows fit alone wins; with no such row (every row fits
    both or neither) ``hint_absolute`` decides (a table named ``stage_2*``), else relative.

    Returns:
        the form and the counts ``{"relative": rows fitting only it, "absolute": ..., "both": ...}``.
    """
    counts = {"relative": 0, "absolute": 0, "both": 0}
    for code, pixels in rows:
        fits = [f for f in RLE_FORMS if rle_problem(code, pixels, f) is None]
        if len(fits) == 2:
            counts["both"] += 1
        elif fits:
            counts[fits[0]] += 1
    if counts["relative"] != counts["absolute"]:
        form = "relative" if counts["relative"] > counts["absolute"] else "absolute"
    else:
        form = "absolute" if hint_absolute else "relative"
    return form, counts


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
