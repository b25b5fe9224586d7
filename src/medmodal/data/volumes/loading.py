"""Read and validate one case: every problem is a :class:`CaseError` naming the file.

Checks (in this order): the case has at least one sequence; each file exists and is a readable
NIfTI (truncated / corrupt files are caught here, not deep inside torch); images are 3-D (or a
channel of a 4-D Decathlon image); shapes agree across the case's files; affines agree within a
tolerance relative to the voxel size (``affine_tolerance``, default 1e-3 of a voxel: tools
routinely disagree at the 1e-6 level, and a 1.65e-4 mm header difference on a 2.5 mm axis is
noise); no NaN/Inf voxel; no sequence holding a single value (all-zero or constant, e.g. a
failed export: its brain mask would swallow the background); label values belong to the
dataset's label map.

A constant sequence is an :class:`InvalidSequenceError`; with ``skip_invalid=True`` it is treated
as missing instead (``LoadedCase.skipped`` says which and why) and a warning names the file.

Arrays keep the stored voxel order: reorientation and resampling to a model's training geometry
happen in :mod:`medmodal.data.volumes.geometry`, and predictions are written back with the reference
image's own affine and header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np

from medmodal.errors import CaseError, InvalidSequenceError
from medmodal.data.volumes.layouts import Case
from medmodal.data.volumes.spec import DatasetSpec, get_spec, resolve_declared_labels
from medmodal.notices import warn

#: default affine tolerance, as a fraction of the smallest voxel size (1e-3: 1 micrometre at 1 mm).
DEFAULT_AFFINE_TOLERANCE = 1e-3


@dataclass
class LoadedCase:
    """A validated case in memory.

    Attributes:
        case_id: identifier.
        image: ``[M, X, Y, Z]`` float32, canonical sequence order; zeros for missing sequences.
        present: ``[M]`` bool, True where the sequence was on disk and usable.
        label: ``[X, Y, Z]`` uint8 internal class indices, or ``None``.
        affine: ``[4, 4]`` affine of the reference (first present) image.
        header: NIfTI header of the reference image (for writing predictions).
        reference: path of the reference image.
        spacing: voxel size in mm, ``(sx, sy, sz)``.
        skipped: sequence -> reason, for files treated as missing (``skip_invalid=True``).
    """

    case_id: str
    image: np.ndarray
    present: np.ndarray
    label: np.ndarray | None
    affine: np.ndarray
    header: nib.Nifti1Header
    reference: Path
    spacing: tuple[float, float, float]
    skipped: dict[str, str] = field(default_factory=dict)


def fmt_numbers(values, digits: int = 6) -> str:
    """``(1.0, 1.0, 2.5)`` -> ``"1 x 1 x 2.5"``: plain numbers for messages (no ``np.float32(...)``)."""
    return " x ".join(f"{float(v):.{digits}g}" for v in values)


def read_nifti(path: Path, channel: int | None = None, cache: dict | None = None) -> nib.Nifti1Image:
    """Load a NIfTI image fully (so truncation shows now); raise :class:`CaseError` naming the file.

    Args:
        channel: index along the 4th axis of a 4-D image (Decathlon layout); ``None``: the file
            must be 3-D (a trailing axis of length 1 is dropped).
        cache: optional dict kept by the caller, so a 4-D file is decompressed once for all its channels.
    """
    path = Path(path)
    if cache is not None and path in cache:
        img, data = cache[path]
    else:
        if not path.is_file():
            raise CaseError(f"{path}: file not found")
        try:
            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj)
        except Exception as err:  # nibabel raises many types for corrupt / truncated files
            raise CaseError(f"{path}: cannot read NIfTI ({type(err).__name__}: {err})") from None
        if cache is not None:
            cache[path] = (img, data)
    if channel is not None:
        if data.ndim != 4 or channel >= data.shape[3]:
            raise CaseError(f"{path}: expected a 4-D image with a channel {channel}, got shape {tuple(data.shape)}")
        data = np.ascontiguousarray(data[..., channel])
    elif data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise CaseError(f"{path}: expected a 3D image, got shape {tuple(data.shape)}")
    header = img.header.copy()
    header.set_data_shape(data.shape)
    return nib.Nifti1Image(data, img.affine, header)


def _check_finite(path: Path, data: np.ndarray) -> None:
    if np.issubdtype(data.dtype, np.floating):
        bad = ~np.isfinite(data)
        if bad.any():
            raise CaseError(f"{path}: {int(bad.sum())} voxels are NaN or Inf")


def check_not_constant(path: Path, data: np.ndarray) -> None:
    """Raise :class:`InvalidSequenceError` when every voxel holds the same value (all-zero included)."""
    lo, hi = data.min(), data.max()
    if hi == 0 and lo == 0:
        raise InvalidSequenceError(f"{path}: sequence is empty (all voxels are zero)")
    if lo == hi:
        raise InvalidSequenceError(f"{path}: sequence is constant (every voxel is {fmt_numbers([lo])}): not an image")


def _check_geometry(path: Path, img: nib.Nifti1Image, ref_path: Path, ref: nib.Nifti1Image, tolerance: float) -> None:
    """Same shape; affines equal within ``tolerance`` x the smallest voxel size of the reference."""
    if img.shape != ref.shape:
        shape, ref_shape = tuple(map(int, img.shape)), tuple(map(int, ref.shape))
        raise CaseError(f"{path}: shape {shape} differs from {ref_path.name} {ref_shape}")
    spacing = np.sqrt((img.affine[:3, :3] ** 2).sum(0))
    ref_spacing = np.sqrt((ref.affine[:3, :3] ** 2).sum(0))
    allowed = tolerance * float(ref_spacing.min())
    diff = float(np.abs(img.affine[:3] - ref.affine[:3]).max())
    if diff > allowed:
        what = "voxel spacing" if np.abs(spacing - ref_spacing).max() > allowed else "affine (orientation/origin)"
        raise CaseError(
            f"{path}: {what} differs from {ref_path.name} by up to {diff:.3g} mm (tolerance {allowed:.3g} mm = "
            f"{tolerance:g} of a voxel; spacing {fmt_numbers(spacing, 4)} vs {fmt_numbers(ref_spacing, 4)} mm); "
            f"raise --affine-tolerance if the files are known to be aligned"
        )


def check_label_values(path: Path, label: np.ndarray, spec: DatasetSpec) -> None:
    """Raise :class:`CaseError` if ``label`` holds non-integer values or values outside ``spec``'s map."""
    if np.issubdtype(label.dtype, np.floating) and not np.array_equal(label, np.round(label)):
        raise CaseError(f"{path}: label file holds non-integer values")
    values = np.unique(label.astype(np.int64))
    bad = sorted(set(values.tolist()) - spec.allowed_label_values())
    if bad:
        raise CaseError(
            f"{path}: label values {bad} are not in the {spec.name} label map {sorted(spec.allowed_label_values())}"
        )


