"""PASSION-style imbalance handling (Shi et al., ACM MM 2024), as per-pair loss terms.

* :func:`self_distillation_loss` - each present sequence's auxiliary prediction (student) is
  pulled towards the fused prediction (teacher, detached):
  ``L_bm = T^2 * mean_voxels KL(softmax(z_b / T) || softmax(z^m_b / T))`` for present pairs,
  exactly 0 (no gradient) for absent ones. ``T`` softens both distributions (Hinton et al.);
  the ``T^2`` factor keeps the gradient scale independent of ``T``.
* :func:`preference_weights` - preference-aware regularisation: per sequence,
  ``w_m = mean_b L^aux_bm / mean_{(b,m') present} L^aux_bm'`` over the batch (detached), so a
  sequence whose own prediction is worse than the average of the present ones gets ``w_m > 1``
  and a better one ``w_m < 1``; sequences absent from the batch get 1. The weights multiply
  that sequence's auxiliary and self-distillation terms.

Shapes: ``aux_logits [B, M, K, *S]``, ``fused_logits [B, K, *S]``, ``modality_mask [B, M]`` bool,
per-pair losses ``[B, M]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medmodal.models.segmentation.pairs import gather_pairs, pair_indices, scatter_pairs

__all__ = ["self_distillation_loss", "preference_weights"]


def self_distillation_loss(aux_logits: torch.Tensor, fused_logits: torch.Tensor, modality_mask: torch.Tensor,
                           temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) per present (sample, sequence) pair, ``[B, M]`` (see module docstring)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b, m = modality_mask.shape
    if aux_logits.shape[:2] != (b, m) or aux_logits.shape[2:] != fused_logits.shape[1:]:
        raise ValueError(f"aux_logits {tuple(aux_logits.shape)} must be [B, M, *fused {tuple(fused_logits.shape[1:])}]")
    mask = modality_mask.to(device=aux_logits.device, dtype=torch.bool)
    bi, mi = pair_indices(mask)
    if bi.numel() == 0:
        return aux_logits.new_zeros((b, m), dtype=torch.float32)
    t = float(temperature)
    student = F.log_softmax(gather_pairs(aux_logits, bi, mi, mask).float() / t, dim=1)          # [P, K, *S]
    teacher = F.log_softmax(fused_logits.detach()[bi].float() / t, dim=1)
    kl = F.kl_div(student, teacher, reduction="none", log_target=True).sum(1)  # [P, *S]
    return scatter_pairs(kl.flatten(1).mean(1) * t * t, bi, mi, mask)


def preference_weights(pair_loss: torch.Tensor, modality_mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-sequence weights ``[M]`` from a ``[B, M]`` per-pair loss (detached; 1 for absent sequences)."""
    mask = modality_mask.to(device=pair_loss.device, dtype=torch.bool)
    values = pair_loss.detach().float()
    count = mask.sum(0)
    per_sequence = torch.where(mask, values, torch.zeros_like(values)).sum(0) / count.clamp_min(1)
    overall = torch.where(mask, values, torch.zeros_like(values)).sum() / count.sum().clamp_min(1)
    weights = per_sequence / overall.clamp_min(eps)
    return torch.where(count > 0, weights, torch.ones_like(weights))
