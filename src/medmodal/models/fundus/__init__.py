"""Fundus (retinal) models for vessel segmentation (DGSSA):

* :mod:`.vessel_net` - DeepLabv3+ / U-Net with a MobileNetV2 encoder (segmentation-models-pytorch), optional
  DSU after chosen encoder stages; registered under the ``segmentation`` contract.
* :mod:`.frangi` - the unsupervised Frangi vesselness baseline (no training; a floor for the learned
  models and a domain-shift reference).
* :mod:`.pix2pix` - the pix2pix pair that renders pseudo-fundus images from vessel trees (DGSSA's structure
  augmentation); plain modules, not registered (no contract fits).
"""

from medmodal.models.fundus.frangi import REFERENCE_FOV_DIAMETER, FrangiVessels, fov_diameter, frangi_sigmas
from medmodal.models.fundus.pix2pix import (PatchDiscriminator, PatchDiscriminatorConfig, Pix2PixGenerator,
                                            Pix2PixGeneratorConfig)
from medmodal.models.fundus.vessel_net import VesselNet, VesselNetConfig

__all__ = ["VesselNet", "VesselNetConfig", "FrangiVessels", "REFERENCE_FOV_DIAMETER", "fov_diameter", "frangi_sigmas",
           "Pix2PixGenerator", "Pix2PixGeneratorConfig", "PatchDiscriminator", "PatchDiscriminatorConfig"]
