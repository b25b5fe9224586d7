"""Momentum (EMA) teachers and an id-aware feature queue (MoCo / ALBEF / mean teacher building blocks).

* :func:`momentum_copy` / :func:`ema_update_`: a frozen copy of a module and its exponential moving
  average update ``teacher <- m * teacher + (1 - m) * online`` (MoCo, He et al., CVPR 2020; ALBEF;
  mean teacher, Tarvainen & Valpola, NeurIPS 2017).
* :func:`register_id_queue` / :func:`enqueue_` / :func:`own_key_mask`: a ring buffer of keys per
  view (buffers ``queue_<view> [Q, E]``), a write pointer (``queue_ptr``) and the sample id of every
  queued key (``queue_ids [Q]``, -1 = empty / unknown), held as buffers of the host module so its
  state dict keys stay ``queue_*``. A query never meets an older key of its own sample as a
  negative (:func:`own_key_mask`): with a queue of the order of a small data set these stale
  positives would otherwise be false negatives (ALBEF's retrieval fine-tuning keeps an id queue for
  the same reason).

Moved from ``MICSPretrainer`` (``_momentum_update``, ``_enqueue``, the queue buffers) unchanged:
same operations in the same order, the same random draws at construction.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["momentum_copy", "ema_update_", "register_id_queue", "enqueue_", "own_key_mask", "all_gather_cat"]


def momentum_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with every parameter frozen (``requires_grad=False``): the EMA teacher."""
    teacher = copy.deepcopy(module)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update_(online: nn.Module, teacher: nn.Module, momentum: float) -> None:
    """``q <- momentum * q + (1 - momentum) * p`` for every parameter pair (in ``parameters()`` order), in place.

    One fused multi-tensor ``torch._foreach_lerp_`` (``q + (1 - momentum) (p - q)``, the same update; timm's
    ``ModelEmaV3`` uses the same kernel family) instead of two kernels per parameter; parameters of differing
    dtype or device fall back to the per-tensor update."""
    online_params = [p.detach() for p in online.parameters()]
    teacher_params = list(teacher.parameters())
    if len(online_params) != len(teacher_params):
        raise ValueError(f"EMA teacher has {len(teacher_params)} parameters, the online network {len(online_params)}")
    try:
        torch._foreach_lerp_(teacher_params, online_params, 1 - momentum)
    except RuntimeError:   # mixed dtypes / devices
        for p, q in zip(online_params, teacher_params):
            q.mul_(momentum).add_(p, alpha=1 - momentum)


def all_gather_cat(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` over DDP processes along dim 0 (no gradient); ``x`` itself without DDP."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return x
    parts = [torch.empty_like(x) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def register_id_queue(host: nn.Module, views: Iterable[str], size: int, dim: int) -> None:
    """Register the queue buffers on ``host``: ``queue_<view> [size, dim]`` (random unit rows, drawn in
    ``views`` order from the global generator), ``queue_ptr`` (0) and ``queue_ids [size]`` (-1)."""
    for view in views:
        host.register_buffer(f"queue_{view}", F.normalize(torch.randn(size, dim), dim=1))
    host.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
    host.register_buffer("queue_ids", torch.full((size,), -1, dtype=torch.long))


@torch.no_grad()
def enqueue_(host: nn.Module, keys: Mapping[str, torch.Tensor], ids: torch.Tensor) -> None:
    """Write the keys ``{view: [B, E]}`` and their sample ids ``[B]`` of every DDP process at the
    pointer (wrapping around; only the last ``Q`` when more), then advance the pointer."""
    keys = {m: all_gather_cat(k) for m, k in keys.items()}
    ids = all_gather_cat(ids)
    n = ids.shape[0]
    size = host.queue_ids.shape[0]
    if n > size:
        keys, ids, n = {m: k[-size:] for m, k in keys.items()}, ids[-size:], size
    idx = (int(host.queue_ptr) + torch.arange(n, device=host.queue_ptr.device)) % size
    for m, k in keys.items():
        getattr(host, f"queue_{m}")[idx] = k
    host.queue_ids[idx] = ids
    host.queue_ptr.fill_((int(host.queue_ptr) + n) % size)


def own_key_mask(queue_ids: torch.Tensor, sample_ids: torch.Tensor) -> torch.Tensor:
    """``[B, Q]`` bool: queued key ``j`` is an older key of query ``i``'s own sample (ids ``< 0`` match nothing)."""
    return (queue_ids[None, :] == sample_ids[:, None]) & (sample_ids[:, None] >= 0)
