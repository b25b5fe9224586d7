"""Training geometry: every case is brought to the orientation and voxel size the model was trained in.

Scans are stored as they were acquired or exported: LPS or RAS (or PIR ...) voxel order, 1 mm
or 0.5 mm or 3 mm voxels. A network sees voxels, not millimetres, so (as nnU-Net and MONAI
bundles do) a model records the geometry of its training data and every case is brought to it
before the network runs:

* **Orientation** (axis codes, nibabel's ``aff2axcodes``): the codes most training cases share
  (``data.orientation`` sets them). Reorientation only permutes and flips axes
  (``nibabel.orientations``): exact, no interpolation.
* **Spacing**: the per-axis median over the training cases (nnU-Net's target spacing;
  ``data.target_spacing`` sets it). A case whose spacing differs by more than
  :data:`RESAMPLE_RTOL` on an axis is resampled on that axis over the full voxel extent (the
  field of view is kept, the new size is ``round(size * spacing / target)`` as in nnU-Net).
  Images: linear interpolation (``torch.nn.functional.interpolate``, trilinear,
  ``align_corners=False``, as MONAI's ``Resize``; keeps the
  zero background of skull-stripped images zero, and the non-zero region of each sequence is
  resampled nearest-neighbour so the brain mask stays as tight as at the training spacing;
  cubic splines would ring into the background). Labels: nearest neighbour
  (``scipy.ndimage.zoom(order=0, grid_mode=True)``).
* **2-D datasets** (``spatial_dims=2``, MyoPS short-axis stacks: slices along the last array
  axis): the slice axis stays last, whatever its direction. Orientation permutes / flips the
  two in-plane axes only, and only when the stack's in-plane axes point along the training
  stacks' in-plane axes (an oblique stack whose in-plane codes differ is kept as stored, with a
  warning, rather than having its slice axis permuted into the plane). Resampling is in-plane
  only; slices (often 10-20 mm thick) are never interpolated.

Predictions go back the nnU-Net way: class *probabilities* on the working grid are resampled
(linear) to the case's native grid, reoriented back, then the argmax is taken; the output file
keeps the input's exact shape, affine and header. A case that already has the training
geometry (same axis codes, spacing within :data:`RESAMPLE_RTOL`) is not touched at all, so its
results are bit-identical to a pipeline without this step.

A model without a recorded geometry (bundles from medmodal 0.1) uses every case as stored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import nibabel as nib
import numpy as np
import torch
from nibabel import orientations as ornt_lib
from scipy import ndimage

from medmodal.errors import ConfigError, DataError
from medmodal.notices import warn

#: spacing differences up to this fraction are not resampled (interpolation would only blur).
RESAMPLE_RTOL = 0.01


def axis_codes(affine: np.ndarray) -> tuple[str, str, str]:
    """Closest anatomical direction of each array axis, e.g. ``("L", "P", "S")`` (nibabel's convention)."""
    return tuple(nib.aff2axcodes(affine))  # type: ignore[return-value]


def voxel_sizes(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) of each array axis: the norms of the affine's columns."""
    return tuple(float(v) for v in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0)))  # type: ignore[return-value]


_PAIRS = ("LR", "AP", "IS")


def _opposite(code: str) -> str:
    pair = next(p for p in _PAIRS if code in p)
    return pair[1 - pair.index(code)]


def parse_orientation(codes: str | Sequence[str]) -> tuple[str, str, str]:
    """``"RAS"`` / ``["R", "A", "S"]`` -> ``("R", "A", "S")``; ValueError unless one letter per axis pair."""
    letters = tuple(str(c).upper() for c in codes)
    axes = sorted(next((i for i, pair in enumerate(_PAIRS) if c in pair), -1) for c in letters)
    if len(letters) != 3 or axes != [0, 1, 2]:
        raise ConfigError(f"orientation {''.join(letters)!r} must name each of L/R, A/P, I/S once, e.g. RAS or LPS")
    return letters  # type: ignore[return-value]


