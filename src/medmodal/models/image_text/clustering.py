"""Online spherical k-means for cluster-guided negative sampling (CM-CGNS, after ClusterNS).

Source: CM-CGNS (Lan et al., arXiv:2506.11674), ``cgns/models/cgns/utils/Kmeans_Cluster.py`` of
github.com/violet-42/CM-CGNS, itself taken from ClusterNS (Deng et al., Findings of ACL 2023,
github.com/djz233/ClusterNS) with ClusterNS's defaults: ``k=128``, momentum ``lr=1e-3``.

What it does, step by step (one step per training batch, no Lloyd iterations):

* **initialisation** (:meth:`OnlineKMeans.initialize`): greedy farthest-point seeding on the
  points of one batch: a random first point, then repeatedly the point with the *lowest* cosine
  to the *previously chosen* centroid (only the last one, as released), never a point chosen
  before. Needs at least ``K`` points.
* **assignment** (:meth:`assign`): each point goes to the centroid of highest cosine.
* **momentum update** (:meth:`update`): ``c_k <- lr * sum(points assigned to k) + (1 - lr) * c_k``
  for every non-empty cluster; empty clusters keep their centroid. It is a *sum*, not a mean, as
  released (cosine only sees the direction).
* **hard negative** (:meth:`hard_negatives`): the centroid of ``rank``-th highest cosine
  (``rank=2``: the second-nearest centroid).
* **false negatives** (:meth:`same_cluster_mask`): pairs of points assigned to the same centroid.

The state lives in registered buffers (``centroids`` [K, D] float, ``initialized`` 0/1 long scalar,
``counts`` [K] long: points assigned so far, ``num_updates`` long scalar), so it is saved with the
model's ``state_dict`` and a resume continues bit-identically. The released code kept the
centroids in an ``nn.Parameter`` re-created at initialisation and the ``initialized`` flag in a
plain attribute that a checkpoint does not hold (fixed here).

Distributed training: the k-means runs per process on that process's points (as released). Under
DDP with its default ``broadcast_buffers=True`` the buffers of rank 0 are copied to every rank
before each forward, so all ranks use (and a rank-0 checkpoint holds) rank 0's centroids; with
``broadcast_buffers=False`` every rank keeps its own and a resume restores rank 0's on all ranks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OnlineKMeans"]


class OnlineKMeans(nn.Module):
    """Online momentum k-means on the unit sphere (cosine similarity).

    Args:
        num_clusters: ``K`` (released default 128).
        dim: point dimension ``D`` (released: 768).
        momentum_lr: weight of the new batch sum in the momentum update (released 1e-3).

    Raises:
        ValueError: ``num_clusters < 2`` (a second-nearest centroid must exist), ``dim < 1`` or
            ``momentum_lr`` outside ``(0, 1]``.
    """

    centroids: torch.Tensor
    initialized: torch.Tensor
    counts: torch.Tensor
    num_updates: torch.Tensor

    def __init__(self, num_clusters: int = 128, dim: int = 768, momentum_lr: float = 1e-3):
        super().__init__()
        if num_clusters < 2:
            raise ValueError(f"num_clusters must be >= 2 (the hard negative is the 2nd-nearest), got {num_clusters}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if not 0.0 < momentum_lr <= 1.0:
            raise ValueError(f"momentum_lr must be in (0, 1], got {momentum_lr}")
        self.num_clusters = int(num_clusters)
        self.dim = int(dim)
        self.momentum_lr = float(momentum_lr)
        self.register_buffer("centroids", torch.zeros(self.num_clusters, self.dim))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.long))
        self.register_buffer("counts", torch.zeros(self.num_clusters, dtype=torch.long))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return f"num_clusters={self.num_clusters}, dim={self.dim}, momentum_lr={self.momentum_lr}"

    @property
    def is_initialized(self) -> bool:
        """Whether the centroids have been seeded (reads the checkpointed buffer)."""
        return bool(self.initialized.item())

    def cosine_to_centroids(self, points: torch.Tensor) -> torch.Tensor:
        """Cosine similarity ``[N, K]`` of ``points [N, D]`` to the centroids (float32)."""
        return F.normalize(points.float(), dim=-1) @ F.normalize(self.centroids, dim=-1).t()

    @torch.no_grad()
    def initialize(self, points: torch.Tensor) -> None:
        """Farthest-point seeding from ``points [N, D]`` (detached); the first index comes from
        the global torch RNG (``torch.randint`` on the CPU generator, so it is device-independent).

        Raises:
            ValueError: fewer points than clusters (``N < K``) or a wrong point dimension.
        """
        points = self._check(points).detach().float()
        n = points.shape[0]
        if n < self.num_clusters:
            raise ValueError(f"k-means initialisation needs at least K={self.num_clusters} points, got {n}")
        unit = F.normalize(points, dim=-1)
        cosine = unit @ unit.t()
        chosen = torch.empty(self.num_clusters, dtype=torch.long, device=points.device)
        last = torch.randint(n, (1,)).to(points.device).squeeze(0)
        chosen[0] = last
        # sequential over K (greedy seeding, once per run), never over samples
        for i in range(1, self.num_clusters):
            cosine[:, last] = float("inf")  # a chosen point is never chosen again
            last = torch.argmin(cosine[last])
            chosen[i] = last
        self.centroids.copy_(points[chosen])
        self.counts.zero_()
        self.num_updates.zero_()
        self.initialized.fill_(1)

    def assign(self, points: torch.Tensor) -> torch.Tensor:
        """Index ``[N]`` (long) of the nearest centroid (highest cosine) of each point."""
        return self.cosine_to_centroids(self._check(points)).argmax(dim=-1)

    @torch.no_grad()
    def update(self, points: torch.Tensor) -> None:
        """One momentum step with ``points [N, D]`` (detached): see the module docstring."""
        points = self._check(points).detach().float()
        index = self.assign(points)
        one_hot = F.one_hot(index, self.num_clusters).to(points.dtype)  # [N, K]
        sums = one_hot.t() @ points  # [K, D]
        counts = torch.bincount(index, minlength=self.num_clusters)
        moved = self.momentum_lr * sums + (1.0 - self.momentum_lr) * self.centroids
        self.centroids.copy_(torch.where((counts > 0)[:, None], moved, self.centroids))
        self.counts.add_(counts)
        self.num_updates.add_(1)

    @torch.no_grad()
    def hard_negatives(self, points: torch.Tensor, rank: int = 2) -> torch.Tensor:
        """The centroid of ``rank``-th highest cosine for each point: ``[N, D]``, detached.

        Raises:
            ValueError: ``rank`` outside ``[1, K]``.
        """
        if not 1 <= rank <= self.num_clusters:
            raise ValueError(f"hard-negative rank must be in [1, {self.num_clusters}], got {rank}")
        index = self.cosine_to_centroids(self._check(points)).topk(rank, dim=-1).indices[:, rank - 1]
        return self.centroids[index].detach()

    @torch.no_grad()
    def same_cluster_mask(self, points: torch.Tensor) -> torch.Tensor:
        """``[N, N]`` bool: ``True`` where points ``i != j`` share their nearest centroid."""
        index = self.assign(points)
        mask = index[:, None] == index[None, :]
        mask.fill_diagonal_(False)
        return mask

    def _check(self, points: torch.Tensor) -> torch.Tensor:
        if points.ndim != 2 or points.shape[-1] != self.dim:
            raise ValueError(f"k-means points must be [N, {self.dim}], got {tuple(points.shape)}")
        return points
