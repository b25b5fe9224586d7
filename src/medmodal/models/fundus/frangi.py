"""The unsupervised Frangi baseline for retinal vessels: Hessian vesselness of the inverted green channel.

Frangi et al., "Multiscale vessel enhancement filtering", MICCAI 1998, as implemented by scikit-image
(:func:`skimage.filters.frangi`, ``alpha = beta = 0.5``, ``gamma`` half the Hessian norm's maximum).

Why in ``models``: it maps an image to a per-pixel vessel map as a segmentation network does, has
no training and no torch parameters, so it is a "model" in the layer sense (below ``losses`` and
``inference``; ``evaluation`` and the benchmarks import it). It is not registered in the model
registry (:func:`medmodal.models.create_model` builds ``nn.Module`` networks).

Steps (:meth:`FrangiVessels.predict`):

1. the green channel (the best vessel contrast in fundus photographs), scaled to ``[0, 1]``, contrast-
   equalised (CLAHE, ``skimage.exposure.equalize_adapthist``, clip 0.01; ``clahe=False`` skips it: on 6
   DRIVE training images it raised the mean FOV Dice from 0.525 to 0.542) and inverted, so vessels are
   bright ridges;
2. outside the FOV the image is filled with the median inside it, so the FOV rim does not read as a
   huge edge;
3. Frangi vesselness at ``sigmas`` scaled to the image (:func:`frangi_sigmas`): ``BASE_SIGMAS`` are
   for DRIVE's FOV diameter of about 540 px (:data:`REFERENCE_FOV_DIAMETER`) and are multiplied by
   ``fov_diameter / 540`` - CHASE_DB1's FOV (about 900 px wide) gets sigmas 1.7 times larger, since its
   vessels are proportionally wider in pixels; sigmas below :data:`MIN_SIGMA` (1 px) are raised to it
   (on images smaller than DRIVE);
4. "probability" = vesselness divided by its 99.5th percentile inside the FOV, clipped to ``[0, 1]``,
   zero outside the FOV. The response is heavy-tailed, so the useful thresholds are small (about 0.02
   on DRIVE); the threshold grid of ``choose_threshold`` is geometric for that reason. This is a normalised score, **not** a calibrated probability: threshold it at
   the value chosen on the source domain's training images
   (:func:`medmodal.evaluation.vessels.choose_threshold`), never at 0.5 and never chosen on test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from medmodal.errors import DataError

__all__ = ["REFERENCE_FOV_DIAMETER", "BASE_SIGMAS", "MIN_SIGMA", "fov_diameter", "frangi_sigmas", "FrangiVessels"]

#: DRIVE's FOV diameter in pixels (565 x 584 images, a circular FOV about 540 px across).
REFERENCE_FOV_DIAMETER = 540.0
#: Frangi scales (Gaussian sigma, px) at DRIVE's resolution: vessels there are about 1-10 px wide.
BASE_SIGMAS = (1.0, 1.5, 2.0, 3.0)
#: The smallest sigma used (px): below about 1 px the Hessian of a sampled image has no ridge to find
#: (a 64 px synthetic twin at the scaled sigmas 0.1-0.3 gave a constant map, AUC 0.5).
MIN_SIGMA = 1.0
#: The percentile of the FOV's vesselness mapped to 1.0.
NORM_PERCENTILE = 99.5


def fov_diameter(fov: np.ndarray) -> float:
    """The FOV's width in pixels: the number of columns holding FOV pixels (bool ``[H, W]``)."""
    fov = np.asarray(fov).astype(bool)
    cols = np.flatnonzero(fov.any(axis=0))
    return float(cols[-1] - cols[0] + 1) if cols.size else 0.0


def frangi_sigmas(fov: np.ndarray, base: Sequence[float] = BASE_SIGMAS,
                  reference: float = REFERENCE_FOV_DIAMETER) -> tuple[float, ...]:
    """``base`` sigmas scaled by ``fov_diameter(fov) / reference``, at least :data:`MIN_SIGMA`, duplicates
    dropped (module docstring, step 3)."""
    scale = fov_diameter(fov) / reference
    if scale <= 0:
        raise DataError("frangi_sigmas: the field of view is empty")
    return tuple(sorted({max(float(s * scale), MIN_SIGMA) for s in base}))


@dataclass
class FrangiVessels:
    """Frangi vesselness as a vessel map (module docstring).

    Attributes:
        base_sigmas: sigmas at DRIVE's scale. reference_diameter: DRIVE's FOV diameter (px).
        clahe: equalise the green channel first (step 1).
        threshold: the operating threshold on :meth:`predict`'s output, chosen on the source domain's
            training images; ``None`` until chosen.
    """

    base_sigmas: Sequence[float] = BASE_SIGMAS
    reference_diameter: float = REFERENCE_FOV_DIAMETER
    threshold: Optional[float] = None
    clahe: bool = True

    def vesselness(self, image: np.ndarray, fov: np.ndarray) -> np.ndarray:
        """Raw Frangi response float32 ``[H, W]`` of uint8 RGB ``image [H, W, 3]`` (0 outside ``fov``)."""
        from skimage.filters import frangi

        image, fov = np.asarray(image), np.asarray(fov).astype(bool)
        if image.ndim != 3 or image.shape[:2] != fov.shape:
            raise DataError(f"FrangiVessels: image {list(image.shape)} and FOV {list(fov.shape)} do not match "
                            "(expected RGB [H, W, 3] and [H, W])")
        green = image[..., 1].astype(np.float32) / 255.0
        if self.clahe:
            from skimage.exposure import equalize_adapthist
            green = equalize_adapthist(green, clip_limit=0.01).astype(np.float32)
        green = 1.0 - green
        green = np.where(fov, green, np.median(green[fov]))
        sigmas = frangi_sigmas(fov, self.base_sigmas, self.reference_diameter)
        return np.where(fov, frangi(green, sigmas=sigmas, black_ridges=False), 0.0).astype(np.float32)

    def predict(self, image: np.ndarray, fov: np.ndarray) -> np.ndarray:
        """Normalised vesselness float32 ``[H, W]`` in ``[0, 1]``, 0 outside the FOV (not a probability)."""
        v = self.vesselness(image, fov)
        fov = np.asarray(fov).astype(bool)
        top = float(np.percentile(v[fov], NORM_PERCENTILE))
        return np.clip(v / top, 0.0, 1.0).astype(np.float32) if top > 0 else v

    def segment(self, image: np.ndarray, fov: np.ndarray) -> np.ndarray:
        """Bool ``[H, W]`` vessel mask at :attr:`threshold` (raises DataError when none was chosen)."""
        if self.threshold is None:
            raise DataError("FrangiVessels: no threshold chosen; choose one on the source training images "
                            "(medmodal.evaluation.vessels.choose_threshold)")
        return self.predict(image, fov) >= self.threshold
