"""The records every downstream reader returns (the contract is in the package docstring).

* :class:`DownstreamSample`: one image with its labels, boxes and mask source, in ORIGINAL pixels.
* :class:`MaskSource`: what a ground-truth mask is drawn from (SIIM RLE rows, RSNA boxes).
* :class:`DownstreamDataset`: the descriptor of a dataset (tasks, label names, metric, splits).
* :class:`DownstreamReadResult`: samples + descriptor + what was dropped / skipped / assumed.

Shared helpers for the readers: :func:`read_csv_rows` (CSV with line numbers, header names
stripped), :func:`check_box` (a box against its image), :func:`resolve_image`.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from medmodal.data.cxr.records import CXRDataError, ReadAccount, decode_lenient, has_undecodable
from medmodal.errors import ConfigError

TASKS = ("classification", "segmentation", "detection")
SPLITS = ("train", "val", "test")
LABEL_KINDS = ("multilabel", "multiclass")
#: Metric names the engine maps to implementations (torchmetrics): macro AUROC over the label
#: names (per-label AUROC reported beside it), top-1 accuracy, Dice per image as the reference
#: counts it (an empty ground truth with an empty prediction = 1), and COCO-style mAP averaged
#: over IoU 0.40:0.05:0.75 (MGCA / CM-CGNS ``MeanAveragePrecision(iou_thresholds=...)``).
METRICS = ("auroc", "accuracy", "dice", "map_40_75")


@dataclass(frozen=True)
class MaskSource:
    """How a sample's ground-truth mask is drawn at the original image size.

    Attributes:
        rle: SIIM-ACR ``EncodedPixels`` strings (relative starts, column-major; see
            :mod:`~medmodal.data.cxr.downstream.rle`); several rows of one image are merged (union).
        boxes: ``(x0, y0, x1, y1)`` rectangles in original pixels, filled (RSNA segmentation from
            boxes, as the reference builds its masks).
    """

    rle: tuple[str, ...] = ()
    boxes: tuple[tuple[float, float, float, float], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.rle and not self.boxes

    def rasterise(self, height: int, width: int) -> np.ndarray:
        """uint8 ``[height, width]`` mask of 0 / 1 (union of every RLE row and box).

        Raises:
            ValueError: a malformed RLE string or one that runs past ``height * width`` pixels.
        """
        from medmodal.data.cxr.downstream.rle import boxes_to_mask, rle_decode

        mask = np.zeros((height, width), np.uint8)
        for rle in self.rle:
            mask |= rle_decode(rle, height, width)
        if self.boxes:
            mask |= boxes_to_mask(np.asarray(self.boxes, np.float32), height, width)
        return mask


@dataclass(eq=False)
class DownstreamSample:
    """One image of a downstream dataset.

    Attributes:
        sample_id: the dataset's image identifier (CheXpert ``Path``, RSNA ``patientId``, COVIDx
            file name, SIIM ``ImageId``, Object-CXR ``image_name``); unique within a read.
        patient_id: the patient (CheXpert ``patientNNNNN``, RSNA ``patientId`` (one image per
            patient), COVIDx ``patient_id``, SIIM DICOM ``PatientID`` when read, else the image;
            Object-CXR has none: the image). Splits never put one patient in two splits.
        image_path: the image file (JPEG / PNG / DICOM).
        split: ``train`` | ``val`` | ``test`` for the task the reader was asked for.
        labels: multi-label datasets: float per :attr:`DownstreamDataset.label_names`, 1.0 / 0.0,
            or NaN = "ignore in the loss and the metric" (CheXpert ``uncertain="ignore"`` /
            ``blank="ignore"``). Binary datasets are multi-label with one name (RSNA
            ``Pneumonia``, SIIM ``Pneumothorax``, Object-CXR ``Foreign object``).
        class_index: multi-class datasets (COVIDx): index into ``label_names``.
        boxes: float32 ``[N, 4]`` ``(x0, y0, x1, y1)`` in ORIGINAL image pixels (continuous
            coordinates: a box ``0 0 10 10`` covers pixels 0..9); ``[0, 4]`` when the image has none;
            ``None`` when the dataset has no boxes.
        box_labels: int64 ``[N]`` index into :attr:`DownstreamDataset.box_label_names`.
        mask: :class:`MaskSource` of the segmentation target (``None``: no mask task).
        image_size: ``(height, width)`` of the original image when the reader read it (DICOM
            header, box checks), else ``None`` (the torch datasets read it from the header).
        view: ``Frontal`` / ``Lateral`` / ``PA`` / ``AP`` when the dataset says, else ``""``.
        source: ``file:line`` the sample came from (for messages).
        extra: dataset-specific fields (CheXpert raw 1/0/-1/blank values, COVIDx ``source``, ...).
    """

    sample_id: str
    patient_id: str
    image_path: Path
    split: Optional[str] = None
    labels: Optional[tuple[float, ...]] = None
    class_index: Optional[int] = None
    boxes: Optional[np.ndarray] = None
    box_labels: Optional[np.ndarray] = None
    mask: Optional[MaskSource] = None
    image_size: Optional[tuple[int, int]] = None
    view: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict)

    def is_positive(self, k: int = 0) -> bool:
        """Label ``k`` is 1 (multi-label) / the class is ``k`` (multi-class)."""
        if self.class_index is not None:
            return self.class_index == k
        return self.labels is not None and self.labels[k] == 1.0


@dataclass(frozen=True)
class DownstreamDataset:
    """What a downstream dataset is and how it is evaluated (one per reader; the reader returns a
    copy whose ``label_names`` reflect its options).

    Attributes:
        name: registry key (``chexpert``, ``rsna``, ``covidx``, ``siim``, ``object-cxr``).
        title: human name and version.
        tasks: the tasks it supports, a subset of :data:`TASKS`.
        label_names: image-level label names (classification targets, in order).
        label_kind: ``multilabel`` (BCE per name; binary = one name) | ``multiclass`` (softmax CE).
        metrics: task -> metric name of :data:`METRICS`.
        box_label_names: detection classes (``boxes`` index them); empty without detection.
        classification_augment: the reference's training augmentation for the linear probe:
            ``moco2`` (CheXpert: MGCA ``Moco2Transform``) or ``crop`` (``DataTransforms``).
        splits: split name -> how it is made (printed by ``medmodal data downstream-summary``).
        reference: where the protocol comes from.
    """

    name: str
    title: str
    tasks: tuple[str, ...]
    label_names: tuple[str, ...]
    label_kind: str
    metrics: Mapping[str, str]
    box_label_names: tuple[str, ...] = ()
    classification_augment: str = "crop"
    splits: Mapping[str, str] = field(default_factory=dict)
    reference: str = "MGCA (Wang et al., NeurIPS 2022) / CM-CGNS downstream code"

    def metric(self, task: str) -> str:
        """Metric name of ``task``. Raises ValueError when the dataset has no such task."""
        self.check_task(task)
        return self.metrics[task]

    def check_task(self, task: str) -> str:
        if task not in self.tasks:
            raise ConfigError(f"{self.name} supports {', '.join(self.tasks)}, not {task!r}")
        return task


@dataclass
class DownstreamReadResult(ReadAccount):
    """What a downstream reader returns.

    Attributes:
        dataset: the descriptor (label names as read).
        task: the task whose split protocol was applied (RSNA's differ per task).
        samples: one per image, each with its split.
        extra: dataset-specific lists (CheXpert ``chexpert_5x200``: the excluded ``Path`` values).
        dropped / skipped / notes: see :class:`medmodal.data.cxr.records.ReadAccount`.
    """

    dataset: Optional[DownstreamDataset] = None
    task: str = ""
    samples: list[DownstreamSample] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def select(self, split: str) -> list[DownstreamSample]:
        """Samples of one split (``train`` | ``val`` | ``test``)."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        return [s for s in self.samples if s.split == split]

    def split_ids(self) -> dict[str, list[str]]:
        """``{"train" | "val" | "test": [sample_id, ...]}`` in reading order, e.g. for
        :func:`medmodal.data.splits.write_splits` into a run folder."""
        return {split: [s.sample_id for s in self.select(split)] for split in SPLITS}

    def summary(self) -> dict:
        """Counts per split: images, patients, positives per label (or per class), boxes, masks."""
        names = self.dataset.label_names if self.dataset else ()
        per_split = {}
        for split in SPLITS:
            rows = self.select(split)
            if not rows:
                continue
            entry = {"images": len(rows), "patients": len({s.patient_id for s in rows})}
            if names:
                entry["positives"] = {n: sum(s.is_positive(k) for s in rows) for k, n in enumerate(names)}
                if self.dataset.label_kind == "multilabel":
                    unknown = {n: sum(1 for s in rows if s.labels is not None and math.isnan(s.labels[k]))
                               for k, n in enumerate(names)}
                    if any(unknown.values()):
                        entry["ignored"] = unknown
            if any(s.boxes is not None for s in rows):
                entry["boxes"] = int(sum(len(s.boxes) for s in rows if s.boxes is not None))
                entry["images_with_boxes"] = sum(1 for s in rows if s.boxes is not None and len(s.boxes))
            if any(s.mask is not None for s in rows):
                entry["images_with_mask"] = sum(1 for s in rows if s.mask is not None and not s.mask.empty)
            per_split[split] = entry
        return {"dataset": self.dataset.name if self.dataset else "", "task": self.task,
                "images": len(self.samples), "patients": len({s.patient_id for s in self.samples}),
                "splits": per_split, "dropped": dict(self.dropped), "skipped_bad": len(self.skipped)}


def read_csv_rows(path: str | Path, required: Sequence[str] = (), result: ReadAccount | None = None,
                  skip_bad: bool = False) -> list[tuple[int, dict]]:
    """Rows of a CSV file as ``(line, {column: stripped value})``; header names are stripped
    (SIIM's header is ``ImageId, EncodedPixels`` with a space).

    A row with undecodable bytes or a different number of fields than the header is bad input
    (named by file and line; skipped and counted in ``result`` under ``skip_bad``).

    Raises:
        CXRDataError: missing / unreadable file, no header, a required column absent, a bad row.
    """
    path = Path(path)
    text = decode_lenient(path)
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise CXRDataError(f"{path}: empty file (expected a header with {', '.join(required)})") from None
    except csv.Error as err:
        raise CXRDataError(f"{path}:1: malformed CSV ({err})") from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise CXRDataError(f"{path}: no column {', '.join(repr(c) for c in missing)} "
                           f"(columns: {', '.join(header) or 'none'})")
    rows = []
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            _bad_row(result, CXRDataError(f"{path}:{reader.line_num}: malformed CSV ({err})"), skip_bad, path)
            continue
        line = reader.line_num
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            _bad_row(result, CXRDataError(f"{path}:{line}: {len(values)} fields, the header has "
                                          f"{len(header)}"), skip_bad, path)
            continue
        if has_undecodable(*values):
            _bad_row(result, CXRDataError(f"{path}:{line}: not UTF-8 text"), skip_bad, path)
            continue
        rows.append((line, {h: v.strip() for h, v in zip(header, values)}))
    return rows


def _bad_row(result: ReadAccount | None, error: CXRDataError, skip_bad: bool, path: Path) -> None:
    if result is None or not skip_bad:
        raise error
    result.bad(error, skip_bad, path)


def parse_number(text: str, where: str, what: str) -> float:
    """``text`` as a finite float. Raises CXRDataError naming ``where`` and ``what``."""
    try:
        value = float(text)
    except ValueError:
        raise CXRDataError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise CXRDataError(f"{where}: {what} {text!r} is not finite")
    return value


#: A box may overshoot its image by this many pixels (annotation tools round outwards); it is then
#: clipped. Further out is bad input.
BOX_TOLERANCE = 2.0


def check_box(box: Sequence[float], height: int | None, width: int | None, where: str,
              tolerance: float = BOX_TOLERANCE) -> np.ndarray:
    """A ``(x0, y0, x1, y1)`` box checked against its image (clipped within ``tolerance``).

    Raises:
        CXRDataError: not 4 finite numbers, ``x1 <= x0`` or ``y1 <= y0``, or outside the image.
    """
    b = np.asarray(box, np.float64)
    if b.shape != (4,) or not np.all(np.isfinite(b)):
        raise CXRDataError(f"{where}: box {list(box)} is not 4 finite numbers")
    if b[2] <= b[0] or b[3] <= b[1]:
        raise CXRDataError(f"{where}: box {_fmt(b)} is empty (x1 <= x0 or y1 <= y0)")
    if height is not None and width is not None:
        lo, hi = -tolerance, np.array([width, height, width, height]) + tolerance
        if np.any(b < lo) or np.any(b > hi):
            raise CXRDataError(f"{where}: box {_fmt(b)} lies outside the {width} x {height} image")
        b = np.clip(b, 0, [width, height, width, height])
        if b[2] <= b[0] or b[3] <= b[1]:
            raise CXRDataError(f"{where}: box {_fmt(b)} is empty inside the {width} x {height} image")
    return b.astype(np.float32)


def _fmt(box: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


def boxes_array(boxes: Sequence[np.ndarray]) -> np.ndarray:
    """float32 ``[N, 4]`` (``[0, 4]`` for none)."""
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def resolve_image(root: Path, relative: str, strip_first: bool = False) -> Path:
    """``root / relative``; with ``strip_first`` the first path component is dropped first
    (CheXpert's ``CheXpert-v1.0-small/train/...`` relative to the folder holding ``train.csv``)."""
    parts = Path(relative.replace("\\", "/")).parts
    if strip_first and len(parts) > 1:
        parts = parts[1:]
    return root.joinpath(*parts)
