"""A case of :mod:`medmodal.data.seg2d` as arrays: images ``[S, C, H, W]`` in [0, 1], labels ``[S, H, W]``.

Formats and normalisation (every image ends in [0, 1], every label as class indices of the set's classes):

* NPZ slices (TransUNet's ``train_npz``) and HDF5 files (TransUNet's ``test_vol_h5``, SSL4MIS's ACDC): the
  ``image`` is stored already scaled to [0, 1] (TransUNet: CT clipped to [-125, 275] HU and scaled;
  SSL4MIS ``acdc_data_processing.py``: min-max per volume) and is used as stored; values outside [0, 1] by more
  than 0.001 are refused (another preprocessing), the rest clipped. Slices stack along ``S`` in the case's
  slice order. No spacing or affine (the formats have none).
* NIfTI (BTCV, the ACDC challenge): slices are taken along the third array axis, slice ``k`` being
  ``array[:, :, k]`` (so ``H`` is the first array axis, ``W`` the second), and the spacing is the header's zooms
  ``(z, x, y)`` as ``(slice, row, column)`` in mm. TransUNet's own NPZ / HDF5 files may be transposed relative
  to this; the NIfTI array order is kept so that predictions are written back with the same affine (returned).
  Synapse: clipped to [-125, 275] HU and scaled to [0, 1] (TransUNet's preprocessing), labels mapped from BTCV's
  13 values to TransUNet's 8 classes (:data:`~medmodal.data.seg2d.synapse.BTCV_TO_SYNAPSE`). ACDC: min-max to
  [0, 1] per volume (SSL4MIS's preprocessing); labels are the challenge's values.
* Photographs (CVC-ClinicDB, Kvasir-SEG): RGB / 255, ``S = 1``, decoded by
  :func:`medmodal.data.images.decode_image`. Masks: CVC-ClinicDB any channel > 127; Kvasir-SEG grey level > 127
  (JPEG masks carry artefacts around 0 and 255).
* ``folder2d`` pictures: grey (``C = 1``) or RGB as the set's channels, / 255, ``S = 1``; masks as stored
  (:func:`medmodal.data.seg2d.folder2d.mask_values`: class indices; in a two-class set a mask of 0 / 255 is read as
  0 / 1; JPEG masks 0 / 1 by grey level > 127).
* ``.npy`` slices (``meniscus``, kind ``npy``): the image ``[H, W]`` (singleton axes, e.g. ERANet's ``[1, H, W]``,
  squeezed), clipped to its 10th..99th percentiles and scaled to [0, 1]
  (:func:`~medmodal.data.seg2d.common.percentile_scale`, ERANet's ``histogram_normalize``), ``S = 1``; the label a
  class-value map ``[H, W]`` or a one-hot ``[K, H, W]`` / ``[H, W, K]`` of the set's ``K`` classes (argmax; every
  pixel exactly one 1).

A case without a label (``has_label`` false: an unlabelled case of a semi-supervised pool, or an image kept
without its mask) loads with ``label=None``.

Errors are one line naming the file: a missing ``image`` / ``label`` array (:class:`~medmodal.errors.DataError`),
label values outside the classes (naming the values), an image and a label of different shapes (naming both
files), slices of different sizes, an unreadable file (:class:`~medmodal.errors.DamagedFileError`, never a
library traceback).
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from medmodal.data.images import decode_image, read_image_size
from medmodal.data.seg2d.common import (NIFTI_SUFFIXES, Seg2DCase, Seg2DSet, first_line, h5_shapes, label_ints,
                                        load_nifti, nifti_array, nifti_shape, npz_shapes, percentile_scale)
from medmodal.data.seg2d.synapse import BTCV_LABELS, BTCV_LUT, HU_WINDOW
from medmodal.errors import DamagedFileError, DataError, ImageReadError

__all__ = ["CaseArrays", "load_case", "load_label", "case_shape", "MASK_THRESHOLD", "RANGE_TOLERANCE"]

#: A mask pixel above this (0..255) is polyp.
MASK_THRESHOLD = 127
#: How far outside [0, 1] a stored HDF5 / NPZ image may go (rounding) before it is refused.
RANGE_TOLERANCE = 1e-3
#: Mask rule per layout: ``any`` channel above the threshold, or the ``grey`` level (ITU-R 601 luma).
_MASK_RULE = {"cvc_clinicdb": "any", "kvasir_seg": "grey"}


@dataclass
class CaseArrays:
    """One case as arrays.

    Attributes:
        image: float32 ``[S, C, H, W]`` in [0, 1] (``S = 1`` for a photograph; ``C`` = the set's channels).
        label: int64 ``[S, H, W]`` class indices of the set's classes, or ``None`` without a label.
        spacing: ``(slice, row, column)`` in mm from a NIfTI header, else ``None``.
        affine: the 4 x 4 NIfTI affine of a NIfTI input (to write predictions back), else ``None``.
    """

    image: np.ndarray
    label: Optional[np.ndarray]
    spacing: Optional[tuple[float, float, float]]
    affine: Optional[np.ndarray]


def _format(case: Seg2DCase) -> str:
    if case.kind == "image":
        return "photo"
    name = case.image[0].name.lower()
    if case.kind == "npy" or name.endswith(".npy"):
        return "npy"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith((".h5", ".hdf5")):
        return "h5"
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    raise DataError(f"{case.image[0]}: not an .npz, .h5, .nii.gz or image file")


# --------------------------------------------------------------------------- file access
def _h5_array(path: Path, key: str) -> np.ndarray:
    import h5py

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    missing = False
    try:
        with h5py.File(path, "r") as h5:
            if key in h5 and isinstance(h5[key], h5py.Dataset):
                return h5[key][()]
            missing = True
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as err:
        raise DamagedFileError(f"{path}: cannot read {key!r} ({first_line(err)})") from None
    assert missing
    raise DataError(f"{path}: no {key!r} dataset")


def _npz_array(path: Path, key: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if not zipfile.is_zipfile(path):
        raise DamagedFileError(f"{path}: not an .npz archive")
    missing = False
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key in archive.files:
                return np.asarray(archive[key])
            missing = True
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DamagedFileError(f"{path}: cannot read {key!r} ({first_line(err)})") from None
    assert missing
    raise DataError(f"{path}: no {key!r} array")


def _npy_array(path: Path, header_only: bool = False) -> np.ndarray:
    """A ``.npy`` file's array (``header_only``: memory-mapped, for its shape)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return np.load(path, mmap_mode="r" if header_only else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DamagedFileError(f"{path}: not a readable .npy file ({first_line(err)})") from None


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without its singleton axes, kept 2-D (a 1 x W slice stays ``(1, W)``)."""
    kept = tuple(s for s in shape if s != 1)
    return kept if len(kept) >= 2 else tuple(shape[-2:]) if len(shape) >= 2 else kept


def _npy_image(path: Path) -> np.ndarray:
    """A ``.npy`` slice ``[H, W]`` scaled from its 10th..99th percentiles to [0, 1] (module docstring)."""
    array = _npy_array(path)
    if array.dtype.kind not in "iufb":
        raise DataError(f"{path}: image of type {array.dtype} is not numeric")
    shape = _squeezed(array.shape)
    if len(shape) != 2:
        raise DataError(f"{path}: expected a 2-D image slice ([H, W] or [1, H, W]), got shape {tuple(array.shape)}")
    image = np.asarray(array, np.float32).reshape(shape)
    if not np.isfinite(image).all():
        raise DataError(f"{path}: image holds NaN or infinite values")
    return percentile_scale(image)


def _npy_label(dataset: Seg2DSet, path: Path) -> np.ndarray:
    """A ``.npy`` label as int64 ``[H, W]`` class indices: a class-value map or a one-hot of the set's classes."""
    array = np.asarray(_npy_array(path))
    count = len(dataset.classes)
    shape = _squeezed(array.shape)
    if len(shape) == 2:
        return _label_values(dataset, array.reshape(shape), path)
    if len(shape) == 3 and count in (shape[0], shape[-1]):
        hot = array.reshape(shape)
        hot = hot if shape[0] == count else np.moveaxis(hot, -1, 0)
        if hot.dtype.kind not in "iufb" or not np.isin(hot, (0, 1)).all() or (hot.sum(0) != 1).any():
            raise DataError(f"{path}: a {count}-channel label that is not one-hot (every pixel exactly one 1)")
        return np.argmax(hot, axis=0).astype(np.int64)
    raise DataError(f"{path}: label of shape {tuple(array.shape)}: expected [H, W] class values or a one-hot "
                    f"[{count}, H, W] / [H, W, {count}]")


def _nifti_data(path: Path, img, floating: bool) -> np.ndarray:
    return np.ascontiguousarray(nifti_array(path, img, floating).transpose(2, 0, 1))  # [S, H, W], slice k = [:, :, k]


# --------------------------------------------------------------------------- checks
def _unit(image: np.ndarray, path: Path) -> np.ndarray:
    """A stored [0, 1] image, checked and clipped."""
    image = np.asarray(image, np.float32)
    if not np.isfinite(image).all():
        raise DataError(f"{path}: image holds NaN or infinite values")
    lo, hi = float(image.min()), float(image.max())
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise DataError(f"{path}: image values {lo:.4g}..{hi:.4g} outside [0, 1] (this layout stores images "
                        f"already scaled to [0, 1])")
    return np.clip(image, 0.0, 1.0)


def _classes(values: np.ndarray, path: Path, count: int, what: str) -> np.ndarray:
    """Integer label values ``0..count-1`` as int64 (``what`` names the convention in a message)."""
    return label_ints(values, path, count, f"{what} 0..{count - 1}")


def _label_values(dataset: Seg2DSet, values: np.ndarray, path: Path) -> np.ndarray:
    if dataset.layout == "synapse_raw":
        return BTCV_LUT[_classes(values, path, len(BTCV_LABELS), "BTCV's labels")]
    return _classes(values, path, len(dataset.classes), f"the {len(dataset.classes)} {dataset.dataset} classes")


def _same_grid(image_shape: tuple, label_shape: tuple, image_path: Path, label_path: Path) -> None:
    if tuple(image_shape) != tuple(label_shape):
        where = f"{image_path}" if image_path == label_path else f"{image_path} and {label_path}"
        raise DataError(f"{where}: image {tuple(image_shape)} and label {tuple(label_shape)} differ in shape")


def _stack(parts: list[np.ndarray], files: tuple[Path, ...], what: str) -> np.ndarray:
    for part, path in zip(parts, files):
        if part.ndim != 2:
            raise DataError(f"{path}: expected a 2-D slice {what}, got shape {tuple(part.shape)}")
        if part.shape != parts[0].shape:
            raise DataError(f"{path}: slice {what} of shape {tuple(part.shape)}, but {files[0].name} of this case is "
                            f"{tuple(parts[0].shape)}")
    return np.stack(parts)


# --------------------------------------------------------------------------- per format
def _read(dataset: Seg2DSet, case: Seg2DCase, want_image: bool) -> CaseArrays:
    fmt = _format(case)
    want_label = case.has_label
    image = label = spacing = affine = None
    if fmt in ("npz", "h5"):
        get = _npz_array if fmt == "npz" else _h5_array
        if case.kind == "slices":  # checked file by file, so that a message names the slice
            images = [_unit(get(p, "image"), p) for p in case.image] if want_image else None
            labels = [_label_values(dataset, get(p, "label"), p) for p in case.image] if want_label else None
            if images is not None and labels is not None:
                for im, lab, p in zip(images, labels, case.image):
                    _same_grid(im.shape, lab.shape, p, p)
            image = _stack(images, case.image, "image")[:, None] if images is not None else None
            label = _stack(labels, case.image, "label") if labels is not None else None
        else:
            path = case.image[0]
            image = get(path, "image") if want_image else None
            label = get(path, "label") if want_label else None
            for arr, key in ((image, "image"), (label, "label")):
                if arr is not None and arr.ndim != 3:
                    raise DataError(f"{path}: expected a 3-D {key!r} [slices, H, W], got shape {tuple(arr.shape)}")
            if image is not None and label is not None:
                _same_grid(image.shape, label.shape, path, path)
            image = _unit(image, path)[:, None] if image is not None else None
            label = _label_values(dataset, label, path) if label is not None else None
    elif fmt == "nifti":
        img = load_nifti(case.image[0])
        shape = nifti_shape(case.image[0], img)
        zooms = img.header.get_zooms()
        spacing = (float(zooms[2]), float(zooms[0]), float(zooms[1]))
        affine = np.asarray(img.affine, np.float64)
        if want_image:
            image = _normalise_volume(dataset, _nifti_data(case.image[0], img, True), case.image[0])[:, None]
        if want_label:
            limg = load_nifti(case.label[0])
            _same_grid(shape, nifti_shape(case.label[0], limg), case.image[0], case.label[0])
            label = _label_values(dataset, _nifti_data(case.label[0], limg, False), case.label[0])
    elif fmt == "npy":
        path = case.image[0]
        image = _npy_image(path)[None, None] if want_image else None
        label = _npy_label(dataset, case.label[0])[None] if want_label else None
        if image is not None and label is not None:
            _same_grid(image.shape[2:], label.shape[1:], path, case.label[0])
    elif dataset.layout == "folder2d":
        image, label = _folder2d(dataset, case, want_image, want_label)
    else:
        path = case.image[0]
        if want_image:
            rgb = decode_image(path, "rgb", error=ImageReadError)
            image = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)
        if want_label:
            rule = _MASK_RULE.get(dataset.layout, "grey")
            mask = decode_image(case.label[0], "rgb" if rule == "any" else "grey", error=ImageReadError)
            mask = (mask > MASK_THRESHOLD).any(-1) if rule == "any" else mask > MASK_THRESHOLD
            if image is not None:
                _same_grid(image.shape[2:], mask.shape, path, case.label[0])
            label = mask[None].astype(np.int64)
    return CaseArrays(image, label, spacing, affine)


