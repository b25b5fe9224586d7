"""2-D segmentation data: slices of CT / MRI volumes and photographs, read in the layouts users hold.

Data layer of the 2-D segmentation task (TransUNet / MSLAU-Net style): Synapse multi-organ CT, ACDC cardiac
cine MRI, the CVC-ClinicDB and Kvasir-SEG polyp photographs, ERANet's knee-MRI meniscus slices (``.npy`` + CSV,
with an unlabelled pool) and a user's own ``images/`` + ``masks/`` + ``unlabelled/`` folder. The readers register as the layout family
``seg2d`` (:data:`FAMILY`) in :mod:`medmodal.data.layouts`; the volume (``volumes``) and fundus families are
separate, and the ``seg2d`` detectors are specific enough to be asked before them.

* :mod:`.layouts` - :func:`read_seg2d` (``layout="auto"`` detects), :func:`detect_layout`,
  :func:`as_seg2d_dataset`, the :class:`Seg2DSet` / :class:`Seg2DCase` records; the readers live in
  :mod:`.synapse` (TransUNet's npz / h5, BTCV NIfTI), :mod:`.acdc` (SSL4MIS's HDF5, the challenge's NIfTI) and
  :mod:`.polyp` (CVC-ClinicDB, Kvasir-SEG), :mod:`.meniscus` (ERANet's OAI slices) and :mod:`.folder2d`.
* :mod:`.loading` - :func:`load_case`: a case as float32 ``[S, C, H, W]`` images in [0, 1] and int64
  ``[S, H, W]`` labels, with the NIfTI spacing and affine.
* :mod:`.synthetic` - :func:`write_synthetic`: learnable twins of every layout, written as the real files.
"""

from medmodal.data.seg2d.common import (ACDC_CLASSES, FAMILY, LAYOUTS, MENISCUS_CLASSES, POLYP_CLASSES,
                                        SYNAPSE_CLASSES, Seg2DCase, Seg2DSet, case_patient)
from medmodal.data.seg2d.layouts import as_seg2d_dataset, detect_layout, read_seg2d
from medmodal.data.seg2d.loading import CaseArrays, case_shape, load_case, load_label
from medmodal.data.seg2d.synthetic import SYNTH_LAYOUTS, write_synthetic

__all__ = ["FAMILY", "LAYOUTS", "SYNAPSE_CLASSES", "ACDC_CLASSES", "POLYP_CLASSES", "MENISCUS_CLASSES", "Seg2DCase",
           "Seg2DSet", "case_patient",
           "CaseArrays", "read_seg2d", "detect_layout", "as_seg2d_dataset", "load_case", "load_label", "case_shape",
           "write_synthetic", "SYNTH_LAYOUTS"]
