"""Helpers shared by the synthetic MRI generators (:mod:`.synthetic_brats`, :mod:`.synthetic_myops`).

Both generators draw a tissue map, texture it, add a smooth bias field, then simulate a magnitude
image with Rician noise; these are the pieces they share (each generator keeps its own tissue
tables, geometry and parameter ranges). Moving them here changed no value: the synthetic volumes
and files of a given seed are byte-identical to before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np

from medmodal.io import atomic_path

__all__ = ["Axes", "TEXTURE_SCALE", "smooth_noise", "centred_affine", "draw_acquisition", "textured",
           "rician_magnitude", "save_nifti"]

Axes = tuple[np.ndarray, np.ndarray, np.ndarray]

#: feature size of the multiplicative tissue texture, in normalised units (both generators).
TEXTURE_SCALE = 0.04


def smooth_noise(rng: np.random.Generator, axes: Axes, scale: float) -> np.ndarray:
    """Smooth Gaussian random field with features about ``scale`` in size, zero mean, unit std.

    The field is a sum of isotropic Gaussian bumps (std ``scale``) on a regular lattice with
    spacing ``scale`` in normalised units, with standard-normal weights. It is evaluated
    separably (three small matrix products), so it costs O(voxels) and, for a given ``rng``
    state, does not depend on the grid resolution.

    Args:
        rng: random generator (the lattice weights are drawn from it).
        axes: per-axis normalised coordinates, lengths ``X``, ``Y``, ``Z``.
        scale: feature size in normalised units (the longest edge spans [-1, 1]).

    Returns:
        ``[X, Y, Z]`` float32.
    """
    lattice = np.arange(-1.0 - 2 * scale, 1.0 + 2 * scale + 1e-6, scale, dtype=np.float32)
    weights = rng.standard_normal((lattice.size,) * 3, dtype=np.float32)
    kernels = [np.exp(-0.5 * ((ax[:, None] - lattice[None, :]) / scale) ** 2).astype(np.float32) for ax in axes]
    field = np.tensordot(kernels[0], weights, axes=(1, 0))          # [X, L, L]
    field = np.matmul(kernels[1], field)                             # [X, Y, L]
    field = np.matmul(field, kernels[2].T)                           # [X, Y, Z]
    field -= field.mean()
    return field / max(float(field.std()), 1e-8)


def centred_affine(shape: Sequence[int], spacing: float | Sequence[float]) -> np.ndarray:
    """Diagonal ``[4, 4]`` affine with voxel size ``spacing`` (mm; one value: isotropic), grid centred
    on the world origin."""
    spacing = [float(spacing)] * len(shape) if np.isscalar(spacing) else list(spacing)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-s * (n - 1) / 2.0 for s, n in zip(spacing, shape)]
    return affine


def draw_acquisition(rng: np.random.Generator, axes: Axes, intensity: Sequence[float], bias: tuple[float, float],
                     bias_scale: float, noise: tuple[float, float], scale: tuple[float, float]) -> dict:
    """Random acquisition parameters of one sequence, drawn from ``rng`` in this order.

    Args:
        intensity: relative intensity per tissue class; each is scaled by ``U(0.95, 1.05)``.
        bias: range of the bias-field amplitude ``a``; the field is ``exp(a * smooth_noise(bias_scale))``.
        noise: range of the Rician noise level (relative to the mean clean intensity).
        scale: range of the global intensity scale, drawn log-uniformly.

    Returns:
        ``{"intensity": float32 [T], "bias": [X, Y, Z], "noise": float, "scale": float}``.
    """
    return {
        "intensity": (np.asarray(intensity) * rng.uniform(0.95, 1.05, len(intensity))).astype(np.float32),
        "bias": np.exp(rng.uniform(*bias) * smooth_noise(rng, axes, bias_scale)),
        "noise": rng.uniform(*noise),
        "scale": float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1])))),
    }


def textured(tissue: np.ndarray, intensity: np.ndarray, amplitude: Sequence[float], texture: np.ndarray) -> np.ndarray:
    """Clean image of a tissue map: ``intensity[tissue] * (1 + amplitude[tissue] * texture)``."""
    return intensity[tissue] * (1.0 + np.asarray(amplitude, np.float32)[tissue] * texture)


def rician_magnitude(clean: np.ndarray, sigma: float, scale: float, noise_rng: np.random.Generator) -> np.ndarray:
    """``|clean + sigma * (n1 + i n2)| * scale``, rounded and clipped to ``[1, int16 max]`` (float).

    ``n1`` then ``n2`` are drawn from ``noise_rng`` (standard normal, float32, the shape of ``clean``).
    """
    real = clean + sigma * noise_rng.standard_normal(clean.shape, dtype=np.float32)
    imag = sigma * noise_rng.standard_normal(clean.shape, dtype=np.float32)
    image = np.sqrt(real * real + imag * imag) * scale
    return np.clip(np.rint(image), 1, np.iinfo(np.int16).max)


def save_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    """Write ``array`` with ``affine`` (qform and sform, code 1, mm) atomically."""
    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(image, str(tmp))
