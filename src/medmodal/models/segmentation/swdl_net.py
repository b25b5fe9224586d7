"""SWDL-Net: Stratum-Wise Difference Learning with a Deep Laplacian Pyramid (arXiv 2506.10325), and the
plain V-Net it is built on (``vnet``, UA-MT's ``VNet``), under the ``segmentation`` contract.

``forward(images [B, M, D, H, W], modality_mask [B, M] | None) -> logits [B, num_classes, D, H, W]`` with
``D``, ``H`` and ``W`` divisible by 16 (four stride-2 down-samplings); absent sequences are zero-filled
before the network. Inference uses the first decoder only (no feedback).

**Written by hand** from ``torch.nn`` layers (convolutions, BatchNorm, ReLU, dropout) and
``torch.nn.functional`` (interpolation, the depthwise Gaussian blur); no library provides the network. The
architecture follows the description of a third-party copy of the authors' code
(``NguyenVanCongThanh/SWDL-BHSD``, ``code/networks/SWDL.py``, class ``SWDL_Net``); no code was taken from it.

**The network** (defaults of :class:`SWDLNetConfig`, ``n = n_filters = 16``):

* Encoder (V-Net): five strata of widths ``n, 2n, 4n, 8n, 16n`` with 1 / 2 / 3 / 3 / 3 layers of
  ``conv3x3x3 - BatchNorm - ReLU``; between strata a stride-2 ``conv2x2x2 - BatchNorm - ReLU``;
  ``Dropout3d(0.3)`` on the bottleneck (``dropout``, training only). A *feedback* list of five tensors
  (coarse -> fine, see below) is added to the stratum outputs (before the down-sampling that follows a
  stratum; on the bottleneck before its dropout).
* Decoder 1, "DC" (deep convolution): ``ConvTranspose 2x2x2 stride 2 - BatchNorm - ReLU`` up-sampling to
  the next width, *additive* skip, ``conv3x3x3 - BN - ReLU`` stages of 3 / 3 / 2 / 1 layers,
  ``Dropout3d(0.5)`` (``dropout``), 1x1x1 output convolution.
* Decoder 2, "DelPU" (deep Laplacian-pyramid up-sampling): the same stages, but each up-sampling is
  :class:`LaplacianPyramidUpsample` (x2 with the detail bands amplified by ``detail_gain`` = mu = 1.5)
  followed by ``conv3x3x3 - BN - ReLU`` to the next width; its skips are *gated* by the DC decoder:
  ``skip * sigmoid(dc_feature.detach())``, and its bottleneck input is *boosted* by the same kind of gate,
  ``x * (1 + sigmoid(x_dc.detach()))`` (the copy's ``x5 + x5 * w5``; chosen over ``x * sigmoid``). The
  gates are detached: no gradient of the Laplacian branch reaches the DC decoder's parameters.
* Side heads (deep supervision) on the five DC stage features: a 1x1x1 convolution to the classes,
  resized (trilinear, ``align_corners=True``) to the input size.

**Stage features and stratum differences.** Both decoders report five *stage features*, coarse -> fine,
each with the shape of the encoder stratum it stands for: index 0 is the bottleneck (DC: the encoder's
bottleneck as is; DelPU: the boosted ``x * (1 + gate)``), index ``k >= 1`` the output of the ``k``-th
up-sampling *before* its skip is added (shape of encoder stratum ``5 - k``). :func:`stratum_differences`
gives ``scale * (lap_feature - dc_feature)`` per stratum, detached, in the same order: exactly what
``forward_train(..., feedback=...)`` adds to the encoder in the next pass. Since the DelPU bottleneck is
the boosted DC one, the bottleneck difference is ``scale * x * sigmoid(x)`` (not zero), as in the copy.

**Laplacian up-sampling** (:class:`LaplacianPyramidUpsample`): a Gaussian pyramid ``G_0 = x``,
``G_{i+1} = down(blur(G_i))`` (per-slice 2-D Gaussian blur over ``H, W``, ``sigma``, zero padding; then
x0.5 trilinear, every axis halved), Laplacian bands ``L_i = G_i - blur(up(G_{i+1}))``, reconstruction
``R_L = G_L``, ``R_i = blur(up(R_{i+1})) + mu * L_i``, then a trilinear x2 resize of ``R_0``. With
``mu = 1`` the pyramid reconstructs ``x`` exactly (up to float rounding), so the module is a plain x2
resize. **Number of levels** (the copy chooses it from the largest side, 0..5): here
``L = min(max_levels, floor(log2(s)) - 1)`` with ``s`` the smallest side of the map (depth included,
since the halving is trilinear), so the coarsest level keeps every side >= 2; ``L = 0`` (a map with a
side below 4, e.g. the bottleneck of a 16^3 volume) is a plain x2 resize.

**Differences from the copy** (the copy is taken as the reference where the paper is silent):

1. The copy hard-codes the side heads' input widths (256 ... 16, i.e. ``n_filters = 16``) and their
   up-sampling (repeated x2 steps); here they follow ``n_filters`` and resize in one step to the input
   size (the same for the finest head; for the others a slightly different trilinear interpolant).
2. Number of pyramid levels from the smallest side (above), not from the largest; the copy's blur kernel
   size switches with the map size (3, an even 4 at 128 that shifts the map, 5 from 256) where here it is
   the fixed ``blur_kernel`` (default 3, what the copy runs for every map of its 96x96x32 patches).
3. The per-slice blur is one depthwise ``conv3d`` with a ``1 x k x k`` kernel (the copy loops over slices
   and builds the kernel on every call; the same values).
4. Both decoders carry the ``Dropout3d(0.5)`` before their output convolution, as in the copy (one
   decoder class for both).
5. ``spatial_dims=2`` gives the same network with 2-D layers (a per-image blur, bilinear resizing): not in
   the paper, present so that the registry's 2-D sweep runs the model; the engine passes 3 for volumes.
6. The input has ``len(modalities)`` channels and absent ones are zeroed (the copy: one CT channel).

``laplacian_decoder=False`` is the plain V-Net (encoder + DC decoder, no DelPU decoder and no side heads:
UA-MT's ``VNet`` with ``normalization='batchnorm'``, ``has_dropout=True``), registered as ``vnet``. UA-MT's
``VNet`` uses one ``Dropout3d(0.5)`` on both the bottleneck and the last stage, so ``vnet`` defaults
``encoder_dropout`` to 0.5 (SWDL's encoder: 0.3); every other default is the shared one.

Parameters (measured, 1 input channel, 2 classes, ``n_filters = 16``): ``swdl_net`` 12,348,718;
``vnet`` 9,448,866, the count of UA-MT's ``VNet(n_channels=1, n_classes=2, normalization='batchnorm')``
(``tests/models/segmentation/test_swdl_net.py`` counts both independently from the layer layout).

Raises (at construction): :class:`~medmodal.errors.ConfigError` for ``n_filters < 1``, ``sigma <= 0``, an
even or non-positive ``blur_kernel``, ``max_levels`` outside 1..5, dropout rates outside ``[0, 1)``,
``detail_gain < 0``, ``spatial_dims`` not 2 or 3; for ``vnet``, ``laplacian_decoder=True``. At run time:
:class:`ValueError` for images that are not ``[B, len(modalities), *S]``, a side not divisible by 16 (the
message names the shape), a sample with no sequence, a feedback list that is not five tensors of the
strata's shapes, and :func:`stratum_differences` of a model without the Laplacian decoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medmodal.errors import ConfigError
from medmodal.layers.masking import check_modality_mask, mask_modalities
from medmodal.models.registry import model_config, register_model

__all__ = ["SWDLNet", "SWDLNetConfig", "SWDLOutputs", "LaplacianPyramidUpsample", "stratum_differences",
           "ENCODER_LAYERS", "DECODER_LAYERS", "NUM_STRATA", "VNET_ENCODER_DROPOUT"]

#: conv-BN-ReLU layers of the encoder strata, fine -> coarse (V-Net)
ENCODER_LAYERS = (1, 2, 3, 3, 3)
#: conv-BN-ReLU layers of the decoder stages after each up-sampling, coarse -> fine
DECODER_LAYERS = (3, 3, 2, 1)
NUM_STRATA = len(ENCODER_LAYERS)

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_DECONV = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_DROPOUT = {2: nn.Dropout2d, 3: nn.Dropout3d}
_LINEAR = {2: "bilinear", 3: "trilinear"}


@dataclass
class SWDLNetConfig:
    """SWDL-Net / V-Net options (defaults: the paper and the copy of the authors' code).

    Attributes:
        n_filters: width of the first stratum (paper 16); strata have ``n, 2n, 4n, 8n, 16n`` channels.
        laplacian_decoder: build the DelPU decoder and the side heads (SWDL-Net); ``False`` is the plain
            V-Net (registered as ``vnet``).
        detail_gain: mu, the gain of the Laplacian detail bands (paper 1.5; 1.0 = plain x2 resize).
        sigma: standard deviation (voxels) of the per-slice Gaussian blur of the pyramid (copy 1.0).
        blur_kernel: odd side of the blur kernel (copy: 3 for the maps it meets).
        max_levels: upper bound of the pyramid levels, 1..5 (module docstring: the level rule).
        feedback_scale: default ``scale`` of :meth:`SWDLNet.stratum_differences` (copy 1e-3).
        dropout: the bottleneck and pre-output dropouts (copy ``has_dropout=True``); training only.
        encoder_dropout: rate of the bottleneck ``Dropout3d`` (0.3; ``vnet`` defaults to UA-MT's 0.5).
        decoder_dropout: rate of the ``Dropout3d`` before each output convolution (0.5).
        spatial_dims: 3 (volumes; what the paper uses) or 2 (the same network on slices).
    """

    n_filters: int = 16
    laplacian_decoder: bool = True
    detail_gain: float = 1.5
    sigma: float = 1.0
    blur_kernel: int = 3
    max_levels: int = 5
    feedback_scale: float = 1e-3
    dropout: bool = True
    encoder_dropout: float = 0.3
    decoder_dropout: float = 0.5
    spatial_dims: int = 3

    def __post_init__(self):
        self.n_filters, self.blur_kernel, self.max_levels = (int(v) for v in (self.n_filters, self.blur_kernel,
                                                                              self.max_levels))
        self.detail_gain, self.sigma, self.feedback_scale = (float(v) for v in (self.detail_gain, self.sigma,
                                                                               self.feedback_scale))
        self.laplacian_decoder, self.dropout = bool(self.laplacian_decoder), bool(self.dropout)
        if int(self.spatial_dims) not in (2, 3):
            raise ConfigError(f"swdl_net is 3-D (or 2-D); got spatial_dims={self.spatial_dims}")
        self.spatial_dims = int(self.spatial_dims)
        if self.n_filters < 1:
            raise ConfigError(f"n_filters must be >= 1, got {self.n_filters}")
        if not self.sigma > 0:
            raise ConfigError(f"sigma must be > 0, got {self.sigma}")
        if self.blur_kernel < 1 or self.blur_kernel % 2 == 0:
            raise ConfigError(f"blur_kernel must be an odd positive size, got {self.blur_kernel}")
        if not 1 <= self.max_levels <= 5:
            raise ConfigError(f"max_levels must be in 1..5, got {self.max_levels}")
        if self.detail_gain < 0:
            raise ConfigError(f"detail_gain must be >= 0, got {self.detail_gain}")
        for name in ("encoder_dropout", "decoder_dropout"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass
class SWDLOutputs:
    """What :meth:`SWDLNet.forward_train` returns (every list coarse -> fine, index 0 = the bottleneck).

    Attributes:
        dc: DC-decoder logits ``[B, K, *S]``.
        lap: DelPU-decoder logits ``[B, K, *S]`` (``None`` without the Laplacian decoder).
        sides: five side-head logits on the DC stages, each ``[B, K, *S]`` (input size); empty without the
            Laplacian decoder.
        dc_features: five DC stage features, shapes of the encoder strata ``[B, 16n, *S/16]`` ...
            ``[B, n, *S]``.
        lap_features: the DelPU stage features, same shapes (empty without the Laplacian decoder).
    """

    dc: torch.Tensor
    lap: torch.Tensor | None = None
    sides: list = field(default_factory=list)
    dc_features: list = field(default_factory=list)
    lap_features: list = field(default_factory=list)


def stratum_differences(outputs: SWDLOutputs, scale: float = 1e-3) -> list[torch.Tensor]:
    """The difference feedback: ``[scale * (lap_features[k] - dc_features[k]) for k]``, detached.

    Coarse -> fine (index 0 = the bottleneck), the order and shapes ``forward_train(feedback=...)`` takes.

    Raises:
        ValueError: ``outputs`` without Laplacian features (a ``vnet``), or lists of different lengths.
    """
    if not outputs.lap_features:
        raise ValueError("stratum_differences needs the Laplacian decoder's features (laplacian_decoder=True)")
    if len(outputs.lap_features) != len(outputs.dc_features):
        raise ValueError(f"{len(outputs.lap_features)} Laplacian and {len(outputs.dc_features)} DC stage features")
    with torch.no_grad():
        return [(scale * (lap.detach() - dc.detach())) for lap, dc in zip(outputs.lap_features, outputs.dc_features)]


# ----------------------------------------------------------------------------- building blocks
def _conv_stack(dims: int, cin: int, cout: int, layers: int) -> nn.Sequential:
    """``layers`` x (conv3 + BatchNorm + ReLU), the first ``cin -> cout``."""
    ops = []
    for i in range(layers):
        ops += [_CONV[dims](cin if i == 0 else cout, cout, 3, padding=1), _NORM[dims](cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*ops)


def _strided(dims: int, cin: int, cout: int, transposed: bool) -> nn.Sequential:
    """Stride-2 2x2(x2) convolution (down) or transposed convolution (up) + BatchNorm + ReLU."""
    conv = (_DECONV if transposed else _CONV)[dims](cin, cout, 2, stride=2)
    return nn.Sequential(conv, _NORM[dims](cout), nn.ReLU(inplace=True))


def _gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """Normalised 2-D Gaussian ``[size, size]``."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).float()


class LaplacianPyramidUpsample(nn.Module):
    """x2 up-sampling through a Laplacian pyramid with amplified detail bands (DelPU's up-sampling).

    Module docstring for the definition and the level rule. No parameters.

    Args:
        spatial_dims: 3 (``[N, C, D, H, W]``, per-slice blur over ``H, W``) or 2 (``[N, C, H, W]``).
        detail_gain: mu, the factor of the detail bands in the reconstruction.
        sigma, kernel_size: the Gaussian blur.
        max_levels: upper bound of the pyramid levels.

    Shapes: ``forward(x [N, C, *S]) -> [N, C, *2S]``.
    """

    def __init__(self, spatial_dims: int = 3, detail_gain: float = 1.5, sigma: float = 1.0, kernel_size: int = 3,
                 max_levels: int = 5):
        super().__init__()
        self.spatial_dims, self.detail_gain, self.max_levels = int(spatial_dims), float(detail_gain), int(max_levels)
        self.register_buffer("kernel", _gaussian_kernel(int(kernel_size), float(sigma)), persistent=False)

    def levels(self, spatial: Sequence[int]) -> int:
        """Pyramid levels for a map of sides ``spatial``: ``min(max_levels, floor(log2(min side)) - 1)``, >= 0."""
        smallest = min(int(s) for s in spatial)
        return max(0, min(self.max_levels, int(math.floor(math.log2(smallest))) - 1)) if smallest >= 1 else 0

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        """Per-slice (3-D) or per-image (2-D) depthwise Gaussian blur, zero padding, same size."""
        c, k = x.shape[1], self.kernel.shape[-1]
        w = self.kernel.to(x.dtype)
        if self.spatial_dims == 3:
            return F.conv3d(x, w.expand(c, 1, 1, k, k), padding=(0, k // 2, k // 2), groups=c)
        return F.conv2d(x, w.expand(c, 1, k, k), padding=k // 2, groups=c)

    def resize(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """(Bi/tri)linear resize with ``align_corners=True`` (the copy's interpolation)."""
        return F.interpolate(x, size=tuple(int(s) for s in size), mode=_LINEAR[self.spatial_dims], align_corners=True)

    def decompose(self, x: torch.Tensor, levels: int) -> list[torch.Tensor]:
        """Laplacian pyramid ``[L_0, ..., L_{levels-1}, G_levels]`` of ``x`` (finest first)."""
        gaussians = [x]
        for _ in range(levels):
            g = gaussians[-1]
            gaussians.append(self.resize(self.blur(g), [max(1, s // 2) for s in g.shape[2:]]))
        bands = [g - self.blur(self.resize(coarse, g.shape[2:])) for g, coarse in zip(gaussians, gaussians[1:])]
        return bands + [gaussians[-1]]

    def reconstruct(self, pyramid: Sequence[torch.Tensor], detail_gain: float | None = None) -> torch.Tensor:
        """``R_i = blur(up(R_{i+1})) + gain * L_i`` from the coarsest level; returns ``R_0`` (size of ``L_0``)."""
        gain = self.detail_gain if detail_gain is None else float(detail_gain)
        image = pyramid[-1]
        for band in reversed(pyramid[:-1]):
            image = self.blur(self.resize(image, band.shape[2:])) + gain * band
        return image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        target = [2 * s for s in x.shape[2:]]
        levels = self.levels(x.shape[2:])
        if levels > 0:
            x = self.reconstruct(self.decompose(x, levels))
        return self.resize(x, target)


class _Encoder(nn.Module):
    """V-Net encoder: five strata with optional difference feedback (module docstring).

    Shapes: ``forward(x [B, C_in, *S], feedback=None | 5 x [B, w_k, *S_k] coarse -> fine)`` ->
    strata fine -> coarse ``[B, n * 2**i, *S / 2**i]`` for ``i = 0..4``.
    """

    def __init__(self, dims: int, in_channels: int, n: int, dropout: float):
        super().__init__()
        widths = [n * 2 ** i for i in range(NUM_STRATA)]
        self.blocks = nn.ModuleList(_conv_stack(dims, in_channels if i == 0 else widths[i], widths[i], layers)
                                    for i, layers in enumerate(ENCODER_LAYERS))
        self.downs = nn.ModuleList(_strided(dims, widths[i], widths[i + 1], transposed=False)
                                   for i in range(NUM_STRATA - 1))
        self.dropout = _DROPOUT[dims](dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, feedback: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        strata = []
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else self.downs[i - 1](x))
            if feedback is not None:
                fb = feedback[NUM_STRATA - 1 - i]
                if tuple(fb.shape) != tuple(x.shape):
                    raise ValueError(f"feedback[{NUM_STRATA - 1 - i}] must have the shape of encoder stratum "
                                     f"{i + 1}, {tuple(x.shape)}; got {tuple(fb.shape)}")
                x = x + fb.to(x.dtype)
            strata.append(x)
        strata[-1] = self.dropout(strata[-1])
        return strata


class _Decoder(nn.Module):
    """DC (transposed-conv up-sampling) or DelPU (Laplacian up-sampling + conv) decoder.

    Shapes: ``forward(strata fine -> coarse, gates=None | 5 x gate coarse -> fine)`` ->
    ``(logits [B, K, *S], stage features coarse -> fine)`` (module docstring).
    """

    def __init__(self, dims: int, n: int, num_classes: int, dropout: float, laplacian: dict | None):
        super().__init__()
        widths = [n * 2 ** i for i in range(NUM_STRATA)][::-1]  # coarse -> fine
        if laplacian is None:
            self.ups = nn.ModuleList(_strided(dims, widths[i], widths[i + 1], transposed=True)
                                     for i in range(NUM_STRATA - 1))
        else:
            self.ups = nn.ModuleList(
                nn.Sequential(LaplacianPyramidUpsample(dims, **laplacian),
                              *_conv_stack(dims, widths[i], widths[i + 1], 1))
                for i in range(NUM_STRATA - 1))
        self.stages = nn.ModuleList(_conv_stack(dims, widths[i + 1], widths[i + 1], layers)
                                    for i, layers in enumerate(DECODER_LAYERS))
        self.dropout = _DROPOUT[dims](dropout) if dropout > 0 else nn.Identity()
        self.head = _CONV[dims](widths[-1], num_classes, 1)

    def forward(self, strata: Sequence[torch.Tensor], gates: Sequence[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = strata[-1]
        if gates is not None:
            x = x * (1 + gates[0])
        features = [x]
        for i, (up, stage) in enumerate(zip(self.ups, self.stages)):
            u = up(x)
            features.append(u)
            skip = strata[NUM_STRATA - 2 - i]
            x = stage(u + (skip if gates is None else skip * gates[i + 1]))
        return self.head(self.dropout(x)), features


# --------------------------------------------------------------------------------------- model
class SWDLNet(nn.Module):
    """SWDL-Net (or, with ``laplacian_decoder=False``, the plain V-Net) under the ``segmentation`` contract.

    Args:
        modalities: input channel names (e.g. ``("ct",)``).
        num_classes: output logits per voxel.
        config: a :class:`SWDLNetConfig` or dict; ``**overrides``: its fields.

    Attributes:
        encoder: the V-Net encoder. dc_decoder: decoder 1 (DC). lap_decoder: decoder 2 (DelPU) or ``None``.
        side_heads: five 1x1x1 convolutions on the DC stages, coarse -> fine (empty without ``lap_decoder``).
    """

    #: every spatial side must be a multiple of this (four stride-2 down-samplings)
    size_divisor = 16

    def __init__(self, modalities: Sequence[str], num_classes: int, config: SWDLNetConfig | dict | None = None,
                 **overrides):
        super().__init__()
        cfg = model_config(SWDLNetConfig, config, **overrides)
        self.config, self.modalities, self.num_classes = cfg, tuple(modalities), int(num_classes)
        self.spatial_dims = dims = cfg.spatial_dims
        self.registry_name = "swdl_net" if cfg.laplacian_decoder else "vnet"
        n = cfg.n_filters
        enc_p, dec_p = (cfg.encoder_dropout, cfg.decoder_dropout) if cfg.dropout else (0.0, 0.0)
        self.encoder = _Encoder(dims, len(self.modalities), n, enc_p)
        self.dc_decoder = _Decoder(dims, n, self.num_classes, dec_p, laplacian=None)
        self.lap_decoder = None
        self.side_heads = nn.ModuleList()
        if cfg.laplacian_decoder:
            lap = dict(detail_gain=cfg.detail_gain, sigma=cfg.sigma, kernel_size=cfg.blur_kernel,
                       max_levels=cfg.max_levels)
            self.lap_decoder = _Decoder(dims, n, self.num_classes, dec_p, laplacian=lap)
            self.side_heads = nn.ModuleList(_CONV[dims](n * 2 ** i, self.num_classes, 1)
                                            for i in reversed(range(NUM_STRATA)))

    def _input(self, images: torch.Tensor, modality_mask: torch.Tensor | None) -> torch.Tensor:
        dims, m = self.spatial_dims, len(self.modalities)
        axes = "D, H, W" if dims == 3 else "H, W"
        if images.ndim != dims + 2 or images.shape[1] != m:
            raise ValueError(f"{self.registry_name} expects images [B, {m}, {axes}], got {tuple(images.shape)}")
        if any(s % self.size_divisor for s in images.shape[2:]):
            raise ValueError(f"{self.registry_name} needs {axes} divisible by {self.size_divisor}, got images of shape "
                             f"{tuple(images.shape)}")
        if modality_mask is None:
            return images
        return mask_modalities(images, check_modality_mask(modality_mask, images.shape[0], m, images.device))

    def forward(self, images: torch.Tensor, modality_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``images [B, M, *S]`` (sides divisible by 16) -> DC logits ``[B, num_classes, *S]`` (no feedback).

        Args:
            images: ``[B, len(modalities), D, H, W]`` float (``[B, M, H, W]`` with ``spatial_dims=2``).
            modality_mask: ``[B, M]`` bool, True = present (``None``: all present); absent channels are zeroed.

        Raises:
            ValueError: wrong shape, a side not divisible by 16, a sample with no sequence.
        """
        strata = self.encoder(self._input(images, modality_mask))
        return self.dc_decoder(strata)[0]

    def forward_train(self, images: torch.Tensor, modality_mask: torch.Tensor | None = None,
                      feedback: Sequence[torch.Tensor] | None = None) -> SWDLOutputs:
        """Both decoders, the side heads and the stage features (:class:`SWDLOutputs`).

        Args:
            images, modality_mask: as :meth:`forward`.
            feedback: ``None`` or five tensors coarse -> fine (:func:`stratum_differences` of the previous
                pass) added to the encoder strata.

        Raises:
            ValueError: as :meth:`forward`; a feedback that is not five tensors of the strata's shapes.
        """
        x = self._input(images, modality_mask)
        if feedback is not None and len(feedback) != NUM_STRATA:
            raise ValueError(f"feedback must be {NUM_STRATA} tensors (coarse -> fine), got {len(feedback)}")
        strata = self.encoder(x, feedback)
        dc, dc_features = self.dc_decoder(strata)
        if self.lap_decoder is None:
            return SWDLOutputs(dc=dc, dc_features=dc_features)
        gates = [torch.sigmoid(f.detach()) for f in dc_features]
        lap, lap_features = self.lap_decoder(strata, gates)
        size = tuple(images.shape[2:])
        sides = [F.interpolate(head(f), size=size, mode=_LINEAR[self.spatial_dims], align_corners=True)
                 if tuple(f.shape[2:]) != size else head(f) for head, f in zip(self.side_heads, dc_features)]
        return SWDLOutputs(dc=dc, lap=lap, sides=sides, dc_features=dc_features, lap_features=lap_features)

    def stratum_differences(self, outputs: SWDLOutputs, scale: float | None = None) -> list[torch.Tensor]:
        """:func:`stratum_differences` with ``scale`` defaulting to ``config.feedback_scale``."""
        return stratum_differences(outputs, self.config.feedback_scale if scale is None else float(scale))


_TINY = {"n_filters": 4, "widths": None}


@register_model("swdl_net", tiny=_TINY)
def swdl_net(modalities, num_classes, config=None, **overrides):
    """SWDL-Net: V-Net encoder, DC and Laplacian-pyramid decoders, stratum-wise difference feedback."""
    return SWDLNet(modalities, num_classes, config, **overrides)


#: UA-MT's ``VNet`` drops the bottleneck with its one ``Dropout3d(0.5)`` (SWDL-Net's encoder: 0.3)
VNET_ENCODER_DROPOUT = 0.5


@register_model("vnet", tiny=_TINY)
def vnet(modalities, num_classes, config=None, **overrides):
    """The plain V-Net (UA-MT's ``VNet``): :class:`SWDLNet` with ``laplacian_decoder=False`` and, unless given,
    ``encoder_dropout=0.5``. An :class:`SWDLNetConfig` instance is taken as is, but for ``laplacian_decoder``.

    Raises:
        ConfigError: ``laplacian_decoder=True`` in ``overrides`` or a ``config`` mapping (use ``swdl_net``).
    """
    if isinstance(config, SWDLNetConfig):
        return SWDLNet(modalities, num_classes, config, **{**overrides, "laplacian_decoder": False})
    options = {"encoder_dropout": VNET_ENCODER_DROPOUT, **dict(config or {}), **overrides}
    if options.get("laplacian_decoder"):
        raise ConfigError("vnet is SWDL-Net without its Laplacian decoder; use swdl_net for laplacian_decoder=True")
    return SWDLNet(modalities, num_classes, {**options, "laplacian_decoder": False})
