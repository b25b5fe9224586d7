"""Export a pre-trained image-text model for downstream use (``medmodal cxr export RUN``).

Writes ``<run>/export/``::

    image_encoder/      format ``medmodal-image-encoder/1`` (:mod:`medmodal.models.encoder_export`):
                        model.safetensors (timm keys, no classifier) + config.json. Loads strictly into
                        ``timm.create_model(arch, num_classes=0)``; for ResNets the keys are
                        torchvision's too (``torchvision.models.resnet50()`` with ``fc = nn.Identity()``,
                        or ``strict=False`` missing only ``fc.*``). Read by ``medmodal cxr finetune --encoder RUN``.
    text_encoder/       a Hugging Face folder (``save_pretrained`` of the text model and its tokenizer):
                        ``AutoModel.from_pretrained(folder)`` / ``AutoTokenizer.from_pretrained(folder)``.
    export.json         what was exported from which checkpoint

Each folder is written beside its place and renamed into it (a crash leaves the previous export
or none, never half of one). Only the image / text encoders are exported: the projection heads
and the CM-MIR decoder stay in the checkpoint.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from medmodal.bundle import CXR_EXPORT, FORMAT_KEY
from medmodal.errors import CheckpointError, ConfigError
from medmodal.io import atomic_write_json, ensure_writable_dir, load_torch_file
from medmodal.models.encoder_export import EXPORT_DIR, IMAGE_ENCODER_DIR, save_image_encoder

__all__ = ["TEXT_ENCODER_DIR", "export_model", "export_run", "training_tokenizer", "image_architecture",
           "checkpoint_of_run"]

TEXT_ENCODER_DIR = "text_encoder"


def image_architecture(model: torch.nn.Module) -> str:
    """timm name of the model's image backbone (``model.image_encoder.name`` or ``model.config.image_encoder``).

    Raises:
        ValueError: neither is there.
    """
    name = getattr(getattr(model, "image_encoder", None), "name", None)
    if not isinstance(name, str):
        name = getattr(getattr(model, "config", None), "image_encoder", None)
    if not isinstance(name, str):
        raise ValueError(f"{type(model).__name__}: cannot tell the timm architecture of its image encoder "
                         f"(no image_encoder.name / config.image_encoder)")
    return name


def _text_parts(model: torch.nn.Module, tokenizer=None):
    """``(Hugging Face model, tokenizer)`` of the model's text encoder (``model.text_encoder.model`` /
    ``.tokenizer``, or ``model.text_encoder`` itself when it is a ``PreTrainedModel``)."""
    text = getattr(model, "text_encoder", None)
    hf = getattr(text, "model", text)
    if hf is None or not hasattr(hf, "save_pretrained"):
        return None, None
    return hf, getattr(text, "tokenizer", None) or tokenizer


def _replace_folder(target: Path, write) -> Path:
    """``write(tmp_folder)`` then rename it onto ``target`` (the old folder is removed after)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def export_model(model: torch.nn.Module, out_dir: str | Path, *, source: str, image_size: int,
                 tokenizer=None) -> dict:
    """Write ``out_dir/image_encoder`` and ``out_dir/text_encoder`` (module docstring).

    Args:
        model: an image-text model with ``backbone_state_dict()`` and (optionally) ``text_encoder``.
        source: free text recorded in the image encoder's ``config.json``.
        image_size: input side the model was trained at.
        tokenizer: used when the text encoder has none of its own (a model built from a config).

    Returns:
        ``{"image_encoder": path, "architecture": name, "text_encoder": path or None, "notes": [...]}``.

    Raises:
        EncoderLoadError: the backbone weights do not load strictly into ``timm.create_model(arch)``.
    """
    out_dir = ensure_writable_dir(out_dir)
    arch = image_architecture(model)
    state = model.backbone_state_dict()
    image_dir = _replace_folder(out_dir / IMAGE_ENCODER_DIR, lambda tmp: save_image_encoder(
        tmp, state, arch, source=source, image_size=image_size))
    notes = []
    hf, tok = _text_parts(model, tokenizer)
    text_dir = None
    if hf is None:
        notes.append(f"{type(model).__name__} has no Hugging Face text encoder: no {TEXT_ENCODER_DIR}/ written")
    else:
        def write_text(tmp: Path) -> None:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no "Writing model shards" bar in a run's output
            try:
                hf.save_pretrained(str(tmp), safe_serialization=True)
                if tok is not None:
                    tok.save_pretrained(str(tmp))
            finally:
                hf_logging.enable_progress_bar()

        text_dir = _replace_folder(out_dir / TEXT_ENCODER_DIR, write_text)
        if tok is None:
            notes.append(f"no tokenizer to save with the text encoder: {TEXT_ENCODER_DIR}/ holds the model only")
    return {"image_encoder": str(image_dir), "architecture": arch,
            "text_encoder": str(text_dir) if text_dir else None, "notes": notes}


def training_tokenizer(model: torch.nn.Module):
    """The tokenizer the data collator uses for ``model``: its text encoder's own, else the shipped
    MiniLM tokenizer (a text model built from a config has none)."""
    own = getattr(getattr(model, "text_encoder", None), "tokenizer", None)
    if own is not None:
        return own
    from medmodal.data.cxr.text import load_tokenizer

    return load_tokenizer(None)


def checkpoint_of_run(run_dir: str | Path, which: str = "last") -> Path:
    """``<run>/checkpoints/{last,best}.ckpt`` or a checkpoint file given directly.

    Raises:
        FileNotFoundError: no such checkpoint (names what was looked for).
    """
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return run_dir
    if which not in ("last", "best"):
        raise ConfigError(f"checkpoint must be last or best, got {which!r}")
    path = run_dir / "checkpoints" / f"{which}.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {which} checkpoint (is {run_dir} a pre-training run folder?)")
    return path


def export_run(run_dir: str | Path, which: str = "last", out_dir: str | Path | None = None) -> dict:
    """Rebuild the run's model from a checkpoint (``weights_only=True``) and export it into
    ``out_dir`` (default ``<run>/export``); also writes ``export.json`` there.

    Raises:
        FileNotFoundError: no checkpoint. ValueError: not a pre-training checkpoint.
    """
    from medmodal.engine.image_text.module import ImageTextPretrainModule

    ckpt = checkpoint_of_run(run_dir, which)
    run = Path(run_dir) if Path(run_dir).is_dir() else ckpt.parent.parent
    data = load_torch_file(ckpt)
    hparams = data.get("hyper_parameters", {}) if isinstance(data, dict) else {}
    if "config" not in hparams or "pretrain" not in (hparams.get("config") or {}):
        raise CheckpointError(f"{ckpt}: not an image-text pre-training checkpoint (no pretrain config in it)")
    module = ImageTextPretrainModule(hparams["config"])
    module.load_state_dict(data["state_dict"])
    module.eval()
    out = Path(out_dir) if out_dir is not None else run / EXPORT_DIR
    result = export_model(module.model, out, source=f"{module.cfg.model.name} pre-training, {ckpt} "
                          f"(epoch {int(data.get('epoch', -1))})", image_size=module.cfg.data.image_size,
                          tokenizer=training_tokenizer(module.model))
    result.update({"checkpoint": str(ckpt), "epoch": int(data.get("epoch", -1)), "model": module.cfg.model.name})
    atomic_write_json(out / "export.json", {**result, FORMAT_KEY: CXR_EXPORT})
    return result