@dataclass(frozen=True)
class Geometry:
    """The geometry a model was trained in (stored in its bundle as ``geometry``).

    Attributes:
        axcodes: orientation of the working arrays, e.g. ``("R", "A", "S")``.
        spacing: target voxel size (mm) per working axis; ``None`` keeps a case's own spacing on
            that axis (the slice axis of 2-D datasets).
        spatial_dims: 3, or 2 for slice-wise models (slice axis kept last, in-plane changes only).
    """

    axcodes: tuple[str, str, str]
    spacing: tuple[float | None, float | None, float | None]
    spatial_dims: int = 3

    def to_dict(self) -> dict[str, Any]:
        spacing = [None if s is None else float(s) for s in self.spacing]
        return {"orientation": "".join(self.axcodes), "spacing": spacing, "spatial_dims": self.spatial_dims}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Geometry":
        spacing = tuple(None if s is None else float(s) for s in data["spacing"])
        if len(spacing) != 3:
            raise ConfigError(f"geometry spacing must have 3 entries, got {list(data['spacing'])}")
        return cls(parse_orientation(data["orientation"]), spacing, int(data.get("spatial_dims", 3)))  # type: ignore[arg-type]

    def describe(self) -> str:
        if all(s is not None for s in self.spacing):
            return f"{''.join(self.axcodes)}, {' x '.join(f'{s:g}' for s in self.spacing)} mm"
        if all(s is None for s in self.spacing):
            return f"{''.join(self.axcodes)}, spacing as stored"
        known = " x ".join(f"{s:g}" for s in self.spacing if s is not None)
        return f"{''.join(self.axcodes)}, {known} mm in-plane, slice spacing as stored"


def _orientation_transform(affine: np.ndarray, axcodes: Sequence[str], spatial_dims: int
                           ) -> tuple[np.ndarray, str | None]:
    """nibabel orientation transform from the stored axes to ``axcodes`` (``[3, 2]``: new axis, flip).

    For 2-D data the slice axis must stay last: if it would move, the identity is returned with
    a note; the flip of the slice axis is dropped (slice order does not matter to a 2-D model).
    """
    native = ornt_lib.io_orientation(affine)
    transform = ornt_lib.ornt_transform(native, ornt_lib.axcodes2ornt(tuple(axcodes)))
    if spatial_dims == 2:
        if int(transform[2, 0]) != 2:
            codes = "".join(axis_codes(affine))
            return (np.array([[0, 1], [1, 1], [2, 1]], float),
                    (f"in-plane axes {codes[:2]} do not lie along the training in-plane axes "
                     f"{''.join(axcodes[:2])}; kept as stored (the slice axis is never moved)"))
        transform[2, 1] = 1
    return transform, None


def _inverse(transform: np.ndarray) -> np.ndarray:
    """The orientation transform that undoes ``transform``."""
    inverse = np.zeros_like(transform)
    for axis, (new_axis, flip) in enumerate(transform):
        inverse[int(new_axis)] = (axis, flip)
    return inverse


def _apply(array: np.ndarray, transform: np.ndarray, lead: int) -> np.ndarray:
    """Apply an orientation transform to the trailing 3 axes of ``array`` (``lead`` leading axes)."""
    if np.array_equal(transform, [[0, 1], [1, 1], [2, 1]]):
        return array
    moved = np.moveaxis(array, tuple(range(lead)), tuple(range(-lead, 0))) if lead else array
    out = ornt_lib.apply_orientation(moved, transform)
    out = np.moveaxis(out, tuple(range(-lead, 0)), tuple(range(lead))) if lead else out
    return np.ascontiguousarray(out)


