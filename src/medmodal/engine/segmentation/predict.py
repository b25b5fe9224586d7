"""Predict segmentations for new cases with whatever sequences they have.

For each case: read + validate the files present (any non-empty subset of the model's
sequences), preprocess exactly as in training, sliding-window inference with the present
sequences as the mask (slice by slice for a 2-D model, e.g. MyoPS), ET post-processing (BraTS
only), put the prediction back on the original grid,
convert classes to the case's label convention (BraTS 2020: 0/1/2/4, BraTS 2023: ET = 3, or
the one forced by ``label_convention``), and write ``<out>/<case_id>.nii.gz`` with the
reference image's affine and header (atomic write). ``save_probabilities`` also writes
``<case_id>.npz`` (float16 ``probabilities`` ``[C, X, Y, Z]``, class order of the spec).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import nibabel as nib
import numpy as np
import torch

from medmodal.data.volumes.layouts import Case
from medmodal.data.volumes.loading import label_spec_for, load_case
from medmodal.data.volumes.preprocess import preprocess, uncrop
from medmodal.data.volumes.spec import DatasetSpec, get_spec
from medmodal.engine.checkpoint import check_modalities
from medmodal.engine.segmentation.inference import inference_precision, predict_probabilities
from medmodal.evaluation.metrics import postprocess_et
from medmodal.evaluation.protocols import et_threshold, protocol_of_run
from medmodal.io import atomic_path, ensure_writable_dir


@dataclass
class PredictOptions:
    roi_size: Sequence[int] | None = None  # default: the model's training/eval window
    overlap: float | None = None
    sw_batch_size: int = 2
    et_min_voxels: int | None = None
    save_probabilities: bool = False
    skip_existing: bool = False  # nnU-Net's --continue
    label_convention: str | None = None  # default: the case's own
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32


def output_path(out_dir: Path, case: Case) -> Path:
    return out_dir / f"{case.case_id}.nii.gz"


def predict_case(model: torch.nn.Module, meta: dict, case: Case, out_dir: Path, options: PredictOptions,
                 device: torch.device | str = "cpu") -> Path:
    """Predict one case and write its NIfTI (and optional probabilities). Returns the output path."""
    spec = get_spec(meta["spec"])
    check_modalities(meta, list(case.images), f"case {case.case_id}")
    convention = output_convention(case, spec, options.label_convention)
    loaded = load_case(case, spec, with_label=False)
    pre = preprocess(loaded, spec.normalization)
    ev = meta.get("eval", {})
    roi = options.roi_size or ev.get("roi_size", (80, 80, 80))
    overlap = options.overlap if options.overlap is not None else ev.get("overlap", 0.5)
    min_et = options.et_min_voxels if options.et_min_voxels is not None else \
        et_threshold(protocol_of_run(ev, spec), ev.get("et_min_voxels"))
    image = torch.from_numpy(pre.image).unsqueeze(0).to(device)
    with inference_precision(image.device, options.precision):
        probs = predict_probabilities(model, image, torch.from_numpy(pre.present), roi, overlap, options.sw_batch_size)
    probs = probs[0].cpu().numpy()
    classes = postprocess_et(probs.argmax(0).astype(np.uint8), spec, min_voxels=min_et)
    classes = uncrop(classes, pre.bbox, pre.original_shape)
    labels = spec.with_source_labels(convention.source_labels).decode_labels(classes)
    target = output_path(out_dir, case)
    write_label_nifti(target, labels, loaded.affine, loaded.header)
    if options.save_probabilities:
        full = uncrop(probs.astype(np.float16), pre.bbox, pre.original_shape)
        full[0][full.sum(0) == 0] = 1  # outside the brain box: background
        with atomic_path(out_dir / f"{case.case_id}.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, probabilities=full, classes=np.array(spec.class_names))
    return target


def output_convention(case: Case, spec: DatasetSpec, forced: str | None = None) -> DatasetSpec:
    """The label convention of the output file: ``forced`` (``--output-labels``) or the case's own."""
    convention = get_spec(forced) if forced else label_spec_for(case, spec)
    if convention.class_names != spec.class_names:
        raise ValueError(f"output labels {convention.name!r} do not fit the model's classes "
                         f"({spec.name}: {', '.join(spec.class_names)})")
    return convention


def write_label_nifti(path: Path, labels: np.ndarray, affine: np.ndarray, header: nib.Nifti1Header) -> Path:
    """Write a label volume on the reference grid (affine + header copied, integer dtype, no scaling)."""
    hdr = header.copy()
    hdr.set_data_dtype(labels.dtype)
    img = nib.Nifti1Image(labels, affine, hdr)
    img.header.set_slope_inter(1, 0)
    img.set_qform(*header.get_qform(coded=True))
    img.set_sform(*header.get_sform(coded=True))
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path


def predict_cases(model: torch.nn.Module, meta: dict, cases: Sequence[Case], out_dir: str | Path,
                  options: PredictOptions, device: torch.device | str = "cpu",
                  on_case: Callable[[Case, str], None] | None = None) -> list[Path]:
    """Predict every case; ``on_case(case, status)`` reports ``written`` / ``skipped`` per case."""
    out_dir = ensure_writable_dir(out_dir)
    written = []
    for case in cases:
        target = output_path(out_dir, case)
        if options.skip_existing and target.is_file():
            on_case and on_case(case, "skipped")
            continue
        written.append(predict_case(model, meta, case, out_dir, options, device))
        on_case and on_case(case, "written")
    return written
