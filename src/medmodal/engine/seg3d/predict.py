"""Label maps of new volumes with a trained 3-D model (``medmodal seg predict``, a bundle with ``image_kind: 3d``).

Input: one volume file or a folder of them (the files directly in it; hidden files ignored): NIfTI (``.nii``,
``.nii.gz``; a 4-D file with one volume is read as 3-D) or UA-MT's HDF5 (``.h5`` / ``.hdf5``, its ``image``
dataset). A folder without such files that is UA-MT's LA folder (``2018LA_Seg_Training Set/<ID>/mri_norm2.h5``, or
the training-set folder itself; :func:`medmodal.data.seg3d.la2018.la_paths`) gives its ``mri_norm2.h5`` files.

Every volume is read as the model's training data was (:func:`medmodal.data.seg3d.load_volume`: spatial axes in
the file's order, the intensity rule of the bundle's ``dataset``: ``la`` as stored, ``bhsd`` the brain window
[0, 80] HU scaled to [0, 1], any other clipped to its 0.5 / 99.5 percentiles and z-scored), resampled by the
bundle's ``scale`` (trilinear), segmented by sliding window with the bundle's ``patch`` and ``eval.overlap``
(:func:`medmodal.engine.seg3d.module.predict_volume`), and the class map is resampled back to the input's grid
(nearest neighbour), so the label map has the input's shape.

Written into ``out_dir`` per input (each atomically; the JSON last, so it marks a finished input):

* ``<stem>_seg.nii.gz``: uint8 class indices in the input's shape; a NIfTI input's affine and header (data type
  uint8, no scaling); an HDF5 input stores no affine or voxel size: the identity affine (voxel coordinates), noted.
  ``<stem>`` is the file name without its suffix; UA-MT's ``<ID>/mri_norm2.h5`` files are named by their folder
  (``<ID>_seg.nii.gz``), since every LA case has the same file name;
* ``<stem>.json``: the model, its classes, the input, the intensity rule, the grids, the voxels (and for NIfTI the
  millilitres) per class, and the notes (an unknown voxel size, an identity affine, intensities that do not look
  like the model's data).

Errors: an unreadable file, a volume that is not 3-D, NaN voxels, a constant image raise one line naming the file
(:class:`~medmodal.errors.DataError` / :class:`~medmodal.errors.DamagedFileError`), or with ``skip_invalid`` are
reported through ``on_item(path, "invalid", reason)`` and skipped; a file of another kind is named in the returned
``ignored`` list, never silently dropped; two inputs with one output name are refused before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from medmodal.data.seg3d import Seg3DCase, Seg3DSet, load_volume
from medmodal.data.seg3d.bhsd import BRAIN_WINDOW
from medmodal.data.seg3d.la2018 import LA_FILE, la_paths
from medmodal.data.seg3d.loading import PERCENTILES
from medmodal.engine.seg2d.predict import SegPredictOptions, predict_inputs, split_inputs
from medmodal.engine.seg3d.module import predict_volume
from medmodal.errors import ConfigError, DamagedFileError, DataError, LayoutError
from medmodal.io import atomic_path

__all__ = ["Seg3DPredictOptions", "VOLUME_SUFFIXES", "find_inputs", "not_volume_reason", "output_stem",
           "intensity_rule", "predict_seg3d"]

#: The file endings read as volumes (NIfTI, UA-MT's HDF5).
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".h5", ".hdf5")


@dataclass
class Seg3DPredictOptions(SegPredictOptions):
    """The options of :func:`predict_seg3d` (:class:`~medmodal.engine.seg2d.predict.SegPredictOptions`)."""


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in VOLUME_SUFFIXES if name.endswith(s) and len(name) > len(s)), None)


def not_volume_reason(path: Path) -> str | None:
    """Why ``path`` is not an input to segment (``None``: it is one)."""
    return None if _suffix(path) else "not a NIfTI (.nii / .nii.gz) or HDF5 (.h5) volume"


def output_stem(path: Path) -> str:
    """The name the outputs of ``path`` start with: the file name without its suffix (``ID_1.nii.gz`` -> ``ID_1``),
    or for UA-MT's ``<ID>/mri_norm2.h5`` the case folder's name."""
    if path.name == LA_FILE and path.parent.name:
        return path.parent.name
    suffix = _suffix(path)
    return path.name[: -len(suffix)] if suffix else path.stem


def find_inputs(input_path: str | Path) -> tuple[list[Path], list[Path]]:
    """``(inputs, ignored)``: the volume files of ``input_path`` (a file, the files directly in a folder, or an LA
    folder's ``<ID>/mri_norm2.h5``; sorted) and the other visible files of the folder.

    Raises:
        LayoutError: the path does not exist, is not a volume, holds no volume, or two inputs share an output name.
    """
    path = Path(input_path)
    inputs, ignored = split_inputs(path, not_volume_reason)
    if not inputs:
        found = la_paths(path)
        if found is not None:
            inputs = sorted(p / LA_FILE for p in found[0].iterdir()
                            if p.is_dir() and not p.name.startswith(".") and (p / LA_FILE).is_file())
            ignored = []
    if not inputs:
        raise LayoutError(f"{path}: no NIfTI (.nii / .nii.gz) or HDF5 (.h5) volume directly in this folder "
                          f"(nor UA-MT's <ID>/{LA_FILE} case folders)")
    seen: dict[str, Path] = {}
    for p in inputs:
        stem = output_stem(p)
        if stem in seen:
            raise LayoutError(f"{p}: its output {stem}_seg.nii.gz would overwrite that of {seen[stem]}; predict "
                              f"them into different folders")
        seen[stem] = p
    return inputs, ignored


def intensity_rule(dataset: str) -> str:
    """The intensity normalisation :func:`medmodal.data.seg3d.normalise_intensity` applies for ``dataset``, in
    words."""
    if dataset == "la":
        return "as stored (UA-MT's LA volumes are z-scored when made)"
    if dataset == "bhsd":
        return f"brain window [{BRAIN_WINDOW[0]:g}, {BRAIN_WINDOW[1]:g}] HU scaled to [0, 1]"
    return f"clipped to the {PERCENTILES[0]:g} / {PERCENTILES[1]:g} percentiles, z-scored"


def predict_seg3d(model: torch.nn.Module, meta: dict, input_path: str | Path, out_dir: str | Path,
                  options: Seg3DPredictOptions | None = None,
                  on_item: Optional[Callable[[Path, str, object], None]] = None) -> dict:
    """Predict every input of ``input_path`` into ``out_dir`` (module docstring), on the model's device.

    ``on_item(path, status, detail)``: ``written`` (detail: the JSON record), ``skipped`` (already predicted) or
    ``invalid`` (detail: the one-line reason). Returns ``{"written", "skipped", "invalid", "ignored": [paths]}``.

    Raises:
        ConfigError: the bundle is not a 3-D model. LayoutError: no input. OutputError: ``out_dir`` is the input
        folder, inside it or holds inputs. DataError / DamagedFileError: an unreadable input without ``skip_invalid``.
    """
    options = options or Seg3DPredictOptions()
    if meta.get("image_kind") != "3d":
        raise ConfigError(f"{meta.get('source', 'the model')}: not a 3-D segmentation model "
                          f"(image_kind {meta.get('image_kind')!r})")
    inputs, ignored = find_inputs(input_path)
    return predict_inputs(inputs, ignored, Path(input_path), out_dir, options, on_item, output_stem,
                          lambda path, out: _predict_one(model, meta, path, out), (DataError, DamagedFileError))


def _read(meta: dict, path: Path):
    """The volume as the model's training data was read (the bundle's ``dataset`` picks the intensity rule)."""
    dataset = str(meta.get("dataset", "nifti"))
    case = Seg3DCase(output_stem(path), None, path, None, False)
    holder = Seg3DSet("predict", path.parent, dataset, [case], tuple(meta["classes"]),
                      tuple(meta.get("modalities") or ("image",)), [])
    return load_volume(case, holder)


def _predict_one(model: torch.nn.Module, meta: dict, path: Path, out: Path) -> dict:
    import nibabel as nib

    classes = list(meta["classes"])
    dataset = str(meta.get("dataset", "nifti"))
    vol = _read(meta, path)
    nifti = vol.affine is not None
    notes = list(vol.notes)
    if nifti and dataset == "la":
        notes.append(f"{path}: the model was trained on UA-MT's LA volumes (z-scored when made); this NIfTI's "
                     f"values are used as stored")
    image = torch.from_numpy(np.ascontiguousarray(vol.image, dtype=np.float32))
    shape = tuple(int(s) for s in image.shape[1:])
    scale = float(meta.get("scale", 1.0))
    if scale != 1.0:
        size = [max(1, int(round(s * scale))) for s in shape]
        image = F.interpolate(image[None], size=size, mode="trilinear", align_corners=False)[0]
    grid = tuple(int(s) for s in image.shape[1:])
    patch = [int(p) for p in meta["patch"]]
    e = meta.get("eval") or {}
    overlap, sw_batch = float(e.get("overlap", 0.5)), int(e.get("sw_batch_size", 2))
    with torch.inference_mode():
        label = predict_volume(model, image, patch, overlap, sw_batch)
        if grid != shape:
            label = F.interpolate(label[None, None].float(), size=list(shape), mode="nearest-exact")[0, 0].long()
    label = label.numpy().astype(np.uint8)
    target = out / f"{output_stem(path)}_seg.nii.gz"
    if nifti:
        source = nib.load(str(path))
        header = source.header.copy()
        header.set_data_dtype(np.uint8)
        image_out = nib.Nifti1Image(label.reshape(source.shape), source.affine, header)
        image_out.header.set_slope_inter(1, 0)
        stored_shape = [int(s) for s in source.shape]
    else:
        image_out = nib.Nifti1Image(label, np.eye(4))
        stored_shape = list(shape)
        notes.append(f"{path}: HDF5 stores no affine; {target.name} is written with the identity affine (voxel "
                     f"coordinates)")
    with atomic_path(target) as tmp:
        nib.save(image_out, str(tmp))
    voxels = np.bincount(label.ravel(), minlength=len(classes))
    record = {"input": str(path), "output": target.name, "model": meta.get("source"), "model_name": meta["model_name"],
              "classes": classes, "kind": "nifti" if nifti else "h5", "shape": stored_shape,
              "spacing": [float(s) for s in vol.spacing], "spacing_unit": "mm" if nifti else "voxels",
              "intensity": intensity_rule(dataset), "model_dataset": dataset, "scale": scale,
              "network_grid": list(grid), "patch": patch, "overlap": overlap,
              "voxels_per_class": {c: int(n) for c, n in zip(classes, voxels)}}
    if nifti:
        ml = float(np.prod(vol.spacing)) / 1000.0
        record["ml_per_class"] = {c: round(int(n) * ml, 4) for c, n in zip(classes, voxels)}
    record["notes"] = notes
    return record