def _folder2d(dataset: Seg2DSet, case: Seg2DCase, want_image: bool, want_label: bool
              ) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """A ``folder2d`` picture ``[1, C, H, W]`` / 255 and its mask ``[1, H, W]`` (module docstring)."""
    from medmodal.data.seg2d.folder2d import is_jpeg, mask_values

    path = case.image[0]
    image = label = None
    if want_image:
        grey = len(dataset.channels) == 1
        pixels = decode_image(path, "grey" if grey else "rgb", error=ImageReadError)
        pixels = pixels[None] if grey else pixels.transpose(2, 0, 1)
        image = np.ascontiguousarray(pixels[None], dtype=np.float32) / np.float32(255)
    if want_label:
        mask_path = case.label[0]
        values = mask_values(mask_path)
        if is_jpeg(mask_path) and len(dataset.classes) != 2:
            raise DataError(f"{mask_path}: a JPEG mask (lossy: read as binary) in a set of {len(dataset.classes)} "
                            f"classes; save the masks as PNG")
        if len(dataset.classes) == 2 and values.size and int(values.max()) == 255 and \
                np.isin(values, (0, 255)).all():
            values = (values == 255).astype(np.uint8)
        label = _classes(values, mask_path, len(dataset.classes), f"the {len(dataset.classes)} classes")[None]
        if image is not None:
            _same_grid(image.shape[2:], label.shape[1:], path, mask_path)
    return image, label


