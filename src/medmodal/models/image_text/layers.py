"""Building blocks of image-report models: sentence pooling, sigmoid local cross-attention, the
SimSiam predictor and the CM-MIR reconstruction decoder. All run on padded batches with masks
(no Python loop over samples).

Sources: PRIOR (Cheng et al., ICCV 2023, github.com/QtacierP/PRIOR: ``SentenceGather``,
``SentenceAttentionPool``, ``LocalCrossAttention``) as reused by CM-CGNS (github.com/violet-42/CM-CGNS,
``cgns/models/cgns/utils/`` and ``cgns/models/backbones/image_decoder.py``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medmodal.layers.masking import masked_mean

__all__ = [
    "pool_sentences",
    "SentenceAttentionPool",
    "LocalCrossAttention",
    "prediction_mlp",
    "spatial_token_mask",
    "ReconstructionDecoder",
    "ProjectionHead",
    "masked_mean",
    "masked_max",
]


def pool_sentences(token_features: torch.Tensor, sentence_index: torch.Tensor,
                   num_sentences: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the token features of each sentence, batched (one-hot matmul).

    Source: PRIOR / CM-CGNS ``SentenceGather('avg')`` (a loop over samples and sentences there).

    Args:
        token_features: ``[B, L, D]``.
        sentence_index: ``[B, L]`` long, 0-based sentence of each token, ``-1`` for special /
            padding tokens.
        num_sentences: ``[B]`` long, sentences per report (``S_max = max``).

    Returns:
        ``(sentences [B, S_max, D], mask [B, S_max] bool)``; a sentence is valid when its index is
        below the report's ``num_sentences`` *and* it kept at least one token (a sentence cut off
        by truncation is masked out, as the released gather skips it). Padded rows are zeros.

    Raises:
        ValueError: shapes disagree, a token's sentence index is ``>= num_sentences`` of its
            report, or a report has no valid sentence.
    """
    if token_features.ndim != 3 or sentence_index.shape != token_features.shape[:2]:
        raise ValueError(f"token_features [B, L, D] and sentence_index [B, L] expected, got "
                         f"{tuple(token_features.shape)} and {tuple(sentence_index.shape)}")
    if num_sentences.shape != token_features.shape[:1]:
        raise ValueError(f"num_sentences must be [B={token_features.shape[0]}], got {tuple(num_sentences.shape)}")
    num_sentences = num_sentences.to(sentence_index.device)
    if bool((sentence_index >= num_sentences[:, None]).any()):
        raise ValueError("a token's sentence_index is >= its report's num_sentences")
    s_max = max(int(num_sentences.max()), 1)
    slots = torch.arange(s_max, device=sentence_index.device)
    one_hot = (sentence_index[:, :, None] == slots).to(token_features.dtype)  # [B, L, S]
    sums = one_hot.transpose(1, 2) @ token_features  # [B, S, D]
    counts = one_hot.sum(dim=1)  # [B, S]
    mask = (counts > 0) & (slots[None, :] < num_sentences[:, None])
    if not bool(mask.any(dim=1).all()):
        raise ValueError("a report has no sentence with tokens (num_sentences 0, or all its tokens truncated)")
    return sums / counts.clamp_min(1.0)[..., None], mask


