"""Synthetic fundus twins: fundus-like RGB photographs with vessel labels and FOV masks, written in each
official layout so that the real readers (:mod:`medmodal.data.fundus.layouts`) read them back.

An image (:func:`synth_fundus`, deterministic by seed): a dark background outside a circular field of
view; an orange-red retina with vignetting (darker towards the rim); a bright yellowish optic disc
off centre; a darker macula on the other side; a vessel tree of tapered dark-red lines grown as a
simple random branching tree from the optic disc (two trunks, upwards and downwards, each segment
splitting into two thinner ones; the space-colonisation generator of DGSSA is separate). The label is
the drawn tree inside the FOV; a second observer's label (where the layout has one) is the first
with its thinnest branches removed (a plausible disagreement).

:func:`write_synthetic` writes ``n`` images in one layout: ``drive`` (``.tif`` images, ``.gif``
manuals and masks; ``training/`` and ``test/``, the second manual for test only, as released),
``chase_db1`` (``.jpg`` + ``_1stHO.png`` / ``_2ndHO.png``; no masks unless ``unofficial_masks``),
``hrf`` (``.jpg`` + ``manual1/*.tif`` + ``mask/*_mask.tif``), ``stare`` (``.ppm`` + ``labels-ah`` /
``labels-vk`` ``.ppm``; no masks) and ``generic`` (``images/``, ``masks/``, ``fov/`` PNGs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medmodal.errors import ConfigError

__all__ = ["synth_fundus", "write_synthetic", "SYNTH_LAYOUTS"]

SYNTH_LAYOUTS = ("drive", "chase_db1", "hrf", "stare", "generic")


def _draw_tree(shape: tuple[int, int], disc: tuple[float, float], radius: float, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
    """Vessel calibre map (float widths, 0 outside vessels) and generation map of a random branching tree."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    width = np.zeros(shape, np.float32)
    generation = np.full(shape, 99, np.int16)
    segments = []
    base = max(1.2, radius / 40)
    stack = [(disc[0], disc[1], angle + rng.normal(0, 0.15), base, 0, radius * 0.35)
             for angle in (-np.pi / 2 - 0.5, -np.pi / 2 + 0.5, np.pi / 2 - 0.5, np.pi / 2 + 0.5)]
    stack = [(y, x, a if disc[1] < w / 2 else np.pi - a, c, g, L) for y, x, a, c, g, L in stack]
    while stack:
        y, x, angle, calibre, gen, length = stack.pop()
        y2, x2 = y + np.sin(angle) * length, x + np.cos(angle) * length
        segments.append((y, x, y2, x2, calibre, gen))
        if gen < 4 and calibre > 0.6:
            for turn in (-1, 1):
                stack.append((y2, x2, angle + turn * rng.uniform(0.3, 0.7), calibre * 0.75, gen + 1,
                              length * rng.uniform(0.6, 0.85)))
    for y1, x1, y2, x2, calibre, gen in segments:
        lo_y, hi_y = int(max(0, min(y1, y2) - calibre - 2)), int(min(h, max(y1, y2) + calibre + 3))
        lo_x, hi_x = int(max(0, min(x1, x2) - calibre - 2)), int(min(w, max(x1, x2) + calibre + 3))
        if lo_y >= hi_y or lo_x >= hi_x:
            continue
        py, px = yy[lo_y:hi_y, lo_x:hi_x], xx[lo_y:hi_y, lo_x:hi_x]
        dy, dx = y2 - y1, x2 - x1
        t = np.clip(((py - y1) * dy + (px - x1) * dx) / max(dy * dy + dx * dx, 1e-6), 0, 1)
        dist = np.hypot(py - (y1 + t * dy), px - (x1 + t * dx))
        local = calibre * (1 - 0.3 * t)  # tapered along the segment
        inside = dist <= local
        box_w, box_g = width[lo_y:hi_y, lo_x:hi_x], generation[lo_y:hi_y, lo_x:hi_x]
        np.maximum(box_w, np.where(inside, local, 0), out=box_w)
        np.minimum(box_g, np.where(inside, gen, 99).astype(np.int16), out=box_g)
    return width, generation