def _normalise_volume(dataset: Seg2DSet, volume: np.ndarray, path: Path) -> np.ndarray:
    """NIfTI intensities -> [0, 1]: Synapse's HU window, else min-max per volume (module docstring)."""
    if not np.isfinite(volume).all():
        raise DataError(f"{path}: image holds NaN or infinite values")
    if dataset.dataset == "synapse":
        lo, hi = HU_WINDOW
        return ((np.clip(volume, lo, hi) - lo) / (hi - lo)).astype(np.float32)
    lo, hi = float(volume.min()), float(volume.max())
    if hi <= lo:
        raise DataError(f"{path}: the image is constant ({lo:g}); min-max scaling needs a range")
    return ((volume - lo) / (hi - lo)).astype(np.float32)


# --------------------------------------------------------------------------- public
def load_case(dataset: Seg2DSet, case: Seg2DCase) -> CaseArrays:
    """Load ``case`` of ``dataset`` (module docstring for formats, normalisation and orientation).

    Args:
        dataset: the set the case belongs to (its layout and data set choose the normalisation and label rule).
        case: the case.

    Returns:
        :class:`CaseArrays`: image float32 ``[S, C, H, W]`` in [0, 1]; label int64 ``[S, H, W]``, or ``None`` when
        ``case.has_label`` is false (an unlabelled case: its label files are not read); spacing and affine of NIfTI
        inputs.

    Raises:
        DataError: a missing array, label values outside the classes, image and label of different shapes, slices
            of different sizes, a constant NIfTI image (ACDC), NaN values, a ``.npy`` of the wrong rank, a label
            that is neither class values nor one-hot, a colour-coded mask.
        ImageReadError: an undecodable photograph or mask.
        DamagedFileError: an unreadable HDF5 / NPZ / NIfTI / ``.npy`` file.
    """
    arrays = _read(dataset, case, want_image=True)
    if arrays.label is not None and arrays.label.shape != (arrays.image.shape[0], *arrays.image.shape[2:]):
        raise DataError(f"{case.image[0]}: image {tuple(arrays.image.shape)} and label {tuple(arrays.label.shape)} "
                        f"differ in shape")
    return arrays


