"""The toy family's data: a trivial on-disk layout, its reader (registered in :mod:`medmodal.data.layouts`)
and a synthesiser writing it.

Layout ``png-csv`` (family ``toy``)::

    ROOT/labels.csv        file,label        (one row per image; label an int in [0, num_classes))
    ROOT/images/<id>.png   8-bit grey, any size

Class ``k`` is a bright square in quadrant ``k``; the images are decoded with the shared 2-D decoder
(:func:`medmodal.data.images.decode_image`). Every problem of the user's folder is a
:class:`~medmodal.errors.LayoutError` (an ``InputError``: one line on the command line).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medmodal.data.images import decode_image, save_png
from medmodal.data.layouts import Layout, register_layout
from medmodal.errors import ConfigError, LayoutError

__all__ = ["FAMILY", "LAYOUT", "ToySample", "synth_toy", "read_png_csv", "detect_png_csv"]

#: the data family the readers register under (the CLI family key, here the same word)
FAMILY = "toy"
LABELS = "labels.csv"


@dataclass(frozen=True)
class ToySample:
    """One image: ``image`` ``[H, W]`` uint8, ``label`` int, ``path`` the file."""

    image: np.ndarray
    label: int
    path: Path


def synth_toy(root: str | Path, num_images: int = 12, size: int = 8, num_classes: int = 2, seed: int = 0) -> Path:
    """Write ``num_images`` ``size``-pixel PNGs (classes balanced) and ``labels.csv`` into ``root``.

    Raises:
        ConfigError: fewer than 2 * ``num_classes`` images (every class needs a training and a validation image).
    """
    if num_images < 2 * num_classes:
        raise ConfigError(f"the toy data needs at least {2 * num_classes} images, got {num_images}")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    half = size // 2
    rows = []
    for i in range(num_images):
        label = i % num_classes
        image = rng.integers(0, 60, (size, size)).astype(np.uint8)
        r, c = divmod(label % 4, 2)
        image[r * half:(r + 1) * half, c * half:(c + 1) * half] += 180
        name = f"images/{i:03d}.png"
        save_png(root / name, image)
        rows.append((name, label))
    with open(root / LABELS, "w", newline="") as f:
        csv.writer(f).writerows([("file", "label"), *rows])
    return root


def detect_png_csv(root: Path) -> Path | None:
    """``root`` when it holds ``labels.csv``, else ``None``."""
    return root if (Path(root) / LABELS).is_file() else None


def read_png_csv(path: Path, num_classes: int | None = None) -> list[ToySample]:
    """The samples of a ``png-csv`` folder, in CSV order.

    Raises:
        LayoutError: no ``labels.csv``, a row without ``file`` / ``label``, a label outside
            ``[0, num_classes)``, an unreadable image (each names the file).
    """
    path = Path(path)
    table = path / LABELS
    if not table.is_file():
        raise LayoutError(f"{path}: not a toy png-csv folder (no {LABELS})")
    samples = []
    with open(table, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                label = int(row["label"])
                file = path / row["file"]
            except (KeyError, TypeError, ValueError):
                raise LayoutError(f"{table}:{line}: expected columns file,label") from None
            if num_classes is not None and not 0 <= label < num_classes:
                raise LayoutError(f"{table}:{line}: label {label} outside [0, {num_classes})")
            samples.append(ToySample(decode_image(file, "grey", error=LayoutError), label, file))
    if not samples:
        raise LayoutError(f"{table}: no images listed")
    return samples


LAYOUT = register_layout(Layout(family=FAMILY, name="png-csv", read=read_png_csv, detect=detect_png_csv))
