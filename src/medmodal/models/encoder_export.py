"""The exported image encoder (format ``medmodal-image-encoder/1``) and loading any image encoder.

**Export format** (written by the pre-training engine into ``<run>/export/image_encoder/``, read by
``medmodal cxr finetune --encoder``)::

    image_encoder/
      model.safetensors   state dict of the timm backbone ``architecture`` WITHOUT its classifier
                          head, in timm's key format (for ResNets identical to torchvision's keys:
                          ``conv1.weight``, ``bn1.*``, ``layer1.0.conv1.weight`` ... no ``fc.*``)
      config.json         {"format": "medmodal-image-encoder/1",
                           "architecture": "resnet50",          # a timm model name
                           "source": "cmcgns pre-training, run ...",   # free text
                           "image_size": 224,                   # input side it was trained at
                           "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}   # its input normalisation

A pre-training run folder holds ``export/image_encoder/`` (and ``export/text_encoder/``, a Hugging
Face folder). :func:`save_image_encoder` writes the format (and checks that the weights load
strictly into ``timm.create_model(architecture, num_classes=0)``); :func:`load_image_encoder`
reads it back bit-identically.

**Encoder specifications** (:func:`load_image_encoder`, ``medmodal cxr finetune --encoder``):

==========================  ===========================================================
``random``                  ``timm.create_model(arch, pretrained=False)``, seeded (``seed``)
``imagenet:PATH``           an ImageNet weight file on disk (timm or torchvision keys)
``RUN``                     a pre-training run folder -> ``RUN/export/image_encoder``
``RUN/export``              an export folder -> its ``image_encoder/``
``.../image_encoder``       the folder itself (``config.json`` + ``model.safetensors``)
``FILE.safetensors|.pth|.pt``  a state dict with timm or torchvision keys (``--arch``, default
                            ``resnet50``); loaded with ``weights_only=True`` / safetensors
==========================  ===========================================================

Nothing is ever downloaded: the backbone is built with ``pretrained=False`` and the weights are
loaded strictly on the backbone's keys. A weight file may wrap its state dict under
``state_dict`` / ``model`` / ``state_dict_ema``, put the backbone under a prefix (``module.``,
``encoder.``, a pre-training module's ``image_encoder.model.`` ...: the prefix under which most keys
are backbone keys is used, and only the keys under it, so a whole image-text checkpoint gives its
image encoder) and carry a classifier (``fc.*``, ``head.*``, ``classifier.*``, dropped).
Missing or unexpected keys, or a shape that differs, raise :class:`EncoderLoadError` with ONE line
naming the file and the first offending keys.

``mean`` / ``std`` of an export are the normalisation its encoder expects; the downstream data are
normalised with 0.5 / 0.5 (the references'), and :class:`medmodal.models.downstream.DownstreamEncoder`
maps one to the other (identity for 0.5 / 0.5). ``imagenet:PATH``, a bare weight file and ``random``
are taken as 0.5 / 0.5, as the references feed ImageNet-initialised encoders.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn

from medmodal.errors import EncoderLoadError
from medmodal.io import (DamagedFileError, atomic_path, atomic_write_json, ensure_writable_dir, load_safetensors_file,
                         load_torch_file, read_json_file)

__all__ = ["ENCODER_FORMAT", "EXPORT_DIR", "IMAGE_ENCODER_DIR", "WEIGHTS_FILE", "CONFIG_FILE", "DEFAULT_ARCH",
           "EncoderInfo", "EncoderLoadError", "save_image_encoder", "load_image_encoder", "read_state_dict",
           "resolve_encoder_folder", "architecture_for", "create_backbone", "state_fingerprint"]

ENCODER_FORMAT = "medmodal-image-encoder/1"
EXPORT_DIR = "export"
IMAGE_ENCODER_DIR = "image_encoder"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
DEFAULT_ARCH = "resnet50"
REFERENCE_MEAN = (0.5, 0.5, 0.5)
REFERENCE_STD = (0.5, 0.5, 0.5)
#: classifier heads of timm / torchvision models (dropped from a weight file)
HEAD_PREFIXES = ("fc.", "head.", "classifier.", "head_dist.", "last_linear.", "heads.")
WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema", "model_state_dict")


@dataclass(frozen=True)
class EncoderInfo:
    """Where a loaded encoder came from and what input it expects.

    Attributes:
        kind: ``export`` | ``state_dict`` | ``imagenet`` | ``random``.
        architecture: timm model name.
        source: free text (the export's ``source``, the file, or ``random init (seed N)``).
        path: the weight file read (``""`` for random init).
        image_size: input side the encoder was trained at (224 when unknown).
        mean / std: per-channel input normalisation the encoder expects.
        fingerprint: SHA-1 of the loaded backbone state (names, shapes, bytes): equal weights,
            equal fingerprint (keys the feature cache).
    """

    kind: str
    architecture: str
    source: str
    path: str = ""
    image_size: int = 224
    mean: tuple[float, ...] = REFERENCE_MEAN
    std: tuple[float, ...] = REFERENCE_STD
    fingerprint: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"], d["notes"] = list(self.mean), list(self.std), list(self.notes)
        return d


def create_backbone(architecture: str) -> nn.Module:
    """``timm.create_model(architecture, pretrained=False, num_classes=0)`` (no head, nothing downloaded).

    Raises:
        EncoderLoadError: timm does not know ``architecture``.
    """
    import timm

    try:
        return timm.create_model(architecture, pretrained=False, num_classes=0)
    except RuntimeError as err:  # timm: "Unknown model (...)"
        raise EncoderLoadError(f"{architecture!r} is not a timm model name ({err})") from None


def state_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-1 over the sorted names, dtypes, shapes and bytes of a state dict (40 hex digits)."""
    digest = hashlib.sha1()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_image_encoder(folder: str | Path, model: nn.Module | Mapping[str, torch.Tensor], architecture: str,
                       source: str, image_size: int = 224, mean: Sequence[float] = REFERENCE_MEAN,
                       std: Sequence[float] = REFERENCE_STD, check: bool = True) -> Path:
    """Write ``folder/model.safetensors`` + ``folder/config.json`` (format in the module docstring).

    Args:
        folder: the ``image_encoder`` folder to write (created; files replaced atomically).
        model: the timm backbone, or its state dict (classifier keys are dropped).
        architecture: timm model name of ``model``.
        source: free text recorded as ``source`` (method, run, epoch ...).
        check: verify that the weights load strictly into ``timm.create_model(architecture)``.

    Raises:
        EncoderLoadError: ``check`` failed (keys or shapes do not fit ``architecture``).
    """
    from safetensors.torch import save_file

    state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}
    if check:
        _load_strict(create_backbone(architecture), state, f"{architecture} weights to export")
    folder = ensure_writable_dir(folder)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": ENCODER_FORMAT})
    atomic_write_json(folder / CONFIG_FILE, {
        "format": ENCODER_FORMAT, "architecture": architecture, "source": source, "image_size": int(image_size),
        "mean": [float(v) for v in mean], "std": [float(v) for v in std]})
    return folder


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (``weights_only=True``: no pickled code).

    Unwraps ``state_dict`` / ``model`` / ``state_dict_ema`` / ``model_state_dict`` containers and
    a leading ``module.`` (DDP) on every key.

    Raises:
        FileNotFoundError: no such file. EncoderLoadError: not a readable state dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: encoder weight file not found")
    try:
        state = load_safetensors_file(path) if path.suffix == ".safetensors" else load_torch_file(path)
    except DamagedFileError as err:  # truncated / garbage / pickled code (refused, never run): names the file
        raise EncoderLoadError(str(err)) from None
    for key in WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EncoderLoadError(f"{path}: does not hold a state dict of tensors")
    return dict(state)


