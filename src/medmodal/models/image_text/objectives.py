"""Image-report pre-training objectives (pure functions of tensors, shared by CM-CGNS and baselines).

Public entry point for users: :mod:`medmodal.losses.image_text` re-exports everything here. The
functions live in the models package because a model computes its own objective
(:meth:`CMCGNS.compute_losses`) and the package layering lets ``losses`` import ``models``, not
the reverse.

* :func:`gather_with_grad` / :func:`info_nce_loss`: gathered symmetric InfoNCE, moved to
  :mod:`medmodal.layers.contrastive` (a shared building block) and re-exported here for one release.
* :func:`simsiam_loss`: negative-cosine SimSiam loss with stop-gradient targets (PRIOR's and
  CM-CGNS's local image loss).
* :func:`bidirectional_margin_loss` and :func:`cluster_guided_info_nce`: CM-CGNS's local report
  loss with cluster-guided hard negatives and false-negative margins (ClusterNS-derived).
* :func:`reconstruction_l1`: the CM-MIR pixel loss.
* :func:`word_region_attention_loss`: GLoRIA's local (word-region attention) loss.
* :func:`token_alignment_loss`: MGCA's cross-modal token alignment (one direction).
* :func:`sinkhorn_knopp` / :func:`prototype_swap_loss`: MGCA's cross-modal prototype alignment.

All losses compute in float32 (they upcast bf16 / fp16 inputs) and return scalars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F

from medmodal.layers.contrastive import gather_with_grad, info_nce_loss, is_distributed
from medmodal.models.image_text.clustering import OnlineKMeans

__all__ = [
    "gather_with_grad",
    "info_nce_loss",
    "simsiam_loss",
    "bidirectional_margin_loss",
    "LocalReportLoss",
    "cluster_guided_info_nce",
    "reconstruction_l1",
    "word_region_attention_loss",
    "token_alignment_loss",
    "sinkhorn_knopp",
    "prototype_swap_loss",
]


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


def word_region_attention_loss(words: torch.Tensor, word_valid: torch.Tensor, regions: torch.Tensor,
                               temp_attention: float = 4.0, temp_word: float = 5.0, temp_pair: float = 10.0,
                               weights: tuple[float, float] = (1.0, 1.0)) -> torch.Tensor:
    """GLoRIA's local loss: attention-weighted region context per word, word-level similarity, contrast.

    Source: Huang et al., "GLoRIA: A Multimodal Global-Local Representation Learning Framework for
    Label-efficient Medical Image Recognition", ICCV 2021, Eq. 3-6; reference code
    github.com/marshuang80/gloria ``gloria/loss/gloria_loss.py`` (``attention_fn``, ``local_loss``;
    defaults ``temp1 = 4``, ``temp2 = 5``, ``temp3 = 10``, ``agg = "sum"`` from
    ``configs/pretrain/chexpert_gloria_pretrain_config.yaml``). For every image ``j`` and report ``i``:

    * ``a[w, r] = <word_iw, region_jr>`` (raw dot products); softmax over the report's words for
      each region, then ``softmax_r(temp_attention * .)`` over the regions for each word (GLoRIA's
      two softmaxes); ``c_w = sum_r a[w, r] region_jr`` (the word's region context);
    * ``Z(i, j) = log sum_w exp(temp_word * cos(word_iw, c_w))`` over the report's valid words;
    * ``loss = w0 * CE(temp_pair * Z[j, :], j) + w1 * CE(temp_pair * Z[:, i], i)`` (image-to-report
      and report-to-image, summed as released).

    Batched over all ``B x B`` pairs (no loop; memory ``O(B^2 * L * (N + E))``).

    Args:
        words: ``[B, L, E]`` word features; word_valid: ``[B, L]`` bool (every report has >= 1 word).
        regions: ``[B, N, E]`` region features (e.g. the ``h * w`` cells of a CNN map).

    Raises:
        ValueError: shapes disagree or a report has no valid word.
    """
    if words.ndim != 3 or regions.ndim != 3 or words.shape[0] != regions.shape[0] or words.shape[2] != regions.shape[2]:
        raise ValueError(f"words [B, L, E] and regions [B, N, E] expected, got {tuple(words.shape)} and "
                         f"{tuple(regions.shape)}")
    if word_valid.shape != words.shape[:2] or not bool(word_valid.any(dim=1).all()):
        raise ValueError("word_valid must be [B, L] with at least one valid word per report")
    words, regions = words.float(), regions.float()
    valid = word_valid.bool()
    # scores[i, j, w, r]: word w of report i against region r of image j
    scores = torch.einsum("iwe,jre->ijwr", words, regions)
    scores = scores.masked_fill(~valid[:, None, :, None], float("-inf"))
    attention = torch.softmax(scores, dim=2)  # over words, per region
    attention = torch.softmax(temp_attention * attention.nan_to_num(0.0), dim=3)  # over regions, per word
    context = torch.einsum("ijwr,jre->ijwe", attention, regions)
    cosine = F.cosine_similarity(words[:, None], context, dim=-1, eps=1e-8)  # [i, j, w]
    word_scores = (temp_word * cosine).masked_fill(~valid[:, None, :], float("-inf"))
    pair = torch.logsumexp(word_scores, dim=2)  # [report i, image j]
    logits_image = temp_pair * pair.t()  # rows: images, columns: reports
    labels = torch.arange(words.shape[0], device=words.device)
    return weights[0] * F.cross_entropy(logits_image, labels) + weights[1] * F.cross_entropy(logits_image.t(), labels)


def token_alignment_loss(queries: torch.Tensor, query_weight: torch.Tensor, keys: torch.Tensor,
                         key_valid: torch.Tensor | None = None, temperature: float = 0.1) -> torch.Tensor:
    """MGCA's cross-modal token alignment, one direction (queries attend to the other modality's keys).

    Source: Wang et al., "Multi-Granularity Cross-modal Alignment for Generalized Medical Visual
    Representation Learning", NeurIPS 2022, Eq. 4-6; reference code github.com/HKU-MedAI/MGCA
    ``mgca/models/mgca/mgca_module.py`` (``use_local_atten=False`` path, ``local_temperature = 0.1``).
    Per sample, with L2-normalised ``q [Q, E]`` and ``k [K, E]``:

    * ``attended = normalize(softmax(q k^T / t, over valid keys) k)`` (``[Q, E]``);
    * ``S = q attended^T / t`` (``[Q, Q]``: query ``a`` against the attended output of query ``b``);
    * ``loss = sum_a w_a (CE(S[a, :], a) + CE(S[:, a], a)) / 2`` averaged over samples, where
      ``w`` are the query weights normalised to sum 1 per sample. Invalid queries (weight 0) are
      also removed from the negatives (MGCA kept padded words as negative columns).

    Args:
        queries: ``[B, Q, E]`` L2-normalised; query_weight: ``[B, Q]`` >= 0 (0 = not a query;
            MGCA: uniform ``1/N`` for ResNet patches, the text encoder's clipped [CLS] attention for words).
        keys: ``[B, K, E]`` L2-normalised; key_valid: ``[B, K]`` bool (``None`` = all).
        temperature: ``t`` (MGCA ``local_temperature = 0.1``).

    Raises:
        ValueError: shapes disagree or a sample has no query with positive weight.
    """
    if queries.ndim != 3 or keys.ndim != 3 or queries.shape[0] != keys.shape[0] or query_weight.shape != queries.shape[:2]:
        raise ValueError(f"queries [B, Q, E], query_weight [B, Q] and keys [B, K, E] expected, got "
                         f"{tuple(queries.shape)}, {tuple(query_weight.shape)}, {tuple(keys.shape)}")
    weight = query_weight.float()
    if not bool((weight.sum(dim=1) > 0).all()):
        raise ValueError("every sample needs at least one query with positive weight")
    q, k = queries.float(), keys.float()
    sim = q @ k.transpose(1, 2) / temperature  # [B, Q, K]
    if key_valid is not None:
        sim = sim.masked_fill(~key_valid.bool()[:, None, :], float("-inf"))
    attended = F.normalize(torch.softmax(sim, dim=-1) @ k, dim=-1)
    scores = q @ attended.transpose(1, 2) / temperature  # [B, Q, Q]
    is_query = weight > 0
    scores = scores.masked_fill(~(is_query[:, :, None] & is_query[:, None, :]), -1e4)
    weight = weight / weight.sum(dim=1, keepdim=True)
    n = scores.shape[1]
    targets = torch.arange(n, device=scores.device).repeat(scores.shape[0])
    rows = F.cross_entropy(scores.reshape(-1, n), targets, reduction="none")
    cols = F.cross_entropy(scores.transpose(1, 2).reshape(-1, n), targets, reduction="none")
    per_query = 0.5 * (rows + cols) * weight.reshape(-1)
    return per_query.sum() / scores.shape[0]


@torch.no_grad()
def sinkhorn_knopp(logits: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Soft equipartitioned assignment of ``B`` samples to ``K`` prototypes (SwAV's Sinkhorn-Knopp).

    Source: Caron et al., SwAV (NeurIPS 2020), Alg. 1 / ``distributed_sinkhorn``; used by MGCA
    (``sinkhorn`` / ``distributed_sinkhorn``, ``epsilon = 0.05``, 3 iterations). ``Q = exp(logits /
    epsilon)^T`` is scaled alternately so prototypes get equal mass ``1/K`` and samples ``1/B``
    (``B`` over all processes when a process group is initialised); the returned codes are the
    columns normalised to sum 1. Computed in log space (same result, no overflow at small ``epsilon``).

    Args:
        logits: ``[B, K]`` sample-prototype scores (cosines for normalised prototypes).

    Returns:
        ``[B, K]`` codes, rows summing to 1, no gradient.
    """
    log_q = (logits.float() / epsilon).t()  # [K, B]
    distributed = is_distributed()
    world = dist.get_world_size() if distributed else 1
    k, b = log_q.shape

    def _logsumexp_all(x: torch.Tensor, dim: int | None) -> torch.Tensor:
        if not distributed or dim == 0:  # sums over prototypes are local to a sample
            return torch.logsumexp(x, dim=dim) if dim is not None else torch.logsumexp(x.flatten(), 0)
        peak = x.max().detach() if dim is None else x.max(dim=dim).values.detach()
        if dim is None:
            dist.all_reduce(peak, op=dist.ReduceOp.MAX)
            total = torch.exp(x - peak).sum()
        else:
            dist.all_reduce(peak, op=dist.ReduceOp.MAX)
            total = torch.exp(x - peak[:, None]).sum(dim=dim)
        dist.all_reduce(total)
        return torch.log(total) + peak

    log_q = log_q - _logsumexp_all(log_q, None)
    for _ in range(iterations):
        log_q = log_q - _logsumexp_all(log_q, 1)[:, None] - math.log(k)  # each prototype: mass 1/K
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(b * world)  # each sample: 1/B
    return torch.softmax(log_q, dim=0).t()  # columns normalised to 1


def prototype_swap_loss(image_logits: torch.Tensor, text_logits: torch.Tensor, epsilon: float = 0.05,
                        iterations: int = 3, temperature: float = 0.2) -> torch.Tensor:
    """MGCA's cross-modal prototype alignment (swapped prediction of Sinkhorn codes).

    Source: MGCA (NeurIPS 2022) Eq. 8-9, ``mgca_module.py`` (``proto_temperature = 0.2``,
    ``epsilon = 0.05``, 3 Sinkhorn iterations, 500 prototypes): codes ``q = sinkhorn(scores)`` of
    each modality (no gradient), probabilities ``p = softmax(scores / temperature)``;
    ``loss = (-mean_b sum_k q_img log p_txt - mean_b sum_k q_txt log p_img) / 2``.

    Args:
        image_logits, text_logits: ``[B, K]`` cosines to the (normalised) prototypes.
    """
    if image_logits.shape != text_logits.shape or image_logits.ndim != 2:
        raise ValueError(f"image / text prototype scores must both be [B, K], got {tuple(image_logits.shape)} "
                         f"and {tuple(text_logits.shape)}")
    image_code = sinkhorn_knopp(image_logits, epsilon, iterations)
    text_code = sinkhorn_knopp(text_logits, epsilon, iterations)
    log_p_image = F.log_softmax(image_logits.float() / temperature, dim=1)
    log_p_text = F.log_softmax(text_logits.float() / temperature, dim=1)
    i2t = -(image_code * log_p_text).sum(dim=1).mean()
    t2i = -(text_code * log_p_image).sum(dim=1).mean()
    return 0.5 * (i2t + t2i)
