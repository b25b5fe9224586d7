"""Retinal vessel segmentation models (DGSSA, issue 27).

* :mod:`.frangi` - the unsupervised Frangi vesselness baseline (no training; a floor for the learned
  models and a domain-shift reference).
"""

from medmodal.models.vessels.frangi import REFERENCE_FOV_DIAMETER, FrangiVessels, fov_diameter, frangi_sigmas

__all__ = ["FrangiVessels", "REFERENCE_FOV_DIAMETER", "fov_diameter", "frangi_sigmas"]
