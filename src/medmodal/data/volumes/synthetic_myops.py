"""Synthetic cardiac MR in the official MyoPS 2020 layout (real NIfTI files, seconds on a CPU).

Each case is a short-axis stack of a few thick slices through the heart, imaged by the three
MyoPS sequences, with a myocardial infarct whose parts are each visible on one sequence only:
the anatomy on bSSFP (``C0``), the scar on LGE (``DE``), the edema on T2. A missing sequence
therefore really costs information (without LGE the scar is hard to tell from edema). It is a
test and demo dataset, not a substitute for real data.

Image model (all random draws from ``np.random.default_rng``; deterministic per seed):

1. **Geometry.** In-plane field of view 128 mm by default (spacing ``128 / max(size)`` mm:
   1.33 mm at 96 x 96, a cardiac crop as most MyoPS pipelines use), slices 10 mm thick without
   gap, slice 0 at the base, increasing index towards the apex. The anatomy is drawn in mm, so
   it does not depend on the grid. Diagonal affine centred on the world origin.
2. **Anatomy** per slice (depth ``d`` below the base): the LV cavity is a half-ellipsoid of
   revolution (radius 17-24 mm at the base, cavity length 65-85 mm) with a slightly
   non-circular, noisy outline; the myocardium is a ring 7-11 mm thick (thicker on one side),
   closing as a cap at the apex; the RV cavity is a crescent wrapped around the septum (an
   ellipse on the RV side minus the LV), shorter than the LV, with a thin free wall; two
   papillary muscles inside the LV cavity (labelled LV blood pool, as in MyoPS). Around the
   heart: soft tissue, patchy epicardial fat, dark lungs and the descending aorta (blood). The
   heart's axis is tilted (its centre drifts a few mm per slice) and its orientation, position
   and size are random.
3. **Infarct** in one coronary territory: an angular sector of the myocardium over a
   contiguous range of slices, extending from the endocardium outwards (subendocardial to
   transmural). The edema region (edema + scar) is the larger sector; the scar is a smaller,
   less transmural sector inside it (scar is a subset of the edema+scar region); boundaries are
   perturbed by smooth noise.
4. **Rendering** per sequence: tissue intensity (table below, jittered +-5 % per case) times a
   smooth texture, averaged over five sub-slices through the slice thickness (through-plane
   partial volume), a 0.5-pixel in-plane blur, a smooth multiplicative bias field with a
   surface-coil gradient (about +-10-25 %), Rician noise (2-5 % of the mean, 3-7 % on LGE) and a
   per-case, per-sequence global scale (log-uniform in [300, 4000]); stored as int16 >= 1.

Relative tissue intensities (before texture, bias, noise and scale):

==========  =====  =====  =====  =====  ==========  =====  =====
sequence    lung   soft   fat    blood  myocardium  edema  scar
==========  =====  =====  =====  =====  ==========  =====  =====
C0 (bSSFP)  0.05   0.40   0.95   1.00   0.30        0.36   0.30
DE (LGE)    0.03   0.30   0.60   0.55   0.08        0.16   1.25
T2          0.06   0.45   0.15   0.12   0.40        0.95   0.80
==========  =====  =====  =====  =====  ==========  =====  =====

i.e. bSSFP: bright blood, dark myocardium (pathology barely visible); LGE: nulled normal
myocardium, bright scar, intermediate blood; T2 (black-blood, fat-suppressed STIR): dark blood,
bright edema (and oedematous scar).

Labels follow MyoPS: 0 background, 500 LV blood pool, 200 LV myocardium, 600 RV blood pool,
1220 edema, 2221 scar, stored as uint16 in ``<case>_gd.nii.gz``.

Layout written by :func:`synth_myops` (the official flat one)::

    <out>/train25/myops_training_101_C0.nii.gz  ..._DE.nii.gz  ..._T2.nii.gz
    <out>/train25_myops_gd/myops_training_101_gd.nii.gz
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

from medmodal.data.volumes.spec import MYOPS2020, MYOPS_MODALITIES
from medmodal.data.volumes.synthetic_common import (TEXTURE_SCALE, centred_affine, draw_acquisition, rician_magnitude,
                                                    save_nifti, smooth_noise, textured)
from medmodal.errors import ConfigError
from medmodal.io import ensure_writable_dir

__all__ = ["MYOPS_TISSUES", "MYOPS_INTENSITY", "MYOPS_FILE_SUFFIXES", "synth_myops_case", "synth_myops",
           "default_myops_spacing"]

#: tissue classes of the internal tissue map (index = class value).
MYOPS_TISSUES = ("lung", "soft_tissue", "fat", "blood", "myocardium", "edema", "scar")
LUNG, SOFT, FAT, BLOOD, MYO, EDEMA, SCAR = range(len(MYOPS_TISSUES))

#: relative intensity per sequence (``c0`` bSSFP, ``de`` LGE, ``t2``), one entry per tissue class.
MYOPS_INTENSITY: dict[str, tuple[float, ...]] = {
    "c0": (0.05, 0.40, 0.95, 1.00, 0.30, 0.36, 0.30),
    "de": (0.03, 0.30, 0.60, 0.55, 0.08, 0.16, 1.25),
    "t2": (0.06, 0.45, 0.15, 0.12, 0.40, 0.95, 0.80),
}

#: relative amplitude of the multiplicative texture per tissue class.
TEXTURE = (0.10, 0.06, 0.08, 0.04, 0.04, 0.08, 0.10)

#: file suffix per sequence / label, as in the official data.
MYOPS_FILE_SUFFIXES = {"c0": "C0", "de": "DE", "t2": "T2", "seg": "gd"}

#: internal classes of the label map (see :data:`medmodal.data.volumes.spec.MYOPS2020`).
LV_CLASS, MYO_CLASS, RV_CLASS, EDEMA_CLASS, SCAR_CLASS = 1, 2, 3, 4, 5

FIELD_OF_VIEW_MM = 128.0
SLICE_SPACING_MM = 10.0
SUB_SLICES = 5
PARTIAL_VOLUME_SIGMA = 0.5
MIN_SIZE = 24


def default_myops_spacing(size: Sequence[int]) -> float:
    """In-plane pixel size (mm) that makes the longest edge span a 128 mm field of view."""
    return FIELD_OF_VIEW_MM / max(size)


def _as_size(size: int | Sequence[int]) -> tuple[int, int]:
    shape = (int(size),) * 2 if np.isscalar(size) else tuple(int(s) for s in size)
    if len(shape) != 2 or min(shape) < MIN_SIZE:
        raise ConfigError(f"size must be an int or 2 ints (in-plane), each >= {MIN_SIZE}; got {size!r}")
    return shape  # type: ignore[return-value]


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angle difference wrapped to ``(-pi, pi]``."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _taper(depth: np.ndarray | float, length: float) -> np.ndarray:
    """Radius factor of a half-ellipsoid of revolution with semi-axis ``length`` along the depth."""
    return np.sqrt(np.clip(1.0 - (np.asarray(depth) / length) ** 2, 0.0, 1.0))


# --------------------------------------------------------------------------- anatomy
def _heart_params(rng: np.random.Generator) -> dict:
    """Random per-case heart shape, pose and infarct (mm / radians)."""
    p: dict = {}
    p["r_endo"] = rng.uniform(17.0, 24.0)
    p["wall"] = rng.uniform(7.0, 11.0)
    p["length"] = rng.uniform(65.0, 85.0)
    p["base_offset"] = rng.uniform(0.0, 4.0)
    p["ellipticity"] = (rng.uniform(0.0, 0.08), rng.uniform(0, np.pi))
    p["wall_asym"] = (rng.uniform(0.0, 0.2), rng.uniform(-np.pi, np.pi))
    p["rv_angle"] = np.pi + rng.uniform(-0.6, 0.6)
    p["rv_size"] = (rng.uniform(0.6, 0.8), rng.uniform(1.1, 1.35))  # (along, across) / r_epi
    p["rv_length"] = rng.uniform(0.6, 0.85)  # fraction of the LV length
    p["centre"] = rng.uniform(-6.0, 6.0, 2)
    p["tilt"] = rng.uniform(-0.12, 0.12, 2)  # mm of in-plane drift per mm of depth
    p["papillary"] = [(rng.uniform(-0.4, 0.4), rng.uniform(0.4, 0.6), rng.uniform(2.5, 4.0)) for _ in range(2)]
    p["aorta"] = (rng.uniform(-0.4, 0.4), rng.uniform(12.0, 18.0), rng.uniform(9.0, 12.0))
    p["fat_width"] = rng.uniform(2.0, 4.5)
    # infarct: centre angle relative to the RV direction, widths, transmurality, slice range
    p["inf_angle"] = p["rv_angle"] + rng.uniform(-np.pi, np.pi)
    p["edema_width"] = rng.uniform(0.7, 1.4)
    p["scar_width"] = p["edema_width"] * rng.uniform(0.55, 0.85)
    p["edema_depth"] = rng.uniform(0.85, 1.0)
    p["scar_depth"] = rng.uniform(0.6, 1.0)
    return p


def _infarct_range(rng: np.random.Generator, p: dict, slices: int, slice_mm: float) -> None:
    """Depth ranges (mm) of edema and scar, each covering at least one slice centre inside the LV."""
    centres = p["base_offset"] + (np.arange(slices) + 0.5) * slice_mm
    inside = np.flatnonzero(centres < 0.8 * p["length"])
    if inside.size == 0:
        inside = np.array([0])
    k = int(rng.choice(inside))
    half_edema = rng.uniform(0.8, 2.5) * slice_mm
    half_scar = half_edema * rng.uniform(0.6, 0.95)
    shift = rng.uniform(-0.4, 0.4) * slice_mm
    p["edema_range"] = (centres[k] + shift - half_edema, centres[k] + shift + half_edema)
    p["scar_range"] = (centres[k] - half_scar, centres[k] + half_scar)


def make_heart(rng: np.random.Generator, x_mm: np.ndarray, y_mm: np.ndarray, depth: np.ndarray,
               axes: tuple[np.ndarray, np.ndarray, np.ndarray], slices: int,
               slice_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Tissue map and label of one case on the sub-slice grid.

    Args:
        x_mm, y_mm: in-plane pixel-centre coordinates (mm), lengths ``X`` and ``Y``.
        depth: depth (mm) of every sub-slice below the top of slice 0, length ``Zs``; the
            per-case gap between the base and slice 0 is added here.
        axes: normalised coordinates (for the smooth random fields), lengths ``X, Y, Zs``.
        slices, slice_mm: number and spacing of the output slices (for the infarct's range).

    Returns:
        ``(tissue, label)``: ``[X, Y, Zs]`` uint8 tissue classes (:data:`MYOPS_TISSUES`) and
        ``[X, Y, Zs]`` uint8 internal classes (0 bg, 1 LV, 2 myocardium, 3 RV, 4 edema, 5 scar).
    """
    p = _heart_params(rng)
    _infarct_range(rng, p, slices, slice_mm)
    outline = smooth_noise(rng, axes, 0.25)
    wall_noise = smooth_noise(rng, axes, 0.2)
    edge_noise = smooth_noise(rng, axes, 0.12)
    lung_field = smooth_noise(rng, axes, 0.35)
    fat_field = smooth_noise(rng, axes, 0.15)

    d = (depth + p["base_offset"])[None, None, :]
    cx = p["centre"][0] - 0.25 * (p["r_endo"] + p["wall"]) * np.cos(p["rv_angle"]) + p["tilt"][0] * d
    cy = p["centre"][1] - 0.25 * (p["r_endo"] + p["wall"]) * np.sin(p["rv_angle"]) + p["tilt"][1] * d
    dx, dy = x_mm[:, None, None] - cx, y_mm[None, :, None] - cy
    r = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx)

    e_amp, e_phase = p["ellipticity"]
    shape = 1.0 + e_amp * np.cos(2 * (theta - e_phase)) + 0.04 * outline
    r_endo = p["r_endo"] * _taper(d, p["length"]) * shape
    a_amp, a_phase = p["wall_asym"]
    wall = p["wall"] * (1.0 + a_amp * np.cos(theta - a_phase) + 0.08 * wall_noise)
    r_epi = (p["r_endo"] + p["wall"]) * _taper(d, p["length"] + p["wall"]) * shape + wall - p["wall"]
    r_epi = np.maximum(r_epi, 0.0) * (d < p["length"] + p["wall"])
    cavity = r < r_endo
    lv_epi = r < np.maximum(r_epi, r_endo + 1e-3) * (r_epi > 0)
    myocardium = lv_epi & ~cavity

    # RV: ellipse on the RV side, minus the LV; thin free wall around it
    r_epi0 = (p["r_endo"] + p["wall"]) * _taper(d, p["length"] + p["wall"])
    along, across = p["rv_size"]
    u = dx * np.cos(p["rv_angle"]) + dy * np.sin(p["rv_angle"])
    v = -dx * np.sin(p["rv_angle"]) + dy * np.cos(p["rv_angle"])
    rv_scale = _taper(d, p["rv_length"] * p["length"]) * r_epi0 + 1e-3
    rv_dist = ((u - 0.5 * rv_scale) / (along * rv_scale)) ** 2 + (v / (across * rv_scale)) ** 2
    rv_dist = rv_dist * (1.0 + 0.06 * outline)
    rv_cavity = (rv_dist < 1.0) & ~lv_epi
    rv_wall = (rv_dist < (1.0 + 3.5 / (along * rv_scale)) ** 2) & ~lv_epi & ~rv_cavity

    # papillary muscles: small myocardium-intensity blobs inside the cavity, labelled LV blood pool
    papillary = np.zeros(r.shape, bool)
    mean_endo = r_endo.mean(axis=(0, 1))
    for angle, frac, radius in p["papillary"]:
        pa = p["rv_angle"] + np.pi + angle * np.pi
        px, py = cx + frac * mean_endo * np.cos(pa), cy + frac * mean_endo * np.sin(pa)
        blob = np.hypot(x_mm[:, None, None] - px, y_mm[None, :, None] - py)
        papillary |= blob < radius * _taper(d, 0.8 * p["length"])
    papillary &= cavity

    # infarct sector, from the endocardium outwards
    transmural = np.clip((r - r_endo) / np.maximum(r_epi - r_endo, 1e-3), 0.0, 1.0)
    offset = np.abs(_wrap(theta - p["inf_angle"])) * (1.0 + 0.25 * edge_noise)

    def sector(width: float, depth_frac: float, rng_mm: tuple[float, float]) -> np.ndarray:
        lo, hi = rng_mm
        along_axis = np.clip(1.0 - ((d - 0.5 * (lo + hi)) / (0.5 * (hi - lo))) ** 2, 0.0, 1.0)
        reach = depth_frac * np.clip(1.0 - (offset / width) ** 2, 0.0, 1.0) ** 0.35 * along_axis ** 0.25
        return myocardium & (transmural <= reach) & (reach > 0.05)

    scar = sector(p["scar_width"], p["scar_depth"], p["scar_range"])
    edema = sector(p["edema_width"], p["edema_depth"], p["edema_range"]) | scar

    # surroundings: soft tissue, lungs away from the heart, epicardial fat, descending aorta
    heart = lv_epi | rv_cavity | rv_wall
    tissue = np.full(r.shape, SOFT, np.uint8)
    ao_angle, ao_gap, ao_radius = p["aorta"]
    ao_dir = p["rv_angle"] + np.pi / 2 + ao_angle
    ao_r = p["r_endo"] + p["wall"] + ao_gap + ao_radius
    aorta = np.hypot(x_mm[:, None, None] - (cx + ao_r * np.cos(ao_dir)),
                     y_mm[None, :, None] - (cy + ao_r * np.sin(ao_dir))) < ao_radius
    spacing = (float(x_mm[1] - x_mm[0]), float(y_mm[1] - y_mm[0]))
    outside = np.stack([ndimage.distance_transform_edt(~heart[..., k], sampling=spacing)
                        for k in range(r.shape[2])], axis=-1)
    lung = (outside > 10.0) & (lung_field + 0.02 * (outside - 25.0) > 0.3) & ~aorta
    fat = (outside > 0) & (outside < p["fat_width"] * (1.0 + 0.8 * fat_field)) & (fat_field > -0.6)
    tissue[lung] = LUNG
    tissue[fat] = FAT
    tissue[aorta & ~heart] = BLOOD
    tissue[cavity | rv_cavity] = BLOOD
    tissue[myocardium | rv_wall | papillary] = MYO
    tissue[edema] = EDEMA
    tissue[scar] = SCAR

    label = np.zeros(r.shape, np.uint8)
    label[cavity] = LV_CLASS
    label[rv_cavity] = RV_CLASS
    label[myocardium] = MYO_CLASS
    label[edema] = EDEMA_CLASS
    label[scar] = SCAR_CLASS
    return tissue, label


