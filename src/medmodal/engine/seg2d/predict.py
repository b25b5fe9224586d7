"""Label maps of new slices, volumes or photographs with a trained 2-D model (``medmodal seg predict``, a bundle
with ``image_kind: 2d``).

Input: one file or a folder (the files directly in it; hidden files ignored) of NIfTI volumes (``.nii``,
``.nii.gz``), HDF5 (``.h5``, ``.npy.h5``: an ``image`` dataset, as SSL4MIS / TransUNet store them), NPZ (an
``image`` array) or pictures (PNG, JPEG, TIFF, BMP, PPM / PGM). Intensities follow the bundle's rule
(:mod:`medmodal.data.seg2d.files`). Every slice goes through TransUNet's rule
(:func:`medmodal.inference.planar.predict_stack`: resized to the model's grid, arg-max resized back with nearest
neighbour), so the label map has the input's geometry.

Written into ``out_dir`` per input (each atomically; the JSON last, so it marks a finished input):

* ``<stem>_seg.nii.gz`` (NIfTI input: uint8 class indices, the input's affine and header), ``<stem>_seg.h5`` /
  ``<stem>_seg.npz`` (a ``label`` array of the stored image's shape) or ``<stem>_seg.png`` (class indices; a
  two-class model writes 0 / 255 as the polyp masks);
* ``<stem>.json``: the model, its classes, the input, the intensity rule, the voxels / pixels per class and
  any conversion made (e.g. a colour picture read as grey).

Errors: an unreadable file raises one line naming it, or with ``skip_invalid`` is reported through
``on_item(path, "invalid", reason)`` and skipped; a file of another kind (``.txt``, ``.csv`` ...) is named
in the returned ``ignored`` list, never silently dropped; so are ACDC's ``<frame>_gt.nii.gz`` reference labels
and ``<patient>_4d.nii.gz`` cine series, so a patient folder can be given as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from medmodal.data.seg2d.files import input_suffix, output_name, read_input, write_label
from medmodal.errors import ConfigError, DamagedFileError, DataError, ImageReadError, LayoutError
from medmodal.inference.planar import predict_stack
from medmodal.io import OutputError, atomic_write_json, ensure_writable_dir

__all__ = ["Seg2DPredictOptions", "find_inputs", "predict_seg2d", "NOT_IMAGES", "not_image_reason"]


@dataclass
class SegPredictOptions:
    """The options of ``seg predict`` with a 2-D or 3-D model.

    Attributes:
        skip_existing: skip an input whose JSON exists (``--continue``).
        skip_invalid: name and skip an unreadable input instead of stopping (``--skip-invalid``).
    """

    skip_existing: bool = False
    skip_invalid: bool = False


@dataclass
class Seg2DPredictOptions(SegPredictOptions):
    """The options of :func:`predict_seg2d` (:class:`SegPredictOptions`)."""


#: NIfTI name endings that are not images to segment (ACDC's reference label maps and 4-D cine series)
NOT_IMAGES = ("_gt", "_4d")


def not_image_reason(path: Path) -> str | None:
    """Why ``path`` is not an input to segment (``None``: it is one)."""
    suffix = input_suffix(path)
    if suffix is None:
        return "not a NIfTI, HDF5, NPZ or picture file"
    if suffix in (".nii", ".nii.gz"):
        stem = path.name[: -len(suffix)]
        if stem.endswith("_gt"):
            return "an ACDC reference label map (_gt)"
        if stem.endswith("_4d"):
            return "an ACDC 4-D cine series (_4d): its ED / ES frames are the inputs"
    return None


def find_inputs(input_path: str | Path) -> tuple[list[Path], list[Path]]:
    """``(inputs, ignored)``: the readable-kind files of ``input_path`` (a file or the files directly in a folder,
    sorted) and the other visible files (also ACDC's ``*_gt.nii.gz`` reference labels and ``*_4d.nii.gz`` cine
    series: :data:`NOT_IMAGES`).

    Raises:
        LayoutError: the path does not exist, or holds no input file (naming what was looked for).
    """
    path = Path(input_path)
    inputs, ignored = split_inputs(path, not_image_reason)
    if not inputs:
        raise LayoutError(f"{path}: no NIfTI (.nii/.nii.gz), HDF5 (.h5), NPZ or picture (PNG/JPEG/TIFF/BMP) file "
                          f"directly in this folder")
    return inputs, ignored


def split_inputs(path: Path, reason: Callable[[Path], str | None]) -> tuple[list[Path], list[Path]]:
    """``(inputs, ignored)`` of ``path`` (the 2-D and 3-D ``find_inputs``): the file itself, or the visible files
    directly in the folder (sorted) split by ``reason(file)`` (``None``: an input; else why it is not).

    Raises:
        LayoutError: ``path`` does not exist, or is a file that is no input (naming ``reason``).
    """
    if path.is_file():
        why = reason(path)
        if why is not None:
            raise LayoutError(f"{path}: {why}; nothing to segment")
        return [path], []
    if not path.is_dir():
        raise LayoutError(f"{path}: input not found")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return [p for p in files if reason(p) is None], [p for p in files if reason(p) is not None]


def _check_output(out: Path, input_path: Path, inputs: list[Path]) -> None:
    out = Path(os.path.abspath(out))
    root = Path(os.path.abspath(input_path if input_path.is_dir() else input_path.parent))
    if out == root or root in out.parents:
        raise OutputError(f"{out}: the output folder is {'the input folder' if out == root else 'inside the input folder ' + str(root)}"
                          f"; choose another -o")
    for p in inputs:
        if Path(os.path.abspath(p)).parent == out:
            raise OutputError(f"{out}: the output folder holds input files; choose another -o")


def predict_seg2d(model: torch.nn.Module, meta: dict, input_path: str | Path, out_dir: str | Path,
                  options: Seg2DPredictOptions | None = None,
                  on_item: Optional[Callable[[Path, str, object], None]] = None) -> dict:
    """Predict every input of ``input_path`` into ``out_dir`` (module docstring).

    ``on_item(path, status, detail)``: ``written`` (detail: the JSON record), ``skipped`` (already predicted) or
    ``invalid`` (detail: the one-line reason). Returns ``{"written", "skipped", "invalid", "ignored": [paths]}``.

    Raises:
        ConfigError: the bundle is not a 2-D model. LayoutError: no input. OutputError: ``out_dir`` is the input
        folder, inside it or holds inputs. DataError (and subclasses): an unreadable input without ``skip_invalid``.
    """
    options = options or Seg2DPredictOptions()
    if meta.get("image_kind") != "2d":
        raise ConfigError(f"{meta.get('source', 'the model')}: not a 2-D segmentation model "
                          f"(image_kind {meta.get('image_kind')!r})")
    inputs, ignored = find_inputs(input_path)
    return predict_inputs(inputs, ignored, Path(input_path), out_dir, options, on_item, output_name_stem,
                          lambda path, out: _predict_one(model, meta, path, out),
                          (DataError, DamagedFileError, ImageReadError))


def predict_inputs(inputs: list[Path], ignored: list[Path], input_path: Path, out_dir: str | Path,
                   options: SegPredictOptions, on_item: Optional[Callable[[Path, str, object], None]],
                   stem: Callable[[Path], str], predict_one: Callable[[Path, Path], dict],
                   invalid: tuple[type[Exception], ...]) -> dict:
    """The loop of :func:`predict_seg2d` and :func:`medmodal.engine.seg3d.predict.predict_seg3d`: check ``out_dir``
    (:func:`_check_output`), then per input ``predict_one(path, out)`` writes the label map and returns the record,
    written last as ``<stem(path)>.json``; an ``invalid`` error stops the loop (naming ``--skip-invalid``) or, with
    ``options.skip_invalid``, is reported and skipped. An output folder this call made and left empty is removed.
    Returns ``{"written", "skipped", "invalid", "ignored": [paths]}``."""
    _check_output(Path(out_dir), input_path, inputs)
    created = not Path(out_dir).exists()
    out = ensure_writable_dir(out_dir)
    counts: dict = {"written": 0, "skipped": 0, "invalid": 0, "ignored": [str(p) for p in ignored]}
    try:
        for path in inputs:
            record_path = out / f"{stem(path)}.json"
            if options.skip_existing and record_path.is_file():
                counts["skipped"] += 1
                on_item and on_item(path, "skipped", None)
                continue
            try:
                record = predict_one(path, out)
            except invalid as err:
                if not options.skip_invalid:
                    kept = counts["written"]
                    kept_text = f"; the {kept} written so far are kept and --continue skips them" if kept else ""
                    raise type(err)(f"{err} (--skip-invalid names and skips such inputs{kept_text})") from None
                counts["invalid"] += 1
                on_item and on_item(path, "invalid", str(err).splitlines()[0])
                continue
            atomic_write_json(record_path, record)
            counts["written"] += 1
            on_item and on_item(path, "written", record)
    finally:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
    return counts


def output_name_stem(path: Path) -> str:
    """The input's name without its recognised suffix (``case0001.npy.h5`` -> ``case0001``)."""
    suffix = input_suffix(path)
    return path.name[: -len(suffix)] if suffix else path.stem


def _predict_one(model: torch.nn.Module, meta: dict, path: Path, out: Path) -> dict:
    classes = list(meta["classes"])
    item = read_input(path, len(meta["modalities"]), meta.get("intensity", "as_stored"))
    grid = tuple(int(s) for s in meta["grid"])
    with torch.inference_mode():
        label = predict_stack(model, item.image, grid)
    target = out / output_name(item)
    write_label(item, label, target, len(classes))
    counts = np.bincount(label.ravel(), minlength=len(classes))
    return {"input": str(path), "output": target.name, "model": meta.get("source"), "model_name": meta["model_name"],
            "classes": classes, "kind": item.kind, "shape": list(item.native_shape),
            "intensity": meta.get("intensity", "as_stored") if item.kind == "nifti" or item.kind == "picture"
            else "as_stored", "network_grid": list(grid),
            "pixels_per_class": {c: int(n) for c, n in zip(classes, counts)}, "notes": list(item.notes)}
