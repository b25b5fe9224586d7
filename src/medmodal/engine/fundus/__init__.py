"""Retinal vessel segmentation (DGSSA): train on one fundus data set, test on others.

* :mod:`.config` - :class:`VesselRunConfig` (data, structure, model, optim, trainer sections).
* :mod:`.module` - :class:`VesselModule` (BCE + soft Dice inside the FOV, optional RandConv, validation Dice).
* :mod:`.train` - :func:`run_vessels` (train, keep the best validation checkpoint, score every domain
  on its native grid).
* :mod:`.pix2pix` - the pix2pix trainer of DGSSA's structure augmentation (a plain seeded torch loop).
* :mod:`.structure` - the structure step of a run: tree density calibrated to the source, the generator
  trained (or loaded) and saved as a ``fundus/pix2pix`` bundle, synthetic pairs for training.
"""

from medmodal.engine.fundus.config import VesselDataSettings, VesselModelSettings, VesselOptimSettings, \
    VesselRunConfig, VesselStructureSettings, VesselTrainerSettings
from medmodal.engine.fundus.module import VesselModule
from medmodal.engine.fundus.pix2pix import (Pix2PixPair, Pix2PixSettings, fundus_pairs, pairs_from_arrays,
                                            train_pix2pix)
from medmodal.engine.fundus.structure import (PIX2PIX_FORMAT, calibrate_tree_density, load_generator,
                                              prepare_structure, save_generator)
from medmodal.engine.fundus.train import run_vessels

__all__ = ["VesselRunConfig", "VesselDataSettings", "VesselModelSettings", "VesselOptimSettings",
           "VesselTrainerSettings", "VesselStructureSettings", "VesselModule", "run_vessels",
           "Pix2PixPair", "Pix2PixSettings", "fundus_pairs", "pairs_from_arrays", "train_pix2pix",
           "PIX2PIX_FORMAT", "calibrate_tree_density", "load_generator", "prepare_structure", "save_generator"]