# --------------------------------------------------------------------------- rendering
def _sequence_params(rng: np.random.Generator, axes, y_norm: np.ndarray) -> dict[str, dict]:
    """Per-sequence random acquisition parameters (drawn before any voxel noise): a coil profile along
    ``y``, then :func:`~medmodal.data.volumes.synthetic_common.draw_acquisition`."""
    params = {}
    for name in MYOPS_MODALITIES:
        coil = 1.0 + rng.uniform(-0.2, 0.2) * y_norm[None, :, None]
        p = draw_acquisition(rng, axes, MYOPS_INTENSITY[name], bias=(0.05, 0.12), bias_scale=0.6,
                             noise=(0.03, 0.07) if name == "de" else (0.02, 0.05), scale=(300.0, 4000.0))
        p["bias"] = (p["bias"] * coil).astype(np.float32)
        params[name] = p
    return params


def _render(tissue: np.ndarray, texture: np.ndarray, params: dict, noise_rng: np.random.Generator,
            sub: int) -> np.ndarray:
    """One sequence: ``[X, Y, Zs]`` tissue map (``sub`` sub-slices per slice) -> ``[X, Y, Z]`` int16."""
    clean = textured(tissue, params["intensity"], TEXTURE, texture) * params["bias"]
    x, y, zs = clean.shape
    clean = clean.reshape(x, y, zs // sub, sub).mean(axis=-1)                   # through-plane partial volume
    clean = ndimage.gaussian_filter(clean, sigma=(PARTIAL_VOLUME_SIGMA, PARTIAL_VOLUME_SIGMA, 0))
    sigma = params["noise"] * float(clean.mean())
    return rician_magnitude(clean, sigma, params["scale"], noise_rng).astype(np.int16)


def synth_myops_case(size: int | Sequence[int] = (96, 96), slices: int = 6, seed: int = 0, index: int = 0,
                     spacing: float | None = None,
                     slice_spacing: float = SLICE_SPACING_MM) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Generate one case in memory.

    Args:
        size: in-plane size ``(X, Y)`` (or one int), each >= 24.
        slices: number of short-axis slices (>= 1), base first.
        seed, index: case ``index`` of the dataset with this ``seed`` (as written by :func:`synth_myops`).
        spacing: in-plane pixel size (mm); default ``128 / max(size)``.
        slice_spacing: slice thickness = spacing (mm).

    Returns:
        ``(images, label)``: sequence name (``c0, de, t2``) -> ``[X, Y, slices]`` int16, and the
        ``[X, Y, slices]`` uint8 label in *internal* classes (0 background, 1 LV blood pool,
        2 LV myocardium, 3 RV blood pool, 4 edema, 5 scar).
    """
    shape, slices, spacing = _geometry(size, slices, spacing, slice_spacing)
    anatomy_seed, noise_seed = np.random.SeedSequence([int(seed), int(index)]).spawn(2)
    rng, noise_rng = np.random.default_rng(anatomy_seed), np.random.default_rng(noise_seed)

    x_mm, y_mm = ((np.arange(n, dtype=np.float32) + 0.5 - n / 2.0) * spacing for n in shape)
    sub_offsets = (np.arange(SUB_SLICES) + 0.5) / SUB_SLICES - 0.5                 # within one slice
    depth = ((np.arange(slices)[:, None] + 0.5 + sub_offsets[None, :]).ravel() * slice_spacing).astype(np.float32)
    half = max(shape) * spacing / 2.0
    axes = (x_mm / half, y_mm / half, ((depth - depth.mean()) / half).astype(np.float32))
    tissue, label = make_heart(rng, x_mm, y_mm, depth, axes, slices, slice_spacing)
    label = label[..., SUB_SLICES // 2::SUB_SLICES]                                  # centre sub-slice
    texture = smooth_noise(rng, axes, TEXTURE_SCALE)
    params = _sequence_params(rng, axes, y_mm / half)
    images = {name: _render(tissue, texture, params[name], noise_rng, SUB_SLICES) for name in MYOPS_MODALITIES}
    return images, label


def _geometry(size, slices, spacing, slice_spacing) -> tuple[tuple[int, int], int, float]:
    """Validated ``(in-plane shape, slices, in-plane spacing)``; clear ``ValueError`` otherwise."""
    shape = _as_size(size)
    if int(slices) < 1:
        raise ConfigError(f"slices must be >= 1, got {slices}")
    spacing = default_myops_spacing(shape) if spacing is None else float(spacing)
    if not (spacing > 0 and slice_spacing > 0):
        raise ConfigError(f"spacings must be > 0 mm, got {spacing} and {slice_spacing}")
    return shape, int(slices), spacing


def synth_myops(out_dir: str | Path, num_cases: int = 8, size: int | Sequence[int] = (96, 96), slices: int = 6,
                seed: int = 0, spacing: float | None = None, slice_spacing: float = SLICE_SPACING_MM,
                images_dir: str = "train25", labels_dir: str = "train25_myops_gd",
                first_id: int = 101) -> list[str]:
    """Write ``num_cases`` synthetic cases in the official (flat) MyoPS 2020 layout.

    Files: ``<out>/<images_dir>/myops_training_<id>_{C0,DE,T2}.nii.gz`` (int16) and
    ``<out>/<labels_dir>/myops_training_<id>_gd.nii.gz`` (uint16, MyoPS label values), ids from
    ``first_id`` (101 as in the challenge). One diagonal affine per case (in-plane ``spacing``,
    ``slice_spacing`` through-plane). Case ``i`` depends only on ``(seed, i, size, slices,
    spacings)``; every file is written atomically.

    Args:
        out_dir: dataset folder (created if needed).
        num_cases: number of cases.
        size: in-plane size ``(X, Y)`` or one int (each >= 24).
        slices: slices per stack.
        seed: dataset seed.
        spacing: in-plane pixel size in mm; default ``128 / max(size)`` (1.33 mm at 96).
        slice_spacing: slice thickness / spacing in mm (default 10).
        images_dir, labels_dir: folder names (official: ``train25`` / ``train25_myops_gd``).
        first_id: number of the first case.

    Returns:
        The case ids written, in order.
    """
    if num_cases < 0:
        raise ConfigError(f"num_cases must be >= 0, got {num_cases}")
    shape, slices, spacing = _geometry(size, slices, spacing, slice_spacing)
    affine = centred_affine((*shape, slices), (spacing, spacing, float(slice_spacing)))
    root = ensure_writable_dir(out_dir)
    case_ids = []
    for index in range(num_cases):
        case_id = f"myops_training_{first_id + index}"
        images, label = synth_myops_case(shape, slices, seed, index, spacing, slice_spacing)
        for name, array in images.items():
            save_nifti(root / images_dir / f"{case_id}_{MYOPS_FILE_SUFFIXES[name]}.nii.gz", array, affine)
        gd = MYOPS2020.decode_labels(label).astype(np.uint16)
        save_nifti(root / labels_dir / f"{case_id}_{MYOPS_FILE_SUFFIXES['seg']}.nii.gz", gd, affine)
        case_ids.append(case_id)
    return case_ids
