"""Synthetic twins of the 3-D segmentation layouts: learnable volumes written as the real files, so that the real
readers (:mod:`medmodal.data.seg3d.layouts`) and loader read them back.

Content (every draw a function of ``(seed, layout, case)``):

* left atrium LGE-MRI (``la2018`` twins): an "atrium" - an ellipsoid whose radius is modulated by a few smooth
  bumps, with two to four small "pulmonary vein" balls on its surface - of label 1, brighter than a textured
  background, with a smooth bias field and noise; the image is z-scored over the volume (UA-MT's preprocessing);
* head CT in Hounsfield units (``bhsd`` twins): air -1000 HU, a thin scalp at about 20 HU, a skull shell at about
  1000 HU, brain at 30-40 HU with smooth texture, two CSF ventricles at about 8 HU, and one to three haemorrhages at
  60-80 HU labelled with their BHSD type (1 EDH and 5 SDH against the inner skull, 4 SAH a thin layer near it,
  2 IPH in the parenchyma, 3 IVH in a ventricle);
* a generic MR-like volume (``nifti_folder`` twins): an "organ" blob (label 1) holding a brighter "lesion"
  (label 2) in a textured background, int16 scanner units.

Volumes are ``size`` voxels (default 48 x 48 x 24), in the file's axis order. Files, names and list files are the
layouts' own:

* ``la2018``: ``2018LA_Seg_Training Set/<ID>/mri_norm2.h5`` (``image`` float32, ``label`` uint8, gzip), ids of 20
  upper-case letters and digits like the release's, ``train.list`` (80 %, at least one) and ``test.list`` (the
  rest, at least one) beside the folder; no spacing stored (as the release);
* ``bhsd``: ``images/ID_<hex>.nii.gz`` (int16 HU) + ``labels/ID_<hex>.nii.gz`` (uint8 0..5), spacing
  :data:`BHSD_SPACING` (0.5 x 0.5 x 5 mm) with a radiological affine (x and y flipped, as converted DICOM), plus
  ``unlabelled`` images in ``images/`` without a label; no split file (BHSD has none);
* ``nifti_folder``: ``imagesTr/case_<nnn>_0000.nii.gz`` + ``labelsTr/case_<nnn>.nii.gz`` (75 %, at least one),
  ``imagesTs/`` + ``labelsTs/`` (the rest, at least one), ``unlabelled/case_<nnn>_0000.nii.gz``, a
  ``dataset.json`` naming the labels (background, organ, lesion) and the channel (``MRI``); spacing
  :data:`NIFTI_SPACING`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from medmodal.data.seg2d.synthetic import check_twin, twin_root
from medmodal.data.seg3d.la2018 import LA_FILE, LA_TRAINING_DIRS
from medmodal.errors import ConfigError

__all__ = ["SYNTH_LAYOUTS", "DEFAULT_SIZE", "BHSD_SPACING", "NIFTI_SPACING", "write_synthetic", "synth_atrium",
           "synth_head_ct", "synth_organ"]

SYNTH_LAYOUTS = ("la2018", "bhsd", "nifti_folder")
#: Default volume size (file axis order).
DEFAULT_SIZE = (48, 48, 24)
#: ``(fewest, most)`` labelled cases per layout (``la2018`` and ``nifti_folder`` need one training and one test case).
LIMITS = {"la2018": (2, 100), "bhsd": (1, 500), "nifti_folder": (2, 500)}
#: Voxel size of the ``bhsd`` twins in mm (in-plane 0.5 mm, 5 mm slices, as thick-slice head CT).
BHSD_SPACING = (0.5, 0.5, 5.0)
#: Voxel size of the ``nifti_folder`` twins in mm.
NIFTI_SPACING = (1.0, 1.0, 2.0)
_ID_CHARS = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


# --------------------------------------------------------------------------- content
def _grid(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre coordinates in [-1, 1] along each axis."""
    axes = [(np.arange(s, dtype=np.float32) + 0.5) / s * 2 - 1 for s in shape]
    return np.meshgrid(*axes, indexing="ij")


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Smooth noise of unit standard deviation (Gaussian-filtered white noise, ``sigma`` in voxels)."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return noise / max(float(noise.std()), 1e-6)


