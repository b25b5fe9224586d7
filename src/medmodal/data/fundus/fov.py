"""Field-of-view (FOV) masks derived from a fundus photograph, for data sets released without one.

CHASE_DB1 and STARE come without official FOV masks (DRIVE and HRF have them). :func:`derive_fov`
builds one from the image itself:

1. the red channel (the brightest channel of the retina; the background outside the camera's
   circular aperture is near black in every channel), smoothed with a small Gaussian;
2. a threshold at ``fraction`` (default 0.15) of the red channel's 99th percentile, at least
   :data:`MIN_LEVEL` grey levels above the darkest decile (so JPEG noise in the background stays out);
3. the largest connected component (drops text stamps and specks outside the aperture);
4. hole filling (vessels, the macula and dark lesions inside the field of view are kept), then a
   small binary opening to smooth the rim.

On the copy of CHASE_DB1 in the shared data (whose ``_mask.png`` files were made by the copy's
author, not by the data set's authors) the derived FOV agrees with those masks with Dice > 0.95
(``tests/data/fundus/test_readers.py``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["derive_fov", "FOV_NOTE", "MIN_LEVEL"]

#: Least gap in grey levels between the FOV threshold and the background's darkest decile.
MIN_LEVEL = 10
#: How derived FOV masks are described in notes (``data summary``).
FOV_NOTE = "field of view derived from the image (red-channel threshold, largest component, holes filled)"


def derive_fov(image: np.ndarray, fraction: float = 0.15) -> np.ndarray:
    """A boolean FOV mask ``[H, W]`` of a fundus photograph (module docstring for the steps).

    Args:
        image: uint8 ``[H, W, 3]`` RGB (or ``[H, W]`` grey: the intensity is used).
        fraction: threshold as a share of the red channel's 99th percentile.
    """
    from scipy import ndimage

    image = np.asarray(image)
    red = image[..., 0] if image.ndim == 3 else image
    red = ndimage.gaussian_filter(red.astype(np.float32), sigma=max(1.0, min(red.shape) / 400))
    low, high = np.percentile(red, [10, 99])
    level = max(fraction * high, low + MIN_LEVEL)
    fov = red > level
    labels, count = ndimage.label(fov)
    if count == 0:
        return np.zeros(red.shape, bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    fov = labels == int(np.argmax(sizes))
    fov = ndimage.binary_fill_holes(fov)
    radius = max(1, min(red.shape) // 200)
    structure = np.ones((2 * radius + 1, 2 * radius + 1), bool)
    return ndimage.binary_opening(fov, structure=structure)
