"""Single files of new patients for 2-D prediction: NIfTI / HDF5 / NPZ stacks and 2-D pictures, with the
intensity rule of the data set a model was trained on, and label maps written back with the input's geometry.

Intensity rules (``intensity`` in a 2-D model bundle, :data:`INTENSITIES`):

* ``ct_window``: CT in Hounsfield units clipped to [-125, 275] and scaled to [0, 1] (TransUNet's Synapse
  preprocessing); applied to NIfTI input only: TransUNet's ``.npz`` / ``.npy.h5`` files hold it already.
* ``minmax``: ``(x - min) / (max - min)`` over the stack (SSL4MIS's ACDC preprocessing); NIfTI only, as above.
* ``rgb255``: 8-bit pictures divided by 255 (polyps).
* ``percentile``: clipped to the 10th..99th percentiles of the array and scaled to [0, 1] (ERANet's knee-MRI
  slices; :func:`medmodal.data.seg2d.common.percentile_scale`, which the ``meniscus`` reader applies per slice).
* ``as_stored``: the stored values.

Stacks are ``[S, C, H, W]`` with slices along the third NIfTI array axis (``data[:, :, k]``), the first
axis of an HDF5 / NPZ ``image`` of three dimensions; a 2-D array is a stack of one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
from PIL import Image

from medmodal.data.images import decode_image
from medmodal.errors import DamagedFileError, DataError, ImageReadError
from medmodal.io import atomic_path

__all__ = ["INTENSITIES", "PICTURE_SUFFIXES", "STACK_SUFFIXES", "InputStack", "normalise", "read_input",
           "write_label", "input_suffix", "output_name", "CT_WINDOW"]

INTENSITIES = ("ct_window", "minmax", "rgb255", "percentile", "as_stored")
#: TransUNet's abdominal CT window (HU)
CT_WINDOW = (-125.0, 275.0)
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".ppm", ".pgm")
STACK_SUFFIXES = (".nii.gz", ".nii", ".npy.h5", ".h5", ".hdf5", ".npz")


def input_suffix(path: Path) -> str | None:
    """The recognised suffix of ``path`` (``.nii.gz`` before ``.gz``), else ``None``."""
    name = path.name.lower()
    for suffix in (*STACK_SUFFIXES, *PICTURE_SUFFIXES):
        if name.endswith(suffix):
            return suffix
    return None


def normalise(stack: np.ndarray, intensity: str) -> np.ndarray:
    """``stack`` float32 with ``intensity`` applied (module docstring)."""
    x = np.asarray(stack, np.float32)
    if intensity == "ct_window":
        low, high = CT_WINDOW
        return (np.clip(x, low, high) - low) / (high - low)
    if intensity == "minmax":
        low, high = float(x.min()), float(x.max())
        return (x - low) / (high - low) if high > low else np.zeros_like(x)
    if intensity == "rgb255":
        return x / 255.0
    if intensity == "percentile":
        from medmodal.data.seg2d.common import percentile_scale

        return percentile_scale(x)
    return x


@dataclass
class InputStack:
    """A file read for prediction.

    Attributes:
        path: the file. kind: ``nifti`` | ``h5`` | ``npz`` | ``picture``.
        image: float32 ``[S, C, H, W]`` normalised as the model expects.
        native_shape: the shape of the stored array (a label map is written back in it).
        affine / header: NIfTI geometry (``None`` otherwise). notes: what was converted (e.g. RGB to grey).
    """

    path: Path
    kind: str
    image: np.ndarray
    native_shape: tuple[int, ...]
    affine: np.ndarray | None = None
    header: object = None
    notes: tuple[str, ...] = ()


def _stack_from_array(data: np.ndarray, path: Path, axis_last: bool) -> np.ndarray:
    """``[S, 1, H, W]`` from a 2-D or 3-D array (a 4-D NIfTI with one volume too)."""
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        return data[None, None]
    if data.ndim != 3:
        raise DataError(f"{path}: expected a 2-D image or a 3-D stack, got an array of shape {tuple(data.shape)}")
    return (np.moveaxis(data, -1, 0) if axis_last else data)[:, None]


def read_input(path: str | Path, channels: int, intensity: str) -> InputStack:
    """Read one input file for a model of ``channels`` input channels (module docstring).

    Raises:
        DataError / DamagedFileError / ImageReadError: unreadable file, no ``image`` array, wrong rank, a stack
            for a three-channel (photograph) model (one line naming the file).
    """
    path = Path(path)
    suffix = input_suffix(path)
    if suffix in PICTURE_SUFFIXES:
        notes = ()
        colour = "rgb" if channels == 3 else "grey"
        image = decode_image(path, colour=colour, error=ImageReadError)
        if channels == 1 and _is_colour(path):
            notes = ("a colour picture read as grey (the model has one input channel)",)
        mode = _mode(path)
        if channels == 3 and mode in ("L", "LA", "I", "I;16", "F", "1", "P") and not _is_colour(path):
            notes += (f"a grey picture (mode {mode}) repeated on the three input channels",)
        if mode in ("RGBA", "LA", "PA"):
            notes += ("its alpha channel is not used",)
        arr = image.transpose(2, 0, 1)[None] if image.ndim == 3 else image[None, None]
        if channels not in (1, 3):
            raise DataError(f"{path}: a picture for a model of {channels} input channels")
        return InputStack(path, "picture", normalise(arr, "rgb255" if intensity != "as_stored" else intensity),
                          tuple(image.shape[:2]), notes=notes)
    if channels != 1:
        raise DataError(f"{path}: a {suffix} stack, but the model takes {channels}-channel pictures (PNG, JPEG, TIFF)")
    if suffix in (".nii", ".nii.gz"):
        try:
            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj).astype(np.float32)
        except Exception as err:  # nibabel raises many types for damaged files
            raise DamagedFileError(f"{path}: unreadable NIfTI ({type(err).__name__}: {str(err).splitlines()[0][:120]})") from None
        stack = _stack_from_array(data, path, axis_last=True)
        return InputStack(path, "nifti", normalise(stack, intensity), tuple(data.shape[:3] if data.ndim >= 3 else data.shape),
                          affine=img.affine, header=img.header)
    if suffix in (".npy.h5", ".h5", ".hdf5"):
        try:
            with h5py.File(path, "r") as fh:
                if "image" not in fh:
                    raise DataError(f"{path}: no 'image' dataset (found {', '.join(fh.keys()) or 'none'})")
                data = np.asarray(fh["image"][()], np.float32)
        except OSError as err:
            raise DamagedFileError(f"{path}: unreadable HDF5 ({str(err).splitlines()[0][:120]})") from None
        return InputStack(path, "h5", _stack_from_array(data, path, axis_last=False), tuple(data.shape))
    if suffix == ".npz":
        try:
            with np.load(path) as fh:
                if "image" not in fh:
                    raise DataError(f"{path}: no 'image' array (found {', '.join(fh.files) or 'none'})")
                data = np.asarray(fh["image"], np.float32)
        except (OSError, ValueError) as err:
            raise DamagedFileError(f"{path}: unreadable NPZ ({str(err).splitlines()[0][:120]})") from None
        return InputStack(path, "npz", _stack_from_array(data, path, axis_last=False), tuple(data.shape))
    raise DataError(f"{path}: not a NIfTI, HDF5, NPZ or picture file")


def _mode(path: Path) -> str | None:
    """The PIL mode of a picture (``None`` when PIL cannot tell, e.g. DICOM)."""
    try:
        with Image.open(path) as image:
            return image.mode
    except OSError:
        return None


def _is_colour(path: Path) -> bool:
    rgb = decode_image(path, colour="rgb", error=ImageReadError)
    return bool(np.any(rgb[..., 0] != rgb[..., 1]) or np.any(rgb[..., 1] != rgb[..., 2]))


def output_name(item: InputStack) -> str:
    """``<stem>_seg.<ext>``: NIfTI stays NIfTI (``.nii.gz``), HDF5 -> ``.h5``, NPZ -> ``.npz``, pictures -> ``.png``."""
    suffix = input_suffix(item.path) or item.path.suffix
    stem = item.path.name[: -len(suffix)] if suffix else item.path.stem
    ext = {"nifti": ".nii.gz", "h5": ".h5", "npz": ".npz", "picture": ".png"}[item.kind]
    return f"{stem}_seg{ext}"


def write_label(item: InputStack, label: np.ndarray, path: str | Path, num_classes: int) -> Path:
    """Write ``label`` (int ``[S, H, W]``) atomically in the input's geometry: NIfTI with the input's affine and
    header (uint8, slices back on the third axis); HDF5 / NPZ with a ``label`` array of the stored image's shape;
    a picture as an 8-bit PNG of class indices (a two-class model: 0 / 255, as the polyp masks)."""
    label = np.asarray(label)
    path = Path(path)
    if item.kind == "nifti":
        data = np.moveaxis(label, 0, -1) if len(item.native_shape) == 3 else label[0]
        header = item.header.copy()
        header.set_data_dtype(np.uint8)
        out = nib.Nifti1Image(data.reshape(item.native_shape).astype(np.uint8), item.affine, header)
        out.header.set_slope_inter(1, 0)
        with atomic_path(path) as tmp:
            nib.save(out, str(tmp))
        return path
    data = label.reshape(item.native_shape).astype(np.uint8)
    if item.kind == "h5":
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as fh:
                fh.create_dataset("label", data=data, compression="gzip")
        return path
    if item.kind == "npz":
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, label=data)
        return path
    picture = data * 255 if num_classes == 2 else data
    with atomic_path(path) as tmp:
        Image.fromarray(picture.astype(np.uint8)).save(tmp, format="PNG")
    return path
