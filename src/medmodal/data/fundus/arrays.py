"""Pixels of a :class:`~medmodal.data.fundus.layouts.FundusSample`: image, vessel labels, field of view.

Every file is decoded by the project's one 2-D decoder (:func:`medmodal.data.images.decode_image`,
Pillow: PPM / PGM, GIF, TIFF, JPEG, PNG). Labels and FOV masks are decoded as grey and binarised at
``> 127`` (:data:`LABEL_THRESHOLD`), not ``> 0``: DRIVE's ``2nd_manual/*.gif`` are palette images whose
grey values decode to 3 (background) and 253 (vessel), so ``> 0`` would mark every pixel a vessel;
the other official files (DRIVE ``1st_manual`` and ``mask`` GIFs, CHASE_DB1 ``_1stHO`` / ``_2ndHO``
1-bit PNGs) decode to 0 / 255, and JPEG-compressed masks of copies stay near 0 / 255.
"""

from __future__ import annotations

import numpy as np

from medmodal.data.fundus.fov import derive_fov
from medmodal.data.images import decode_image
from medmodal.errors import DataError, ImageReadError

__all__ = ["LABEL_THRESHOLD", "load_image", "load_mask", "load_label", "load_fov"]

#: Grey level above which a label / FOV pixel is foreground (module docstring).
LABEL_THRESHOLD = 127


def load_image(sample) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` of ``sample.image`` (raises :class:`ImageReadError` naming a bad file)."""
    return decode_image(sample.image, "rgb", error=ImageReadError)


def load_mask(path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A binary label / FOV file as bool ``[H, W]`` (``> 127``); ``shape``: the image's, checked.

    Raises:
        ImageReadError: the file cannot be decoded. DataError: its size differs from ``shape``.
    """
    mask = decode_image(path, "grey", error=ImageReadError) > LABEL_THRESHOLD
    if shape is not None and mask.shape != tuple(shape):
        raise DataError(f"{path}: size {mask.shape[1]} x {mask.shape[0]} differs from its image's "
                        f"{shape[1]} x {shape[0]}")
    return mask


def load_label(sample, observer: int = 0, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The vessel label of ``observer`` (0: first, 1: second) as bool ``[H, W]``.

    Raises:
        DataError: the sample has no label of that observer.
    """
    if observer >= len(sample.labels):
        raise DataError(f"{sample.image}: no vessel label of observer {observer + 1}")
    return load_mask(sample.labels[observer], shape)


def load_fov(sample, image: np.ndarray | None = None) -> np.ndarray:
    """The FOV as bool ``[H, W]``: the sample's mask file, or derived from the image
    (:func:`~medmodal.data.fundus.fov.derive_fov`) when it has none."""
    if image is None:
        image = load_image(sample)
    if sample.fov is not None:
        return load_mask(sample.fov, image.shape[:2])
    return derive_fov(image)
