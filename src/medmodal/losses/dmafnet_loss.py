"""The DMAF-Net training objective.

With ``P`` = the present (sample, sequence) pairs of the batch and ``w_m`` the per-sequence
weights (Dynamic Training Monitoring's ``beta``, or 1)::

    total = seg_weight * L_seg(z, y)
          + deep_supervision_weight * sum_i ds_w_i * L_seg(z_i, y_i)
          + 1/|P| * sum_{(b,m) in P} w_m * ( aux_weight   * L_seg(z^m_b, y_b)
                                            + cca_weight   * L_cov^{b,m}        (if use_rd)
                                            + maa_weight   * L_att^{b,m}        (if use_rd)
                                            + proto_weight * L_proto^{b,m} )    (if use_pd)

``L_seg`` is Dice + cross-entropy (:class:`~medmodal.losses.segmentation.SegmentationLoss`);
the distillation terms are in :mod:`medmodal.losses.distillation`. The weights ``w_m`` are not
renormalised inside the loss (DTM keeps ``||w||_2 = sqrt(M)``).

The per-sequence **gap** returned for DTM is, for sequence ``m``, the mean over the samples
where ``m`` is present of ``cca_weight * L_cov + maa_weight * L_att + proto_weight * L_proto``
(the RD + PD distillation loss actually optimised, without ``w_m``); NaN where ``m`` is absent
from the whole batch. If both RD and PD are off, ``gap_source="distill"`` falls back to the
auxiliary loss ``L_seg(z^m, y)`` (so DTM still has a per-sequence signal); ``gap_source="aux"``
always uses it and ``"distill+aux"`` uses the distillation gap + ``aux_weight * L_seg(z^m, y)``.

Turning ``use_rd`` / ``use_pd`` off removes those terms and their modules (CCA projection, MAA
attention) entirely, so no unused parameter is created. ``use_dtm`` is read by the training
module (whether it passes DTM weights and scales encoder gradients); the loss itself only uses
``sequence_weights`` when given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from medmodal.errors import ConfigError
from medmodal.losses.base import Objective, StepContext, register_objective
from medmodal.losses.distillation import (
    CovarianceConsistencyLoss,
    MaskedAttentionAlignmentLoss,
    PrototypeDistillationLoss,
)
from medmodal.losses.passion import preference_weights, self_distillation_loss
from medmodal.losses.segmentation import SegmentationLoss, deep_supervision_loss, masked_aux_loss, masked_mean
from medmodal.models.registry import model_config

__all__ = ["DMAFNetLossConfig", "DMAFNetLoss"]

GAP_SOURCES = ("distill", "aux", "distill+aux")


@dataclass
class DMAFNetLossConfig:
    """Switches and coefficients of :class:`DMAFNetLoss` (YAML ``loss:`` section).

    The paper does not publish its coefficients; the defaults below are this implementation's.

    Attributes:
        use_rd: Relation Distillation (CCA + MAA). Default True.
        use_pd: Prototype Distillation. Default True.
        use_dtm: Dynamic Training Monitoring (read by the training module). Default True.
        seg_weight: fused prediction Dice+CE. Default 1.0.
        deep_supervision_weight: multiplies the deep-supervision sum. Default 1.0.
        deep_supervision_weights: per coarser level, finest first; further levels halve.
            Default (0.5, 0.25).
        aux_weight: per-sequence shared-decoder Dice+CE. Default 1.0 (RFNet-style auxiliary
            supervision with equal weight).
        cca_weight: covariance consistency (in [0, 1]). Default 0.5.
        maa_weight: masked attention alignment (1 - cosine, in [0, 2]). Default 0.5.
        proto_weight: prototype distillation (1 - cosine, in [0, 2]). Default 0.5.
        include_background: class 0 in the Dice term. Default False.
        lambda_dice, lambda_ce: Dice / CE weights inside L_seg. Default 1.0 / 1.0.
        cca_mode: "normalized" (default) | "mse".
        cca_per_modality: one projection per sequence instead of a shared one. Default False.
        maa_heads: attention heads in MAA (must divide the deepest width). Default 4.
        maa_token_grid: pool features to this many tokens per axis before MAA (None = all
            deepest positions). Default None.
        maa_mode: "cosine" (default) | "mse".
        proto_mode: "cosine" (default) | "mse".
        proto_downsample: "area" (default, class fractions) | "nearest".
        proto_include_background: background prototype included. Default True.
        detach_teacher: no gradient from distillation into f_L. Default True.
        gap_source: what DTM tracks: "distill" (default; RD+PD, aux if both off) | "aux" |
            "distill+aux".
        self_distill_weight: PASSION self-distillation from the fused prediction (teacher,
            detached) into each present sequence's auxiliary prediction
            (:func:`medmodal.losses.passion.self_distillation_loss`). Default 0.0 (off).
        self_distill_temperature: softmax temperature of that KL term. Default 1.0.
        preference_weighting: PASSION preference-aware weights on each sequence's auxiliary and
            self-distillation terms (:func:`medmodal.losses.passion.preference_weights`).
            Default False.

    Models without per-sequence branches (``aux_logits`` is ``None``, e.g. ``zero_unet``) get
    only the segmentation and deep-supervision terms.
    """

    use_rd: bool = True
    use_pd: bool = True
    use_dtm: bool = True
    seg_weight: float = 1.0
    deep_supervision_weight: float = 1.0
    deep_supervision_weights: tuple[float, ...] = (0.5, 0.25)
    aux_weight: float = 1.0
    cca_weight: float = 0.5
    maa_weight: float = 0.5
    proto_weight: float = 0.5
    include_background: bool = False
    lambda_dice: float = 1.0
    lambda_ce: float = 1.0
    cca_mode: str = "normalized"
    cca_per_modality: bool = False
    maa_heads: int = 4
    maa_token_grid: int | None = None
    maa_mode: str = "cosine"
    proto_mode: str = "cosine"
    proto_downsample: str = "area"
    proto_include_background: bool = True
    detach_teacher: bool = True
    gap_source: str = "distill"
    self_distill_weight: float = 0.0
    self_distill_temperature: float = 1.0
    preference_weighting: bool = False

    def __post_init__(self):
        self.deep_supervision_weights = tuple(float(w) for w in self.deep_supervision_weights)
        if self.gap_source not in GAP_SOURCES:
            raise ValueError(f"gap_source must be one of {GAP_SOURCES}, got {self.gap_source!r}")
        if self.self_distill_temperature <= 0:
            raise ValueError(f"self_distill_temperature must be > 0, got {self.self_distill_temperature}")
        for name in ("seg_weight", "deep_supervision_weight", "aux_weight", "cca_weight", "maa_weight", "proto_weight",
                     "self_distill_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@register_objective("dmafnet")
class DMAFNetLoss(Objective):
    """Segmentation + deep supervision + per-sequence auxiliary + RD/PD distillation.

    Args:
        config: :class:`DMAFNetLossConfig` (default: all defaults).
        feature_channels: deepest feature width ``C_L`` (required when ``use_rd``).
        num_modalities: ``M`` (used for per-sequence CCA projections and shape checks).
        num_classes: ``K`` (optional; otherwise taken from the logits).
    """

    def __init__(self, config: DMAFNetLossConfig | None = None, *, feature_channels: int | None = None,
                 num_modalities: int = 4, num_classes: int | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DMAFNetLossConfig()
        self.num_modalities = int(num_modalities)
        self.num_classes = num_classes
        self.seg = SegmentationLoss(include_background=cfg.include_background,
                                    lambda_dice=cfg.lambda_dice, lambda_ce=cfg.lambda_ce)
        self.cca = self.maa = self.proto = None
        if cfg.use_rd:
            if not feature_channels:
                raise ValueError("use_rd=True needs feature_channels (the deepest encoder width)")
            self.cca = CovarianceConsistencyLoss(feature_channels, num_modalities=num_modalities,
                                                 per_modality=cfg.cca_per_modality, mode=cfg.cca_mode,
                                                 detach_teacher=cfg.detach_teacher)
            self.maa = MaskedAttentionAlignmentLoss(feature_channels, num_heads=cfg.maa_heads,
                                                    token_grid=cfg.maa_token_grid, mode=cfg.maa_mode,
                                                    detach_teacher=cfg.detach_teacher)
        if cfg.use_pd:
            self.proto = PrototypeDistillationLoss(num_classes, downsample=cfg.proto_downsample,
                                                   include_background=cfg.proto_include_background,
                                                   mode=cfg.proto_mode, detach_teacher=cfg.detach_teacher)

    def forward(self, outputs: dict, context: StepContext | torch.Tensor,
                sequence_weights: torch.Tensor | None = None):
        """The objective contract (:class:`~medmodal.losses.base.Objective`).

        Args:
            outputs: ``model.forward_train`` dict (``logits``, ``deep_logits``, ``aux_logits``,
                ``modality_features``, ``fused_features``, ``modality_mask``).
            context: a :class:`~medmodal.losses.base.StepContext` with ``target`` ``[B, *S]`` class
                indices and ``sequence_weights`` ``[M]`` (DTM) or ``None`` (ones).

        Returns:
            ``{"loss": total, <term>: detached scalar, ..., "gaps": [M]}``: the terms of :meth:`compute`,
            and ``gaps`` the detached per-sequence training-monitor signal (not a loss term).

        The old call ``loss(outputs, target, sequence_weights=None) -> (total, terms, gaps)`` (a tensor
        instead of a context) still works for one release: it is :meth:`compute`.
        """
        if not isinstance(context, StepContext):
            return self.compute(outputs, context, sequence_weights)
        total, terms, gaps = self.compute(outputs, context.target, context.sequence_weights)
        return {"loss": total, **terms, "gaps": gaps}

    def compute(self, outputs: dict, target: torch.Tensor, sequence_weights: torch.Tensor | None = None):
        """Compute the objective as a tuple.

        Args:
            outputs: ``model.forward_train`` dict (``logits``, ``deep_logits``, ``aux_logits``,
                ``modality_features``, ``fused_features``, ``modality_mask``).
            target: ``[B, *S]`` class indices.
            sequence_weights: ``[M]`` per-sequence weights (DTM) or ``None`` (ones).

        Returns:
            ``(total, terms, gaps)``: scalar loss; dict of detached scalars for logging
            (unweighted means over present pairs: ``seg``, ``deep``, ``aux``, ``cca``, ``maa``,
            ``proto``, ``rd``, ``pd`` as enabled); ``gaps`` ``[M]`` detached per-sequence gap
            (NaN for sequences absent from the whole batch).
        """
        cfg = self.config
        logits = outputs["logits"]
        mask = outputs["modality_mask"].to(device=logits.device, dtype=torch.bool)
        b, m = mask.shape
        target = target.to(logits.device)
        if target.dim() == logits.dim() and target.shape[1] == 1:
            target = target[:, 0]
        weights = None
        if sequence_weights is not None:
            weights = sequence_weights.to(device=logits.device, dtype=torch.float32).reshape(-1)
            if weights.numel() != m:
                raise ValueError(f"sequence_weights has {weights.numel()} entries for {m} sequences")

        terms: dict[str, torch.Tensor] = {}
        seg = self.seg(logits, target)
        terms["seg"] = seg
        total = cfg.seg_weight * seg

        deep = outputs.get("deep_logits") or []
        if deep and cfg.deep_supervision_weight > 0:
            ds = deep_supervision_loss(self.seg, deep, target, cfg.deep_supervision_weights)
            terms["deep"] = ds
            total = total + cfg.deep_supervision_weight * ds

        # per-pair terms [B, M] (0 for absent pairs); single-encoder models have no aux branch
        pair = logits.new_zeros((b, m), dtype=torch.float32)
        aux = pair
        if outputs.get("aux_logits") is not None:
            aux = masked_aux_loss(outputs["aux_logits"], target, mask, self.seg)
            terms["aux"] = masked_mean(aux, mask)
            pair = pair + self._passion_terms(outputs["aux_logits"], logits, aux, mask, terms)
        distill = logits.new_zeros((b, m), dtype=torch.float32)
        if self.cca is not None or self.proto is not None:
            e, f = outputs["modality_features"], outputs["fused_features"]
        if self.cca is not None:
            cca = self.cca(e, f, mask)
            maa = self.maa(e, f, mask)
            terms["cca"], terms["maa"] = masked_mean(cca, mask), masked_mean(maa, mask)
            rd = cfg.cca_weight * cca + cfg.maa_weight * maa
            terms["rd"] = masked_mean(rd, mask)
            distill = distill + rd
        if self.proto is not None:
            proto = self.proto(e, f, target, mask, num_classes=self.num_classes or logits.shape[1])
            terms["proto"] = masked_mean(proto, mask)
            pd = cfg.proto_weight * proto
            terms["pd"] = masked_mean(pd, mask)
            distill = distill + pd
        pair = pair + distill
        total = total + masked_mean(pair, mask, weights)

        has_distill = self.cca is not None or self.proto is not None
        if cfg.gap_source == "aux" or (cfg.gap_source == "distill" and not has_distill):
            gap_pairs = aux
        elif cfg.gap_source == "distill+aux":
            gap_pairs = distill + cfg.aux_weight * aux
        else:
            gap_pairs = distill
        gaps = self.per_sequence_mean(gap_pairs.detach(), mask)
        terms = {k: v.detach() for k, v in terms.items()}
        return total, terms, gaps

    def _passion_terms(self, aux_logits, logits, aux, mask, terms) -> torch.Tensor:
        """``aux_weight * aux`` (+ self-distillation), times the preference weights when enabled."""
        cfg = self.config
        pair = cfg.aux_weight * aux
        if cfg.self_distill_weight > 0:
            sd = self_distillation_loss(aux_logits, logits, mask, cfg.self_distill_temperature)
            terms["self_distill"] = masked_mean(sd, mask)
            pair = pair + cfg.self_distill_weight * sd
        if cfg.preference_weighting:
            pair = pair * preference_weights(aux, mask)
        return pair

    @staticmethod
    def per_sequence_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, M]`` -> ``[M]`` mean over the samples where the sequence is present (NaN if none)."""
        mask = mask.to(torch.bool)
        count = mask.sum(0)
        sums = torch.where(mask, values, torch.zeros_like(values)).sum(0)
        out = sums / count.clamp_min(1).to(values.dtype)
        return torch.where(count > 0, out, torch.full_like(out, math.nan))

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None, *, feature_channels: int | None = None,
                     num_modalities: int = 4, num_classes: int | None = None,
                     model_name: str | None = None) -> "DMAFNetLoss":
        """Build from a config's ``loss`` options (the fields of :class:`DMAFNetLossConfig`) and the
        model's sizes (what :meth:`SegmentationModule.build_objective` passes every segmentation objective).

        Raises:
            ConfigError: RD or PD on for a model without per-sequence features (``feature_channels`` is
                ``None``); a bad option (:class:`DMAFNetLossConfig`: unknown key or refused value).
        """
        cfg = model_config(DMAFNetLossConfig, options)
        if (cfg.use_rd or cfg.use_pd) and feature_channels is None:
            raise ConfigError(f"model {model_name!r} has no per-sequence features to distil: set "
                             f"loss.use_rd=false and loss.use_pd=false")
        dims = {"feature_channels": feature_channels} if feature_channels is not None else {}
        return cls(cfg, **dims, num_modalities=num_modalities, num_classes=num_classes)
