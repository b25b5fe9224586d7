"""Fundus geometry: every photograph is brought to one field-of-view (FOV) diameter for the network.

Fundus data sets differ in resolution by ~6x (DRIVE 565 x 584 to HRF 3504 x 2336) while showing the
same anatomy (a ~45 degree field), so vessel calibres in pixels differ by the same factor. As the MRI
side records a target voxel size (:class:`medmodal.data.volumes.geometry.Geometry`), a fundus model
records a target FOV diameter in pixels (:class:`FundusGeometry`, stored in its bundle as
``geometry``) and every image is brought to it before the network runs:

1. **Measure** the FOV (:func:`fov_geometry`): the largest connected component of the FOV mask; its
   *diameter* is the longer side of its bounding box. Not the equivalent-circle diameter: cameras
   that cut the circular field off at the top and bottom (HRF, some Canon / Topcon exports) keep
   the full width but lose area, so the equal-area circle would under-measure them. The *centre*
   is the bounding box's horizontal middle and the middle of the rows as wide as the widest row
   (the circle's centre row even when the top or bottom is cut off).
2. **Crop** to the bounding box plus ``margin`` network pixels on every side (zero padding where
   the box leaves the image; DRIVE's FOV nearly touches the image's sides).
3. **Rescale** the crop by ``target_diameter / diameter`` (same factor on both axes, size rounded).
   Images: bilinear (``torch.nn.functional.interpolate``, ``align_corners=False``, ``antialias=True``
   so downsampling averages over the footprint instead of aliasing thin vessels). Labels and
   masks: the same bilinear filter on the 0 / 1 mask, then ``>= 0.5`` (a pixel is foreground when
   foreground covers at least half of its filter footprint: an area-like rule that keeps vessel
   widths unbiased, where nearest neighbour drops or doubles one-pixel vessels at random).
4. **Pad** bottom and right with zeros to a size divisible by ``divisor`` (the network's total
   downsampling).

:class:`Grid` records all of it per image; :func:`to_native` undoes it for a probability map
(bilinear, on the crop then pasted into the native canvas) and zeroes it outside the native FOV.
Scores are computed on the native grid, as the benchmarks define them.

Measured FOV diameters (longer bounding-box side of the masks; ``tests/data/fundus/test_geometry.py``):
DRIVE 535-541 px (median 540, all 40 images); CHASE_DB1 894-921 px (median 919, 28 images, the
copy's masks; 890-924 derived with :func:`~medmodal.data.fundus.fov.derive_fov`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from medmodal.errors import ConfigError, DataError

__all__ = ["FundusGeometry", "FovGeometry", "Grid", "fov_geometry", "to_network", "to_native",
           "DEFAULT_DIAMETER", "REDUCED_DIAMETER"]

#: Default target FOV diameter: DRIVE's native one (median 540 px). DRIVE, the most used benchmark,
#: then runs at (nearly) its own resolution, and the larger data sets (CHASE_DB1 ~919, HRF ~3300)
#: are only ever reduced, never enlarged, so no data set is blurred by upsampling.
DEFAULT_DIAMETER = 540
#: Half of it, for CPU runs and smoke training (4x fewer pixels; one-pixel DRIVE vessels become
#: sub-pixel, so expect lower scores on the thinnest vessels).
REDUCED_DIAMETER = 270


@dataclass(frozen=True)
class FundusGeometry:
    """The geometry a fundus model was trained in (stored in its bundle as ``geometry``).

    Attributes:
        target_diameter: FOV diameter (pixels) on the network grid.
        margin: pixels of the network grid kept around the FOV's bounding box.
        divisor: network grid sides are padded to a multiple of it (the network's total stride).
    """

    target_diameter: int = DEFAULT_DIAMETER
    margin: int = 8
    divisor: int = 32

    def __post_init__(self) -> None:
        for name, low in (("target_diameter", 16), ("margin", 0), ("divisor", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigError(f"fundus geometry {name} must be an integer >= {low}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "fundus", "target_diameter": int(self.target_diameter), "margin": int(self.margin),
                "divisor": int(self.divisor)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FundusGeometry":
        if not isinstance(data, dict) or data.get("kind", "fundus") != "fundus":
            raise ConfigError(f"not a fundus geometry record: {data!r}")
        unknown = set(data) - {"kind", "target_diameter", "margin", "divisor"}
        if unknown:
            raise ConfigError(f"fundus geometry has unknown keys {sorted(unknown)}")
        values = {}
        for name in ("target_diameter", "margin", "divisor"):
            if name in data:
                value = data[name]
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                values[name] = value
        return cls(**values)

    def describe(self) -> str:
        return (f"FOV diameter {self.target_diameter} px, margin {self.margin} px, "
                f"sides padded to a multiple of {self.divisor}")


@dataclass(frozen=True)
class FovGeometry:
    """A FOV measured on one image: ``centre`` (row, col), ``diameter`` (px), ``bbox`` (y0, y1, x0, x1;
    ends exclusive)."""

    centre: tuple[float, float]
    diameter: int
    bbox: tuple[int, int, int, int]


def fov_geometry(fov_mask: np.ndarray, name: str = "FOV mask") -> FovGeometry:
    """Centre, diameter and bounding box of the largest component of ``fov_mask`` (module docstring).

    Raises:
        DataError: the mask is not 2-D or has no foreground (``name`` says which mask).
    """
    from scipy import ndimage

    mask = np.asarray(fov_mask)
    if mask.ndim != 2:
        raise DataError(f"{name}: expected a 2-D field-of-view mask, got shape {mask.shape}")
    mask = mask > 0
    labels, count = ndimage.label(mask)
    if count == 0:
        raise DataError(f"{name}: the field-of-view mask has no foreground pixel (nothing to measure)")
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    widths = mask.sum(1)
    widest = np.nonzero(widths >= 0.99 * widths.max())[0]
    centre = (float(widest.mean()), (x0 + x1 - 1) / 2.0)
    return FovGeometry(centre, max(y1 - y0, x1 - x0), (y0, y1, x0, x1))


@dataclass
class Grid:
    """How one image goes from its native grid to the network grid and back.

    Attributes:
        native_shape: ``(H, W)`` of the image as stored.
        fov: the measured :class:`FovGeometry`.
        crop: ``(y0, y1, x0, x1)`` native box cut out (may extend past the image: zero padded).
        scaled_shape: size of the crop after rescaling.
        network_shape: ``scaled_shape`` padded at the bottom / right to a multiple of the divisor.
        target_diameter: the geometry's FOV diameter.
        fov_mask: the native FOV (bool ``[H, W]``; not serialised) used by :func:`to_native`.
    """

    native_shape: tuple[int, int]
    fov: FovGeometry
    crop: tuple[int, int, int, int]
    scaled_shape: tuple[int, int]
    network_shape: tuple[int, int]
    target_diameter: int
    fov_mask: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def scale(self) -> float:
        """Network pixels per native pixel (nominal; each axis is rounded to whole pixels)."""
        return self.target_diameter / self.fov.diameter

    def to_dict(self) -> dict[str, Any]:
        return {"native_shape": list(self.native_shape), "fov_centre": list(self.fov.centre),
                "fov_diameter": self.fov.diameter, "fov_bbox": list(self.fov.bbox), "crop": list(self.crop),
                "scaled_shape": list(self.scaled_shape), "network_shape": list(self.network_shape),
                "target_diameter": self.target_diameter}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Grid":
        fov = FovGeometry((float(data["fov_centre"][0]), float(data["fov_centre"][1])), int(data["fov_diameter"]),
                          _four(data["fov_bbox"]))
        return cls(_two(data["native_shape"]), fov, _four(data["crop"]), _two(data["scaled_shape"]),
                   _two(data["network_shape"]), int(data["target_diameter"]))


def _two(values) -> tuple[int, int]:
    return int(values[0]), int(values[1])


def _four(values) -> tuple[int, int, int, int]:
    return int(values[0]), int(values[1]), int(values[2]), int(values[3])


def _resize(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear (antialiased when shrinking) resize of ``[C, H, W]`` float32 to ``[C, *shape]``."""
    if tuple(array.shape[-2:]) == tuple(shape):
        return array
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
    with torch.no_grad():
        out = torch.nn.functional.interpolate(tensor, size=tuple(int(s) for s in shape), mode="bilinear",
                                              align_corners=False, antialias=True)
    return out[0].numpy()


def _cut(array: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """``array[..., y0:y1, x0:x1]`` with zeros where the box leaves the array."""
    y0, y1, x0, x1 = box
    h, w = array.shape[-2:]
    out = np.zeros(array.shape[:-2] + (y1 - y0, x1 - x0), array.dtype)
    sy0, sy1, sx0, sx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
    out[..., sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = array[..., sy0:sy1, sx0:sx1]
    return out


def _pad(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    pad = [(0, 0)] * (array.ndim - 2) + [(0, shape[0] - array.shape[-2]), (0, shape[1] - array.shape[-1])]
    return np.pad(array, pad)


def to_network(image: np.ndarray, fov: np.ndarray, *labels: np.ndarray, geometry: FundusGeometry | None = None,
               name: str = "image") -> tuple[tuple[np.ndarray, ...], Grid]:
    """Bring an image, its FOV and any labels to the network grid of ``geometry`` (module docstring).

    Args:
        image: ``[H, W, C]`` or ``[H, W]`` (uint8 or float). fov: bool ``[H, W]``.
        labels: bool / 0-1 ``[H, W]`` masks (vessel labels of each observer).
        geometry: default :class:`FundusGeometry()`. name: names the image in errors.
    Returns:
        ``((image float32 [h, w, C] (or [h, w]), fov bool, *labels bool), grid)``; image values keep
        their scale (uint8 input gives 0-255 floats) and are 0 in the padding.
    Raises:
        DataError: the FOV is empty or a mask's size differs from the image's.
    """
    geometry = geometry or FundusGeometry()
    image = np.asarray(image)
    native = tuple(image.shape[:2])
    for i, mask in enumerate((fov, *labels)):
        if np.asarray(mask).shape != native:
            what = "FOV mask" if i == 0 else f"label {i}"
            raise DataError(f"{name}: {what} size {np.asarray(mask).shape} differs from the image's {native}")
    measured = fov_geometry(fov, f"{name}: FOV mask")
    scale = geometry.target_diameter / measured.diameter
    pad = int(np.ceil(geometry.margin / scale))
    y0, y1, x0, x1 = measured.bbox
    crop = (y0 - pad, y1 + pad, x0 - pad, x1 + pad)
    scaled = (max(1, round((crop[1] - crop[0]) * scale)), max(1, round((crop[3] - crop[2]) * scale)))
    d = geometry.divisor
    network = (-(-scaled[0] // d) * d, -(-scaled[1] // d) * d)
    grid = Grid(native, measured, crop, scaled, network, geometry.target_diameter, np.asarray(fov) > 0)

    channels = np.moveaxis(image, -1, 0) if image.ndim == 3 else image[None]
    out_image = _pad(_resize(_cut(channels.astype(np.float32), crop), scaled), network)
    out_image = np.moveaxis(out_image, 0, -1) if image.ndim == 3 else out_image[0]
    masks = np.stack([np.asarray(m) > 0 for m in (fov, *labels)]).astype(np.float32)
    out_masks = _pad(_resize(_cut(masks, crop), scaled) >= 0.5, network)
    return (np.ascontiguousarray(out_image), *out_masks), grid


def to_native(prob_map: np.ndarray, grid: Grid, fov: np.ndarray | None = None) -> np.ndarray:
    """A probability map on the network grid (``[h, w]`` or ``[C, h, w]``) back on the native grid.

    Bilinear on the crop (the padding is dropped first), pasted into a zero native canvas; pixels
    outside the FOV (``fov``, default the grid's own native FOV mask) are set to 0.
    """
    prob = np.asarray(prob_map, dtype=np.float32)
    single = prob.ndim == 2
    prob = prob[None] if single else prob
    if tuple(prob.shape[-2:]) != tuple(grid.network_shape):
        raise DataError(f"probability map of size {tuple(prob.shape[-2:])} is not on the network grid "
                        f"{tuple(grid.network_shape)}")
    y0, y1, x0, x1 = grid.crop
    crop = _resize(prob[:, :grid.scaled_shape[0], :grid.scaled_shape[1]], (y1 - y0, x1 - x0))
    h, w = grid.native_shape
    out = np.zeros((prob.shape[0], h, w), np.float32)
    sy0, sy1, sx0, sx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
    out[:, sy0:sy1, sx0:sx1] = crop[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
    mask = grid.fov_mask if fov is None else np.asarray(fov) > 0
    if mask is not None:
        out *= mask
    return out[0] if single else out
