"""Read and validate one case: every problem is a :class:`CaseError` naming the file.

Checks (in this order): the case has at least one sequence; each file exists and is a readable
NIfTI (truncated / corrupt files are caught here, not deep inside torch); images are 3D;
shapes agree across the case's files; affines agree within a tolerance (``affine_atol``,
default 1e-4 mm: tools routinely disagree at the 1e-6 level); no NaN/Inf voxel; no all-zero
sequence; label values belong to the dataset's label map.

Arrays keep the stored voxel order (no reorientation), so a prediction written with the
reference image's affine and header lands exactly on the input grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np

from medmodal.data.volumes.layouts import Case
from medmodal.data.volumes.spec import DatasetSpec, get_spec

DEFAULT_AFFINE_ATOL = 1e-4


class CaseError(ValueError):
    """A case's files are unusable; the message names the file and the problem."""


@dataclass
class LoadedCase:
    """A validated case in memory.

    Attributes:
        case_id: identifier.
        image: ``[M, X, Y, Z]`` float32, canonical sequence order; zeros for missing sequences.
        present: ``[M]`` bool, True where the sequence was on disk.
        label: ``[X, Y, Z]`` uint8 internal class indices, or ``None``.
        affine: ``[4, 4]`` affine of the reference (first present) image.
        header: NIfTI header of the reference image (for writing predictions).
        reference: path of the reference image.
        spacing: voxel size in mm, ``(sx, sy, sz)``.
    """

    case_id: str
    image: np.ndarray
    present: np.ndarray
    label: np.ndarray | None
    affine: np.ndarray
    header: nib.Nifti1Header
    reference: Path
    spacing: tuple[float, float, float]


def read_nifti(path: Path) -> nib.Nifti1Image:
    """Load a NIfTI image fully (so truncation shows now); raise :class:`CaseError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CaseError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as err:  # nibabel raises many types for corrupt / truncated files
        raise CaseError(f"{path}: cannot read NIfTI ({type(err).__name__}: {err})") from None
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise CaseError(f"{path}: expected a 3D image, got shape {tuple(data.shape)}")
    return nib.Nifti1Image(data, img.affine, img.header)


def _check_finite(path: Path, data: np.ndarray) -> None:
    if np.issubdtype(data.dtype, np.floating):
        bad = ~np.isfinite(data)
        if bad.any():
            raise CaseError(f"{path}: {int(bad.sum())} voxels are NaN or Inf")


def _check_geometry(path: Path, img: nib.Nifti1Image, ref_path: Path, ref: nib.Nifti1Image, atol: float) -> None:
    if img.shape != ref.shape:
        raise CaseError(f"{path}: shape {img.shape} differs from {ref_path.name} {ref.shape}")
    diff = np.abs(img.affine - ref.affine)
    if diff.max() > atol:
        spacing, ref_spacing = np.asarray(img.header.get_zooms()[:3]), np.asarray(ref.header.get_zooms()[:3])
        what = "voxel spacing" if not np.allclose(spacing, ref_spacing, atol=atol) else "affine (orientation/origin)"
        raise CaseError(
            f"{path}: {what} differs from {ref_path.name} by up to {diff.max():.3g} "
            f"(tolerance {atol:g}; spacing {tuple(np.round(spacing, 4))} vs {tuple(np.round(ref_spacing, 4))})"
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


def load_case(case: Case, spec: DatasetSpec, affine_atol: float = DEFAULT_AFFINE_ATOL,
              with_label: bool = True) -> LoadedCase:
    """Read and validate ``case`` (see module docstring for the checks).

    ``spec`` gives the sequence order; the label convention is the case's own
    (``case.source_labels``, e.g. BraTS 2023 ET = 3) mapped onto ``spec``'s classes.
    """
    if not case.images:
        expected = ", ".join(spec.modalities)
        raise CaseError(f"case {case.case_id}: no sequence file found (expected any of {expected})")
    unknown = set(case.images) - set(spec.modalities)
    if unknown:
        raise CaseError(f"case {case.case_id}: sequences {sorted(unknown)} are not part of {spec.name}")
    order = [m for m in spec.modalities if m in case.images]
    ref_path = case.images[order[0]]
    ref = read_nifti(ref_path)
    image = np.zeros((spec.num_modalities, *ref.shape), np.float32)
    for name in order:
        path = case.images[name]
        img = ref if path == ref_path else read_nifti(path)
        _check_geometry(path, img, ref_path, ref, affine_atol)
        data = np.asanyarray(img.dataobj)
        _check_finite(path, data)
        if not data.any():
            raise CaseError(f"{path}: sequence is empty (all voxels are zero)")
        image[spec.modality_index(name)] = data
    label = None
    if with_label and case.label is not None:
        label = _read_label(case, spec, ref_path, ref, affine_atol)
    spacing = tuple(float(z) for z in ref.header.get_zooms()[:3])
    present = np.array(case.present(spec.modalities), bool)
    return LoadedCase(case.case_id, image, present, label, ref.affine, ref.header, ref_path, spacing)


def _read_label(case: Case, spec: DatasetSpec, ref_path: Path, ref: nib.Nifti1Image, atol: float) -> np.ndarray:
    path = case.label
    img = read_nifti(path)
    _check_geometry(path, img, ref_path, ref, atol)
    data = np.asanyarray(img.dataobj)
    _check_finite(path, data)
    file_spec = label_spec_for(case, spec)
    check_label_values(path, data, file_spec)
    return file_spec.encode_labels(data)


def label_spec_for(case: Case, spec: DatasetSpec) -> DatasetSpec:
    """The spec whose ``source_labels`` describe this case's files (same classes as ``spec``)."""
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
