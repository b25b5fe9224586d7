"""3-D single-image segmentation runs (``task: 3d``): patch training on one-channel volumes, fully or
semi-supervised (:mod:`medmodal.engine.semi`), SWDL-Net's inner passes, sliding-window scoring.

* :mod:`.config` - :class:`Seg3DRunConfig`.
* :mod:`.data` - volumes in memory, random patches, two-stream batches.
* :mod:`.module` - :class:`Seg3DModule`, :func:`predict_volume`.
* :mod:`.train` - :func:`run_seg3d`.
"""

from medmodal.engine.seg3d.config import Seg3DRunConfig
from medmodal.engine.seg3d.module import Seg3DModule, predict_volume
from medmodal.engine.seg3d.train import run_seg3d

__all__ = ["Seg3DRunConfig", "Seg3DModule", "predict_volume", "run_seg3d"]