def _strip_to_fit(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """The backbone's part of ``state``: the key prefix (ending with ``.``) under which most keys
    name a backbone entry is found (``module.``, ``image_encoder.model.``, ... or none); with a
    prefix only the keys under it are kept, stripped (a whole pre-training checkpoint gives its
    image encoder); classifier-head keys the backbone does not have are dropped."""
    counts: Counter = Counter()
    for key in state:
        parts = key.split(".")
        for i in range(len(parts)):
            if ".".join(parts[i:]) in expected:
                counts[".".join(parts[:i]) + ("." if i else "")] += 1
                break
    prefix = counts.most_common(1)[0][0] if counts else ""
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return {k: v for k, v in state.items() if k in expected or not k.startswith(HEAD_PREFIXES)}


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    own = model.state_dict()
    state = _strip_to_fit(state, set(own))
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape (e.g. {'; '.join(shapes[:2])})")
        arch = getattr(model, "default_cfg", {}).get("architecture", type(model).__name__)
        raise EncoderLoadError(f"{where}: weights do not fit a {arch} backbone: {', '.join(parts)}")
    model.load_state_dict(state, strict=True)


def resolve_encoder_folder(path: str | Path) -> Path | None:
    """The ``image_encoder`` folder meant by a run folder / export folder / the folder itself, or
    ``None`` when ``path`` is a folder holding none of them."""
    path = Path(path)
    for candidate in (path, path / IMAGE_ENCODER_DIR, path / EXPORT_DIR / IMAGE_ENCODER_DIR):
        if (candidate / CONFIG_FILE).is_file() and (candidate / WEIGHTS_FILE).is_file():
            return candidate
    return None


def architecture_for(spec: str | Path, default: str | None) -> str | None:
    """The architecture to build for encoder ``spec``: an export's own (from its ``config.json``),
    else ``default`` (what a preset / config names for random, ImageNet and plain weight files).

    A preset's ``encoder.arch`` is a default for the sources that need one, not a request: only an
    architecture the user gave explicitly (``--arch``) is checked against an export.
    """
    text = str(spec).strip()
    if text.lower() == "random" or text.lower().startswith("imagenet:"):
        return default
    path = Path(text).expanduser()
    folder = resolve_encoder_folder(path) if path.is_dir() else None
    return _read_export(folder)["architecture"] if folder is not None else default


def _read_export(folder: Path) -> dict:
    config_path = folder / CONFIG_FILE
    try:
        config = read_json_file(config_path)
    except DamagedFileError as err:
        raise EncoderLoadError(str(err)) from None
    if not isinstance(config, dict) or config.get("format") != ENCODER_FORMAT:
        got = config.get("format") if isinstance(config, dict) else None
        raise EncoderLoadError(f"{config_path}: not a {ENCODER_FORMAT} export (format {got!r})")
    if not isinstance(config.get("architecture"), str) or not config["architecture"]:
        raise EncoderLoadError(f"{config_path}: no 'architecture' (a timm model name)")
    for key in ("mean", "std"):
        value = config.get(key, [0.5, 0.5, 0.5])
        if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
            raise EncoderLoadError(f"{config_path}: '{key}' must be 3 numbers, got {value!r}")
    return config


def load_image_encoder(spec: str | Path, arch: str | None = None, seed: int = 0) -> tuple[nn.Module, EncoderInfo]:
    """Build a timm backbone (no head) from an encoder specification (module docstring).

    Args:
        spec: ``random`` | ``imagenet:PATH`` | run / export / ``image_encoder`` folder | weight file.
        arch: timm model name for ``random`` and weight files (default ``resnet50``); for an export
            it must be ``None`` or the export's own architecture.
        seed: seed of a random initialisation (the global RNG is left untouched).

    Returns:
        ``(backbone, info)``: the ``timm`` model with ``num_classes=0`` (``forward`` gives the pooled
        ``[B, D]`` feature: mean-pooled last map for ResNets, the CLS token for ViTs), in eval mode.

    Raises:
        FileNotFoundError: a path that does not exist. EncoderLoadError: an unknown architecture,
            a folder without an export, an unreadable file, weights that do not fit (one line each).
    """
    text = str(spec).strip()
    if text.lower() == "random":
        architecture = arch or DEFAULT_ARCH
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = create_backbone(architecture)
        return model.eval(), EncoderInfo("random", architecture, f"random init (seed {seed})",
                                         fingerprint=state_fingerprint(model.state_dict()))
    if text.lower().startswith("imagenet:"):
        path = Path(text.split(":", 1)[1]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ImageNet weight file not found (imagenet:PATH)")
        model, fingerprint = _from_file(path, arch or DEFAULT_ARCH)
        return model, EncoderInfo("imagenet", arch or DEFAULT_ARCH, f"ImageNet weights {path.name}", str(path),
                                  fingerprint=fingerprint)
    path = Path(text).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such encoder (give a pre-training run folder, an export folder, an "
                                f"image_encoder folder, a .safetensors/.pth/.pt file, imagenet:PATH or random)")
    if path.is_dir():
        folder = resolve_encoder_folder(path)
        if folder is None:
            raise EncoderLoadError(f"{path}: no {IMAGE_ENCODER_DIR}/{CONFIG_FILE} + {WEIGHTS_FILE} inside (not a "
                                   f"pre-training run folder, an export folder or an {IMAGE_ENCODER_DIR} folder)")
        config = _read_export(folder)
        architecture = config["architecture"]
        if arch is not None and arch != architecture:
            raise EncoderLoadError(f"{folder / CONFIG_FILE}: the export is a {architecture}, not {arch} (--arch)")
        model, fingerprint = _from_file(folder / WEIGHTS_FILE, architecture)
        info = EncoderInfo("export", architecture, str(config.get("source", "")), str(folder / WEIGHTS_FILE),
                           int(config.get("image_size", 224)),
                           tuple(float(v) for v in config.get("mean", REFERENCE_MEAN)),
                           tuple(float(v) for v in config.get("std", REFERENCE_STD)), fingerprint)
        return model, info
    architecture = arch or DEFAULT_ARCH
    model, fingerprint = _from_file(path, architecture)
    return model, EncoderInfo("state_dict", architecture, f"weight file {path.name}", str(path),
                              fingerprint=fingerprint)


def _from_file(path: Path, architecture: str) -> tuple[nn.Module, str]:
    state = read_state_dict(path)
    model = create_backbone(architecture)
    _load_strict(model, state, str(path))
    return model.eval(), state_fingerprint(model.state_dict())
