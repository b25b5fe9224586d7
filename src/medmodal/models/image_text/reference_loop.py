"""Per-sample (reference-style) formulation of the CM-CGNS objective: the COMPARISON implementation.

Not used for training. It exists for two things only:

* the equivalence test (``tests/models/image_text/test_reference_loop.py``): the batched
  :meth:`CMCGNS.compute_losses` must give the same losses (1e-5) and gradients as this;
* the speed benchmark (``medmodal cxr speed``): batched step vs this step.

It follows the structure of the released code (github.com/violet-42/CM-CGNS,
``cgns_module_update.py``, ``utils/gather.py``, ``utils/sentence_pool.py``,
``utils/local_attention.py``, ``utils/Kmeans_Cluster.py``), written independently:

* sentence gathering: a Python loop over reports and, within each, over sentences
  (``torch.where`` on the sentence index, mean of the selected tokens; empty sentences skipped);
* report pooling: one attention-pool call per report, all ``[mean; sentences]`` positions as
  queries, output at position 0;
* local cross-attention and SimSiam: one call per report on unpadded ``[N, E]`` / ``[M_b, E]``;
* local report loss: the per-report lists concatenated; cosines by broadcasting
  ``[N, 1, E]`` against ``[1, N, E]``; k-means assignment / update through one-hot matrices; the
  hard-negative weight matrix built as a Python ``N x 2N`` list every step.

It runs with the same modules and parameters as the model it is given (the encoders, the
projections and the CM-MIR decoder are batched in the released code too and are shared) and it
includes medmodal's fixes (true spatial tokens, spatial masking, decoder fixes, explicit
``update_clusters``), so the two compute the same function. Random draws (k-means seed index,
CM-MIR mask) happen in the same order as in the batched path.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from medmodal.layers.contrastive import info_nce_loss
from medmodal.models.image_text.base import check_batch
from medmodal.models.image_text.cmcgns import CMCGNS

__all__ = ["reference_compute_losses"]


def _cosine(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine ``[N, M]`` by broadcasting (released ``Similarity``)."""
    return F.cosine_similarity(x.unsqueeze(1), y.unsqueeze(0), dim=-1)


def _gather_sentences(tokens: torch.Tensor, sentence_index: torch.Tensor,
                      num_sentences: torch.Tensor) -> list[torch.Tensor]:
    reports = []
    for b in range(tokens.shape[0]):
        text, index = tokens[b], sentence_index[b]
        sentences = []
        for i in range(int(num_sentences[b])):
            words = text[torch.where(index == i)[0], :]
            if words.shape[0] == 0:
                continue
            sentences.append(words.mean(dim=0, keepdim=True))
        if not sentences:
            raise ValueError(f"report {b} has no sentence with tokens")
        reports.append(torch.cat(sentences, dim=0))
    return reports


def _pool_report(model: CMCGNS, sentences: torch.Tensor) -> torch.Tensor:
    x = torch.cat([sentences.mean(dim=0, keepdim=True), sentences], dim=0)[None]  # [1, M+1, E]
    out, _ = model.text_pool.attention(x, x, x, need_weights=False)
    return out[0, 0]


def _cross_attention(model: CMCGNS, image: torch.Tensor, sentences: torch.Tensor):
    attn = model.cross_attention
    q_i, k_i, v_i = attn.image_qkv(image).chunk(3, dim=-1)
    q_t, k_t, v_t = attn.text_qkv(sentences).chunk(3, dim=-1)
    scale = attn.dim ** 0.5
    image_to_text = torch.sigmoid(q_t @ k_i.T / scale) @ v_i
    text_to_image = torch.sigmoid(q_i @ k_t.T / scale) @ v_t
    return text_to_image, image_to_text