def load_label(dataset: Seg2DSet, case: Seg2DCase) -> Optional[np.ndarray]:
    """The label of ``case`` alone (int64 ``[S, H, W]`` class indices, checked as by :func:`load_case`), or
    ``None`` when it has none; the image is not read.

    Args:
        dataset: the set the case belongs to.
        case: the case.

    Raises:
        DataError: as :func:`load_case`.
        DamagedFileError: an unreadable file.
    """
    return _read(dataset, case, want_image=False).label if case.has_label else None


def case_shape(dataset: Seg2DSet, case: Seg2DCase) -> tuple[int, int, int]:
    """``(S, H, W)`` of ``case`` from the file headers (HDF5 / NPZ / NIfTI headers, image headers), without
    reading the pixels; for ``slices`` the first slice's ``H, W``.

    Args:
        dataset: the set the case belongs to.
        case: the case.

    Raises:
        DataError: a file without ``image`` or of the wrong rank.
        DamagedFileError: an unreadable file.
    """
    fmt = _format(case)
    first = case.image[0]
    if fmt == "npy":
        shape = _squeezed(_npy_array(first, header_only=True).shape)
        if len(shape) != 2:
            raise DataError(f"{first}: expected a 2-D image slice ([H, W] or [1, H, W]), got shape {shape}")
        return (1, *shape)
    if fmt == "photo":
        return (1, *read_image_size(first, error=ImageReadError))
    if fmt == "nifti":
        x, y, z = nifti_shape(first, load_nifti(first))
        return z, x, y
    shapes = npz_shapes(first) if fmt == "npz" else h5_shapes(first)
    if "image" not in shapes:
        raise DataError(f"{first}: no 'image' {'array' if fmt == 'npz' else 'dataset'}")
    shape = shapes["image"]
    want = 2 if case.kind == "slices" else 3
    if len(shape) != want:
        raise DataError(f"{first}: expected a {want}-D 'image', got shape {shape}")
    return (len(case.image), *shape) if case.kind == "slices" else shape
