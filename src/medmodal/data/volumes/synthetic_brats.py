"""Synthetic brain-tumour MRI in the official BraTS layout (real NIfTI files, seconds on a CPU).

Each case is a skull-stripped, head-sized brain with a glioma, imaged by four sequences whose
contrasts follow the clinical picture, so that a missing sequence really costs information
(without T1ce the enhancing rim is hard to see). It is a test and demo dataset, not a
substitute for real data.

Image model (all random draws from ``np.random.default_rng``; deterministic per seed):

1. **Anatomy** (tissue map, one class per voxel). A brain ellipsoid (about 140 x 170 x 135 mm)
   with a smooth irregular boundary; white matter inside; a folded grey-matter cortex ribbon
   with CSF-filled sulci (zero crossings of a smooth random field) and an interhemispheric
   fissure; deep grey nuclei; lateral and third ventricles (CSF) with choroid plexus; a few
   thin vessels.
2. **Tumour** in either hemisphere, random position and size, built from noise-deformed
   ellipsoids: tumour core (TC) surrounded by edema; in high-grade cases the core is an
   enhancing rim (ET) around necrosis; in about a quarter of the cases (low-grade-like) the core
   is non-enhancing with, half of the time, a small enhancing focus.
3. **Rendering** per sequence: tissue intensity from the table below (each entry jittered by
   +-5 % per case) times a smooth texture (stronger inside the tumour), a 0.4-voxel Gaussian
   partial-volume blur, a smooth multiplicative bias field (about +-5-15 %), Rician noise
   (1.5-4 % of the brain mean) and a per-case, per-sequence global scale (log-uniform in
   [200, 2500], as scanners differ; medmodal's loader z-scores each sequence). Voxels outside
   the brain are exactly 0, voxels inside are >= 1, stored as int16 like real BraTS.

Relative tissue intensities (before scale, bias and noise):

=========  =====  =====  =====  ======  =====  ========  ========
sequence   CSF    GM     WM     vessel  edema  enhanc.   necrosis
=========  =====  =====  =====  ======  =====  ========  ========
FLAIR      0.25   0.82   0.68   0.75    1.45   0.90      0.85
T1         0.30   0.72   1.00   0.72    0.62   0.70      0.38
T1ce       0.32   0.75   1.00   1.40    0.66   1.65      0.40
T2         1.60   0.80   0.58   0.75    1.30   0.92      1.50
=========  =====  =====  =====  ======  =====  ========  ========

i.e. T1: WM > GM > CSF; T2: CSF > GM > WM; FLAIR: CSF suppressed, GM slightly above WM;
T1ce = T1 plus enhancing vessels/choroid plexus. Edema is bright on FLAIR and T2 and slightly
dark on T1; the enhancing rim is bright only on T1ce (near grey-matter level on T1, mild on T2
and FLAIR); necrosis (and non-enhancing core) is dark on T1/T1ce, bright on T2 and
intermediate on FLAIR.

Labels follow BraTS: 1 necrosis / non-enhancing core, 2 edema, 4 enhancing (3 with
``naming="brats2023"``), stored as uint8.

Geometry: the anatomy is drawn relative to the voxel grid, isotropically in voxel units
scaled by the longest edge (``max(size)``), so the brain fills a cube like a head fills a
240 mm field of view. ``spacing`` only sets the voxel size written in the affine; the default
``240 / max(size)`` mm makes the physical size realistic (3.75 mm at 64^3, 1 mm at 240^3). The
affine is diagonal (RAS+: axis 0 left->right, 1 posterior->anterior, 2 inferior->superior),
centred on the world origin and identical for every file of a case. Smooth random fields are
sums of Gaussian bumps on a lattice fixed in those normalised units, and voxel noise comes
from a separate generator, so a given ``(seed, case)`` gives the same anatomy and tumour at
every ``size`` (up to discretisation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

from medmodal.data.volumes.layouts import BRATS2020_SUFFIXES, BRATS2023_SUFFIXES, LABEL_KEY
from medmodal.data.volumes.spec import BRATS2020, BRATS2023, BRATS_MODALITIES
from medmodal.data.volumes.synthetic_common import (Axes, TEXTURE_SCALE, centred_affine, draw_acquisition,
                                                    rician_magnitude, save_nifti, smooth_noise, textured)
from medmodal.errors import ConfigError
from medmodal.io import ensure_writable_dir

__all__ = ["TISSUES", "INTENSITY", "smooth_noise", "synth_case", "synth_brats", "default_spacing"]

#: tissue classes of the internal tissue map (index = class value).
TISSUES = ("background", "csf", "grey_matter", "white_matter", "vessel", "edema", "enhancing", "necrosis")
BG, CSF, GM, WM, VESSEL, EDEMA, ENHANCING, NECROSIS = range(len(TISSUES))

#: relative intensity per sequence, one entry per tissue class (see the module docstring).
INTENSITY: dict[str, tuple[float, ...]] = {
    "flair": (0.0, 0.25, 0.82, 0.68, 0.75, 1.45, 0.90, 0.85),
    "t1": (0.0, 0.30, 0.72, 1.00, 0.72, 0.62, 0.70, 0.38),
    "t1ce": (0.0, 0.32, 0.75, 1.00, 1.40, 0.66, 1.65, 0.40),
    "t2": (0.0, 1.60, 0.80, 0.58, 0.75, 1.30, 0.92, 1.50),
}

#: relative amplitude of the multiplicative texture per tissue class.
TEXTURE = (0.0, 0.02, 0.04, 0.03, 0.05, 0.08, 0.12, 0.10)

#: brain semi-axes in normalised units (1 = half the longest grid edge = 120 mm by default).
BRAIN_SEMI_AXES = (0.58, 0.72, 0.56)

NAMINGS = {
    "brats2020": ("_", BRATS2020_SUFFIXES, BRATS2020),
    "brats2023": ("-", BRATS2023_SUFFIXES, BRATS2023),
}

#: Gaussian blur (voxels) standing in for partial-volume averaging over a voxel.
PARTIAL_VOLUME_SIGMA = 0.4

FIELD_OF_VIEW_MM = 240.0
MIN_SIZE = 16



# --------------------------------------------------------------------------- geometry helpers
def _as_shape(size: int | Sequence[int]) -> tuple[int, int, int]:
    shape = (int(size),) * 3 if np.isscalar(size) else tuple(int(s) for s in size)
    if len(shape) != 3 or min(shape) < MIN_SIZE:
        raise ConfigError(f"size must be an int or 3 ints, each >= {MIN_SIZE}; got {size!r}")
    return shape  # type: ignore[return-value]


def default_spacing(shape: Sequence[int]) -> float:
    """Voxel size (mm) that makes the longest grid edge span a 240 mm field of view."""
    return FIELD_OF_VIEW_MM / max(shape)


def _normalised_axes(shape: Sequence[int]) -> Axes:
    """Voxel-centre coordinates per axis, in units of half the longest edge (centre = 0).

    Returns three 1-D float32 arrays of lengths ``shape[0]``, ``shape[1]``, ``shape[2]``.
    """
    half = max(shape) / 2.0
    return tuple(((np.arange(n, dtype=np.float32) + 0.5) - n / 2.0) / half for n in shape)  # type: ignore[return-value]


def _open_grid(axes: Axes) -> Axes:
    """Broadcastable views ``[X,1,1]``, ``[1,Y,1]``, ``[1,1,Z]`` of the per-axis coordinates."""
    x, y, z = axes
    return x[:, None, None], y[None, :, None], z[None, None, :]


def _clipped_noise(rng: np.random.Generator, axes: Axes, scale: float, limit: float = 2.0) -> np.ndarray:
    """:func:`smooth_noise` clipped to ``[-limit, limit]`` (bounded shape perturbations)."""
    return np.clip(smooth_noise(rng, axes, scale), -limit, limit)


# --------------------------------------------------------------------------- anatomy
def _ellipsoid(u: Axes, centre: Sequence[float], semi: Sequence[float]) -> np.ndarray:
    """Squared normalised distance ``sum(((u - centre) / semi) ** 2)``, ``[X, Y, Z]``."""
    return sum(((ui - c) / s) ** 2 for ui, c, s in zip(u, centre, semi))


def _brain_coordinates(rng: np.random.Generator, axes: Axes) -> Axes:
    """Open-grid coordinates in *brain units* (brain ellipsoid = unit sphere), random pose/size."""
    centre = rng.uniform(-0.04, 0.04, 3)
    semi = np.asarray(BRAIN_SEMI_AXES) * rng.uniform(0.94, 1.06, 3)
    grid = _open_grid(axes)
    return tuple(((g - c) / s).astype(np.float32) for g, c, s in zip(grid, centre, semi))  # type: ignore[return-value]


def make_anatomy(rng: np.random.Generator, axes: Axes, u: Axes) -> tuple[np.ndarray, np.ndarray]:
    """Healthy tissue map of a skull-stripped brain.

    Args:
        axes: per-axis normalised coordinates (for the random fields).
        u: open-grid brain-unit coordinates from :func:`_brain_coordinates`.

    Returns:
        ``(tissue, brain)``: ``[X, Y, Z]`` uint8 tissue classes (:data:`TISSUES`) and the
        ``[X, Y, Z]`` bool brain mask.
    """
    x, y, z = u
    radius = np.sqrt(_ellipsoid(u, (0, 0, 0), (1, 1, 1)))
    radius = radius * (1.0 + 0.04 * smooth_noise(rng, axes, 0.3))          # irregular outline
    brain = (radius < 1.0) & (z > -0.85 + 0.05 * y)                            # flatter base
    tissue = np.where(brain, WM, BG).astype(np.uint8)

    # cortex: folded grey ribbon, sulci as zero crossings of a smooth field, interhemispheric fissure
    fold = smooth_noise(rng, axes, 0.07)
    sulci = smooth_noise(rng, axes, 0.1)
    cortex = (radius > 0.87 - 0.08 * fold) | ((np.abs(sulci) < 0.35) & (radius > 0.70))
    fissure_band = (z > -0.25) & (radius > 0.45)
    cortex |= (np.abs(x) < 0.07) & fissure_band
    deep_grey = sum(_ellipsoid(u, (s * 0.24, 0.0, -0.05), (0.11, 0.2, 0.12)) < 1.0 for s in (-1, 1)).astype(bool)
    tissue[brain & (cortex | deep_grey)] = GM

    csf = (radius > 0.975) | ((np.abs(sulci) < 0.10) & (radius > 0.80))
    csf |= (np.abs(x) < 0.025) & fissure_band
    # lateral ventricles: curved, AP-elongated, size varies (atrophy); thin third ventricle
    scale = rng.uniform(0.8, 1.4)
    wobble = 1.0 + 0.15 * smooth_noise(rng, axes, 0.15)
    ventricles = np.zeros(brain.shape, bool)
    for side in (-1, 1):
        bend = 0.12 + 0.25 * (y / 0.4) ** 2
        dist = ((x - side * 0.12) / (0.085 * scale)) ** 2 + (y / 0.4) ** 2 + ((z - bend) / (0.11 * scale)) ** 2
        ventricles |= dist < wobble
    ventricles |= (np.abs(x) < 0.02 * scale) & (np.abs(y) < 0.15) & (np.abs(z + 0.05) < 0.12)
    csf |= ventricles
    tissue[brain & csf] = CSF

    choroid = ventricles & (y < 0.0) & (smooth_noise(rng, axes, 0.05) > 1.0)
    n1, n2 = smooth_noise(rng, axes, 0.15), smooth_noise(rng, axes, 0.15)
    vessels = (np.abs(n1) < 0.06) & (np.abs(n2) < 0.06) & (tissue != CSF) & (radius < 0.9)
    tissue[brain & (choroid | vessels)] = VESSEL
    return tissue, brain


# --------------------------------------------------------------------------- tumour
def make_tumour(rng: np.random.Generator, axes: Axes, u: Axes, tissue: np.ndarray,
                brain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert a glioma (edema around a core; ET rim around necrosis, or a non-enhancing core).

    Args:
        axes: per-axis normalised coordinates; u: brain-unit open grid.
        tissue: ``[X, Y, Z]`` uint8 healthy tissue map (not modified); brain: ``[X, Y, Z]`` bool.

    Returns:
        ``(tissue, label)``: the tissue map with tumour classes, and the ``[X, Y, Z]`` uint8 label
        in internal classes (0 background, 1 necrosis / non-enhancing core, 2 edema, 3 enhancing).
    """
    centre = np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.5),
                       rng.uniform(-0.45, 0.45), rng.uniform(-0.3, 0.4)])
    stretch = np.exp(rng.uniform(-0.2, 0.2, 3))
    core_radius = rng.uniform(0.2, 0.36)
    edema_radius = min(core_radius * rng.uniform(1.3, 1.8), 0.75)
    low_grade = rng.random() < 0.25

    dist = np.sqrt(_ellipsoid(u, centre, stretch))
    core_shape = 0.2 * _clipped_noise(rng, axes, 0.08)                # core radius within +-40 %
    core = dist < core_radius * (1.0 + core_shape)
    core.flat[np.argmin(dist)] = True                                   # never an empty tumour
    core &= brain
    whole = core | (dist < edema_radius * (1.0 + 0.3 * _clipped_noise(rng, axes, 0.12)))
    edema = whole & ~core & brain & (tissue != CSF)

    if low_grade:
        focus_centre = centre + rng.uniform(-0.4, 0.4, 3) * core_radius * stretch
        has_focus = rng.random() < 0.5
        enhancing = core & (np.sqrt(_ellipsoid(u, focus_centre, stretch)) < 0.35 * core_radius) & has_focus
    else:
        # the necrosis follows the core's outline, so the rim is irregular but rarely broken
        necrosis_radius = core_radius * rng.uniform(0.5, 0.8)
        necrotic = dist < necrosis_radius * (1.0 + core_shape + 0.12 * _clipped_noise(rng, axes, 0.06))
        enhancing = core & ~necrotic
    necrosis = core & ~enhancing

    tissue = tissue.copy()
    label = np.zeros(tissue.shape, np.uint8)
    for mask, cls, lab in ((edema, EDEMA, 2), (necrosis, NECROSIS, 1), (enhancing, ENHANCING, 3)):
        tissue[mask] = cls
        label[mask] = lab
    return tissue, label


