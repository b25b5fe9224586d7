"""Hand-crafted colour and texture features of an endoscopy image (for sanity checks and linear probes).

Used to check the design claim of the synthetic dataset (each modality carries information the
other lacks) with a linear classifier, and usable as a classical baseline. Features of one
``uint8 [H, W, 3]`` image (40 numbers):

* colour (21): per channel mean, standard deviation, 10th / 50th / 90th percentile (0-1 units);
  mean and standard deviation of the chromaticities ``r = R / (R + G + B)``, ``g``; mean and 90th
  percentile of the redness ``(R - G) / (R + G)``;
* texture (19): per channel, mean absolute difference-of-Gaussians response at three scales
  (sigma 0.7 / 1.4 / 2.8 px against twice that), divided by the channel mean (exposure-invariant
  contrast); per channel, the share of pixels darker than their surroundings at the finest scale
  (capillaries, pit borders); per channel, mean and 90th percentile of the structure-tensor
  coherence ``(l1 - l2) / (l1 + l2)`` of the finest band (elongated vs round patterns); mean
  gradient magnitude of the luminance.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SCALES = (0.7, 1.4, 2.8)
FEATURE_COUNT = 40


def _coherence(band: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(band)
    jxx = ndimage.gaussian_filter(gx * gx, 2.0)
    jyy = ndimage.gaussian_filter(gy * gy, 2.0)
    jxy = ndimage.gaussian_filter(gx * gy, 2.0)
    root = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2)
    return root / (jxx + jyy + 1e-8)


def image_features(image: np.ndarray) -> np.ndarray:
    """``float64 [40]`` colour and texture features of ``uint8 [H, W, 3]`` (see the module docstring)."""
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {image.shape}")
    rgb = image.astype(np.float64) / 255.0
    flat = rgb.reshape(-1, 3)
    feats = []
    for c in range(3):
        v = flat[:, c]
        feats += [v.mean(), v.std(), *np.percentile(v, (10, 50, 90))]
    total = flat.sum(1) + 1e-6
    chroma = flat[:, :2] / total[:, None]
    feats += [chroma[:, 0].mean(), chroma[:, 0].std(), chroma[:, 1].mean(), chroma[:, 1].std()]
    redness = (flat[:, 0] - flat[:, 1]) / (flat[:, 0] + flat[:, 1] + 1e-6)
    feats += [redness.mean(), np.percentile(redness, 90)]
    for c in range(3):
        ch = rgb[..., c]
        mean = ch.mean() + 1e-6
        bands = [ndimage.gaussian_filter(ch, s) - ndimage.gaussian_filter(ch, 2 * s) for s in SCALES]
        feats += [np.abs(b).mean() / mean for b in bands]
        feats.append(float((bands[0] < -0.02 * mean).mean()))
        coh = _coherence(bands[0])
        feats += [coh.mean(), np.percentile(coh, 90)]
    gy, gx = np.gradient(rgb.mean(-1))
    feats.append(np.hypot(gx, gy).mean())
    return np.asarray(feats, np.float64)
