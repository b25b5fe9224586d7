"""Image-report pre-training objectives (pure functions of tensors, shared by CM-CGNS and baselines).

Public entry point for users: :mod:`medmodal.losses.image_text` re-exports everything here. The
functions live in the models package because a model computes its own objective
(:meth:`CMCGNS.compute_losses`) and the package layering lets ``losses`` import ``models``, not
the reverse.

* :func:`gather_with_grad` / :func:`info_nce_loss`: symmetric CLIP/InfoNCE with negatives gathered
  across processes, gradients flowing through the gather (ConVIRT, GLoRIA's global term, MGCA's
  ITA, PRIOR and CM-CGNS's global loss; open_clip ``ClipLoss(local_loss=True, gather_with_grad=True)``).
* :func:`simsiam_loss`: negative-cosine SimSiam loss with stop-gradient targets (PRIOR's and
  CM-CGNS's local image loss).
* :func:`bidirectional_margin_loss` and :func:`cluster_guided_info_nce`: CM-CGNS's local report
  loss with cluster-guided hard negatives and false-negative margins (ClusterNS-derived).
* :func:`reconstruction_l1`: the CM-MIR pixel loss.

All losses compute in float32 (they upcast bf16 / fp16 inputs) and return scalars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F

from medmodal.models.image_text.clustering import OnlineKMeans

__all__ = [
    "gather_with_grad",
    "info_nce_loss",
    "simsiam_loss",
    "bidirectional_margin_loss",
    "LocalReportLoss",
    "cluster_guided_info_nce",
    "reconstruction_l1",
]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather ``x [B, ...]`` from every process along dim 0, gradients flowing back to each
    process's own slice (``torch.distributed.nn.functional.all_gather``).

    Returns ``(x_all [W*B, ...], offset)`` where ``offset = rank * B`` is where this process's rows
    start. Without an initialised process group (or one process) returns ``(x, 0)``. Every process
    must pass the same ``B`` (use ``drop_last=True`` for training batches under DDP).
    """
    if not _distributed():
        return x, 0
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0), dist.get_rank() * x.shape[0]


