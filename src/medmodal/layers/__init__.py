"""Building blocks shared by every family (timm's ``layers/``, MONAI's ``networks/blocks``).

Layer order: ``layers`` sits above ``data`` and below ``models`` (it imports only torch and the
lowest layers). Import from the submodules, e.g. ``from medmodal.layers.masking import masked_mean``.

* :mod:`~medmodal.layers.masking`: masked means over a presence mask, modality-mask checks.
* :mod:`~medmodal.layers.domain`: DSU feature-statistics shift, gradient reversal.
* :mod:`~medmodal.layers.randconv`: RandConv, random-convolution augmentation of a batch.
* :mod:`~medmodal.layers.ramps`: ramp-up / ramp-down schedules of a loss weight.
* :mod:`~medmodal.layers.momentum`: EMA (momentum) teacher update, id-aware key queue.
* :mod:`~medmodal.layers.contrastive`: InfoNCE with features gathered across processes.
"""

from medmodal.layers import contrastive, domain, masking, momentum, ramps, randconv

__all__ = ["contrastive", "domain", "masking", "momentum", "ramps", "randconv"]
