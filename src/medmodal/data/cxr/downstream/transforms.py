"""Downstream image transforms (torchvision transforms v2), the references' augmentations as options.

Every transform takes the cached ``256 x 256`` frame (longer side resized to 256, zero-padded;
:func:`medmodal.data.cxr.images.resize_and_pad`) as a ``tv_tensors.Image`` uint8 ``[3, 256, 256]``
(grey replicated, as the reference reads RGB), with ``tv_tensors.Mask`` / ``tv_tensors.BoundingBoxes``
beside it, so every geometric step moves masks and boxes with the image; it ends with
``ToDtype(float32, scale=True)`` and ``Normalize(0.5, 0.5)`` (the references' normalisation; masks
and boxes are not normalised).

Classification (linear probe; MGCA ``mgca/datasets/transforms.py``):

* ``crop`` (``DataTransforms``; RSNA, COVIDx): train ``RandomCrop(S)``, eval ``CenterCrop(S)``.
* ``moco2`` (``Moco2Transform``; CheXpert): train ``RandomCrop(S)``, ``ColorJitter(0.4, 0.4, 0.4,
  0.1)`` with p 0.8, ``RandomGrayscale`` p 0.2, Gaussian blur sigma 0.1..2 with p 0.5 (kernel
  ``0.1 S`` rounded up to odd, SimCLR's; the reference blurs with Pillow's radius = sigma),
  ``RandomHorizontalFlip``; eval ``CenterCrop(S)``.
* ``none``: ``CenterCrop(S)`` in training too.

Segmentation (MGCA / CM-CGNS ``SIIMImageDataset`` / ``RSNASegmentDataset``, albumentations):

* ``shift_scale_rotate``: train ``ShiftScaleRotate(shift 0, scale 0.1, rotate 10, p 0.5, constant
  border)`` as ``RandomApply([RandomAffine(degrees=10, scale=(0.9, 1.1))], p=0.5)`` (masks nearest);
  then ``Resize(S)`` in every split.
* ``none``: ``Resize(S)`` only.

Detection (MGCA ``DetectionDataTransforms``: no augmentation): ``Resize(S)`` of the given frame
(the padded 256 frame, or the un-padded image region for the reference's direct resize to
``S x S``; see :class:`~medmodal.data.cxr.downstream.datasets.DetectionDataset`), boxes clamped.
"""

from __future__ import annotations

import torch

from medmodal.data.cxr.dataset import IMAGE_MEAN, IMAGE_STD
from medmodal.errors import ConfigError

CLASSIFICATION_AUGMENTS = ("crop", "moco2", "none")
SEGMENTATION_AUGMENTS = ("shift_scale_rotate", "none")
DETECTION_AUGMENTS = ("none",)


def _finish():
    from torchvision.transforms import v2

    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize([IMAGE_MEAN] * 3, [IMAGE_STD] * 3)]


def _check(augment: str, choices: tuple[str, ...], what: str) -> None:
    if augment not in choices:
        raise ConfigError(f"unknown {what} augmentation {augment!r}; choose one of {', '.join(choices)}")


def classification_transform(augment: str, train: bool, size: int = 224):
    """v2 transform for the linear probe (module docstring). Raises ValueError for an unknown name."""
    from torchvision.transforms import v2

    _check(augment, CLASSIFICATION_AUGMENTS, "classification")
    if not train or augment == "none":
        return v2.Compose([v2.CenterCrop(size), *_finish()])
    steps = [v2.RandomCrop(size)]
    if augment == "moco2":
        kernel = int(0.1 * size) // 2 * 2 + 1
        steps += [v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), v2.RandomGrayscale(p=0.2),
                  v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=0.5), v2.RandomHorizontalFlip()]
    return v2.Compose([*steps, *_finish()])


def segmentation_transform(augment: str, train: bool, size: int = 224):
    """v2 transform for image + ``tv_tensors.Mask`` (module docstring). Raises ValueError for an unknown name."""
    from torchvision.transforms import v2

    _check(augment, SEGMENTATION_AUGMENTS, "segmentation")
    steps = []
    if train and augment == "shift_scale_rotate":
        steps.append(v2.RandomApply([v2.RandomAffine(degrees=10, scale=(0.9, 1.1))], p=0.5))
    return v2.Compose([*steps, v2.Resize((size, size), antialias=True), *_finish()])


def detection_transform(augment: str, train: bool, size: int = 224):
    """v2 transform for image + ``tv_tensors.BoundingBoxes`` (module docstring)."""
    from torchvision.transforms import v2

    _check(augment, DETECTION_AUGMENTS, "detection")
    return v2.Compose([v2.Resize((size, size), antialias=True), v2.ClampBoundingBoxes(), *_finish()])
