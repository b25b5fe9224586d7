"""Building blocks shared by the MICS pre-training and fine-tuning models.

* :class:`TokenEncoder`: a timm backbone (ViT as the authors, ResNet / small ViT for CPU presets)
  returning patch tokens ``[B, N, D]``; a ViT can encode only the visible patches (MAE).
* :class:`CrossAttentionBlock`: pre-norm transformer block, self-attention, then cross-attention to
  a context sequence (ALBEF fusion layer), then MLP; the cross-attention is gated per sample so an
  absent context modality contributes nothing (the masking used for absent MRI sequences).
* :func:`grad_reverse`, :class:`FeatureStatisticsShift` (DSU), :func:`masked_mean`: re-exported from
  :mod:`medmodal.layers.domain` and :mod:`medmodal.layers.masking`.
* :func:`patchify`, :func:`random_patch_mask`: MAE helpers (He et al., CVPR 2022).
"""

from __future__ import annotations

import torch
from torch import nn

from medmodal.layers.domain import FeatureStatisticsShift, grad_reverse
from medmodal.layers.masking import masked_mean

__all__ = ["TokenEncoder", "CrossAttentionBlock", "FusionTransformer", "FeatureStatisticsShift", "grad_reverse",
           "patchify", "random_patch_mask", "masked_mean"]


class TokenEncoder(nn.Module):
    """timm backbone as a token encoder.

    Args:
        arch: timm model name (``vit_base_patch16_384`` as the MICS authors; ``vit_tiny_patch16_224`` with
            ``encoder_kwargs`` ``{patch_size: 8, depth: 2}`` or ``resnet18`` on CPU).
        image_size: input edge ``S`` in pixels (ViTs are built for it).
        encoder_kwargs: extra ``timm.create_model`` arguments (e.g. ``depth``, ``embed_dim``, ``patch_size``).

    Attributes:
        kind: ``"vit"`` (patch tokens) or ``"cnn"`` (last feature map, flattened row-major).
        dim: token width ``D``. grid: token grid ``(h, w)``. patch: pixels per token edge (``S / h``).

    Raises:
        ValueError: unknown timm name, or an image size the token grid does not divide.
    """

    def __init__(self, arch: str = "vit_base_patch16_384", image_size: int = 384, encoder_kwargs: dict | None = None):
        super().__init__()
        import timm

        kwargs = dict(encoder_kwargs or {})
        if arch.startswith(("vit", "deit")):
            kwargs.setdefault("img_size", int(image_size))
        try:
            self.backbone = timm.create_model(arch, pretrained=False, num_classes=0, **kwargs)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"encoder {arch!r}: {exc}") from None
        self.arch, self.image_size = arch, int(image_size)
        self.kind = "vit" if hasattr(self.backbone, "patch_embed") else "cnn"
        self.dim = int(self.backbone.num_features)
        if self.kind == "vit":
            self.grid = tuple(int(g) for g in self.backbone.patch_embed.grid_size)
            self.num_prefix = int(getattr(self.backbone, "num_prefix_tokens", 1))
        else:
            reduction = int(self.backbone.feature_info[-1]["reduction"])
            side = max(1, self.image_size // reduction)
            self.grid = (side, side)
        if self.image_size % self.grid[0]:
            raise ValueError(f"encoder {arch!r}: image size {image_size} is not a multiple of its {self.grid} grid")
        self.patch = self.image_size // self.grid[0]

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def forward(self, images: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
        """``images [B, 3, S, S]`` -> tokens ``[B, N, D]``.

        ``visible`` (ViT only): ``long [B, V]`` indices of the patches to encode (MAE: masked
        patches are dropped before the transformer); output ``[B, V, D]``.
        """
        if self.kind == "cnn":
            if visible is not None:
                raise ValueError("a CNN encoder cannot drop patches; mask the input pixels instead")
            return self.backbone.forward_features(images).flatten(2).transpose(1, 2)
        vit = self.backbone
        if visible is None:
            return vit.forward_features(images)[:, self.num_prefix:]
        x = vit._pos_embed(vit.patch_embed(images))
        prefix, patches = x[:, :self.num_prefix], x[:, self.num_prefix:]
        patches = torch.gather(patches, 1, visible[..., None].expand(-1, -1, patches.shape[-1]))
        x = vit.norm_pre(torch.cat([prefix, patches], 1))
        x = vit.norm(vit.blocks(x))
        return x[:, self.num_prefix:]


class CrossAttentionBlock(nn.Module):
    """Pre-norm block: ``x += SA(x)``; ``x += gate * CA(x, context)``; ``x += MLP(x)``.

    Args:
        dim: token width.
        heads: attention heads.
        mlp_ratio: MLP hidden width / ``dim``.
        dropout: attention and MLP dropout.
        cross: build the cross-attention (``False``: a plain transformer block).

    ``forward(x [B, N, D], context [B, M, D] | None, gate [B] bool | None)``: ``gate[b] = False``
    (the context modality is absent for sample ``b``) removes the cross-attention update of that
    sample, so the result does not depend on the (zero) context input.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0, cross: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross = cross
        if cross:
            self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                gate: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h, need_weights=False)[0]
        if self.cross and context is not None:
            kv = self.norm_kv(context)
            update = self.cross_attn(self.norm_q(x), kv, kv, need_weights=False)[0]
            if gate is not None:
                update = update * gate.to(update.dtype).view(-1, 1, 1)
            x = x + update
        return x + self.mlp(self.norm2(x))


class FusionTransformer(nn.Module):
    """Two token streams fused by stacked :class:`CrossAttentionBlock` s (one stack per stream: stream
    ``i`` attends to the other stream's tokens of the previous layer).

    ``forward(streams: list of [B, N_i, D], present [B, M] bool) -> list of [B, N_i, D]``. With one
    stream the blocks are plain transformer blocks.
    """

    def __init__(self, dim: int, depth: int, heads: int, num_streams: int = 2, dropout: float = 0.0):
        super().__init__()
        cross = num_streams > 1
        self.layers = nn.ModuleList(
            nn.ModuleList(CrossAttentionBlock(dim, heads, dropout=dropout, cross=cross) for _ in range(num_streams))
            for _ in range(depth))

    def forward(self, streams: list[torch.Tensor], present: torch.Tensor) -> list[torch.Tensor]:
        for layer in self.layers:
            if len(streams) == 1:
                streams = [layer[0](streams[0])]
                continue
            new = []
            for i, block in enumerate(layer):
                j = 1 - i
                new.append(block(streams[i], streams[j], present[:, j]))
            streams = new
        return streams


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, (H/p)(W/p), p*p*C]`` (row-major patches, MAE order)."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def random_patch_mask(batch: int, num_tokens: int, ratio: float, device=None,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MAE random masking: ``(visible [B, V] long (sorted), masked [B, N] bool)`` with
    ``V = N - round(ratio * N)`` (at least one visible patch)."""
    n_mask = min(num_tokens - 1, int(round(ratio * num_tokens)))
    noise = torch.rand(batch, num_tokens, device=device, generator=generator)
    order = noise.argsort(1)
    visible = order[:, n_mask:].sort(1).values
    masked = torch.ones(batch, num_tokens, dtype=torch.bool, device=device)
    masked.scatter_(1, visible, False)
    return visible, masked
