"""A case of :mod:`medmodal.data.seg3d` as arrays: the image ``[C, *spatial]`` float32, the label ``[*spatial]``
uint8 class indices, and the voxel spacing in the same axis order.

Axis order: the file's. Arrays are not transposed, reoriented or resampled, so the image, the label and the spacing
always agree axis by axis, and a prediction in the same order can be written back with the file's own affine
(returned for NIfTI inputs):

* NIfTI (``bhsd``, ``nifti_folder``): nibabel's voxel axes ``(i, j, k)`` (an axial CT is ``(x, y, slice)``, e.g.
  ``(512, 512, 32)``); the spacing is the header's ``get_zooms()[:3]`` in mm, in the same order (e.g.
  ``(0.45, 0.45, 5.0)``). A 4-D file with one volume (``[..., 1]``) is read as 3-D; more volumes are refused.
* UA-MT's LA HDF5 (``la2018``): the stored array order, pynrrd's ``(x, y, z)`` of the challenge's files (e.g.
  ``(183, 140, 88)``, z the 88 slices). The file stores no voxel size: the spacing is ``(1, 1, 1)``, in voxels
  (:data:`~medmodal.data.seg3d.la2018.LA_SPACING`; noted in :attr:`Volume3D.notes`).

``C`` is 1 (single-modality volumes). Intensity, by the set's ``dataset``:

* ``la``: used as stored (UA-MT z-scored each volume before cropping it, so a crop's mean is not exactly 0);
* ``bhsd``: Hounsfield units clipped to the brain window [0, 80] HU (level 40, width 80) and scaled to [0, 1]
  (:data:`~medmodal.data.seg3d.bhsd.BRAIN_WINDOW`); a volume whose values look already scaled (all within
  [-2, 2]) or hold no negative value (no air: raw CT numbers?) is noted, not refused;
* ``nifti`` (and any other): clipped to the volume's 0.5 and 99.5 percentiles (:data:`PERCENTILES`), then z-scored
  over the whole volume (zero mean, unit standard deviation).

Labels: integer values checked against the classes of the file (the set's ``source_classes`` when it binarises,
else its ``classes``), then binarised (value > 0 -> 1) when the set or the ``binary`` argument asks.

Errors are one line naming the file: a missing file or array, a non-3-D volume, an image and a label of different
shapes (naming both files), label values outside the classes (naming the values), NaN / infinite voxels, a constant
image (:class:`~medmodal.errors.DataError`); an unreadable HDF5 / NIfTI file
(:class:`~medmodal.errors.DamagedFileError`, never a library traceback).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from medmodal.data.seg2d.common import first_line, h5_shapes, label_ints, load_nifti, nifti_array, nifti_shape
from medmodal.data.seg3d.bhsd import BRAIN_WINDOW
from medmodal.data.seg3d.common import Seg3DCase, Seg3DSet
from medmodal.data.seg3d.la2018 import LA_SPACING
from medmodal.errors import DamagedFileError, DataError

__all__ = ["Volume3D", "load_volume", "load_label", "volume_shape", "normalise_intensity", "PERCENTILES"]

#: The percentiles a ``nifti`` volume is clipped to before its z-score.
PERCENTILES = (0.5, 99.5)


@dataclass
class Volume3D:
    """One case as arrays (module docstring for axis order, spacing and intensity).

    Attributes:
        image: float32 ``[C, *spatial]`` (``C = 1``), spatial axes in the file's order.
        label: uint8 ``[*spatial]`` class indices of the set's classes, or ``None`` without a label.
        spacing: voxel size in mm, one value per spatial axis in the same order (``(1, 1, 1)`` voxel units for the
            LA HDF5 files, which store none).
        notes: what was noticed while loading (an unknown spacing, a binarised label, an image that does not look
            like Hounsfield units, a label whose affine differs from the image's).
        affine: the 4 x 4 NIfTI affine of the image (to write predictions back), ``None`` for HDF5.
    """

    image: np.ndarray
    label: Optional[np.ndarray]
    spacing: tuple[float, float, float]
    notes: list[str] = field(default_factory=list)
    affine: Optional[np.ndarray] = None


def _is_h5(case: Seg3DCase) -> bool:
    return case.image.name.lower().endswith((".h5", ".hdf5"))


# --------------------------------------------------------------------------- file access
def _h5_arrays(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    import h5py

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    out, missing = {}, []
    try:
        with h5py.File(path, "r") as h5:
            for key in keys:
                if key in h5 and isinstance(h5[key], h5py.Dataset):
                    out[key] = h5[key][()]
                else:
                    missing.append(key)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as err:
        raise DamagedFileError(f"{path}: not a readable HDF5 file ({first_line(err)})") from None
    if missing:
        raise DataError(f"{path}: no {missing[0]!r} dataset")
    return out


def _nifti(path: Path):
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return load_nifti(path)


# --------------------------------------------------------------------------- checks
def _same_grid(image_shape: tuple, label_shape: tuple, image_path: Path, label_path: Path) -> None:
    if tuple(image_shape) != tuple(label_shape):
        where = f"{image_path}" if image_path == label_path else f"{label_path} (image {image_path.name})"
        raise DataError(f"{where}: image {tuple(image_shape)} and label {tuple(label_shape)} differ in shape")


def _label_values(values: np.ndarray, path: Path, dataset: Seg3DSet, binary: bool) -> np.ndarray:
    """File label values -> uint8 class indices (module docstring)."""
    file_classes = dataset.source_classes or (() if dataset.binary else dataset.classes)
    count = len(file_classes) if file_classes else 256
    what = (f"the {count} {dataset.dataset} classes 0..{count - 1}" if file_classes
            else "0..255 (binarised: value > 0 is foreground)")
    ints = label_ints(values, path, count, what)
    return (ints > 0).astype(np.uint8) if binary else ints.astype(np.uint8)


def normalise_intensity(image: np.ndarray, dataset: str, path: Path) -> tuple[np.ndarray, list[str]]:
    """A 3-D image's intensities for ``dataset`` (module docstring) and the notes it raised.

    Args:
        image: the stored voxels.
        dataset: the set's ``dataset`` (``la``, ``bhsd``, ``nifti`` or another: percentile clip and z-score).
        path: the file (messages).

    Raises:
        DataError: NaN or infinite voxels, a constant image (``nifti``).
    """
    image = np.asarray(image, np.float32)
    if not np.isfinite(image).all():
        raise DataError(f"{path}: image holds NaN or infinite values")
    notes: list[str] = []
    if dataset == "la":
        return image, notes
    if dataset == "bhsd":
        lo, hi = float(image.min()), float(image.max())
        if lo >= -2 and hi <= 2:
            notes.append(f"{path}: values {lo:.3g}..{hi:.3g} look already scaled, not Hounsfield units (the brain "
                         f"window [{BRAIN_WINDOW[0]:g}, {BRAIN_WINDOW[1]:g}] HU expects HU)")
        elif lo >= 0:
            notes.append(f"{path}: no negative value (air is about -1000 HU): the stored values may be raw CT "
                         f"numbers, not Hounsfield units")
        w0, w1 = BRAIN_WINDOW
        return ((np.clip(image, w0, w1) - w0) / (w1 - w0)).astype(np.float32), notes
    lo, hi = np.percentile(image, PERCENTILES)
    clipped = np.clip(image, lo, hi)
    std = float(clipped.std())
    if hi <= lo or std <= 0:
        raise DataError(f"{path}: the image is constant between its {PERCENTILES[0]} and {PERCENTILES[1]} "
                        f"percentiles ({float(lo):g}); z-scoring needs a range")
    return ((clipped - float(clipped.mean())) / std).astype(np.float32), notes


# --------------------------------------------------------------------------- public
def _read(case: Seg3DCase, dataset: Seg3DSet, binary: Optional[bool], want_image: bool) -> Volume3D:
    binary = dataset.binary if binary is None else bool(binary)
    notes: list[str] = []
    image = label = affine = None
    if _is_h5(case):
        keys = (("image",) if want_image else ()) + (("label",) if case.has_label else ())
        arrays = _h5_arrays(case.image, keys) if keys else {}
        for key, arr in arrays.items():
            if arr.ndim != 3:
                raise DataError(f"{case.image}: expected a 3-D {key!r}, got shape {tuple(arr.shape)}")
        if "image" in arrays and "label" in arrays:
            _same_grid(arrays["image"].shape, arrays["label"].shape, case.image, case.image)
        if "image" in arrays:
            image, more = normalise_intensity(arrays["image"], dataset.dataset, case.image)
            notes += more
        if "label" in arrays:
            label = _label_values(arrays["label"], case.image, dataset, binary)
        spacing = LA_SPACING
        notes.append(f"{case.image}: no voxel size stored; spacing (1, 1, 1) in voxels")
    else:
        img = _nifti(case.image)
        shape = nifti_shape(case.image, img)
        spacing = tuple(float(z) for z in img.header.get_zooms()[:3])
        affine = np.asarray(img.affine, np.float64)
        if want_image:
            image, more = normalise_intensity(nifti_array(case.image, img, True), dataset.dataset, case.image)
            notes += more
        if case.has_label:
            if case.label is None:
                raise DataError(f"{case.image}: the case has a label but no label file")
            limg = _nifti(case.label)
            _same_grid(shape, nifti_shape(case.label, limg), case.image, case.label)
            label = _label_values(nifti_array(case.label, limg, False), case.label, dataset, binary)
            allowed = 1e-3 * max(min(spacing), 1e-6)
            if float(np.abs(np.asarray(limg.affine) - affine).max()) > allowed:
                notes.append(f"{case.label}: affine differs from {case.image.name}'s (same grid assumed)")
    if label is not None and binary != dataset.binary:
        notes.append(f"{case.label or case.image}: " + ("label binarised (value > 0 -> 1), unlike the set" if binary
                                                         else "label in the file's classes, not binarised as the set"))
    image = image[None] if image is not None else None
    return Volume3D(image, label, spacing, notes, affine)


def load_volume(case: Seg3DCase, dataset_set: Seg3DSet, *, binary: Optional[bool] = None) -> Volume3D:
    """Load ``case`` of ``dataset_set`` (module docstring for axis order, spacing, intensity and labels).

    Args:
        case: the case.
        dataset_set: the set it belongs to (its ``dataset`` chooses the intensity normalisation, its classes and
            ``binary`` the label rule).
        binary: binarise the label (value > 0 -> 1); ``None``: as the set says (``dataset_set.binary``).
            ``False`` on a binarised set gives the file's values (``dataset_set.source_classes``).

    Returns:
        :class:`Volume3D`: image float32 ``[1, *spatial]``, label uint8 ``[*spatial]`` or ``None`` when
        ``case.has_label`` is false, spacing (mm; voxels for LA), notes, affine (NIfTI).

    Raises:
        DataError: a missing file or array, a non-3-D volume, image and label of different shapes, label values
            outside the classes, NaN values, a constant image (``nifti``).
        DamagedFileError: an unreadable HDF5 / NIfTI file.
    """
    return _read(case, dataset_set, binary, want_image=True)


def load_label(case: Seg3DCase, dataset_set: Seg3DSet, *, binary: Optional[bool] = None) -> Optional[np.ndarray]:
    """The label of ``case`` alone (uint8 ``[*spatial]``, checked as by :func:`load_volume`), or ``None`` when it
    has none; the image is not read (its shape is, from the header, to check the label's).

    Raises:
        DataError: as :func:`load_volume`.
        DamagedFileError: an unreadable file.
    """
    if not case.has_label:
        return None
    label = _read(case, dataset_set, binary, want_image=False).label
    shape = volume_shape(case, dataset_set)
    _same_grid(shape, label.shape, case.image, case.label or case.image)
    return label


def volume_shape(case: Seg3DCase, dataset_set: Seg3DSet) -> tuple[int, int, int]:
    """The spatial shape of ``case``'s image from the file header (no voxel read), in the file's axis order.

    Raises:
        DataError: a file without ``image`` or not 3-D.
        DamagedFileError: an unreadable file.
    """
    if _is_h5(case):
        if not case.image.is_file():
            raise DataError(f"{case.image}: file not found")
        shapes = h5_shapes(case.image)
        if "image" not in shapes:
            raise DataError(f"{case.image}: no 'image' dataset")
        if len(shapes["image"]) != 3:
            raise DataError(f"{case.image}: expected a 3-D 'image', got shape {shapes['image']}")
        return tuple(int(s) for s in shapes["image"])
    return nifti_shape(case.image, _nifti(case.image))
