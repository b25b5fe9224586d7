"""Predict segmentations for new cases with whatever sequences they have.

For each case: read + validate the files present (any non-empty subset of the model's
sequences; with ``skip_invalid`` a constant / all-zero sequence is treated as missing), bring
the case to the model's training geometry (orientation and voxel size recorded in the bundle,
:mod:`medmodal.data.volumes.geometry`), preprocess exactly as in training, sliding-window
inference with the present sequences as the mask (slice by slice for a 2-D model, e.g. MyoPS),
map the class probabilities back to the case's native grid and orientation and take the argmax
there (nnU-Net style), ET post-processing (BraTS only), convert classes to the case's label
convention (BraTS 2020: 0/1/2/4, BraTS 2023: ET = 3, a ``dataset.json`` declaration, or the one
forced by ``label_convention``), and write ``<out>/<case_id>.nii.gz`` with the reference image's
shape, affine and header (atomic write). ``save_probabilities`` also writes ``<case_id>.npz``
(float16 ``probabilities`` ``[C, X, Y, Z]`` on the native grid, class order of the spec).

Beside each prediction, ``<case_id>.json`` records what was done: the input files, the
sequences used / missing / skipped, the model, the geometry applied and the medmodal version.

The output folder must not be the input folder or lie inside a case's folder (the predictions
would then be read as input files): this is refused before anything is written.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import nibabel as nib
import numpy as np
import torch

from medmodal import installed_version
from medmodal.data.volumes.geometry import Geometry
from medmodal.data.volumes.layouts import Case
from medmodal.data.volumes.loading import DEFAULT_AFFINE_TOLERANCE, label_spec_for, load_case
from medmodal.data.volumes.preprocess import preprocess
from medmodal.data.volumes.spec import DatasetSpec, describe_source_labels, get_spec
from medmodal.errors import ConfigError
from medmodal.evaluation.protocols import et_threshold, protocol_of_run
from medmodal.inference.segmentation import inference_precision, native_classes, predict_probabilities
from medmodal.io import OutputError, atomic_path, atomic_write_json, ensure_writable_dir
from medmodal.models.bundles import check_modalities, model_geometry


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
    affine_tolerance: float = DEFAULT_AFFINE_TOLERANCE  # fraction of a voxel
    skip_invalid: bool = False  # constant / all-zero sequences are treated as missing


def output_path(out_dir: Path, case: Case) -> Path:
    return out_dir / f"{case.case_id}.nii.gz"


def record_path(out_dir: Path, case: Case) -> Path:
    return out_dir / f"{case.case_id}.json"


def predict_case(model: torch.nn.Module, meta: dict, case: Case, out_dir: Path, options: PredictOptions,
                 device: torch.device | str = "cpu", geometry: Geometry | None = None) -> Path:
    """Predict one case and write its NIfTI, its ``.json`` record (and optional probabilities).

    ``geometry``: the model's training geometry (default: read from ``meta``). Returns the output path.
    """
    spec = get_spec(meta["spec"])
    check_modalities(meta, list(case.images), f"case {case.case_id}")
    convention = output_convention(case, spec, options.label_convention)
    if geometry is None and "geometry" in meta:
        geometry = model_geometry(meta)
    loaded = load_case(case, spec, affine_tolerance=options.affine_tolerance, with_label=False,
                       skip_invalid=options.skip_invalid)
    pre = preprocess(loaded, spec.normalization, geometry)
    ev = meta.get("eval", {})
    roi = options.roi_size or ev.get("roi_size", (80, 80, 80))
    overlap = options.overlap if options.overlap is not None else ev.get("overlap", 0.5)
    min_et = options.et_min_voxels if options.et_min_voxels is not None else \
        et_threshold(protocol_of_run(ev, spec), ev.get("et_min_voxels"))
    image = torch.from_numpy(pre.image).unsqueeze(0).to(device)
    with inference_precision(image.device, options.precision):
        probs = predict_probabilities(model, image, torch.from_numpy(pre.present), roi, overlap, options.sw_batch_size)
    probs = probs[0].cpu().numpy()
    classes, full = native_classes(probs, pre.bbox, pre.original_shape, pre.grid, spec, min_et,
                                   keep_probabilities=options.save_probabilities)
    labels = spec.with_source_labels(convention.source_labels).decode_labels(classes)
    target = output_path(out_dir, case)
    write_label_nifti(target, labels, loaded.affine, loaded.header)
    if options.save_probabilities:
        with atomic_path(out_dir / f"{case.case_id}.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, probabilities=full, classes=np.array(spec.class_names))
    atomic_write_json(record_path(out_dir, case), case_record(case, meta, spec, convention, pre, geometry))
    return target


def case_record(case: Case, meta: dict, spec: DatasetSpec, convention: DatasetSpec, pre, geometry) -> dict:
    """The ``<case>.json`` written beside a prediction: what was read, used and applied."""
    used = [m for m, p in zip(spec.modalities, pre.present) if p]
    return {
        "case_id": case.case_id,
        "prediction": f"{case.case_id}.nii.gz",
        "inputs": {m: str(p) + (f" (channel {case.channels[m]})" if m in case.channels else "")
                   for m, p in case.images.items()},
        "sequences_used": used,
        "sequences_missing": [m for m in spec.modalities if m not in case.images],
        "sequences_skipped": dict(pre.skipped or {}),
        "labels": {"convention": convention.name, "values": describe_source_labels(convention.source_labels, spec)},
        "model": {"path": meta.get("source"), "name": meta.get("model_name"), "spec": meta.get("spec"),
                  "sequences": list(meta.get("modalities", []))},
        "geometry": {"model": geometry.to_dict() if geometry is not None else None,
                     "applied": pre.grid.to_dict() if pre.grid is not None else None},
        "medmodal_version": installed_version(),
    }


def output_convention(case: Case, spec: DatasetSpec, forced: str | None = None) -> DatasetSpec:
    """The label convention of the output file: ``forced`` (``--output-labels``) or the case's own."""
    convention = get_spec(forced) if forced else label_spec_for(case, spec)
    if convention.class_names != spec.class_names:
        raise ConfigError(f"output labels {convention.name!r} do not fit the model's classes "
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


def check_output_location(out_dir: str | Path, cases: Sequence[Case], input_root: str | Path | None = None) -> None:
    """Refuse an output folder that is the input folder or lies inside a folder holding a case's files.

    Predictions written there would be read as input the next time (a stray NIfTI in a case
    folder, or a new "case"). Raises :class:`medmodal.io.OutputError` naming both folders.
    """
    out = Path(os.path.abspath(out_dir))
    folders = {Path(os.path.abspath(p)).parent for case in cases for p in case.files()}
    if input_root is not None:
        root = Path(os.path.abspath(input_root))
        if out == root:
            raise OutputError(f"{out}: the output folder is the input folder; choose another -o")
    for folder in sorted(folders):
        if out == folder or folder in out.parents:
            raise OutputError(f"{out}: the output folder lies inside the input case folder {folder}; predictions "
                              f"there would be read as input files; choose an -o outside it")


def predict_cases(model: torch.nn.Module, meta: dict, cases: Sequence[Case], out_dir: str | Path,
                  options: PredictOptions, device: torch.device | str = "cpu",
                  on_case: Callable[[Case, str, dict | None], None] | None = None,
                  input_root: str | Path | None = None) -> list[Path]:
    """Predict every case; ``on_case(case, status, record)`` reports ``written`` (with the case's
    ``.json`` record: sequences used / skipped, geometry) or ``skipped`` (record ``None``) per case.

    The output location is checked (:func:`check_output_location`) and the model's geometry read
    (one warning for a bundle without it) before anything is written.
    """
    check_output_location(out_dir, cases, input_root)
    geometry = model_geometry(meta)
    out_dir = ensure_writable_dir(out_dir)
    written = []
    for case in cases:
        target = output_path(out_dir, case)
        if options.skip_existing and target.is_file() and record_path(out_dir, case).is_file():
            on_case and on_case(case, "skipped", None)
            continue
        written.append(predict_case(model, meta, case, out_dir, options, device, geometry=geometry))
        if on_case:
            on_case(case, "written", json.loads(record_path(out_dir, case).read_text()))
    return written
