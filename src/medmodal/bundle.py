"""One writer and reader for what a run leaves for later use: weights (safetensors) plus a JSON
description carrying a ``format`` tag that names the family's kind of bundle.

==========================  =====================================================================
format                      files (written by)
==========================  =====================================================================
``seg/model``               ``<run>/model/model.safetensors`` + ``model.json`` (segmentation
                            ``train``; read by ``evaluate`` / ``predict``,
                            :func:`medmodal.engine.checkpoint.load_model`)
``endoscopy/encoders``      ``<run>/encoders.safetensors`` + ``encoders.json`` (MICS pre-training;
                            read by ``endoscopy finetune --init``)
``endoscopy/classifier``    ``<run>/model.safetensors`` + ``model.json`` (MICS fine-tuning; read
                            by ``endoscopy predict``)
``cxr/export``              ``<run>/export/export.json`` beside ``image_encoder/``
                            (medmodal-image-encoder/1) and ``text_encoder/`` (Hugging Face), written
                            by CXR pre-training / ``medmodal cxr export``; read by ``finetune --encoder``
                            (:mod:`medmodal.models.encoder_export`)
``fundus/pix2pix``          ``<run>/structure/generator.safetensors`` + ``generator.json`` (the
                            pix2pix renderer of a vessel run's structure augmentation, registered
                            by :mod:`medmodal.engine.fundus.structure`; read back by a resumed run
                            or ``structure.generator``)
==========================  =====================================================================

A new family registers its own format with :func:`register_format` (``"<family>/<kind>"``, e.g.
``register_format("fundus/model", "model.safetensors", "model.json")``) before it writes one.

Bundles written before the tag existed have none: :func:`bundle_format` infers it from the files
and the description's keys, so old run folders keep loading. Segmentation bundles of those releases
carry ``"format": "medmodal-bundle/1"`` (:data:`LEGACY_FORMATS`): read as ``seg/model``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from medmodal.errors import CheckpointError
from medmodal.io import (DamagedFileError, atomic_path, atomic_write_json, ensure_writable_dir, load_safetensors_file,
                         read_json_file)

__all__ = ["FORMAT_KEY", "LEGACY_FORMATS", "SEG_MODEL", "ENDOSCOPY_ENCODERS", "ENDOSCOPY_CLASSIFIER", "CXR_EXPORT",
           "FORMATS", "save_weights", "save_bundle", "read_bundle", "bundle_format", "infer_format", "register_format",
           "unregister_format"]

#: the key of the format tag in a bundle's JSON description
FORMAT_KEY = "format"
SEG_MODEL = "seg/model"
ENDOSCOPY_ENCODERS = "endoscopy/encoders"
ENDOSCOPY_CLASSIFIER = "endoscopy/classifier"
CXR_EXPORT = "cxr/export"
#: ``format`` values written before the family tags, and the tag each means
LEGACY_FORMATS = {"medmodal-bundle/1": "seg/model"}
#: format -> (weights file, description file); the CXR export's weights live in its sub-folders
FORMATS = {SEG_MODEL: ("model.safetensors", "model.json"),
           ENDOSCOPY_ENCODERS: ("encoders.safetensors", "encoders.json"),
           ENDOSCOPY_CLASSIFIER: ("model.safetensors", "model.json"),
           CXR_EXPORT: (None, "export.json")}
_BUILTIN_FORMATS = frozenset(FORMATS)


def register_format(format: str, weights: str | None, description: str) -> str:
    """Register a bundle ``format`` (``"<family>/<kind>"``) stored as ``weights`` (a safetensors file name,
    ``None``: the weights live elsewhere) plus the JSON ``description`` file. Returns ``format``.

    Raises:
        ValueError: ``format`` is registered already with other file names (a programming error).
    """
    files = (weights, description)
    if FORMATS.get(format, files) != files:
        raise ValueError(f"bundle format {format!r} is already registered as {FORMATS[format]}")
    FORMATS[format] = files
    return format


def unregister_format(format: str) -> None:
    """Undo :func:`register_format` (tests and plug-ins); the built-in formats stay."""
    if format not in _BUILTIN_FORMATS:
        FORMATS.pop(format, None)


def save_weights(state: Mapping[str, torch.Tensor] | nn.Module, path: str | Path) -> Path:
    """Write a state dict (or a module's) as a safetensors file, atomically (CPU, contiguous tensors)."""
    from safetensors.torch import save_file

    if isinstance(state, nn.Module):
        state = state.state_dict()
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    return path


def save_bundle(folder: str | Path, state: Mapping[str, torch.Tensor] | nn.Module, meta: Mapping[str, Any], *,
                format: str) -> Path:
    """Write the weights and the description of a ``format`` bundle into ``folder`` (each atomically);
    the description gets ``"format": format``. Returns ``folder``."""
    weights, description = FORMATS[format]
    folder = ensure_writable_dir(folder)
    if weights is not None:
        save_weights(state, folder / weights)
    atomic_write_json(folder / description, {**meta, FORMAT_KEY: format})
    return folder


def infer_format(folder: Path, meta: Mapping[str, Any] | None = None) -> str | None:
    """The format of a bundle folder: its tag, else what its files and description say (bundles
    written before the tag), else ``None``."""
    folder = Path(folder)
    if meta is not None and meta.get(FORMAT_KEY):
        tag = str(meta[FORMAT_KEY])
        return LEGACY_FORMATS.get(tag, tag)
    if (folder / "encoders.json").is_file() and (folder / "encoders.safetensors").is_file():
        return ENDOSCOPY_ENCODERS
    if (folder / "export.json").is_file() or (folder / "image_encoder").is_dir():
        return CXR_EXPORT
    if (folder / "model.json").is_file():
        if meta is None:
            try:
                meta = read_json_file(folder / "model.json")
            except DamagedFileError:
                return None
        if isinstance(meta, Mapping):
            if "model_name" in meta:
                return SEG_MODEL
            if "classes" in meta and "config" in meta:
                return ENDOSCOPY_CLASSIFIER
    return None


def bundle_format(folder: str | Path) -> str | None:
    """The format tag of the bundle in ``folder`` (inferred for untagged bundles), ``None`` if none is there."""
    folder = Path(folder)
    for _, description in FORMATS.values():
        path = folder / description
        if path.is_file():
            try:
                meta = read_json_file(path)
            except DamagedFileError:
                continue
            if isinstance(meta, Mapping) and meta.get(FORMAT_KEY):
                return infer_format(folder, meta)
    return infer_format(folder)


def read_bundle(folder: str | Path, formats: str | Sequence[str]) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state, meta)`` of a bundle of one of ``formats`` in ``folder`` (tagged, or untagged and inferred).

    Raises:
        CheckpointError: the files are missing or damaged, the description is not a JSON object, or the
            bundle is of another format (each names the folder).
    """
    folder = Path(folder)
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    weights, description = FORMATS[formats[0]]
    if any(FORMATS[f] != (weights, description) for f in formats):
        raise ValueError(f"formats {formats} are not stored alike")
    meta_path = folder / description
    weight_path = folder / weights if weights is not None else None
    if not meta_path.is_file() or (weight_path is not None and not weight_path.is_file()):
        needs = description if weight_path is None else f"{description} and {weights}"
        raise CheckpointError(f"{folder}: not a model bundle (needs {needs})")
    try:
        meta = read_json_file(meta_path)
        state = load_safetensors_file(weight_path) if weight_path is not None else {}
    except DamagedFileError as err:
        raise CheckpointError(str(err)) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path}: not a model description (a JSON object expected)")
    found = infer_format(folder, meta)
    if found is not None and found not in formats:
        raise CheckpointError(f"{folder}: the bundle there is {found}, not {' or '.join(formats)}")
    return state, meta
