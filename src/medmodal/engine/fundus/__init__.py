"""Retinal vessel segmentation (DGSSA, issue 27): train on one fundus data set, test on others.

* :mod:`.config` - :class:`VesselRunConfig` (data, model, optim, trainer sections).
* :mod:`.module` - :class:`VesselModule` (BCE + soft Dice inside the FOV, optional RandConv, validation Dice).
* :mod:`.train` - :func:`run_vessels` (train, keep the best validation checkpoint, score every domain
  on its native grid).
"""

from medmodal.engine.fundus.config import VesselDataSettings, VesselModelSettings, VesselOptimSettings, \
    VesselRunConfig, VesselTrainerSettings
from medmodal.engine.fundus.module import VesselModule
from medmodal.engine.fundus.train import run_vessels

__all__ = ["VesselRunConfig", "VesselDataSettings", "VesselModelSettings", "VesselOptimSettings",
           "VesselTrainerSettings", "VesselModule", "run_vessels"]