class SentenceAttentionPool(nn.Module):
    """Report embedding by attention pooling over its sentences.

    The mean of the valid sentences is prepended as a query token; multi-head attention over
    ``[mean; sentences]`` (padded sentences masked) and the output at the mean token is the report
    feature. Source: PRIOR / CM-CGNS ``SentenceAttentionPool(pos_embed=False)`` (CLIP's attention
    pooling without positional embedding), here :class:`torch.nn.MultiheadAttention` with a key
    padding mask instead of one call per report.

    Args:
        dim: feature size ``E``.
        num_heads: heads (released 8).

    Shapes: ``forward(sentences [B, S, E], mask [B, S] bool) -> [B, E]``.
    """

    def __init__(self, dim: int, num_heads: int = 8):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)

    def forward(self, sentences: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weight = mask.to(sentences.dtype)[..., None]
        mean = (sentences * weight).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp_min(1.0)
        tokens = torch.cat([mean, sentences], dim=1)
        ignore = torch.cat([torch.zeros_like(mask[:, :1]), ~mask], dim=1)
        # only the mean token's output is used; its query alone gives the same result as querying all
        out, _ = self.attention(mean, tokens, tokens, key_padding_mask=ignore, need_weights=False)
        return out[:, 0]


class LocalCrossAttention(nn.Module):
    """PRIOR's sigmoid cross-attention between image tokens and sentences, batched with masks.

    For image tokens ``P [B, N, E]`` and sentences ``S [B, M, E]`` (``mask [B, M]``)::

        image_to_text = sigmoid(q_S(S) k_P(P)^T / sqrt(E)) v_P(P)           # [B, M, E]
        text_to_image = sigmoid(q_P(P) k_S(S)^T / sqrt(E)) * mask) v_S(S)  # [B, N, E]

    Sigmoid, not softmax (each pair is gated independently; PRIOR: "sigmoid is better in this
    case"), separate q/k/v projections per modality, no dropout. Padded sentences get an
    attention weight of exactly 0 (equivalent to leaving them out of a per-report computation);
    the rows of ``image_to_text`` at padded sentences are meaningless and must be masked by the
    caller.

    Returns ``(text_to_image [B, N, E], image_to_text [B, M, E])``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = int(dim)
        self.image_qkv = nn.Linear(dim, 3 * dim)
        self.text_qkv = nn.Linear(dim, 3 * dim)

    def forward(self, image_tokens: torch.Tensor, sentences: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        q_i, k_i, v_i = self.image_qkv(image_tokens).chunk(3, dim=-1)
        q_t, k_t, v_t = self.text_qkv(sentences).chunk(3, dim=-1)
        scale = 1.0 / math.sqrt(self.dim)
        image_to_text = torch.sigmoid(q_t @ k_i.transpose(1, 2) * scale) @ v_i
        weights = torch.sigmoid(q_i @ k_t.transpose(1, 2) * scale)  # [B, N, M]
        if mask is not None:
            weights = weights * mask[:, None, :].to(weights.dtype)
        return weights @ v_t, image_to_text


def prediction_mlp(dim: int) -> nn.Sequential:
    """SimSiam prediction MLP ``E -> E/2 -> ReLU -> E`` (PRIOR / CM-CGNS ``predictor``)."""
    return nn.Sequential(nn.Linear(dim, dim // 2), nn.ReLU(inplace=True), nn.Linear(dim // 2, dim))


def spatial_token_mask(batch: int, num_tokens: int, ratio: float, device=None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli keep-mask ``[B, N]`` (float 0 / ``1/(1-ratio)``) that drops whole tokens (regions).

    CM-MIR's masking of the *local image features* (released: ``SpatialDropout(p=0.5)``; dropped
    tokens become 0, kept ones are rescaled by ``1/(1-p)`` as released for ViT). Applied to every
    backbone here: the released ResNet path dropped 50 % of the *channels* instead (noise
    ``[B, C, 1, 1]``, no rescaling), which is not the region masking of the paper (fixed).
    Draws from the global torch RNG unless a generator is given.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    if ratio == 0.0:
        return torch.ones(batch, num_tokens, device=device)
    keep = torch.rand(batch, num_tokens, generator=generator, device=device if generator is None else None)
    return ((keep >= ratio).float() / (1.0 - ratio)).to(device)


class ReconstructionDecoder(nn.Module):
    """CM-MIR decoder: masked local image features + text-to-image features -> image.

    Two fusions (released: chosen by backbone):

    * ``"concat"`` (ResNet): channel concatenation ``[masked image ; text-to-image]`` on the
      feature grid (``2E`` channels), then the conv head.
    * ``"attention"`` (ViT): multi-head attention with query = masked image tokens and key/value =
      text-to-image tokens, a learned zero-initialised positional embedding (resampled for other
      grid sizes), a ``num_layers``-layer post-norm transformer decoder (self-attention, then
      cross-attention to the fused tokens as memory, FFN ``ff_dim``, ReLU, dropout), then the
      conv head. Fixes two released defects: all layers shared *one* set of weights (the module
      was cloned by reference) and the layers were ``batch_first=False`` modules fed
      ``[B, N, E]`` tensors, i.e. they attended across the batch instead of across patches. Here
      :class:`torch.nn.TransformerDecoder` (deep copies, ``batch_first=True``).

    Conv head: ``U = log2(image_size / grid)`` x2 upsamplings (5 for a stride-32 ResNet at 224, 4
    for a /16 ViT): ``U - 1`` blocks ``conv3x3 -> ReLU -> bilinear x2`` through ``channels``
    (released ``512, 256, 128, 64``; the first ``U - 1``, the last repeated if more are needed),
    then ``conv3x3 -> out_channels`` and the last x2; an output that does not match the image
    size (grid not a power-of-two divisor) is resized to it. The output is
    ``lo + (hi - lo) * (tanh(x) + 1) / 2``, i.e. it spans the image's own value range
    ``value_range`` (default ``(-1, 1)``: mean 0.5 / std 0.5). The released head ended in
    ``ReLU -> upsample -> Tanh``, an output in ``[0, 1)`` against a ``[-1, 1]`` target (fixed).

    Shapes: ``forward(image_tokens [B, N, E], text_tokens [B, N, E], grid (h, w), output_size (H, W))
    -> [B, out_channels, H, W]``.
    """

    def __init__(self, dim: int, fusion: str = "concat", channels: Sequence[int] = (512, 256, 128, 64),
                 num_layers: int = 6, num_heads: int = 8, ff_dim: int = 2048, dropout: float = 0.1,
                 grid: tuple[int, int] = (7, 7), image_size: tuple[int, int] = (224, 224), out_channels: int = 3,
                 value_range: tuple[float, float] = (-1.0, 1.0)):
        super().__init__()
        if fusion not in ("concat", "attention"):
            raise ValueError(f"fusion must be 'concat' or 'attention', got {fusion!r}")
        if not channels:
            raise ValueError("decoder channels must not be empty")
        if value_range[1] <= value_range[0]:
            raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
        self.fusion, self.dim, self.grid = fusion, int(dim), (int(grid[0]), int(grid[1]))
        self.value_range = (float(value_range[0]), float(value_range[1]))
        #: x2 upsamplings from the grid to the image (5 for 7 -> 224, 4 for 14 -> 224)
        self.upsamplings = max(1, round(math.log2(max(image_size[0] / self.grid[0], 1.0))))
        widths = [int(channels[min(i, len(channels) - 1)]) for i in range(self.upsamplings - 1)]
        self.channels = tuple(widths)
        if fusion == "attention":
            self.fusion_attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)
            self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], dim))
            layer = nn.TransformerDecoderLayer(dim, num_heads, dim_feedforward=ff_dim, dropout=dropout,
                                               activation="relu", batch_first=True)
            self.transformer = nn.TransformerDecoder(layer, num_layers)
        in_channels = 2 * dim if fusion == "concat" else dim
        self.blocks = nn.ModuleList()
        for out in widths:
            self.blocks.append(nn.Conv2d(in_channels, out, 3, padding=1))
            in_channels = out
        self.head = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def _fuse(self, image_tokens: torch.Tensor, text_tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b = image_tokens.shape[0]
        if self.fusion == "concat":
            z = torch.cat([image_tokens, text_tokens], dim=-1)
        else:
            z, _ = self.fusion_attention(image_tokens, text_tokens, text_tokens, need_weights=False)
            pos = self.pos_embed
            if tuple(grid) != self.grid:
                from timm.layers import resample_abs_pos_embed

                pos = resample_abs_pos_embed(pos, list(grid), old_size=list(self.grid), num_prefix_tokens=0)
            z = z + pos
            z = self.transformer(z, z)  # memory = the fused tokens themselves, as released
        return z.transpose(1, 2).reshape(b, z.shape[-1], *grid)  # tokens are row-major over (h, w)

    def forward(self, image_tokens: torch.Tensor, text_tokens: torch.Tensor, grid: tuple[int, int],
                output_size: tuple[int, int]) -> torch.Tensor:
        if image_tokens.shape != text_tokens.shape or image_tokens.shape[1] != grid[0] * grid[1]:
            raise ValueError(f"image / text tokens must both be [B, h*w={grid[0] * grid[1]}, E], got "
                             f"{tuple(image_tokens.shape)} and {tuple(text_tokens.shape)}")
        x = self._fuse(image_tokens, text_tokens, grid)
        for block in self.blocks:
            x = F.interpolate(F.relu(block(x)), scale_factor=2, mode="bilinear", align_corners=True)
        x = F.interpolate(self.head(x), scale_factor=2, mode="bilinear", align_corners=True)
        if tuple(x.shape[-2:]) != tuple(output_size):
            x = F.interpolate(x, size=tuple(output_size), mode="bilinear", align_corners=True)
        low, high = self.value_range
        return low + (high - low) * 0.5 * (torch.tanh(x) + 1.0)


class ProjectionHead(nn.Module):
    """Projection from an encoder feature to the joint space, for ``[B, D]`` or ``[B, N, D]`` inputs.

    Kinds (each the one of a reference method):

    * ``"linear"``: ``Linear(D, E)`` (CM-CGNS / PRIOR; GLoRIA's global / local embedders).
    * ``"mlp"``: ``Linear(D, H) -> ReLU -> Linear(H, E)`` (ConVIRT's "single hidden layer
      non-linear projection", Zhang et al. 2022 Sec. 3; ``H = D`` when not given, as SimCLR).
    * ``"mlp_bn"``: ``Linear(D, H) -> BN -> ReLU -> Linear(H, E) -> BN(affine=False)`` (MGCA's
      ``GlobalEmbedding``; on tokens its ``LocalEmbedding`` = the same with 1x1 convolutions, i.e.
      batch norm over all ``B * N`` positions; MGCA ``H = 2048``). Batch norm in training mode
      needs more than one value per channel.

    Shapes: ``forward(x [B, D] | [B, N, D]) -> [B, E] | [B, N, E]``.
    """

    def __init__(self, in_dim: int, out_dim: int, kind: str = "linear", hidden_dim: int | None = None):
        super().__init__()
        if kind not in ("linear", "mlp", "mlp_bn"):
            raise ValueError(f"projection kind must be linear | mlp | mlp_bn, got {kind!r}")
        self.kind = kind
        hidden = int(hidden_dim or in_dim)
        if kind == "linear":
            self.layers = nn.ModuleList([nn.Linear(in_dim, out_dim)])
        elif kind == "mlp":
            self.layers = nn.ModuleList([nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)])
        else:
            self.layers = nn.ModuleList([nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                         nn.Linear(hidden, out_dim), nn.BatchNorm1d(out_dim, affine=False)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # batch norm over every sample (and token)
        for layer in self.layers:
            x = layer(x)
        return x.reshape(*shape[:-1], x.shape[-1])


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max of ``x [B, L, D]`` over the positions where ``mask [B, L]`` is true -> ``[B, D]``
    (ConVIRT's max-pooling over the text encoder's outputs).

    Raises:
        ValueError: a row without any true position.
    """
    if not bool(mask.any(dim=1).all()):
        raise ValueError("masked_max: a row has no valid position")
    return x.masked_fill(~mask.bool()[..., None], float("-inf")).amax(dim=1)
