"""Retinal fundus photographs with vessel annotations: readers, field-of-view masks, synthetic twins.

Data layer of retinal vessel segmentation (DGSSA), a 2-D, single-modality RGB task of the
segmentation family ``seg``.

Registry key. The layout registry (:mod:`medmodal.data.layouts`) is keyed by the *image kind* a data
package reads (``volumes`` for the ``seg`` family's MRI volumes, ``cxr``, ``endoscopy``), not by CLI
family, because one family may read several kinds. Fundus photographs are a new image kind with
their own layouts, so they register as family ``fundus`` (:data:`~medmodal.data.fundus.layouts.FAMILY`),
which the ``seg`` family reads for its 2-D fundus task; the volume layouts stay as they are and no
fundus detector is asked for a volume folder (or the other way round).

* :mod:`.layouts` - readers for DRIVE, CHASE_DB1, HRF, STARE and a generic ``images/`` + ``masks/``
  (+ ``fov/``) layout; :func:`read_fundus` (``layout="auto"`` detects).
* :mod:`.arrays` - decode a sample's image, labels (binarised at ``> 127``) and FOV.
* :mod:`.fov` - :func:`derive_fov` for data sets without FOV masks (CHASE_DB1, STARE).
* :mod:`.geometry` - :class:`FundusGeometry` (a common FOV diameter recorded in the model bundle),
  :func:`to_network` / :func:`to_native` between an image's native grid and the network grid.
* :mod:`.synthetic` - fundus-like images with vessel trees written in each official layout.
* :mod:`.dataset` - :class:`FundusVesselDataset` (network-grid training / evaluation items),
  :class:`SyntheticPairs` (real + synthetic mix), :func:`fundus_splits` (validation from training images only).
* :mod:`.vessel_tree` - space-colonisation vessel trees (DGSSA's structure augmentation), vectorised with a
  k-d tree, and their rasterisation at any size.
"""

from medmodal.data.fundus.arrays import LABEL_THRESHOLD, load_fov, load_image, load_label, load_mask
from medmodal.data.fundus.dataset import FundusVesselDataset, SyntheticPairs, collate_fundus, fundus_splits
from medmodal.data.fundus.fov import derive_fov
from medmodal.data.fundus.geometry import FundusGeometry, Grid, fov_geometry, to_native, to_network
from medmodal.data.fundus.layouts import (FAMILY, LAYOUTS, FundusSample, FundusSet, detect_layout, read_chase_db1,
                                          read_drive, read_fundus, read_generic, read_hrf, read_stare, as_fundus_dataset)

__all__ = ["FAMILY", "LAYOUTS", "FundusSample", "FundusSet", "read_fundus", "as_fundus_dataset", "detect_layout", "read_drive",
           "read_chase_db1", "read_hrf", "read_stare", "read_generic", "derive_fov", "LABEL_THRESHOLD",
           "load_image", "load_mask", "load_label", "load_fov", "FundusGeometry", "Grid", "fov_geometry",
           "to_network", "to_native", "FundusVesselDataset", "SyntheticPairs", "collate_fundus", "fundus_splits"]
