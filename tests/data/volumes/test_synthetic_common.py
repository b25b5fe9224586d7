"""medmodal.data.volumes.synthetic_common: the helpers both synthetic generators share."""

from __future__ import annotations

import numpy as np

from medmodal.data.volumes import synthetic_brats, synthetic_myops
from medmodal.data.volumes.synthetic_common import centred_affine, rician_magnitude, smooth_noise


def test_centred_affine_isotropic_and_per_axis():
    a = centred_affine((3, 5, 7), 2.0)
    assert np.array_equal(a, centred_affine((3, 5, 7), (2.0, 2.0, 2.0)))
    assert np.array_equal(np.diag(a), [2.0, 2.0, 2.0, 1.0]) and np.array_equal(a[:3, 3], [-2.0, -4.0, -6.0])


def test_rician_magnitude_is_clipped_to_int16_range():
    rng = np.random.default_rng(0)
    out = rician_magnitude(np.zeros((4, 4, 4), np.float32), 1e-6, 1.0, rng)
    assert out.min() >= 1 and out.max() <= np.iinfo(np.int16).max


def test_both_generators_use_them():
    assert synthetic_brats.smooth_noise is smooth_noise and synthetic_myops.smooth_noise is smooth_noise