def _nearest(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resampling of a 3-D array to ``shape`` over the full voxel extent (field of view kept)."""
    factors = [n / o for n, o in zip(shape, array.shape)]
    return ndimage.zoom(array, factors, order=0, mode="nearest", grid_mode=True)


def _linear_tensor(array: np.ndarray, shape: Sequence[int]) -> torch.Tensor:
    """Linear resampling of ``[C, *spatial]`` to a ``[C, *shape]`` tensor over the full voxel extent.

    ``torch.nn.functional.interpolate(mode="trilinear", align_corners=False)``: the same sample
    positions and edge handling as ``scipy.ndimage.zoom(order=1, grid_mode=True, mode="nearest")``
    (equal to ~1e-6), an order of magnitude faster on the large native grids predictions go back to.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
    with torch.no_grad():
        out = torch.nn.functional.interpolate(tensor, size=tuple(int(s) for s in shape), mode="trilinear",
                                              align_corners=False)
    return out[0]


def _linear(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    return _linear_tensor(array, shape).numpy()


def channel_argmax(probs: np.ndarray) -> np.ndarray:
    """``probs.argmax(0)`` as uint8 for ``[C, *spatial]`` (first maximum on ties), by C - 1 element-wise
    comparisons: numpy's and torch's argmax over a short leading axis are ~50x slower on large volumes."""
    best = np.array(probs[0], copy=True)
    classes = np.zeros(best.shape, np.uint8)
    for c in range(1, probs.shape[0]):
        better = probs[c] > best
        classes[better] = c
        np.maximum(best, probs[c], out=best)
    return classes


@dataclass
class GridTransform:
    """How one case goes from its stored (native) grid to the working grid and back.

    Attributes:
        native_shape / native_axcodes / native_spacing: the files' grid.
        transform: nibabel orientation transform native -> working axes (``[3, 2]``).
        working_shape / working_axcodes / working_spacing: the grid the network works on (before
            cropping).
        note: why the orientation was not fully applied (2-D oblique stacks), else ``None``.
    """

    native_shape: tuple[int, int, int]
    native_axcodes: tuple[str, str, str]
    native_spacing: tuple[float, float, float]
    transform: np.ndarray
    working_shape: tuple[int, int, int]
    working_axcodes: tuple[str, str, str]
    working_spacing: tuple[float, float, float]
    note: str | None = None

    @property
    def reoriented(self) -> bool:
        return not np.array_equal(self.transform, [[0, 1], [1, 1], [2, 1]])

    @property
    def oriented_shape(self) -> tuple[int, int, int]:
        shape = [0, 0, 0]
        for axis, (new_axis, _) in enumerate(self.transform):
            shape[int(new_axis)] = self.native_shape[axis]
        return tuple(shape)  # type: ignore[return-value]

    @property
    def resampled(self) -> bool:
        return self.working_shape != self.oriented_shape

    @property
    def identity(self) -> bool:
        return not (self.reoriented or self.resampled)

    @property
    def voxel_volume_ratio(self) -> float:
        """Working voxel volume / native voxel volume (converts voxel-count thresholds)."""
        return float(np.prod(self.working_spacing) / np.prod(self.native_spacing))

    # ------------------------------------------------------------------ arrays
    def image_to_working(self, image: np.ndarray) -> np.ndarray:
        """``[M, *native]`` float -> ``[M, *working]`` (reorient, then linear resampling per sequence).

        Each sequence's zero background stays where nearest-neighbour resampling puts it: linear
        interpolation would otherwise spread non-zero values one voxel into it (a looser brain box
        and brain mask than at the training spacing).
        """
        out = _apply(image, self.transform, lead=1)
        if self.resampled:
            support = np.stack([_nearest(ch != 0, self.working_shape) for ch in out])
            out = _linear(out, self.working_shape) * support
        return out

    def label_to_working(self, label: np.ndarray) -> np.ndarray:
        """``[*native]`` integer classes -> ``[*working]`` (nearest neighbour)."""
        out = _apply(label, self.transform, lead=0)
        return _nearest(out, self.working_shape) if self.resampled else out

    def probabilities_to_native(self, probs: np.ndarray) -> np.ndarray:
        """``[C, *working]`` probabilities -> ``[C, *native]`` (linear resampling, then reorientation back)."""
        if self.resampled:
            probs = _linear(probs, self.oriented_shape)
        return _apply(probs, _inverse(self.transform), lead=1)

    def classes_to_native(self, probs: np.ndarray) -> np.ndarray:
        """``[C, *working]`` probabilities -> ``[*native]`` uint8 argmax on the native grid.

        The same as ``probabilities_to_native(probs).argmax(0)`` (the argmax is per voxel, so it is
        taken before the exact reorientation, on a uint8 map instead of C float volumes).
        """
        native = _linear(probs, self.oriented_shape) if self.resampled else np.asarray(probs)
        return _apply(channel_argmax(native), _inverse(self.transform), lead=0)

    # ------------------------------------------------------------------ records
    def to_dict(self) -> dict[str, Any]:
        return {
            "native": {"orientation": "".join(self.native_axcodes), "spacing": list(self.native_spacing),
                       "shape": list(self.native_shape)},
            "working": {"orientation": "".join(self.working_axcodes), "spacing": list(self.working_spacing),
                        "shape": list(self.working_shape)},
            "transform": self.transform.astype(int).tolist(), "reoriented": self.reoriented,
            "resampled": self.resampled, "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GridTransform":
        n, w = data["native"], data["working"]
        return cls(tuple(n["shape"]), tuple(n["orientation"]), tuple(n["spacing"]),  # type: ignore[arg-type]
                   np.asarray(data["transform"], float), tuple(w["shape"]), tuple(w["orientation"]),  # type: ignore[arg-type]
                   tuple(w["spacing"]), data.get("note"))  # type: ignore[arg-type]


def plan_grid(affine: np.ndarray, shape: Sequence[int], geometry: Geometry | None,
              rtol: float = RESAMPLE_RTOL, case_id: str | None = None) -> GridTransform:
    """The :class:`GridTransform` that brings a case stored with ``affine`` / ``shape`` to ``geometry``.

    ``geometry=None`` (a model without a recorded geometry): the identity. With ``case_id``, a
    2-D stack whose orientation cannot be matched is reported in a warning naming the case.
    """
    shape = tuple(int(s) for s in shape[:3])
    codes, spacing = axis_codes(affine), voxel_sizes(affine)
    identity = np.array([[0, 1], [1, 1], [2, 1]], float)
    if geometry is None:
        return GridTransform(shape, codes, spacing, identity, shape, codes, spacing)  # type: ignore[arg-type]
    transform, note = _orientation_transform(affine, geometry.axcodes, geometry.spatial_dims)
    if note and case_id is not None:
        warn(f"case {case_id}: {note}")
    oriented_shape, oriented_spacing = [0, 0, 0], [0.0, 0.0, 0.0]
    for axis, (new_axis, _) in enumerate(transform):
        oriented_shape[int(new_axis)], oriented_spacing[int(new_axis)] = shape[axis], spacing[axis]
    working_shape, working_spacing = list(oriented_shape), list(oriented_spacing)
    for axis, target in enumerate(geometry.spacing):
        if target is None or abs(oriented_spacing[axis] / target - 1) <= rtol:
            continue
        working_shape[axis] = max(1, round(oriented_shape[axis] * oriented_spacing[axis] / target))
        working_spacing[axis] = oriented_shape[axis] * oriented_spacing[axis] / working_shape[axis]
    working_codes = ["", "", ""]
    for axis, (new_axis, flip) in enumerate(transform):
        working_codes[int(new_axis)] = codes[axis] if flip > 0 else _opposite(codes[axis])
    return GridTransform(shape, codes, spacing, transform, tuple(working_shape),  # type: ignore[arg-type]
                         tuple(working_codes), tuple(working_spacing), note)  # type: ignore[arg-type]


def training_geometry(affines: Sequence[np.ndarray], spatial_dims: int = 3, orientation: str | None = None,
                      spacing: Sequence[float | None] | None = None) -> Geometry:
    """The geometry of a training set (nnU-Net style): shared axis codes, median voxel size.

    Args:
        affines: ``[4, 4]`` affine of each training case (its reference image).
        spatial_dims: 3, or 2 for slice-wise models (the slice axis keeps each case's spacing).
        orientation: axis codes to use (e.g. ``"RAS"``); default: the codes most cases have
            (ties: the first case's), so a homogeneous dataset is never reoriented.
        spacing: target voxel size per axis (mm; 2 values or a ``None`` third for 2-D); default: the
            per-axis median over the cases, measured after reorientation.
    """
    if not affines:
        raise DataError("no training case to derive the training geometry from")
    counts = Counter(axis_codes(a) for a in affines)
    codes = parse_orientation(orientation) if orientation else max(counts, key=lambda c: counts[c])
    if spacing is not None:
        target = [None if s is None else float(s) for s in spacing]
        if spatial_dims == 2 and len(target) == 2:
            target.append(None)
        if len(target) != 3 or any(s is not None and s <= 0 for s in target):
            raise ConfigError(f"target spacing {list(spacing)}: give 3 positive values (2 for a 2-D dataset)")
        if spatial_dims == 2:
            target[2] = None
        return Geometry(codes, tuple(target), spatial_dims)  # type: ignore[arg-type]
    per_case = []
    for affine in affines:
        transform, _ = _orientation_transform(affine, codes, spatial_dims)
        sizes, oriented = voxel_sizes(affine), [0.0, 0.0, 0.0]
        for axis, (new_axis, _) in enumerate(transform):
            oriented[int(new_axis)] = sizes[axis]
        per_case.append(oriented)
    median = [float(np.median([c[a] for c in per_case])) for a in range(3)]
    target = [round(m, 6) for m in median]
    if spatial_dims == 2:
        target[2] = None  # type: ignore[call-overload]
    return Geometry(codes, tuple(target), spatial_dims)  # type: ignore[arg-type]


def reference_affine(path) -> tuple[np.ndarray, tuple[int, ...]]:
    """Affine and 3-D shape of an image file, from its header only (no voxel data read)."""
    img = nib.load(str(path))
    return np.asarray(img.affine), tuple(int(s) for s in img.shape[:3])
