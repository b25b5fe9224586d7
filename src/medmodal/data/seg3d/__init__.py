"""3-D segmentation data: single-modality volumes for semi-supervised training, read in the layouts users hold.

Data layer of the semi-supervised 3-D segmentation task (UA-MT / SSL4MIS style: a labelled budget of the first k
training volumes, the rest unlabelled): UA-MT's left-atrium HDF5 files, BHSD-style haemorrhage head CT, and a
generic nnU-Net-like NIfTI folder with unlabelled images. The readers register as the layout family ``seg3d``
(:data:`FAMILY`) in :mod:`medmodal.data.layouts`.

* :mod:`.layouts` - :func:`read_seg3d` (``layout="auto"`` detects), :func:`detect_layout`, the
  :class:`Seg3DSet` / :class:`Seg3DCase` records; the readers live in :mod:`.la2018`, :mod:`.bhsd` and
  :mod:`.nifti_folder`.
* :mod:`.loading` - :func:`load_volume`: a case as a float32 ``[C, *spatial]`` image, a uint8 ``[*spatial]``
  label and the spacing, spatial axes in the file's order.
* :mod:`.synthetic` - :func:`write_synthetic`: learnable twins of every layout, written as the real files.
"""

from medmodal.data.seg3d.common import (BHSD_CLASSES, BINARY_CLASSES, FAMILY, HAEMORRHAGE_CLASSES, LA_CLASSES, LAYOUTS,
                                        Seg3DCase, Seg3DSet)
from medmodal.data.seg3d.layouts import detect_layout, read_seg3d
from medmodal.data.seg3d.loading import Volume3D, load_label, load_volume, normalise_intensity, volume_shape
from medmodal.data.seg3d.synthetic import SYNTH_LAYOUTS, write_synthetic

__all__ = ["FAMILY", "LAYOUTS", "LA_CLASSES", "BHSD_CLASSES", "HAEMORRHAGE_CLASSES", "BINARY_CLASSES", "Seg3DCase",
           "Seg3DSet", "Volume3D", "read_seg3d", "detect_layout", "load_volume", "load_label", "volume_shape",
           "normalise_intensity", "write_synthetic", "SYNTH_LAYOUTS"]
