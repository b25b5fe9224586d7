"""Synthetic twins of the 2-D segmentation layouts: learnable images written as the real files, so that the
real readers (:mod:`medmodal.data.seg2d.layouts`) read them back.

Content (every draw a function of ``(seed, layout, case)``):

* abdomen CT (Synapse twins): a body ellipse of soft tissue with a spine, and ellipse "organs" (liver, stomach,
  spleen, kidneys, pancreas, gallbladder, aorta; also BTCV's inferior vena cava and esophagus, background in
  TransUNet's classes), each with its own intensity, smooth texture and noise; each organ has its own extent
  along the slices, so it grows and shrinks through the volume;
* cardiac cine MR (ACDC twins): a bright left-ventricle cavity inside a dark myocardial ring, a right-ventricle
  crescent beside it, shrinking from base to apex (no RV at the apex); the end-systolic frame has a smaller
  cavity and a thicker wall than the end-diastolic one;
* colonoscopy (polyp twins): a textured pinkish mucosa with a darker rim (the endoscope's vignetting) and one
  round or oval polyp of a different colour and coarser texture, with a specular highlight;
* knee MRI (meniscus twin): a coronal slice through the knee joint: soft tissue, the two femoral condyles above
  and the tibia below (bright-ish marrow), a thin bright tibial-cartilage band on each side of the tibial plateau
  (2 lateral on the image left, 4 medial on the right) and a dark wedge-shaped meniscus at the outer end of each
  side of the joint space (1 lateral, 3 medial), pointing inwards; three slices per knee, their menisci of
  different widths;
* pictures (folder2d twin): grey textured fields with one to three bright discs (class 1, ``disc``) and dark
  squares (class 2, ``square``).

Volumes have 4-8 slices of ``size x size`` pixels. Files, names and list files are the layouts' own:

* ``synapse``: ``train_npz/case<nnnn>_slice<nnn>.npz`` (float32 ``image`` in [0, 1], float32 ``label`` 0..8),
  ``test_vol_h5/case<nnnn>.npy.h5``, ``lists/lists_Synapse/train.txt`` + ``test_vol.txt``; about 60 % of the
  cases train (as slices), 40 % test (volumes), at least one each; case ids are TransUNet's (train ids for
  training cases, test ids for test cases), so at most 30 cases;
* ``synapse_raw``: ``img/img<nnnn>.nii.gz`` (int16 HU, air -1000) + ``label/label<nnnn>.nii.gz`` (BTCV values),
  spacing 0.8 x 0.8 x 3 mm, the same ids as ``synapse`` (so the reader's TransUNet split applies);
* ``acdc_h5``: ``data/patient<nnn>_frame<mm>.h5`` volumes of every patient, ``data/slices/..._slice_<k>.h5``
  (k from 1, as the released copies) for the training patients, ``train_slices.list``, ``train.list``,
  ``val.list``, ``test.list``; patients split 70 / 10 / 20 % (at least one validation and one test patient, so
  two patients make no training patient), numbered from SSL4MIS's lists so that the ``acdc`` reader's split
  agrees; at most 100 patients;
* ``acdc``: ``training/patient<nnn>/`` with ``patient<nnn>_frame01.nii.gz`` (ED), ``_frame<ES>.nii.gz``, their
  ``_gt`` files, a small ``patient<nnn>_4d.nii.gz`` and ``Info.cfg``; int16 intensities, spacing
  1.5 x 1.5 x 10 mm;
* ``cvc_clinicdb``: ``Original/<n>.tif`` (RGB TIFF) + ``Ground Truth/<n>.tif`` (0 / 255);
* ``kvasir_seg``: ``images/<id>.jpg`` + ``masks/<id>.jpg`` (JPEG, as released) + ``kavsir_bboxes.json``, ids of
  25 random characters like Kvasir-SEG's;
* ``meniscus``: ``n`` knees (subjects ``9000001`` ...) of three slices each, ``images/img_<subject>_<k>.npy``
  (float32 ``[1, H, W]`` scanner-like values, as ERANet's files) and ``labels/lab_<subject>_<k>.npy`` (odd subjects:
  uint8 class values ``[H, W]``; even subjects: a 5-channel uint8 one-hot ``[5, H, W]``: both forms the reader
  accepts), listed without a header (``image,label`` rows, paths relative to the root) in ERANet's
  ``train_lb.csv``, ``val.csv``, ``test.csv`` and ``train_unlb.csv`` (image paths only; no label file is written
  for these knees); knees split 40 / 10 / 20 % labelled train / val / test and 30 % unlabelled (at least one
  unlabelled and one labelled training knee; a list with no knee is not written);
* ``folder2d``: ``images/sample_<nnn>.png`` (8-bit grey) + ``masks/sample_<nnn>.png`` (values 0 / 1 / 2),
  ``unlabelled/sample_<nnn>.png`` (30 %, at least one; at least one labelled) and ``classes.txt``
  (``background``, ``disc``, ``square``); no ``splits.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from medmodal.data.seg2d.acdc import SSL4MIS_TEST_PATIENTS, SSL4MIS_VAL_PATIENTS
from medmodal.data.seg2d.synapse import BTCV_LUT, HU_WINDOW, TRANSUNET_TEST_CASES, TRANSUNET_TRAIN_CASES
from medmodal.errors import ConfigError

__all__ = ["SYNTH_LAYOUTS", "write_synthetic", "split_counts", "synth_abdomen", "synth_heart", "synth_polyp",
           "synth_knee", "synth_shapes", "KNEE_SLICES", "FOLDER2D_TWIN_CLASSES"]

SYNTH_LAYOUTS = ("synapse", "synapse_raw", "acdc_h5", "acdc", "cvc_clinicdb", "kvasir_seg", "meniscus", "folder2d")
#: ``(fewest, most)`` cases per layout (Synapse: TransUNet's 30 scans; ACDC: the 100 training patients; the fewest
#: give one case to each split that must not be empty: Synapse train and test, ACDC val and test).
LIMITS = {"synapse": (2, 30), "synapse_raw": (2, 30), "acdc_h5": (2, 100), "acdc": (2, 100),
          "cvc_clinicdb": (1, 1000), "kvasir_seg": (1, 1000), "meniscus": (2, 200), "folder2d": (2, 1000)}
#: Slices per knee of the meniscus twin.
KNEE_SLICES = 3
#: The classes of the folder2d twin (its ``classes.txt``).
FOLDER2D_TWIN_CLASSES = ("background", "disc", "square")
CT_SPACING = (0.8, 0.8, 3.0)
MR_SPACING = (1.5, 1.5, 10.0)

# BTCV label, centre (y, x) and half-axes (ry, rx) as fractions of the body's half-axes, intensity in the CT window
_ORGANS = (
    (6, (-0.05, -0.42), (0.40, 0.32), 0.55),  # liver (the patient's right: image left, radiological view)
    (7, (-0.25, 0.30), (0.22, 0.20), 0.30),  # stomach
    (1, (0.25, 0.60), (0.18, 0.13), 0.63),  # spleen
    (2, (0.40, -0.42), (0.13, 0.10), 0.70),  # right kidney
    (3, (0.40, 0.42), (0.13, 0.10), 0.77),  # left kidney
    (11, (0.10, 0.12), (0.06, 0.24), 0.45),  # pancreas
    (4, (0.10, -0.24), (0.08, 0.06), 0.18),  # gallbladder
    (9, (0.30, -0.14), (0.06, 0.07), 0.66),  # inferior vena cava (background in TransUNet's classes)
    (5, (-0.10, 0.02), (0.05, 0.05), 0.40),  # esophagus (background in TransUNet's classes)
    (8, (0.32, 0.06), (0.06, 0.06), 0.88),  # aorta
)
_TISSUE, _BONE = 0.38, 0.98


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float, angle: float = 0.0
             ) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    u, v = (yy - cy) * c + (xx - cx) * s, -(yy - cy) * s + (xx - cx) * c
    return (u / max(ry, 0.5)) ** 2 + (v / max(rx, 0.5)) ** 2 <= 1.0


def _blur(array: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of the last two axes (``sigma`` in pixels; scipy is imported here, not with the package)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(array, (0,) * (array.ndim - 2) + (sigma, sigma))


def _texture(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Smooth noise of unit standard deviation (Gaussian-filtered white noise; ``sigma`` in pixels, last two axes)."""
    noise = _blur(rng.standard_normal(shape).astype(np.float32), sigma)
    return noise / max(float(noise.std()), 1e-6)