# --------------------------------------------------------------------------- rendering
def _sequence_params(rng: np.random.Generator, axes: Axes) -> dict[str, dict]:
    """Per-sequence random acquisition parameters (drawn before any voxel noise)."""
    return {name: draw_acquisition(rng, axes, INTENSITY[name], bias=(0.05, 0.15), bias_scale=0.5,
                                   noise=(0.015, 0.04), scale=(200.0, 2500.0)) for name in BRATS_MODALITIES}


def render_sequence(tissue: np.ndarray, brain: np.ndarray, texture: np.ndarray, params: dict,
                    noise_rng: np.random.Generator) -> np.ndarray:
    """One MR sequence from the tissue map.

    Args:
        tissue: ``[X, Y, Z]`` uint8 tissue classes; brain: ``[X, Y, Z]`` bool.
        texture: ``[X, Y, Z]`` float32 unit-std smooth field (shared by the sequences).
        params: one entry of :func:`_sequence_params`.
        noise_rng: generator for the voxel-wise Rician noise.

    Returns:
        ``[X, Y, Z]`` int16, 0 outside the brain and >= 1 inside.
    """
    clean = textured(tissue, params["intensity"], TEXTURE, texture)
    clean = ndimage.gaussian_filter(clean, sigma=PARTIAL_VOLUME_SIGMA) * params["bias"]
    sigma = params["noise"] * float(clean[brain].mean())
    return np.where(brain, rician_magnitude(clean, sigma, params["scale"], noise_rng), 0).astype(np.int16)


