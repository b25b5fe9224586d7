"""Contrastive building blocks shared by every family: symmetric InfoNCE with negatives gathered
across processes (gradients flowing through the gather).

* :func:`gather_with_grad`: all-gather along the batch dimension, each process's own slice keeping
  its gradient (``torch.distributed.nn.functional.all_gather``);
* :func:`info_nce_loss`: symmetric CLIP / InfoNCE between paired embeddings with the negatives of
  every process (ConVIRT, GLoRIA's global term, MGCA's ITA, PRIOR and CM-CGNS's global loss;
  open_clip ``ClipLoss(local_loss=True, gather_with_grad=True)``).

Moved unchanged from ``medmodal.models.image_text.objectives`` (which re-exports them for one release).
All computations in float32 (bf16 / fp16 inputs are upcast).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = ["is_distributed", "gather_with_grad", "info_nce_loss"]


def is_distributed() -> bool:
    """Whether a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather ``x [B, ...]`` from every process along dim 0, gradients flowing back to each
    process's own slice (``torch.distributed.nn.functional.all_gather``).

    Returns ``(x_all [W*B, ...], offset)`` where ``offset = rank * B`` is where this process's rows
    start. Without an initialised process group (or one process) returns ``(x, 0)``. Every process
    must pass the same ``B`` (use ``drop_last=True`` for training batches under DDP).
    """
    if not is_distributed():
        return x, 0
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0), dist.get_rank() * x.shape[0]


def info_nce_loss(image_embed: torch.Tensor, text_embed: torch.Tensor, logit_scale: torch.Tensor | float,
                  gather: bool = True, weights: tuple[float, float] = (0.5, 0.5)) -> torch.Tensor:
    """Symmetric InfoNCE between paired image and report embeddings.

    ``loss = w_i2t * CE(s * I T_all^T, y) + w_t2i * CE(s * T I_all^T, y)`` with ``s = logit_scale`` (the
    inverse temperature, e.g. ``exp(learnable log-scale)``), the local rows against the
    embeddings of all processes and ``y = rank * B + arange(B)``: CM-CGNS
    ``global_alignment_loss`` (pl_bolts ``SyncFunction`` there; here
    :func:`gather_with_grad`).

    Args:
        image_embed, text_embed: ``[B, E]``, L2-normalised by the caller.
        logit_scale: scalar tensor or float (not clamped here).
        gather: gather negatives across processes when a process group is initialised.
        weights: ``(w_i2t, w_t2i)``: ``(0.5, 0.5)`` CM-CGNS / CLIP; ``(0.75, 0.25)`` ConVIRT
            (``lambda = 0.75``); ``(1, 1)`` GLoRIA / MGCA (the two directions summed).

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
    return (weights[0] * F.cross_entropy(logits_per_image, labels)
            + weights[1] * F.cross_entropy(logits_per_text, labels))