def synth_fundus(size: int | tuple[int, int] = 64, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic fundus photograph (module docstring).

    Args:
        size: ``side`` or ``(height, width)``. seed: the random seed (same seed, same arrays).
    Returns:
        ``(image uint8 [H, W, 3], label1 bool [H, W], label2 bool [H, W], fov bool [H, W])``.
    """
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    cy, cx = h / 2 + rng.normal(0, h * 0.01), w / 2 + rng.normal(0, w * 0.01)
    radius = 0.46 * min(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(yy - cy, xx - cx) / radius
    fov = r <= 1.0
    side = rng.choice([-1, 1])
    disc = (cy + rng.normal(0, radius * 0.05), cx + side * radius * 0.45)
    macula = (cy, cx - side * radius * 0.2)
    vignette = np.clip(1 - 0.45 * r ** 2, 0, 1)
    tint = rng.uniform(0.85, 1.1, 3)
    rgb = np.stack([200 * vignette, 95 * vignette, 40 * vignette], -1) * tint
    d_disc = np.hypot(yy - disc[0], xx - disc[1]) / (radius * 0.13)
    rgb += np.exp(-d_disc ** 4)[..., None] * np.array([55, 120, 90])
    d_mac = np.hypot(yy - macula[0], xx - macula[1]) / (radius * 0.18)
    rgb *= 1 - 0.35 * np.exp(-d_mac ** 2)[..., None]
    width, generation = _draw_tree((h, w), disc, radius, rng)
    vessel = width > 0
    depth = np.clip(width / max(width.max(), 1e-6), 0.4, 1.0)[..., None]
    rgb = np.where(vessel[..., None], rgb * (1 - 0.45 * depth) * np.array([0.9, 0.6, 0.7]), rgb)
    rgb += rng.normal(0, 3, rgb.shape)
    rgb = np.where(fov[..., None], rgb, rng.uniform(0, 4, rgb.shape))
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    label1 = vessel & fov
    label2 = label1 & (generation < 4)
    return image, label1, label2, fov


def _save(path: Path, array: np.ndarray, fmt: str | None = None) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    Image.fromarray(array).save(path, format=fmt) if fmt else Image.fromarray(array).save(path)


def image_seed(seed: int, layout: str, index: int) -> int:
    """The :func:`synth_fundus` seed of image ``index`` (write order) of a ``layout`` twin written with ``seed``."""
    return seed * 100000 + 10000 * SYNTH_LAYOUTS.index(layout) + index


def write_synthetic(root: str | Path, layout: str, n: int = 4, size: int | tuple[int, int] = 64, seed: int = 0,
                    unofficial_masks: bool = False) -> Path:
    """Write ``n`` synthetic images (and their labels and masks) under ``root`` in ``layout``.

    DRIVE writes ``n`` training and ``n`` test images (numbered 21.. and 01.., as released); the other
    layouts ``n`` images. Image ``i`` uses seed :func:`image_seed` ``= seed * 100000 + 10000 * k + i`` with
    ``k`` the layout's index in :data:`SYNTH_LAYOUTS`, so twins of two layouts never share a photograph (a DRIVE twin's
    training trees are not a CHASE_DB1 twin's test trees) whatever ``seed`` each is given. Returns ``root``.

    Raises:
        ConfigError: unknown layout.
    """
    if layout not in SYNTH_LAYOUTS:
        raise ConfigError(f"unknown synthetic fundus layout {layout!r}; choose one of {', '.join(SYNTH_LAYOUTS)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    count = 2 * n if layout == "drive" else n
    if count > 10000:
        raise ConfigError(f"at most 10000 synthetic images per layout, got {count}")
    for i in range(count):
        image, label1, label2, fov = synth_fundus(size, image_seed(seed, layout, i))
        if layout == "drive":
            split = "training" if i < n else "test"
            num = f"{21 + i:02d}" if split == "training" else f"{1 + i - n:02d}"
            base = root / split
            _save(base / "images" / f"{num}_{split}.tif", image, "TIFF")
            _save(base / "1st_manual" / f"{num}_manual1.gif", label1, "GIF")
            if split == "test":
                _save(base / "2nd_manual" / f"{num}_manual2.gif", label2, "GIF")
            _save(base / "mask" / f"{num}_{split}_mask.gif", fov, "GIF")
        elif layout == "chase_db1":
            stem = f"Image_{i // 2 + 1:02d}{'LR'[i % 2]}"
            _save(root / f"{stem}.jpg", image, "JPEG")
            _save(root / f"{stem}_1stHO.png", label1, "PNG")
            _save(root / f"{stem}_2ndHO.png", label2, "PNG")
            if unofficial_masks:
                _save(root / f"{stem}_mask.png", fov, "PNG")
        elif layout == "hrf":
            stem = f"{i // 3 + 1:02d}_{('h', 'dr', 'g')[i % 3]}"
            _save(root / "images" / f"{stem}.jpg", image, "JPEG")
            _save(root / "manual1" / f"{stem}.tif", label1, "TIFF")
            _save(root / "mask" / f"{stem}_mask.tif", fov, "TIFF")
        elif layout == "stare":
            stem = f"im{i + 1:04d}"
            _save(root / "stare-images" / f"{stem}.ppm", image, "PPM")
            _save(root / "labels-ah" / f"{stem}.ah.ppm", label1, "PPM")
            _save(root / "labels-vk" / f"{stem}.vk.ppm", label2, "PPM")
        else:
            stem = f"fundus_{i:03d}"
            _save(root / "images" / f"{stem}.png", image, "PNG")
            _save(root / "masks" / f"{stem}.png", label1, "PNG")
            _save(root / "fov" / f"{stem}.png", fov, "PNG")
    return root
