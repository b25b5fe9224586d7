"""2-D segmentation (``task: 2d``): slices of CT / MRI volumes (Synapse, ACDC) and photographs (polyps); MSLAU-Net
and its baselines.

* :mod:`.config` - :class:`Seg2DRunConfig` (data, model, loss, optim, trainer, eval sections).
* :mod:`.module` - :class:`Seg2DModule` (CE + soft Dice; validation Dice of whole cases on their native grid).
* :mod:`.train` - :func:`run_seg2d` (splits, train, keep the best validation checkpoint, score val and test).
* :mod:`.evaluate` - ``seg evaluate`` of a 2-D run. :mod:`.predict` - ``seg predict`` with a 2-D model bundle.
"""

from medmodal.engine.seg2d.config import (Seg2DDataSettings, Seg2DEvalSettings, Seg2DLossSettings, Seg2DModelSettings,
                                          Seg2DOptimSettings, Seg2DRunConfig, Seg2DTrainerSettings)
from medmodal.engine.seg2d.module import Seg2DModule
from medmodal.engine.seg2d.train import run_seg2d

__all__ = ["Seg2DRunConfig", "Seg2DDataSettings", "Seg2DModelSettings", "Seg2DLossSettings", "Seg2DOptimSettings",
           "Seg2DTrainerSettings", "Seg2DEvalSettings", "Seg2DModule", "run_seg2d"]
