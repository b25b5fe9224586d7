"""Chest X-ray image files -> 8-bit grey arrays, resized as the references, cached once.

The decoder, the checks, the geometry and the cache are the shared ones of
:mod:`medmodal.data.images` (see its docstring for every rule); this module is their chest X-ray
configuration:

* :func:`load_image`: any radiograph file (PNG, JPEG, DICOM ...) as uint8 grey ``[H, W]``
  (:func:`medmodal.data.images.decode_image` with ``colour="grey"``), errors raised as
  :class:`~medmodal.data.cxr.errors.CXRDataError`;
* geometry: :func:`resize_and_pad` to :data:`DEFAULT_RESIZE` = 256 (MGCA / CM-CGNS ``get_imgs``
  with ``imsize=256``), with :func:`resize_pad_geometry`, :func:`boxes_to_resized_frame` and
  :func:`resize_and_pad_mask` keeping boxes and masks aligned;
* :class:`ImageCache`: the shared memory-mapped cache (``images<size>_<key>.npy``, the format
  unchanged since this module's first release; the key's version 2 since the decoder applies the
  EXIF orientation and refuses damaged files) with :func:`load_image` as its loader;
* :func:`image_problem` / :func:`resolve_image_check`: the preparation-time checks the readers run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from medmodal.data import images as _images
from medmodal.data.cxr.errors import CXRDataError
from medmodal.data.images import (  # noqa: F401  (re-exported: this module's public names since release 1)
    CACHE_VERSION,
    DEFAULT_IMAGE_CHECK,
    DEFAULT_RESIZE,
    DICOM_SUFFIXES,
    IMAGE_CHECK_TEXT,
    IMAGE_CHECKS,
    boxes_to_resized_frame,
    image_problem,
    is_dicom,
    resize_and_pad,
    resize_and_pad_mask,
    resize_pad_geometry,
    resolve_image_check,
)

__all__ = ["DEFAULT_RESIZE", "CACHE_VERSION", "load_image", "load_dicom", "load_picture", "read_image_size",
           "image_problem", "resolve_image_check", "IMAGE_CHECKS", "IMAGE_CHECK_TEXT", "resize_and_pad",
           "resize_pad_geometry", "resize_and_pad_mask", "boxes_to_resized_frame", "ImageCache", "is_dicom"]


def load_image(path: str | Path) -> np.ndarray:
    """Any supported radiograph file (PNG, JPEG, DICOM ...) as uint8 grey ``[H, W]``.

    Raises:
        CXRDataError: one line naming the file (missing, unreadable, truncated, unsupported).
    """
    return _images.decode_image(path, "grey", CXRDataError)


def load_dicom(path: str | Path) -> np.ndarray:
    """A DICOM radiograph as uint8 ``[H, W]``. Raises :class:`CXRDataError` naming the file."""
    return _images.load_dicom(path, CXRDataError)


def load_picture(path: str | Path) -> np.ndarray:
    """A PNG / JPEG / other Pillow image as uint8 grey ``[H, W]``. Raises :class:`CXRDataError`."""
    return _images.load_picture(path, "grey", CXRDataError)


def read_image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` from the file's header. Raises :class:`CXRDataError` (missing, unreadable)."""
    return _images.read_image_size(path, CXRDataError)


class ImageCache(_images.ImageCache):
    """:class:`medmodal.data.images.ImageCache` of grey radiographs: ``loader`` defaults to
    :func:`load_image`, geometry :func:`resize_and_pad`, a missing file raises :class:`CXRDataError`."""

    def __init__(self, paths: Sequence[str | Path], cache_dir: str | Path | None = None, size: int = DEFAULT_RESIZE,
                 loader: Callable[[Path], np.ndarray] = load_image):
        super().__init__(paths, cache_dir, size, loader, resize_and_pad, channels=1, error=CXRDataError)