def synth_case(size: int | Sequence[int] = 64, seed: int = 0,
               index: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Generate one case in memory.

    Args:
        size: edge length, or ``(X, Y, Z)``.
        seed, index: case ``index`` of the dataset with this ``seed`` (as written by
            :func:`synth_brats`).

    Returns:
        ``(images, label)``: sequence name (``flair, t1, t1ce, t2``) -> ``[X, Y, Z]`` int16, and
        the ``[X, Y, Z]`` uint8 label in *internal* classes (0 background, 1 necrosis /
        non-enhancing core, 2 edema, 3 enhancing).
    """
    shape = _as_shape(size)
    anatomy_seed, noise_seed = np.random.SeedSequence([int(seed), int(index)]).spawn(2)
    rng, noise_rng = np.random.default_rng(anatomy_seed), np.random.default_rng(noise_seed)
    axes = _normalised_axes(shape)
    u = _brain_coordinates(rng, axes)
    tissue, brain = make_anatomy(rng, axes, u)
    tissue, label = make_tumour(rng, axes, u, tissue, brain)
    texture = smooth_noise(rng, axes, TEXTURE_SCALE)
    params = _sequence_params(rng, axes)
    images = {name: render_sequence(tissue, brain, texture, params[name], noise_rng) for name in BRATS_MODALITIES}
    return images, label


# --------------------------------------------------------------------------- writing
def synth_brats(out_dir: str | Path, num_cases: int = 8, size: int | Sequence[int] = 64, seed: int = 0,
                naming: str = "brats2020", spacing: float | None = None) -> list[Path]:
    """Write ``num_cases`` synthetic cases in the official BraTS layout; returns the case folders.

    ``naming="brats2020"``: ``<out>/SynBraTS_000/SynBraTS_000_{flair,t1,t1ce,t2,seg}.nii.gz``,
    labels {0, 1, 2, 4}. ``naming="brats2023"``: ``<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz``, labels
    {0, 1, 2, 3}. Images int16, label uint8, one diagonal affine per case (see module docstring).
    Case ``i`` depends only on ``(seed, i, size)``: the first cases of a larger dataset are the
    same. Every file is written atomically.

    Args:
        out_dir: dataset folder (created if needed).
        num_cases: number of cases.
        size: edge length, or ``(X, Y, Z)`` (each >= 16).
        seed: dataset seed.
        naming: ``"brats2020"`` or ``"brats2023"``.
        spacing: voxel size in mm written in the affine; default ``240 / max(size)``.
    """
    if naming not in NAMINGS:
        raise ConfigError(f"unknown naming {naming!r}; known: {', '.join(NAMINGS)}")
    if num_cases < 0:
        raise ConfigError(f"num_cases must be >= 0, got {num_cases}")
    shape = _as_shape(size)
    spacing = default_spacing(shape) if spacing is None else float(spacing)
    if not spacing > 0:
        raise ConfigError(f"spacing must be > 0 mm, got {spacing}")
    separator, suffixes, spec = NAMINGS[naming]
    affine = centred_affine(shape, spacing)
    root = ensure_writable_dir(out_dir)

    folders = []
    for index in range(num_cases):
        case_id = f"SynBraTS_{index:03d}"
        folder = root / case_id
        images, label = synth_case(shape, seed, index)
        arrays = {**images, LABEL_KEY: spec.decode_labels(label).astype(np.uint8)}
        for key, array in arrays.items():
            save_nifti(folder / f"{case_id}{separator}{suffixes[key]}.nii.gz", array, affine)
        folders.append(folder)
    return folders
