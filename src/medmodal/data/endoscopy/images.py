"""Decoding endoscopy images, and a cache of the decoded, resized images.

The decoder and the cache key are the shared ones of :mod:`medmodal.data.images`; this module is
their endoscopy configuration. :func:`load_image` reads a JPEG/PNG/... into ``uint8 [H, W, 3]``
RGB (:func:`medmodal.data.images.decode_image` with ``colour="rgb"``) or raises
:class:`ImageReadError` (a ``ValueError``) naming the file. :class:`DecodedImageCache` decodes
each file once, resizes it to ``image_size x image_size`` (:func:`resize_square`: bilinear with
antialiasing, the aspect ratio is not kept: the MICS authors' ``Resize((384, 384))``) and keeps the
``uint8`` result in memory or, with ``cache_dir``, as memory-mappable ``<key>.npy`` files, one per
source file, keyed (:func:`medmodal.data.images.cache_key`, version
:data:`medmodal.data.images.CACHE_VERSION`) by the file's resolved path, size and modification time
(editing a file invalidates its entry), as :class:`medmodal.data.volumes.preprocess.PreprocessedCache`
does for volumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from medmodal.data.endoscopy.samples import PairedSample, warn_lines
from medmodal.data.images import CACHE_VERSION, cache_key, decode_image, resize_square, save_png  # noqa: F401
from medmodal.errors import ImageReadError
from medmodal.io import atomic_save_npy


def load_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` fully into ``uint8 [H, W, 3]`` RGB.

    The EXIF orientation is applied; grey images are repeated to three channels, alpha is dropped,
    16-bit images are scaled to 8 bit (by 65535, or 255 when no value exceeds 255). Raises
    :class:`ImageReadError` naming the file (truncated or corrupt data: also a JPEG cut short and
    closed with an end marker, a PNG CRC mismatch; not an image) and ``FileNotFoundError`` when it
    does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    return decode_image(path, "rgb", ImageReadError)


def _key(path: Path, image_size: int) -> str:
    return cache_key([path.resolve()], image_size)


class DecodedImageCache:
    """Decode each image once; keep it resized to ``image_size`` as ``uint8 [S, S, 3]``.

    Args:
        image_size: edge length ``S`` in pixels (the authors use 384; CPU presets smaller).
        cache_dir: folder for ``<key>.npy`` files (read back memory-mapped, shared by DataLoader
            workers through the page cache); ``None`` keeps the arrays in this process's memory
            (``3 * S * S`` bytes per image: 442 KB at 384 px, 49 KB at 128 px).
    """

    def __init__(self, image_size: int, cache_dir: str | Path | None = None):
        if image_size < 8:
            raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
        self.image_size = int(image_size)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memory: dict[str, np.ndarray] = {}

    def get(self, path: str | Path) -> np.ndarray:
        """``uint8 [S, S, 3]`` for ``path`` (decoded on first use). Raises :class:`ImageReadError`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such image file")
        key = _key(path, self.image_size)
        if self.cache_dir is None:
            if key not in self._memory:
                self._memory[key] = resize_square(load_image(path), self.image_size)
            return self._memory[key]
        file = self.cache_dir / f"{key}.npy"
        if file.is_file():
            try:
                return np.load(file, mmap_mode="r")
            except (OSError, ValueError):
                pass  # a damaged entry is rebuilt
        image = resize_square(load_image(path), self.image_size)
        atomic_save_npy(file, image)
        return image

    def build(self, samples: Sequence[PairedSample], skip_bad: bool = False,
              progress: bool = False) -> "CheckResult":
        """Decode every file of ``samples`` into the cache; see :func:`check_images`."""
        return check_images(samples, skip_bad=skip_bad, progress=progress, decode=self.get)


@dataclass
class CheckResult:
    """What :func:`check_images` kept and what it skipped.

    Attributes:
        samples: samples whose every file decodes.
        bad: ``(file, message)`` for each file that does not decode (empty unless ``skip_bad``).
    """

    samples: list[PairedSample]
    bad: list[tuple[Path, str]]


def check_images(samples: Sequence[PairedSample], skip_bad: bool = False, progress: bool = False,
                 decode=load_image) -> CheckResult:
    """Decode every image of ``samples``.

    Without ``skip_bad`` the first unreadable file raises :class:`ImageReadError` (one line naming
    it). With ``skip_bad`` each sample holding an unreadable file is left out as a whole (its
    partner too, so no pair silently becomes single-modality), every bad file is named in a
    warning line and counted.
    """
    kept, bad = [], []
    iterator = samples
    bar = None
    if progress and samples:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        iterator = bar.track(samples, description="decoding images")
    try:
        for s in iterator:
            ok = True
            for path in s.files():
                try:
                    decode(path)
                except ImageReadError as err:
                    if not skip_bad:
                        raise
                    bad.append((path, str(err)))
                    ok = False
            if ok:
                kept.append(s)
    finally:
        if bar is not None:
            bar.stop()
    if bad:
        warn_lines([f"{msg} (sample skipped)" for _, msg in bad],
                   f"{len(bad)} unreadable image file(s) skipped; {len(samples) - len(kept)} sample(s) left out")
    return CheckResult(kept, bad)