def _local_report_loss(model: CMCGNS, z1: torch.Tensor, z2: torch.Tensor, update_clusters: bool):
    cfg, km = model.config, model.kmeans
    z1, z2 = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    cos = _cosine(z1, z2)
    logits = cos / cfg.local_report_temperature
    bml = cos.new_zeros(())
    active = False
    if not bool(km.initialized):
        if update_clusters and z2.shape[0] >= km.num_clusters and cos.mean().item() <= cfg.kmeans_activation_cosine:
            _seed(km, z2.detach())
    else:
        if update_clusters:
            points = z2.detach()
            index = _cosine(points, km.centroids).argmax(dim=-1)
            index_dp = F.one_hot(index, km.num_clusters).T.float()  # [K, N]
            data = index_dp @ points
            empty = index_dp.sum(dim=-1) == 0
            data = data + km.centroids * empty[:, None]
            km.centroids.copy_(km.momentum_lr * data + (1 - km.momentum_lr) * km.centroids)
            km.counts.add_(index_dp.sum(dim=-1).long())
            km.num_updates.add_(1)
        z1_c = _cosine(z1.detach(), km.centroids)
        hard = km.centroids[z1_c.topk(cfg.hard_negative_rank, dim=-1).indices[:, cfg.hard_negative_rank - 1]]
        own = F.one_hot(z1_c.argmax(dim=-1), km.num_clusters).float()
        false_negative = own @ own.T
        false_negative.fill_diagonal_(0)
        delta = (cos - cos.diag()[:, None]) * false_negative
        bml = (F.relu(delta + cfg.bml_alpha) + F.relu(-delta - cfg.bml_beta)).mean()
        hard_logits = _cosine(z1, hard.detach()) / cfg.local_report_temperature
        n = z1.shape[0]
        weights = torch.tensor([[1.0] * n + [0.0] * i + [cfg.hard_negative_weight] + [0.0] * (n - i - 1)
                                for i in range(n)]).type_as(z1)
        logits = torch.cat([logits, hard_logits], dim=1) * weights
        active = True
    loss = F.cross_entropy(logits, torch.arange(z1.shape[0], device=z1.device))
    return loss + cfg.bml_weight * bml, bml, active


@torch.no_grad()
def _seed(km, points: torch.Tensor) -> None:
    cos = _cosine(points, points)
    last = int(torch.randint(points.shape[0], (1,)))
    km.centroids[0] = points[last]
    for i in range(1, km.num_clusters):
        cos[:, last] = 100.0
        last = int(torch.argmin(cos[last]))
        km.centroids[i] = points[last]
    km.counts.zero_()
    km.num_updates.zero_()
    km.initialized.fill_(1)


def reference_compute_losses(model: CMCGNS, batch: Mapping[str, torch.Tensor], *, stage: int,
                             update_clusters: bool) -> dict[str, torch.Tensor]:
    """Per-sample version of :meth:`CMCGNS.compute_losses` (same keys, same values up to float
    rounding). Mutates ``model.kmeans`` exactly like the batched path would."""
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    check_batch(batch, "CM-CGNS")
    cfg = model.config
    local_image, global_image, grid = model.image_parts(batch["image"])
    tokens = model.text_tokens(batch["input_ids"], batch["attention_mask"])
    sentence_stacks = _gather_sentences(tokens, batch["sentence_index"], batch["num_sentences"])
    global_text = F.normalize(torch.stack([_pool_report(model, s) for s in sentence_stacks]), dim=-1)

    simsiam_total, text_to_image_stacks, image_to_text_stacks = 0.0, [], []
    for b, sentences in enumerate(sentence_stacks):
        text_to_image, image_to_text = _cross_attention(model, local_image[b], sentences)
        p_x, p_y = model.predictor(local_image[b]), model.predictor(text_to_image)
        simsiam_total = simsiam_total - 0.5 * (F.cosine_similarity(p_x, text_to_image.detach(), dim=-1).mean()
                                               + F.cosine_similarity(p_y, local_image[b].detach(), dim=-1).mean())
        text_to_image_stacks.append(text_to_image[None])
        image_to_text_stacks.append(image_to_text)
    local_image_loss = simsiam_total / len(sentence_stacks)
    local_report_loss, bml, active = _local_report_loss(model, torch.cat(sentence_stacks),
                                                        torch.cat(image_to_text_stacks), update_clusters)
    global_loss = info_nce_loss(global_image, global_text, model._logit_scale().exp())
    out = {"global_loss": global_loss, "local_image_loss": local_image_loss, "local_report_loss": local_report_loss}
    total = (cfg.global_weight * global_loss + cfg.local_image_weight * local_image_loss
             + cfg.local_report_weight * local_report_loss)
    if stage == 2:
        out["reconstruction_loss"] = model.reconstruction_loss(local_image, torch.cat(text_to_image_stacks), grid,
                                                               batch["image"])
        total = total + out["reconstruction_loss"]
    out["loss"] = total
    out["bml_loss"] = bml.detach()
    out["clusters_active"] = torch.tensor(float(active), device=total.device)
    out["temperature"] = model.temperature
    return out