def load_case(case: Case, spec: DatasetSpec, affine_tolerance: float = DEFAULT_AFFINE_TOLERANCE,
              with_label: bool = True, skip_invalid: bool = False) -> LoadedCase:
    """Read and validate ``case`` (see module docstring for the checks).

    ``spec`` gives the sequence order; the label convention is the case's own
    (``case.source_labels``, e.g. BraTS 2023 ET = 3, or the ``dataset.json`` declaration) mapped
    onto ``spec``'s classes. ``skip_invalid``: a constant / all-zero sequence is treated as missing
    (named in ``LoadedCase.skipped`` and in a warning) instead of refused; a case left without any
    usable sequence is still a :class:`CaseError`.
    """
    if not case.images:
        expected = ", ".join(spec.modalities)
        raise CaseError(f"case {case.case_id}: no sequence file found (expected any of {expected})")
    unknown = set(case.images) - set(spec.modalities)
    if unknown:
        raise CaseError(f"case {case.case_id}: sequences {sorted(unknown)} are not part of {spec.name}")
    order = [m for m in spec.modalities if m in case.images]
    ref_path = case.images[order[0]]
    files: dict = {}  # each file read once (a Decathlon 4-D image holds every sequence)
    ref = read_nifti(ref_path, case.channels.get(order[0]), files)
    image = np.zeros((spec.num_modalities, *ref.shape), np.float32)
    present = np.zeros(spec.num_modalities, bool)
    skipped: dict[str, str] = {}
    for name in order:
        path, channel = case.images[name], case.channels.get(name)
        img = ref if (path, channel) == (ref_path, case.channels.get(order[0])) else read_nifti(path, channel, files)
        where = path if channel is None else Path(f"{path} (channel {channel}: {name})")
        _check_geometry(where, img, ref_path, ref, affine_tolerance)
        data = np.asanyarray(img.dataobj)
        _check_finite(where, data)
        try:
            check_not_constant(where, data)
        except InvalidSequenceError as err:
            if not skip_invalid:
                raise
            skipped[name] = str(err).split(": ", 1)[-1]
            warn(f"{err}; {name} treated as missing (--skip-invalid-sequences)")
            continue
        image[spec.modality_index(name)] = data
        present[spec.modality_index(name)] = True
    if not present.any():
        reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise CaseError(f"case {case.case_id}: no usable sequence ({reasons})")
    label = None
    if with_label and case.label is not None:
        label = _read_label(case, spec, ref_path, ref, affine_tolerance)
    spacing = tuple(float(z) for z in ref.header.get_zooms()[:3])
    return LoadedCase(case.case_id, image, present, label, ref.affine, ref.header, ref_path, spacing, skipped)


def _read_label(case: Case, spec: DatasetSpec, ref_path: Path, ref: nib.Nifti1Image, tolerance: float) -> np.ndarray:
    path = case.label
    img = read_nifti(path)
    _check_geometry(path, img, ref_path, ref, tolerance)
    data = np.asanyarray(img.dataobj)
    _check_finite(path, data)
    file_spec = label_spec_for(case, spec)
    check_label_values(path, data, file_spec)
    return file_spec.encode_labels(data)


def label_spec_for(case: Case, spec: DatasetSpec) -> DatasetSpec:
    """The spec whose ``source_labels`` describe this case's files (same classes as ``spec``).

    A ``dataset.json`` declaration (``case.declared_labels``) wins; it must fit ``spec``'s classes
    (:class:`CaseError` otherwise).
    """
    if case.declared_labels:
        where = case.extra.get("dataset_json", "dataset.json")
        try:
            mapping = resolve_declared_labels(case.declared_labels, spec, where=where)
        except ValueError as err:
            raise CaseError(str(err)) from None
        return spec.with_source_labels(mapping, name=Path(where).name)  # "dataset.json"
    if case.source_labels == spec.name:
        return spec
    try:
        convention = get_spec(case.source_labels)
    except KeyError:
        return spec
    if convention.class_names != spec.class_names:
        return spec
    return spec.with_source_labels(convention.source_labels, name=convention.name)


def load_cases(cases: Sequence[Case], spec: DatasetSpec, **kwargs) -> list[LoadedCase]:
    return [load_case(c, spec, **kwargs) for c in cases]
