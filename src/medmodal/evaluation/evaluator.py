"""Evaluate a model on every case under every subset of sequences.

For each case and each non-empty subset of the sequences the case has, the missing sequences
are masked, the whole volume is predicted by sliding windows, and Dice / HD95 are computed per
region under an evaluation protocol (its empty-region rules and ET post-processing, see
:mod:`medmodal.evaluation.protocols`). A case that was reoriented or resampled to the model's
training geometry (an item with a non-identity ``grid`` and a ``native_label``) is scored on
its native grid: probabilities are mapped back first (:func:`native_classes`), then compared
with the label as stored, at the files' voxel spacing. The result is a list of rows
``{case_id, subset, Dice_WT, ..., HD95_ET}``, one per (case, subset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from medmodal.data.missing import all_subsets, subset_name
from medmodal.data.volumes.spec import DatasetSpec
from medmodal.errors import CaseError
from medmodal.evaluation.metrics import region_metrics
from medmodal.evaluation.protocols import LEGACY_PROTOCOL, EvaluationProtocol, et_threshold, get_protocol
from medmodal.inference.segmentation import (inference_precision, native_classes, predict_probabilities,
                                             predict_probabilities_all_subsets)


@dataclass
class SubsetEvaluation:
    """Settings of a subset evaluation (window defaults: the PASSION/RFNet sliding window).

    ``protocol`` (a name of :data:`medmodal.evaluation.protocols.PROTOCOLS` or an object) scores
    the predictions; the default keeps the earlier convention for callers that do not choose one
    (training-time validation). ``et_min_voxels``: ``None`` = the protocol's threshold.
    """

    roi_size: Sequence[int] = (80, 80, 80)
    overlap: float = 0.5
    sw_batch_size: int = 2
    et_min_voxels: int | None = None
    hd95: bool = True
    shared_encoder: bool = True  # encode each sequence once per window, decode all subsets as a batch
    subset_chunk: int = 15  # subsets decoded together (bounds memory: chunk x classes x volume floats)
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    protocol: str | EvaluationProtocol = LEGACY_PROTOCOL


def evaluate_case(model: nn.Module, item: dict, spec: DatasetSpec, subsets: Iterable[Sequence[bool]],
                  settings: SubsetEvaluation, device: torch.device | str = "cpu") -> list[dict]:
    """Rows for one case (``item`` from :class:`medmodal.data.volumes.dataset.CaseDataset`).

    Subsets asking for a sequence the case lacks are skipped. Items with a non-identity ``grid``
    and a ``native_label`` are scored on the native grid (see module docstring).
    """
    image = item["image"].unsqueeze(0).to(device)
    grid = item.get("grid")
    native = grid is not None and not grid.identity and "native_label" in item
    reference = item["native_label" if native else "label"].cpu().numpy()  # Lightning may have moved it to the GPU
    spacing = grid.native_spacing if native else item["spacing"]
    # the ET threshold (the setting, else the protocol's) is in working-grid voxels: native voxels by the
    # voxel-volume ratio
    protocol = get_protocol(settings.protocol, spec)
    min_et = et_threshold(protocol, settings.et_min_voxels)
    if native:
        min_et = round(min_et * grid.voxel_volume_ratio)
    present = item["present"].cpu().numpy().astype(bool)
    masks = [np.asarray(s, bool) for s in subsets if not (np.asarray(s, bool) & ~present).any()]
    to_classes = None
    if native:
        def to_classes(probs: np.ndarray) -> np.ndarray:  # argmax on the native grid, no post-processing yet
            return native_classes(probs, item["bbox"], item["original_shape"], grid, spec)[0]
    rows = []
    with inference_precision(image.device, settings.precision):
        predictions = list(_predicted_classes(model, image, masks, settings, to_classes))
    for mask, pred in zip(masks, predictions):
        scores = region_metrics(pred, reference, spec, spacing=spacing, hd95=settings.hd95,
                                protocol=protocol, et_min_voxels=min_et)
        rows.append({"case_id": item["case_id"], "subset": subset_name(mask, spec.modalities), **scores})
    return rows


def _predicted_classes(model: nn.Module, image: torch.Tensor, masks: list[np.ndarray], settings: SubsetEvaluation,
                       to_classes=None):
    """Yield the ``[*spatial]`` uint8 class map of each subset, in order.

    ``to_classes(probs [C, *spatial] numpy) -> class map`` replaces the argmax when given (native grid).
    """
    window = (settings.roi_size, settings.overlap, settings.sw_batch_size)
    if not settings.shared_encoder:
        for mask in masks:
            probs = predict_probabilities(model, image, torch.from_numpy(mask), *window)
            if to_classes is not None:
                yield to_classes(probs[0].float().cpu().numpy())
            else:
                yield probs.argmax(1)[0].cpu().numpy().astype(np.uint8)
        return
    for start in range(0, len(masks), settings.subset_chunk):
        chunk = torch.from_numpy(np.stack(masks[start:start + settings.subset_chunk]))
        probs = predict_probabilities_all_subsets(model, image, chunk, *window)
        if to_classes is not None:
            yield from (to_classes(p.float().cpu().numpy()) for p in probs)
        else:
            yield from probs.argmax(1).cpu().numpy().astype(np.uint8)


def evaluate_subsets(model: nn.Module, dataset, spec: DatasetSpec, settings: SubsetEvaluation,
                     subsets: Sequence[Sequence[bool]] | None = None, device: torch.device | str = "cpu",
                     progress: bool = False) -> list[dict]:
    """Rows for every case of ``dataset`` x every subset (default: all ``2**M - 1``)."""
    subsets = list(subsets) if subsets is not None else all_subsets(spec.num_modalities)
    was_training = model.training
    model.eval()
    indices: Iterable[int] = range(len(dataset))
    if progress:
        from rich.progress import track

        indices = track(list(indices), description=f"evaluating {len(subsets)} subsets")
    rows: list[dict] = []
    try:
        for i in indices:
            item = dataset[i]
            if "label" not in item:
                raise CaseError(f"case {item['case_id']}: evaluation needs a label file")
            rows.extend(evaluate_case(model, item, spec, subsets, settings, device))
    finally:
        model.train(was_training)
    return rows