def _profile(slices: int, centre: float, extent: float) -> np.ndarray:
    """Scale of a structure per slice (0: absent): an ellipsoid's cross-sections, at least 0.4 where present."""
    t = (np.arange(slices) + 0.5) / slices
    f = 1 - ((t - centre) / extent) ** 2
    return np.where(f > 0, 0.4 + 0.6 * np.sqrt(np.clip(f, 0, 1)), 0.0)


def synth_abdomen(rng: np.random.Generator, size: int, slices: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One abdominal CT volume (module docstring).

    Args:
        rng: the random generator (consumed).
        size: in-plane edge in pixels.
        slices: number of slices.

    Returns:
        ``(window, label, body)``: float32 ``[S, H, W]`` intensities in the CT window scaled to [0, 1] (0 outside
        the body), uint8 BTCV label values ``[S, H, W]``, bool body mask ``[S, H, W]``.
    """
    yy, xx = _grid(size)
    cy, cx = size / 2 + rng.normal(0, size * 0.01), size / 2 + rng.normal(0, size * 0.01)
    by, bx = size * rng.uniform(0.38, 0.43), size * rng.uniform(0.43, 0.47)
    body = _ellipse(yy, xx, cy, cx, by, bx)
    spine = _ellipse(yy, xx, cy + 0.62 * by, cx, 0.12 * by, 0.10 * bx)
    label = np.zeros((slices, size, size), np.uint8)
    intensity = np.where(body, _TISSUE, 0.0).astype(np.float32)[None].repeat(slices, 0)
    intensity[:, spine] = _BONE
    for value, (oy, ox), (ry, rx), level in _ORGANS:
        y0, x0 = cy + (oy + rng.uniform(-0.05, 0.05)) * by, cx + (ox + rng.uniform(-0.05, 0.05)) * bx
        scale, angle = rng.uniform(0.85, 1.15), rng.uniform(-0.3, 0.3)
        extent = _profile(slices, rng.uniform(0.25, 0.75), rng.uniform(0.5, 0.9))
        shade = level + rng.uniform(-0.02, 0.02)
        for k in np.flatnonzero(extent):
            inside = _ellipse(yy, xx, y0, x0, ry * by * scale * extent[k], rx * bx * scale * extent[k], angle) & body
            label[k][inside] = value
            intensity[k][inside] = shade
    window = intensity + 0.03 * _texture(rng, label.shape, 2.0) + rng.normal(0, 0.02, label.shape)
    window = np.where(body, np.clip(window, 0, 1), 0).astype(np.float32)
    return window, label, np.broadcast_to(body, label.shape).copy()


def _heart_geometry(rng: np.random.Generator, size: int) -> dict:
    """A patient's heart: centre, cavity radius, wall thickness, RV half-axes and texture draws (ED)."""
    return {"cy": size * (0.5 + rng.uniform(-0.06, 0.06)), "cx": size * (0.52 + rng.uniform(-0.06, 0.06)),
            "lv": size * rng.uniform(0.09, 0.12), "wall": size * rng.uniform(0.035, 0.05),
            "rv": (size * rng.uniform(0.12, 0.15), size * rng.uniform(0.07, 0.09)), "angle": rng.uniform(-0.4, 0.4),
            "body": (size * rng.uniform(0.42, 0.47), size * rng.uniform(0.44, 0.48))}


def synth_heart(rng: np.random.Generator, geometry: dict, size: int, slices: int, systole: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """One cardiac cine frame (module docstring) of a patient ``geometry`` (:func:`_heart_geometry`).

    Args:
        rng: the random generator (consumed: texture and noise).
        geometry: the patient's heart.
        size: in-plane edge in pixels.
        slices: short-axis slices, base first.
        systole: the end-systolic frame (smaller cavity, thicker wall).

    Returns:
        ``(intensity, label)``: float32 ``[S, H, W]`` in about [0, 1], uint8 ``[S, H, W]`` (0 bg, 1 RV, 2 Myo, 3 LV).
    """
    g = geometry
    yy, xx = _grid(size)
    lv, wall = g["lv"] * (0.72 if systole else 1.0), g["wall"] * (1.35 if systole else 1.0)
    rv_y, rv_x = (r * (0.8 if systole else 1.0) for r in g["rv"])
    body = _ellipse(yy, xx, size / 2, size / 2, *g["body"])
    label = np.zeros((slices, size, size), np.uint8)
    for k in range(slices):
        t = k / max(slices - 1, 1)  # 0 base .. 1 apex
        s = 1 - 0.5 * t
        outer = _ellipse(yy, xx, g["cy"], g["cx"], (lv + wall) * s, (lv + wall) * s)
        if t < 0.85:
            dy, dx = np.sin(g["angle"]), -np.cos(g["angle"])  # the RV lies to the image left of the LV
            off = (lv + wall) * s + 0.5 * rv_x * s
            rv = _ellipse(yy, xx, g["cy"] + dy * off, g["cx"] + dx * off, rv_y * s, rv_x * s, g["angle"])
            label[k][rv & ~outer] = 1
        label[k][outer] = 2
        label[k][_ellipse(yy, xx, g["cy"], g["cx"], lv * s, lv * s)] = 3
    levels = np.array([0.40, 0.75, 0.22, 0.88], np.float32) + rng.uniform(-0.03, 0.03, 4).astype(np.float32)
    intensity = np.where(body, levels[label], 0.03)
    intensity = intensity + 0.04 * _texture(rng, label.shape, 1.5) + rng.normal(0, 0.03, label.shape)
    return np.clip(intensity, 0, 1).astype(np.float32), label


def synth_polyp(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One colonoscopy photograph with a polyp (module docstring).

    Args:
        rng: the random generator (consumed).
        size: edge in pixels.

    Returns:
        ``(rgb, mask)``: uint8 ``[H, W, 3]`` and bool ``[H, W]``.
    """
    yy, xx = _grid(size)
    r = np.hypot(yy - size / 2, xx - size / 2) / (0.72 * size)
    low, fine = _texture(rng, (size, size), size / 8), _texture(rng, (size, size), 0.8)
    mucosa = np.array([205, 115, 105], np.float32) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    rgb = mucosa * (0.88 + 0.1 * low)[..., None] + 6 * fine[..., None]
    cy, cx = size * rng.uniform(0.3, 0.7, 2)
    radius, aspect, angle = size * rng.uniform(0.12, 0.24), rng.uniform(0.7, 1.3), rng.uniform(0, np.pi)
    theta = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + 0.08 * np.sin(3 * theta + rng.uniform(0, 6.3)) + 0.05 * np.sin(5 * theta + rng.uniform(0, 6.3))
    u = ((yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle)) / (radius * aspect)
    v = (-(yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)) / (radius / aspect)
    d = np.hypot(u, v) / wobble
    mask = d <= 1.0
    polyp = np.array([225, 90, 80] if rng.random() < 0.5 else [235, 165, 140], np.float32)
    dome = np.clip(1 - d, 0, 1)[..., None]  # brighter towards the top of the dome
    coarse = _texture(rng, (size, size), 2.0)[..., None]
    inside = polyp * (0.85 + 0.2 * dome) + 14 * coarse
    soft = _blur(mask.astype(np.float32), 0.8)[..., None]
    rgb = rgb * (1 - soft) + inside * soft
    spot = np.exp(-(((yy - cy + 0.35 * radius) ** 2 + (xx - cx + 0.3 * radius) ** 2) / (0.12 * radius) ** 2))
    rgb = rgb + (120 * spot * mask)[..., None]
    rgb = rgb * np.clip(1.15 - 0.6 * r ** 2, 0.25, 1.0)[..., None] + rng.normal(0, 3, rgb.shape)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), mask


def _knee_geometry(rng: np.random.Generator, size: int) -> dict:
    """A knee: joint line, joint-space gap, cartilage thickness, condyles, meniscus widths (fractions of ``size``)."""
    return {"joint": size * (0.5 + rng.uniform(-0.05, 0.05)), "gap": max(3.0, 0.09 * size) * rng.uniform(0.9, 1.1),
            "cartilage": max(2.0, 0.035 * size), "condyle": size * rng.uniform(0.15, 0.18),
            "centres": (size * (0.32 + rng.uniform(-0.02, 0.02)), size * (0.68 + rng.uniform(-0.02, 0.02))),
            "width": (size * rng.uniform(0.14, 0.18), size * rng.uniform(0.14, 0.18))}


def synth_knee(rng: np.random.Generator, geometry: dict, size: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Slice ``index`` of a knee ``geometry`` (:func:`_knee_geometry`; module docstring).

    Args:
        rng: the random generator (consumed: texture, noise, the slice's meniscus widths).
        geometry: the knee.
        size: edge in pixels.
        index: the slice (its menisci are narrower away from the middle slice).

    Returns:
        ``(intensity, label)``: float32 ``[H, W]`` in about [0, 1], uint8 ``[H, W]`` (0 background, 1 lateral
        meniscus, 2 lateral tibial cartilage, 3 medial meniscus, 4 medial tibial cartilage).
    """
    g = geometry
    yy, xx = _grid(size)
    joint, half, thick = g["joint"], g["gap"] / 2, g["cartilage"]
    label = np.zeros((size, size), np.uint8)
    level = np.full((size, size), 0.04, np.float32)  # air
    level[_ellipse(yy, xx, size / 2, size / 2, 0.48 * size, 0.44 * size)] = 0.30  # soft tissue
    femur_bottom = joint - half
    for cx in g["centres"]:  # the condyles, touching the joint space
        level[_ellipse(yy, xx, femur_bottom - g["condyle"], cx, g["condyle"], g["condyle"])] = 0.56
    shaft = (yy < femur_bottom - g["condyle"]) & (np.abs(xx - size / 2) < 0.22 * size)
    level[shaft] = 0.56
    inside = (xx > 0.12 * size) & (xx < 0.88 * size)
    level[inside & (np.abs(yy - joint) <= half)] = 0.45  # joint fluid
    level[inside & (yy > joint + half + thick) & (yy < 0.95 * size)] = 0.60  # tibia
    band = (yy > joint + half) & (yy <= joint + half + thick)
    for value, lo, hi, shade in ((2, 0.15, 0.48, 0.82), (4, 0.52, 0.85, 0.90)):  # tibial cartilage
        inside_band = band & (xx >= lo * size) & (xx <= hi * size)
        label[inside_band], level[inside_band] = value, shade
    scale = 1.0 - 0.25 * abs(index - 1) + rng.uniform(-0.05, 0.05)
    for value, outer, sign, width, shade in ((1, 0.13 * size, 1, g["width"][0], 0.10),
                                             (3, 0.87 * size, -1, g["width"][1], 0.17)):  # menisci, apex inwards
        depth = sign * (xx - outer) / max(width * scale, 1.0)
        wedge = (depth >= 0) & (depth <= 1) & (np.abs(yy - joint) <= half * (1 - depth) + 0.5)
        label[wedge], level[wedge] = value, shade
    intensity = level + 0.03 * _texture(rng, (size, size), 1.5) + rng.normal(0, 0.02, (size, size))
    return np.clip(intensity, 0, 1).astype(np.float32), label


def synth_shapes(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One grey picture of the folder2d twin (module docstring).

    Returns:
        ``(grey, mask)``: uint8 ``[H, W]`` and uint8 ``[H, W]`` (0 background, 1 disc, 2 square).
    """
    yy, xx = _grid(size)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = size * rng.uniform(0.2, 0.8, 2)
        radius = size * rng.uniform(0.08, 0.16)
        if rng.random() < 0.5:
            mask[_ellipse(yy, xx, cy, cx, radius, radius)] = 1
        else:
            mask[(np.abs(yy - cy) <= radius) & (np.abs(xx - cx) <= radius)] = 2
    if not (mask == 1).any():  # both classes in every picture
        mask[_ellipse(yy, xx, size * 0.25, size * 0.25, size * 0.1, size * 0.1)] = 1
    if not (mask == 2).any():
        mask[(np.abs(yy - size * 0.75) <= size * 0.1) & (np.abs(xx - size * 0.75) <= size * 0.1)] = 2
    levels = np.array([95, 205, 30], np.float32) + rng.uniform(-8, 8, 3).astype(np.float32)
    grey = levels[mask] + 10 * _texture(rng, (size, size), 1.5) + rng.normal(0, 4, (size, size))
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8), mask


# --------------------------------------------------------------------------- writers
def _unlabelled_count(n: int) -> int:
    """Unlabelled cases of a semi-supervised twin of ``n`` (30 %, at least one, at least one left labelled)."""
    return min(max(1, round(0.3 * n)), n - 1)


def split_counts(layout: str, n: int) -> dict:
    """Cases per split of a twin of ``n`` cases: Synapse 60 / 40 train / test (at least one each), ACDC 70 / 10 / 20
    train / val / test (at least one validation and one test patient; the rest, maybe none, train), meniscus knees
    per list (``train`` / ``val`` / ``test`` labelled, ``unlabelled``: 40 / 10 / 20 / 30 %, at least one unlabelled
    and one labelled training knee), polyps and folder2d ``{None: n}``.

    Args:
        layout: one of :data:`SYNTH_LAYOUTS`.
        n: number of cases (patients for ACDC, knees for meniscus).
    """
    if layout == "meniscus":
        unlabelled, val, test = _unlabelled_count(n), round(0.1 * n), round(0.2 * n)
        return {"train": n - unlabelled - val - test, "val": val, "test": test, "unlabelled": unlabelled}
    if layout.startswith("synapse"):
        train = min(max(1, round(0.6 * n)), n - 1)
        return {"train": train, "test": n - train}
    if layout.startswith("acdc"):
        val, test = max(1, round(0.1 * n)), max(1, round(0.2 * n))
        return {"train": n - val - test, "val": val, "test": test}
    return {None: n}


def _rng(seed: int, layout: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SYNTH_LAYOUTS.index(layout) + 1, index])


def _save_nifti(path: Path, array: np.ndarray, spacing: tuple[float, float, float]) -> None:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([*spacing, 1.0])), str(path))


def _save_h5(path: Path, **arrays: np.ndarray) -> None:
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        for key, value in arrays.items():
            h5.create_dataset(key, data=value)


def _save_picture(path: Path, array: np.ndarray, fmt: str) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))


def _write_list(path: Path, names: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")


def _to_nifti(volume: np.ndarray) -> np.ndarray:
    """``[S, H, W]`` -> the NIfTI array ``[H, W, S]`` (slice ``k`` = ``array[:, :, k]``, as the readers take it)."""
    return np.ascontiguousarray(volume.transpose(1, 2, 0))


def _minmax(volume: np.ndarray) -> np.ndarray:
    lo, hi = float(volume.min()), float(volume.max())
    return ((volume - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def _write_synapse(root: Path, layout: str, n: int, size: int, seed: int) -> None:
    counts = split_counts(layout, n)
    chosen = {"train": TRANSUNET_TRAIN_CASES[:counts["train"]], "test": TRANSUNET_TEST_CASES[:counts["test"]]}
    listed: dict[str, list[str]] = {"train": [], "test": []}
    for split, cases in chosen.items():
        for case in cases:
            rng = _rng(seed, layout, int(case[4:]))
            window, btcv, body = synth_abdomen(rng, size, int(rng.integers(4, 9)))
            if layout == "synapse_raw":
                lo, hi = HU_WINDOW
                hu = np.where(body, np.rint(window * (hi - lo) + lo), -1000).astype(np.int16)
                _save_nifti(root / "img" / f"img{case[4:]}.nii.gz", _to_nifti(hu), CT_SPACING)
                _save_nifti(root / "label" / f"label{case[4:]}.nii.gz", _to_nifti(btcv), CT_SPACING)
                continue
            label = BTCV_LUT[btcv].astype(np.float32)  # TransUNet's files store the label as float32
            if split == "test":
                _save_h5(root / "test_vol_h5" / f"{case}.npy.h5", image=window, label=label)
                listed["test"].append(case)
                continue
            (root / "train_npz").mkdir(parents=True, exist_ok=True)
            for k in range(len(window)):
                name = f"{case}_slice{k:03d}"
                np.savez(root / "train_npz" / f"{name}.npz", image=window[k], label=label[k])
                listed["train"].append(name)
    if layout == "synapse":
        _write_list(root / "lists" / "lists_Synapse" / "train.txt", listed["train"])
        _write_list(root / "lists" / "lists_Synapse" / "test_vol.txt", listed["test"])


def _acdc_patients(n: int) -> dict[str, list[int]]:
    counts = split_counts("acdc", n)
    val, test = list(SSL4MIS_VAL_PATIENTS[:counts["val"]]), list(SSL4MIS_TEST_PATIENTS[:counts["test"]])
    train = [p for p in range(1, 101) if p not in SSL4MIS_VAL_PATIENTS and p not in SSL4MIS_TEST_PATIENTS]
    return {"train": train[:counts["train"]], "val": val, "test": test}


def _write_acdc(root: Path, layout: str, n: int, size: int, seed: int) -> None:
    lists: dict[str, list[str]] = {"train_slices": [], "train": [], "val": [], "test": []}
    for split, patients in _acdc_patients(n).items():
        for number in patients:
            rng = _rng(seed, layout, number)
            geometry, slices, es = _heart_geometry(rng, size), int(rng.integers(4, 9)), int(rng.integers(8, 15))
            ed_frame, es_frame = (synth_heart(rng, geometry, size, slices, systole) for systole in (False, True))
            patient = f"patient{number:03d}"
            for frame, (intensity, label) in ((1, ed_frame), (es, es_frame)):
                name = f"{patient}_frame{frame:02d}"
                if layout == "acdc":
                    folder = root / "training" / patient
                    _save_nifti(folder / f"{name}.nii.gz", _to_nifti(_scanner(intensity)), MR_SPACING)
                    _save_nifti(folder / f"{name}_gt.nii.gz", _to_nifti(label), MR_SPACING)
                    continue
                image = _minmax(intensity)
                _save_h5(root / "data" / f"{name}.h5", image=image, label=label)
                lists[split].append(name)
                if split == "train":
                    for k in range(slices):
                        _save_h5(root / "data" / "slices" / f"{name}_slice_{k + 1}.h5", image=image[k], label=label[k])
                        lists["train_slices"].append(f"{name}_slice_{k + 1}")
            if layout == "acdc":
                _write_cine(root / "training" / patient, ed_frame[0], es_frame[0], es)
    if layout == "acdc_h5":
        for name, names in lists.items():
            _write_list(root / f"{name}.list", names)


def _scanner(intensity: np.ndarray) -> np.ndarray:
    """Intensities in about [0, 1] as int16 scanner values (the ACDC reader min-max scales them back)."""
    return np.rint(intensity * 800 + 20).astype(np.int16)


def _write_cine(folder: Path, ed: np.ndarray, es: np.ndarray, es_frame: int) -> None:
    """``patient<nnn>_4d.nii.gz`` (ED to ES and back, ``es_frame + 4`` frames; readers skip it) and ``Info.cfg``."""
    frames = es_frame + 4
    weights = [min((t - 1) / (es_frame - 1), 1.0) if t <= es_frame else 1 - (t - es_frame) / (frames - es_frame + 1)
               for t in range(1, frames + 1)]
    cine = np.stack([_to_nifti(_scanner(ed * (1 - w) + es * w)) for w in weights], axis=-1)
    _save_nifti(folder / f"{folder.name}_4d.nii.gz", cine, MR_SPACING)
    (folder / "Info.cfg").write_text(f"ED: 1\nES: {es_frame}\nGroup: NOR\nHeight: 172.0\nNbFrame: {frames}\n"
                                     f"Weight: 70.0\n", encoding="utf-8")


_ID_CHARS = np.array(list("0123456789abcdefghijklmnopqrstuvwxyz"))


def _write_polyps(root: Path, layout: str, n: int, size: int, seed: int) -> None:
    boxes = {}
    for i in range(n):
        rng = _rng(seed, layout, i + 1)
        rgb, mask = synth_polyp(rng, size)
        grey = mask.astype(np.uint8) * 255
        if layout == "cvc_clinicdb":
            _save_picture(root / "Original" / f"{i + 1}.tif", rgb, "TIFF")
            _save_picture(root / "Ground Truth" / f"{i + 1}.tif", grey, "TIFF")
            continue
        stem = "cju" + "".join(_ID_CHARS[rng.integers(0, len(_ID_CHARS), 22)])
        _save_picture(root / "images" / f"{stem}.jpg", rgb, "JPEG")
        _save_picture(root / "masks" / f"{stem}.jpg", np.repeat(grey[..., None], 3, -1), "JPEG")
        ys, xs = np.nonzero(mask)
        boxes[stem] = {"height": size, "width": size, "bbox": [{"label": "polyp", "xmin": int(xs.min()),
                                                                "ymin": int(ys.min()), "xmax": int(xs.max()),
                                                                "ymax": int(ys.max())}]}
    if layout == "kvasir_seg":
        (root / "kavsir_bboxes.json").write_text(json.dumps(boxes, indent=1), encoding="utf-8")


def _write_meniscus(root: Path, layout: str, n: int, size: int, seed: int) -> None:
    lists = {"train": "train_lb.csv", "val": "val.csv", "test": "test.csv", "unlabelled": "train_unlb.csv"}
    rows: dict[str, list[str]] = {role: [] for role in lists}
    number = 0
    for role, count in split_counts(layout, n).items():
        for _ in range(count):
            number += 1
            subject = f"{9000000 + number:07d}"
            rng = _rng(seed, layout, number)
            geometry = _knee_geometry(rng, size)
            for k in range(KNEE_SLICES):
                intensity, label = synth_knee(rng, geometry, size, k)
                image = f"images/img_{subject}_{k:03d}.npy"
                (root / "images").mkdir(parents=True, exist_ok=True)
                np.save(root / image, (intensity * 1000 + 50)[None].astype(np.float32))  # ERANet's [1, H, W]
                if role == "unlabelled":
                    rows[role].append(image)
                    continue
                target = f"labels/lab_{subject}_{k:03d}.npy"
                (root / "labels").mkdir(parents=True, exist_ok=True)
                hot = number % 2 == 0
                np.save(root / target, np.eye(5, dtype=np.uint8)[label].transpose(2, 0, 1) if hot else label)
                rows[role].append(f"{image},{target}")
    for role, name in lists.items():
        if rows[role]:
            _write_list(root / name, rows[role])


def _write_folder2d(root: Path, layout: str, n: int, size: int, seed: int) -> None:
    unlabelled = _unlabelled_count(n)
    for i in range(n):
        rng = _rng(seed, layout, i + 1)
        grey, mask = synth_shapes(rng, size)
        name = f"sample_{i + 1:03d}.png"
        if i >= n - unlabelled:
            _save_picture(root / "unlabelled" / name, grey, "PNG")
            continue
        _save_picture(root / "images" / name, grey, "PNG")
        _save_picture(root / "masks" / name, mask, "PNG")
    _write_list(root / "classes.txt", list(FOLDER2D_TWIN_CLASSES))


_WRITERS: dict[str, Callable[[Path, str, int, int, int], None]] = {
    "synapse": _write_synapse, "synapse_raw": _write_synapse, "acdc_h5": _write_acdc, "acdc": _write_acdc,
    "cvc_clinicdb": _write_polyps, "kvasir_seg": _write_polyps, "meniscus": _write_meniscus,
    "folder2d": _write_folder2d}


def write_synthetic(out: str | Path, layout: str, n: int = 8, size: int = 64, seed: int = 0) -> Path:
    """Write a synthetic twin of ``layout`` under ``out`` (module docstring) and return ``out``.

    Args:
        out: the folder to write into (created; files already there are overwritten, others kept).
        layout: one of :data:`SYNTH_LAYOUTS`.
        n: cases (Synapse: scans, 2-30; ACDC: patients, 2-100, two frames each; polyps: images, 1-1000; meniscus:
            knees, 2-200, :data:`KNEE_SLICES` slices each; folder2d: pictures, 2-1000, labelled and unlabelled).
        size: in-plane edge in pixels (at least 16).
        seed: random seed (at least 0); the same seed writes the same files, and two layouts never share content.

    Raises:
        ConfigError: an unknown layout, ``n`` outside the layout's range, a ``size`` below 16, a negative seed.
    """
    check_twin(layout, n, SYNTH_LAYOUTS, LIMITS, "2-D segmentation", "cases")
    if size < 16:
        raise ConfigError(f"synthetic image size must be at least 16 pixels, got {size}")
    root = twin_root(out, seed=seed)
    _WRITERS[layout](root, layout, int(n), int(size), int(seed))
    return root


def check_twin(layout: str, n: int, layouts: tuple[str, ...], limits: dict[str, tuple[int, int]], what: str,
               noun: str) -> None:
    """Refuse an unknown ``layout`` (one of ``layouts``; ``what``: the family in words) or ``n`` outside the
    layout's ``limits`` (``noun``: what ``n`` counts) of a 2-D or 3-D ``write_synthetic``.

    Raises:
        ConfigError: one line naming the choices or the range.
    """
    if layout not in layouts:
        raise ConfigError(f"unknown synthetic {what} layout {layout!r}; choose one of {', '.join(layouts)}")
    lo, hi = limits[layout]
    if not lo <= n <= hi:
        raise ConfigError(f"a synthetic {layout} twin has {lo} to {hi} {noun}, got {n}")


def twin_root(out: str | Path, **at_least_zero: int) -> Path:
    """The folder ``out`` of a ``write_synthetic``, created, once every count of ``at_least_zero`` (``seed=...``,
    in order) is checked.

    Raises:
        ConfigError: a negative count (naming it).
    """
    for name, value in at_least_zero.items():
        if value < 0:
            raise ConfigError(f"{name} must be at least 0, got {value}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    return root
