"""Process ranks and collectives shared by every layer (Lightning DDP; plain ``torch.distributed``).

Lightning's launchers start one process per device; every process runs the same command. Only
the global rank 0 prints closing lines and writes run files (config, bundle, reports): the others
return quietly. The rank is known before the ``Trainer`` exists (Lightning reads it from the
launcher's environment: ``RANK`` / ``LOCAL_RANK`` / ``SLURM_PROCID`` ...).
"""

from __future__ import annotations

import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only

__all__ = ["global_rank", "is_global_zero", "is_distributed", "all_gather_no_grad"]


def global_rank() -> int:
    """Global rank of this process (0 when not distributed)."""
    return int(getattr(rank_zero_only, "rank", 0) or 0)


def is_global_zero() -> bool:
    """True in the process that prints and writes (global rank 0)."""
    return global_rank() == 0


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group is initialised."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def all_gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """``[world, *tensor.shape]``: ``tensor`` from every process, without autograd (one collective).

    Works on gloo (CPU) and NCCL: the output is gathered flat (``world * numel``), which both
    back-ends accept, then viewed. Uses ``all_gather_single`` (torch >= 2.14) or its older name
    ``all_gather_into_tensor``. Not distributed: ``tensor[None]``.
    """
    tensor = tensor.detach().contiguous()
    if not is_distributed():
        return tensor[None]
    world = torch.distributed.get_world_size()
    out = tensor.new_empty(world * tensor.numel())
    gather = getattr(torch.distributed, "all_gather_single", None) or torch.distributed.all_gather_into_tensor
    gather(out, tensor)
    return out.view(world, *tensor.shape)
