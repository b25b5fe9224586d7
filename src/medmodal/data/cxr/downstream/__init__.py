"""Chest X-ray downstream datasets (CM-CGNS / MGCA evaluation): readers, splits, torch datasets.

This package is the contract between the dataset files and the fine-tuning engine.

**Datasets** (one module each, reader + synthetic twin; :data:`DATASETS` by name):

=============  ============================  ==================================  ===================
name           files read                    tasks (metric)                      labels
=============  ============================  ==================================  ===================
``chexpert``   train.csv / valid.csv + JPEG  classification (macro AUROC)        5 findings, multi-label
``rsna``       stage_2_train_labels + DICOM  classification (AUROC), detection   Pneumonia, boxes
                                             (mAP 0.40:0.75), segmentation (Dice)
``covidx``     train_*.txt / test_*.txt      classification (accuracy)           normal / pneumonia /
                                                                                 COVID-19, multi-class
``siim``       train-rle.csv + DICOM         segmentation (Dice)                 Pneumothorax, RLE mask
``object-cxr`` train.csv / dev.csv + JPEG    detection (mAP 0.40:0.75)           foreign-object boxes
=============  ============================  ==================================  ===================

**Reading**::

    result = read_downstream("rsna", ROOT, task="detection")      # DownstreamReadResult
    result = sample_training_fraction(result, 0.01)               # train split only, seeded (42)
    train, val, test = (result.select(s) for s in ("train", "val", "test"))
    info = result.dataset                                          # DownstreamDataset

``read_downstream(name, root, task=None, **options) -> DownstreamReadResult``: ``task``
selects the split protocol (RSNA's differ per task); options are the reader's (``seed``,
``check_images``, ``skip_bad``, and per dataset e.g. CheXpert ``uncertain`` / ``blank`` /
``findings`` / ``views`` / ``val_size`` / ``exclude_5x200``, COVIDx ``train_file`` /
``test_file``, SIIM ``balance_train`` / ``patients``). ``DownstreamReadResult``: ``dataset``,
``task``, ``samples`` (each with its ``split``), ``dropped`` (reason -> count), ``skipped``
(bad input skipped under ``skip_bad``: ``(file, one-line problem)``), ``notes``, ``extra``;
``select(split)``, ``split_ids()``, ``summary()``.

``DownstreamSample`` (:mod:`.base`): ``sample_id``, ``patient_id``, ``image_path``, ``split``,
``labels`` (float tuple per ``dataset.label_names``: 1 / 0 / NaN = ignore; binary datasets have
one name) or ``class_index`` (multi-class), ``boxes`` float32 ``[N, 4]`` xyxy in ORIGINAL image
pixels (``[0, 4]`` = no object) + ``box_labels`` int64 ``[N]``, ``mask`` (:class:`MaskSource`:
RLE rows or boxes, ``rasterise(H, W)``), ``image_size`` ``(H, W)`` when known, ``view``,
``source`` (``file:line``), ``extra``.

``DownstreamDataset``: ``name``, ``title``, ``tasks``, ``label_names``, ``label_kind``
(``multilabel`` | ``multiclass``), ``metrics`` (task -> ``auroc`` | ``accuracy`` | ``dice`` |
``map_40_75``), ``box_label_names``, ``classification_augment`` (the reference's probe
augmentation), ``splits`` (how each split is made).

**Splits** (MGCA's, :mod:`.splits`), all by patient where ids exist, checked by
:func:`check_no_leakage` (no patient and no image in two splits): CheXpert train.csv minus
CheXpert-5x200 minus ~5,000 val images (whole patients), official valid.csv as test; RSNA 70 /
15 / 15 (classification) or 60 / 20 / 20 (detection, segmentation: 16,010 / 5,337 / 5,337);
COVIDx official train file 80 / 20 into train / val, official test file as test; SIIM 70 / 15 /
15 by image (the reference's row split can cut one image's mask across splits; fixed), with
all positive + as many negative training images; Object-CXR train.csv 90 / 10, dev.csv as test.
Label fractions: :func:`sample_training_fraction` (documented in :mod:`.splits`).

**Torch datasets** (:mod:`.datasets`; images through one
:class:`~medmodal.data.cxr.images.ImageCache`: longer side to 256, zero-padded; grey x 3;
``(x / 255 - 0.5) / 0.5``; transforms v2 with ``tv_tensors``, :mod:`.transforms`)::

    ClassificationDataset(samples, dataset, image_cache=None, train=True, image_size=224, augment=None)
      -> {"image": float32 [3, S, S], "target": float32 [K] (NaN = ignore) | int64 [] (class),
          "sample_id": str, "patient_id": str}
    SegmentationDataset(samples, image_cache=None, train=True, image_size=224, augment="shift_scale_rotate")
      -> {"image": float32 [3, S, S], "mask": float32 [S, S] (0 / 1), "sample_id", "patient_id"}
    DetectionDataset(samples, image_cache=None, train=True, image_size=224, geometry="pad", augment="none")
      -> {"image": float32 [3, S, S], "boxes": BoundingBoxes float32 [N, 4] (XYXY, pixels of S x S),
          "labels": int64 [N], "orig_size": (H, W), "sample_id", "patient_id"}
    collate_detection(items) -> {"image": [B, 3, S, S], "boxes": [..N_i x 4], "labels": [..N_i], ...}

Masks and boxes go through the image's own resize + pad (then ``Resize(S)`` /
``RandomAffine``); ``geometry="stretch"`` is the reference's direct ``S x S`` resize for
detection. Classification augmentations: ``crop`` (RSNA, COVIDx), ``moco2`` (CheXpert), ``none``.

**Synthetic twins** (``medmodal cxr synth-downstream``; :func:`synth_downstream`): each dataset
in its own layout and file formats, drawn by the ``medmodal cxr synth`` generator from findings mapped
per dataset (documented in each module), so the tests run the real readers.

**Bad input**: one line naming the file (and line) and the problem (:class:`CXRDataError`);
``skip_bad=True`` skips, counts and names each one instead.
"""

from medmodal.data.cxr.downstream.base import (METRICS, SPLITS, TASKS, DownstreamDataset, DownstreamReadResult,
                                               DownstreamSample, MaskSource)
from medmodal.data.cxr.downstream.datasets import (ClassificationDataset, DetectionDataset, SegmentationDataset,
                                                   collate_detection, nan_safe_targets)
from medmodal.data.cxr.downstream.registry import (DATASETS, dataset_entry, get_dataset, read_downstream,
                                                   synth_downstream)
from medmodal.data.cxr.downstream.rle import rle_decode, rle_encode
from medmodal.data.cxr.downstream.splits import (balance_positive_negative, check_no_leakage,
                                                 sample_training_fraction)

__all__ = ["DATASETS", "METRICS", "SPLITS", "TASKS", "ClassificationDataset", "DetectionDataset", "DownstreamDataset",
           "DownstreamReadResult", "DownstreamSample", "MaskSource", "SegmentationDataset", "balance_positive_negative",
           "check_no_leakage", "collate_detection", "dataset_entry", "get_dataset", "nan_safe_targets",
           "read_downstream", "rle_decode", "rle_encode", "sample_training_fraction", "synth_downstream"]