def _blob(x: np.ndarray, y: np.ndarray, z: np.ndarray, centre: Sequence[float], radii: Sequence[float],
          rng: np.random.Generator, bumps: float) -> np.ndarray:
    """An ellipsoid whose radius is modulated by smooth bumps of relative height ``bumps``."""
    u, v, w = (x - centre[0]) / radii[0], (y - centre[1]) / radii[1], (z - centre[2]) / radii[2]
    d = np.sqrt(u * u + v * v + w * w) + 1e-6
    theta, phi = np.arctan2(v, u), np.arccos(np.clip(w / d, -1, 1))
    f = 1.0
    for k, m in ((2, 1), (3, 2), (1, 3)):
        f = f + bumps * rng.uniform(0.4, 1.0) * np.sin(k * theta + rng.uniform(0, 6.3)) * np.sin(
            m * phi + rng.uniform(0, 6.3))
    return d <= f


def synth_atrium(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One left-atrium LGE-MRI volume (module docstring).

    Args:
        rng: the random generator (consumed).
        shape: the volume's shape.

    Returns:
        ``(image, label)``: float32 z-scored image and uint8 label (0 / 1), both ``shape``.
    """
    x, y, z = _grid(shape)
    centre = rng.uniform(-0.1, 0.1, 3)
    radii = np.array([0.42, 0.36, 0.5]) * rng.uniform(0.85, 1.15, 3)
    atrium = _blob(x, y, z, centre, radii, rng, 0.12)
    for _ in range(int(rng.integers(2, 5))):  # pulmonary veins: small balls on the surface
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        c = centre + direction * radii * 0.95
        r = rng.uniform(0.1, 0.16)
        atrium |= ((x - c[0]) ** 2 + (y - c[1]) ** 2 + ((z - c[2]) * 0.8) ** 2) <= r * r
    bias = 1 + 0.15 * _smooth(rng, shape, max(shape) / 4)
    image = np.where(atrium, 0.75, 0.3) + 0.06 * _smooth(rng, shape, 1.5) + rng.normal(0, 0.05, shape)
    image = image * bias
    image = (image - image.mean()) / image.std()
    return image.astype(np.float32), atrium.astype(np.uint8)


def synth_head_ct(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One non-contrast head CT in Hounsfield units with BHSD haemorrhage labels (module docstring).

    Args:
        rng: the random generator (consumed).
        shape: ``(x, y, slice)``.

    Returns:
        ``(hu, label)``: int16 HU and uint8 labels 0..5 (at least one haemorrhage voxel), both ``shape``.
    """
    x, y, z = _grid(shape)
    ax, ay, az = 0.82 * rng.uniform(0.95, 1.05), 0.92 * rng.uniform(0.95, 1.05), 1.25
    r = np.sqrt((x / ax) ** 2 + (y / ay) ** 2 + (z / az) ** 2)
    head, skull_out, brain = r <= 1.0, r <= 0.95, r <= 0.84
    hu = np.full(shape, -1000.0, np.float32)
    hu[head] = 20.0
    hu[skull_out] = 1000.0 + 150 * rng.standard_normal(int(skull_out.sum()))
    texture = _smooth(rng, shape, 2.0)
    hu[brain] = (35 + 4 * texture + rng.normal(0, 3, shape))[brain]
    ventricles = np.zeros(shape, bool)
    for side in (-1, 1):
        c = (side * 0.14, rng.uniform(-0.1, 0.05), 0.1)
        ventricles |= ((x - c[0]) / 0.1) ** 2 + ((y - c[1]) / 0.3) ** 2 + ((z - c[2]) / 0.5) ** 2 <= 1
    ventricles &= brain
    hu[ventricles] = (8 + rng.normal(0, 3, shape))[ventricles]
    label = np.zeros(shape, np.uint8)
    for kind in rng.choice(np.arange(1, 6), size=int(rng.integers(1, 4)), replace=False):
        angle, height = rng.uniform(0, 2 * np.pi), rng.uniform(-0.4, 0.4)
        outward = np.array([np.cos(angle) * ax, np.sin(angle) * ay, height])
        if kind in (1, 5):  # epidural / subdural: against the inner skull
            c, radii = outward * 0.78, (0.22, 0.22, 0.35)
            region = brain & (r >= 0.68)
        elif kind == 4:  # subarachnoid: a thin layer near the surface
            c, radii = outward * 0.74, (0.3, 0.3, 0.45)
            region = brain & (r >= 0.72)
        elif kind == 3:  # intraventricular: in a ventricle
            c, radii = np.array([rng.choice([-0.14, 0.14]), 0.0, 0.1]), (0.12, 0.2, 0.4)
            region = ventricles
        else:  # intraparenchymal
            c, radii = outward * rng.uniform(0.25, 0.45), (0.15, 0.15, 0.3)
            region = brain & ~ventricles
        blob = _blob(x, y, z, c, radii, rng, 0.15) & region
        label[blob] = kind
        hu[blob] = (rng.uniform(60, 72) + rng.normal(0, 3, shape))[blob]
    if not label.any():  # a haemorrhage too small for the grid: one parenchymal blob in the middle
        blob = ((x / 0.2) ** 2 + (y / 0.2) ** 2 + (z / 0.4) ** 2 <= 1) & brain & ~ventricles
        label[blob], hu[blob] = 2, 68.0
    return np.rint(hu).astype(np.int16), label


def synth_organ(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One generic MR-like volume: an organ (1) holding a lesion (2) (module docstring).

    Args:
        rng: the random generator (consumed).
        shape: the volume's shape.

    Returns:
        ``(image, label)``: int16 scanner values and uint8 labels 0..2, both ``shape``.
    """
    x, y, z = _grid(shape)
    centre = rng.uniform(-0.15, 0.15, 3)
    radii = np.array([0.5, 0.4, 0.55]) * rng.uniform(0.85, 1.15, 3)
    organ = _blob(x, y, z, centre, radii, rng, 0.1)
    lesion_centre = centre + rng.uniform(-0.15, 0.15, 3) * radii
    lesion = _blob(x, y, z, lesion_centre, radii * rng.uniform(0.3, 0.45), rng, 0.1) & organ
    label = organ.astype(np.uint8)
    label[lesion] = 2
    levels = np.array([120.0, 420.0, 680.0]) * rng.uniform(0.9, 1.1)
    image = levels[label] + 25 * _smooth(rng, shape, 1.5) + rng.normal(0, 15, shape)
    image = image * (1 + 0.1 * _smooth(rng, shape, max(shape) / 4))
    return np.clip(np.rint(image), 0, 4000).astype(np.int16), label


# --------------------------------------------------------------------------- writers
def _rng(seed: int, layout: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SYNTH_LAYOUTS.index(layout) + 101, index])


def _save_nifti(path: Path, array: np.ndarray, spacing: tuple[float, float, float], flip: bool = False) -> None:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    signs = (-1.0, -1.0, 1.0) if flip else (1.0, 1.0, 1.0)
    affine = np.diag([*(s * d for s, d in zip(signs, spacing)), 1.0])
    affine[:3, 3] = [-s * d * (n - 1) / 2 for s, d, n in zip(signs, spacing, array.shape)]  # centred on the origin
    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm")
    nib.save(image, str(path))


def _write_list(path: Path, names: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")


def _write_la2018(root: Path, n: int, shape: tuple[int, int, int], seed: int, unlabelled: int) -> None:
    import h5py

    ids_rng = _rng(seed, "la2018", 0)
    ids = list(dict.fromkeys("".join(_ID_CHARS[ids_rng.integers(0, len(_ID_CHARS), 20)]) for _ in range(n)))
    train = min(max(1, round(0.8 * n)), n - 1)
    data = root / LA_TRAINING_DIRS[0]
    for i, case in enumerate(ids):
        image, label = synth_atrium(_rng(seed, "la2018", i + 1), shape)
        (data / case).mkdir(parents=True, exist_ok=True)
        with h5py.File(data / case / LA_FILE, "w") as h5:
            h5.create_dataset("image", data=image, compression="gzip")
            h5.create_dataset("label", data=label, compression="gzip")
    _write_list(root / "train.list", ids[:train])
    _write_list(root / "test.list", ids[train:])


def _write_bhsd(root: Path, n: int, shape: tuple[int, int, int], seed: int, unlabelled: int) -> None:
    seen: set[str] = set()
    for i in range(n + unlabelled):
        rng = _rng(seed, "bhsd", i + 1)
        case = f"ID_{int(rng.integers(0, 16 ** 8)):08x}"
        while case in seen:
            case = f"ID_{int(rng.integers(0, 16 ** 8)):08x}"
        seen.add(case)
        hu, label = synth_head_ct(rng, shape)
        _save_nifti(root / "images" / f"{case}.nii.gz", hu, BHSD_SPACING, flip=True)
        if i < n:
            _save_nifti(root / "labels" / f"{case}.nii.gz", label, BHSD_SPACING, flip=True)


def _write_nifti_folder(root: Path, n: int, shape: tuple[int, int, int], seed: int, unlabelled: int) -> None:
    test = min(max(1, round(0.25 * n)), n - 1)
    for i in range(n + unlabelled):
        image, label = synth_organ(_rng(seed, "nifti_folder", i + 1), shape)
        case = f"case_{i + 1:03d}"
        if i >= n:
            _save_nifti(root / "unlabelled" / f"{case}_0000.nii.gz", image, NIFTI_SPACING)
            continue
        images, labels = ("imagesTs", "labelsTs") if i >= n - test else ("imagesTr", "labelsTr")
        _save_nifti(root / images / f"{case}_0000.nii.gz", image, NIFTI_SPACING)
        _save_nifti(root / labels / f"{case}.nii.gz", label, NIFTI_SPACING)
    description = {"name": "synthetic organ", "channel_names": {"0": "MRI"},
                   "labels": {"background": 0, "organ": 1, "lesion": 2}, "numTraining": n - test,
                   "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(description, indent=1), encoding="utf-8")


_WRITERS: dict[str, Callable[[Path, int, tuple[int, int, int], int, int], None]] = {
    "la2018": _write_la2018, "bhsd": _write_bhsd, "nifti_folder": _write_nifti_folder}


def write_synthetic(out: str | Path, layout: str, n: int = 8, size: int | Sequence[int] = DEFAULT_SIZE, seed: int = 0,
                    unlabelled: int = 2) -> Path:
    """Write a synthetic twin of ``layout`` under ``out`` (module docstring) and return ``out``.

    Args:
        out: the folder to write into (created; files already there are overwritten, others kept).
        layout: one of :data:`SYNTH_LAYOUTS`.
        n: labelled volumes (``la2018``: 2-100, split 80 / 20 by the list files; ``bhsd``: 1-500; ``nifti_folder``:
            2-500, 75 % ``imagesTr``, the rest ``imagesTs``).
        size: the volume shape ``(a, b, c)`` in file axis order, or one edge ``s`` for ``(s, s, s // 2)``; every
            axis at least 8 voxels.
        seed: random seed (at least 0); the same seed writes the same volumes, and two layouts never share content.
        unlabelled: images without a label (``bhsd``: in ``images/``; ``nifti_folder``: in ``unlabelled/``); not
            used by ``la2018`` (its unlabelled volumes are the training ids beyond the labelled budget).

    Raises:
        ConfigError: an unknown layout, ``n`` outside the layout's range, a size below 8 voxels, a negative seed or
            ``unlabelled``.
    """
    check_twin(layout, n, SYNTH_LAYOUTS, LIMITS, "3-D segmentation", "labelled volumes")
    shape = (int(size), int(size), int(size) // 2) if np.isscalar(size) else tuple(int(s) for s in size)
    if len(shape) != 3 or min(shape) < 8:
        raise ConfigError(f"synthetic volume size must be 3 edges of at least 8 voxels, got {size}")
    root = twin_root(out, seed=seed, unlabelled=unlabelled)
    _WRITERS[layout](root, int(n), shape, int(seed), int(unlabelled))
    return root
