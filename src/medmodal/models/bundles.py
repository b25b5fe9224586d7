"""Saving and safely loading trained models (the segmentation model bundle).

Lives in ``models`` (as timm's checkpoint helpers do) so that inference and evaluation, which
sit below the engine, can load a model; :mod:`medmodal.engine.checkpoint` re-exports it.

A checkpoint is input: it is never unpickled with code execution. Two formats load:

* a **model bundle** (what ``medmodal seg predict -m`` wants): a folder with ``model.safetensors``
  (weights, safetensors format) and ``model.json`` (architecture name, sequences, classes,
  model kwargs, dataset spec, inference settings; ``format: seg/model`` since the tag exists, see
  :mod:`medmodal.bundle`). ``train`` writes one into ``<run>/model``.
* a Lightning ``.ckpt`` written by ``train``, loaded with ``torch.load(weights_only=True)``;
  its ``hyper_parameters.config.bundle`` holds the same description as ``model.json``.

``-m`` / ``load_model`` accept a run folder (its ``model/`` bundle, else
``checkpoints/last.ckpt``), a bundle folder, a bundle's ``model.safetensors`` or ``model.json``,
or a ``.ckpt`` file.

Anything else (a random file, a pickle with code in it, weights for other sequences) raises
:class:`CheckpointError` with the file named.
"""

from __future__ import annotations

import json

from pathlib import Path
from typing import Any

import torch
from torch import nn

from medmodal import bundle
from medmodal.data.fundus.geometry import FundusGeometry
from medmodal.data.volumes.geometry import Geometry
from medmodal.errors import CheckpointError
from medmodal.io import DamagedFileError, load_torch_file
from medmodal.models.registry import create_model
from medmodal.notices import warn

BUNDLE_WEIGHTS, BUNDLE_META = bundle.FORMATS[bundle.SEG_MODEL]
MODEL_PREFIX = "model."


def save_bundle(folder: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` + ``model.json`` (tagged ``seg/model``) into ``folder`` (each atomically)."""
    return bundle.save_bundle(folder, model, meta, format=bundle.SEG_MODEL)


def _read_bundle(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    return bundle.read_bundle(folder, bundle.SEG_MODEL)


def _read_lightning_ckpt(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    try:
        ckpt = load_torch_file(path)
    except DamagedFileError as err:  # truncated files, garbage, code-carrying pickles (refused, never run)
        raise CheckpointError(str(err)) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a medmodal checkpoint (no state_dict)")
    hparams = ckpt.get("hyper_parameters") or {}
    # SegmentationModule(config) saves its one argument: hyper_parameters = {"config": {"experiment", "bundle"}}
    meta = hparams.get("bundle") or (hparams.get("config") or {}).get("bundle")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: checkpoint lacks the model description (hyper_parameters.config.bundle)")
    state = {k[len(MODEL_PREFIX):]: v for k, v in ckpt["state_dict"].items() if k.startswith(MODEL_PREFIX)}
    return state, meta


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder means its ``model`` bundle (or ``checkpoints/last.ckpt``), a run's
    ``checkpoints/`` folder its ``last.ckpt``; a bundle's ``model.safetensors`` / ``model.json``
    means the bundle folder.

    Raises:
        CheckpointError: the path does not exist or holds none of these (the message names it).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_file() and (path.name == BUNDLE_META or path.suffix == ".safetensors"):
        if not (path.parent / BUNDLE_META).is_file() or not (path.parent / BUNDLE_WEIGHTS).is_file():
            raise CheckpointError(f"{path}: a model bundle needs {BUNDLE_META} and {BUNDLE_WEIGHTS} side by side "
                                  f"in {path.parent}")
        return path.parent
    if path.is_dir():
        for candidate in (path, path / "model"):
            if (candidate / BUNDLE_META).is_file():
                return candidate
        for last in (path / "checkpoints" / "last.ckpt", path / "last.ckpt"):  # a run folder or its checkpoints/
            if last.is_file():
                return last
        ckpts = sorted(p.name for p in path.glob("*.ckpt"))
        hint = f"; pass one of its checkpoints, e.g. {path / ckpts[0]}" if ckpts else ""
        raise CheckpointError(f"{path}: no model bundle ({BUNDLE_META}), checkpoints/last.ckpt or last.ckpt "
                              f"inside{hint}")
    return path


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Build the network described by a bundle / checkpoint and load its weights (safely).

    Returns ``(model in eval mode, meta)``; ``meta`` has ``model_name``, ``modalities``,
    ``num_classes``, ``model_kwargs``, ``spec``, ``eval`` settings, ``geometry`` (bundles written
    since medmodal 0.2) and ``source`` (the resolved bundle folder or ``.ckpt`` path).
    """
    path = resolve_checkpoint(path)
    state, meta = _read_bundle(path) if path.is_dir() else _read_lightning_ckpt(path)
    meta = {**meta, "source": str(path.resolve())}
    try:
        model = create_model(meta["model_name"], modalities=meta["modalities"], num_classes=meta["num_classes"],
                             **meta.get("model_kwargs", {}))
    except KeyError as err:
        raise CheckpointError(f"{path}: model description incomplete or unknown ({err})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the described model ({first})") from None
    return model.to(map_location).eval(), meta


def stored_meta(path: str | Path) -> dict | None:
    """The ``model.json`` of the bundle ``path`` resolves to (a run folder, its ``model/``, a bundle file), or
    ``None`` when there is none or it is unreadable (for "what kind of model is this?" checks; never raises)."""
    try:
        found = resolve_checkpoint(path)
    except CheckpointError:
        return None
    if not (found.is_dir() and (found / BUNDLE_META).is_file()):
        return None
    try:
        meta = json.loads((found / BUNDLE_META).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def check_modalities(meta: dict, available: list[str], source: str) -> None:
    """Refuse inputs whose sequences the model does not know (a checkpoint for other sequences)."""
    unknown = [m for m in available if m not in meta["modalities"]]
    if unknown or not available:
        raise CheckpointError(
            f"{source}: sequences {unknown or available} do not match the model's sequences {meta['modalities']}"
        )


def model_geometry(meta: dict):
    """The training geometry recorded in a bundle, by its ``kind``.

    * ``"kind": "fundus"`` (vessel bundles, ``image_kind: fundus``): a
      :class:`medmodal.data.fundus.geometry.FundusGeometry` (target FOV diameter in pixels, margin, divisor).
    * no ``kind`` (MRI bundles): a :class:`medmodal.data.volumes.geometry.Geometry` (orientation, voxel size).

    Bundles written before it was recorded have none: ``None`` is returned and one
    :class:`~medmodal.notices.InputWarning` says that cases are used as stored.

    Raises:
        CheckpointError: the record is unreadable or of an unknown kind (the message names the bundle).
    """
    data = meta.get("geometry")
    if not data:
        warn(f"{meta.get('source', 'the model')}: records no training geometry (written by an earlier medmodal); "
             f"cases are used as stored, without reorientation or resampling")
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    try:
        if kind == "fundus":
            return FundusGeometry.from_dict(data)
        if kind not in (None, "volume"):
            raise ValueError(f"unknown geometry kind {kind!r}")
        return Geometry.from_dict(data)
    except (KeyError, TypeError, ValueError) as err:  # ConfigError is a ValueError
        raise CheckpointError(f"{meta.get('source', 'model')}: unreadable training geometry {data} ({err})") from None