def info_nce_loss(image_embed: torch.Tensor, text_embed: torch.Tensor, logit_scale: torch.Tensor | float,
                  gather: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE between paired image and report embeddings.

    ``loss = (CE(s * I T_all^T, y) + CE(s * T I_all^T, y)) / 2`` with ``s = logit_scale`` (the
    inverse temperature, e.g. ``exp(learnable log-scale)``), the local rows against the
    embeddings of all processes and ``y = rank * B + arange(B)``: CM-CGNS
    ``global_alignment_loss`` (pl_bolts ``SyncFunction`` there; here
    :func:`gather_with_grad`).

    Args:
        image_embed, text_embed: ``[B, E]``, L2-normalised by the caller.
        logit_scale: scalar tensor or float (not clamped here).
        gather: gather negatives across processes when a process group is initialised.

    Raises:
        ValueError: shapes differ or are not 2-D.
    """
    if image_embed.ndim != 2 or image_embed.shape != text_embed.shape:
        raise ValueError(f"image / text embeddings must both be [B, E], got {tuple(image_embed.shape)} "
                         f"and {tuple(text_embed.shape)}")
    image_embed, text_embed = image_embed.float(), text_embed.float()
    if gather:
        image_all, offset = gather_with_grad(image_embed)
        text_all, _ = gather_with_grad(text_embed)
    else:
        image_all, text_all, offset = image_embed, text_embed, 0
    labels = offset + torch.arange(image_embed.shape[0], device=image_embed.device)
    logits_per_image = logit_scale * image_embed @ text_all.t()
    logits_per_text = logit_scale * text_embed @ image_all.t()
    return 0.5 * (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels))


def simsiam_loss(x: torch.Tensor, y: torch.Tensor, predictor: Callable[[torch.Tensor], torch.Tensor],
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric SimSiam loss ``-(cos(p(x), sg(y)) + cos(p(y), sg(x))) / 2`` averaged over positions.

    Source: SimSiam (Chen & He, CVPR 2021); PRIOR / CM-CGNS ``simsiam_loss_func`` between local
    image features and text-to-image features (no negatives: overlapping receptive fields).

    Args:
        x, y: ``[..., D]`` paired features (e.g. ``[B, N, D]`` tokens).
        predictor: the shared prediction MLP applied to both sides.
        mask: optional ``[...]`` bool of valid positions (default: all). With all samples having
            the same number of positions the plain mean equals CM-CGNS's mean of per-sample means.

    Returns a scalar in ``[-1, 1]`` (``-1`` = perfectly predicted).
    """
    px, py = predictor(x).float(), predictor(y).float()
    cos = 0.5 * (F.cosine_similarity(px, y.detach().float(), dim=-1)
                 + F.cosine_similarity(py, x.detach().float(), dim=-1))
    if mask is None:
        return -cos.mean()
    weight = mask.to(cos.dtype)
    return -(cos * weight).sum() / weight.sum().clamp_min(1.0)


def bidirectional_margin_loss(cosine: torch.Tensor, mask: torch.Tensor, alpha: float = 0.2,
                              beta: float = 0.5) -> torch.Tensor:
    """ClusterNS's bidirectional margin loss (BML) on false-negative pairs.

    ``delta_ij = (cos_ij - cos_ii) * mask_ij``; ``loss = mean_ij[relu(delta + alpha) + relu(-delta - beta)]``:
    pushes a false negative's similarity into ``[cos_pos - beta, cos_pos - alpha]``. The mean runs
    over all ``N x N`` entries, so every unmasked entry contributes the constant ``alpha`` (as
    released: ``Kmeans_Cluster.false_negative_loss``; it has zero gradient).

    Args:
        cosine: ``[N, N]`` cosine of anchor ``i`` to positive-side feature ``j`` (diagonal = positives).
        mask: ``[N, N]`` bool / 0-1, ``True`` for false-negative pairs.
        alpha, beta: the margins (ClusterNS / CM-CGNS defaults 0.2 / 0.5).
    """
    positive = cosine.diagonal()[:, None]
    delta = (cosine - positive) * mask.to(cosine.dtype)
    return (F.relu(delta + alpha) + F.relu(-delta - beta)).mean()


@dataclass
class LocalReportLoss:
    """Result of :func:`cluster_guided_info_nce`.

    Attributes:
        loss: the total ``info_nce + bml_weight * bml`` (scalar, differentiable).
        info_nce: the cross-entropy term (with hard-negative columns when the clusters are active).
        bml: the unweighted false-negative margin term (``0`` while the clusters are inactive).
        clusters_active: whether hard negatives / false-negative margins were used this step.
        mean_cosine: mean of the ``N x N`` anchor-positive cosine matrix (the activation statistic).
    """

    loss: torch.Tensor
    info_nce: torch.Tensor
    bml: torch.Tensor
    clusters_active: bool
    mean_cosine: torch.Tensor


def cluster_guided_info_nce(anchors: torch.Tensor, positives: torch.Tensor, kmeans: OnlineKMeans | None = None, *,
                            update_clusters: bool, temperature: float = 1.0, activation_cosine: float = 0.4,
                            hard_negative_rank: int = 2, hard_negative_weight: float = 3.0, bml_alpha: float = 0.2,
                            bml_beta: float = 0.5, bml_weight: float = 1e-4) -> LocalReportLoss:
    """CM-CGNS local report loss with cross-modal cluster-guided negative sampling.

    Source: CM-CGNS ``text_local_loss_fn`` + ``Kmeans_Cluster`` (released code; defaults from there).

    * Points: ``N`` sentences of all reports of the (per-process) batch. Anchor ``z1_i`` = sentence
      embedding, positive ``z2_i`` = its image-to-sentence (cross-modal) feature; every other
      ``z2_j`` is an in-batch negative. Logits ``cos(z1_i, z2_j) / temperature`` (released: 1.0),
      one direction (text anchors), labels on the diagonal.
    * Clusters (``kmeans`` given): k-means runs on the cross-modal features ``z2`` (detached).
      While not initialised, it is seeded (:meth:`OnlineKMeans.initialize`) in a step with
      ``update_clusters`` whose mean anchor-positive cosine is ``<= activation_cosine`` and which
      has ``N >= K`` sentences; that step itself still uses plain InfoNCE (as released). Once
      initialised, every step with ``update_clusters`` first makes one momentum update with
      ``z2``, then (with or without update) each anchor gets the centroid of
      ``hard_negative_rank``-th highest cosine as hard negative ``z3_i``; the logits gain ``N``
      columns ``cos(z1_i, z3_j)/temperature`` multiplied by a weight matrix that is
      ``hard_negative_weight`` on the diagonal and 0 elsewhere (**multiplicative as released**:
      the own hard-negative logit is scaled x3 and the other anchors' hard-negative columns become
      0 logits that still add ``exp(0)`` to each denominator; ClusterNS instead adds a log-weight).
      Pairs ``i != j`` whose anchors share the nearest centroid are false negatives: they stay in
      the denominator and get :func:`bidirectional_margin_loss` on the raw cosines, weighted
      ``bml_weight``.
    * ``update_clusters=False`` (validation / inference) never seeds or moves the centroids; the
      released code did both in validation steps too (fixed).

    Args:
        anchors, positives: ``[N, E]`` (normalised here).
        kmeans: the cluster state, or ``None`` for plain in-batch InfoNCE.

    Raises:
        ValueError: shapes differ, ``N < 1``, or ``temperature <= 0``.
    """
    if anchors.ndim != 2 or anchors.shape != positives.shape or anchors.shape[0] < 1:
        raise ValueError(f"anchors / positives must both be [N>=1, E], got {tuple(anchors.shape)} and "
                         f"{tuple(positives.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z1 = F.normalize(anchors.float(), dim=-1)
    z2 = F.normalize(positives.float(), dim=-1)
    cosine = z1 @ z2.t()
    mean_cosine = cosine.detach().mean()
    logits = cosine / temperature
    bml = cosine.new_zeros(())
    active = False
    if kmeans is not None:
        if not kmeans.is_initialized:
            if update_clusters and z2.shape[0] >= kmeans.num_clusters and bool(mean_cosine <= activation_cosine):
                kmeans.initialize(z2.detach())
        else:
            if update_clusters:
                kmeans.update(z2.detach())
            hard = F.normalize(kmeans.hard_negatives(z1.detach(), hard_negative_rank), dim=-1)
            own_hard = (z1 * hard).sum(-1) / temperature  # cos(z1_i, z3_i)
            logits = torch.cat([logits, torch.diag_embed(hard_negative_weight * own_hard)], dim=1)
            bml = bidirectional_margin_loss(cosine, kmeans.same_cluster_mask(z1.detach()), bml_alpha, bml_beta)
            active = True
    labels = torch.arange(z1.shape[0], device=z1.device)
    info_nce = F.cross_entropy(logits, labels)
    return LocalReportLoss(loss=info_nce + bml_weight * bml, info_nce=info_nce, bml=bml, clusters_active=active,
                           mean_cosine=mean_cosine)


def reconstruction_l1(reconstruction: torch.Tensor, image: torch.Tensor, weight: float = 10.0) -> torch.Tensor:
    """``weight * mean |reconstruction - image|`` (CM-MIR; released weight 10).

    The target is the whole input image in its own value range (CM-CGNS: normalised with mean
    0.5 / std 0.5, i.e. ``[-1, 1]``). A reconstruction of another spatial size is compared with the
    image bilinearly resized to it, as released.
    """
    image = image.float()
    if image.shape[-2:] != reconstruction.shape[-2:]:
        image = F.interpolate(image, size=reconstruction.shape[-2:], mode="bilinear", align_corners=True)
    return weight * F.l1_loss(reconstruction.float(), image)
