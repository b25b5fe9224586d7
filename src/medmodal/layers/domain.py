"""Domain-generalisation / domain-adaptation layers shared by every family.

* :func:`grad_reverse`: gradient reversal (Ganin & Lempitsky, ICML 2015, "Unsupervised domain
  adaptation by backpropagation"): identity forward, ``-lambda * grad`` backward.
* :class:`FeatureStatisticsShift` (alias :data:`DSU`): domain shifts with uncertainty (Li et al.,
  ICLR 2022, "Uncertainty modeling for out-of-distribution generalization").

Moved from ``models/endoscopy/blocks.py`` (MICS), which re-exports them.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["grad_reverse", "FeatureStatisticsShift", "DSU"]


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Identity forward; the backward pass multiplies the gradient by ``-lam`` (Ganin & Lempitsky 2015)."""
    return _GradReverse.apply(x, float(lam))


class FeatureStatisticsShift(nn.Module):
    """DSU feature-statistics shift, training only.

    For features ``x`` of each sample, statistics over the axes ``dims`` (default ``(1,)``: the
    token axis of tokens ``x [B, N, D]``; ``(2, 3)`` gives DSU's per-channel statistics over
    space of CNN features ``[B, C, H, W]``): ``mu = mean x``, ``sigma = sqrt(var x + eps)``.
    Their uncertainty is estimated over the batch: ``Sigma_mu^2 = var_B mu``,
    ``Sigma_sigma^2 = var_B sigma``. New statistics are drawn ``beta = mu + e1 * Sigma_mu``,
    ``gamma = sigma + e2 * Sigma_sigma`` (``e ~ N(0, 1)``) and ``x' = gamma * (x - mu) / sigma + beta``.
    Each sample is shifted with probability ``p`` (DSU: 0.5). Source: Li et al., ICLR 2022, eq. 1-6
    (applied there to CNN channel statistics over space; MICS applies it over the token axis of
    the fused features, its "distribution shift" of fused features, whose exact formula the
    authors did not publish). Identity in eval mode or for a batch of one.

    Raises:
        ValueError: ``p`` outside ``[0, 1]``.
    """

    def __init__(self, p: float = 0.5, eps: float = 1e-6, dims: tuple[int, ...] = (1,)):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"shift probability must be in [0, 1], got {p}")
        self.p, self.eps = float(p), float(eps)
        self.dims = tuple(int(d) for d in dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.shape[0] < 2:
            return x
        dims = self.dims[0] if len(self.dims) == 1 else self.dims
        mu = x.mean(dims, keepdim=True)
        sigma = (x.var(dims, keepdim=True) + self.eps).sqrt()
        sig_mu = (mu.var(0, keepdim=True) + self.eps).sqrt()
        sig_sigma = (sigma.var(0, keepdim=True) + self.eps).sqrt()
        beta = mu + torch.randn_like(mu) * sig_mu
        gamma = sigma + torch.randn_like(sigma) * sig_sigma
        shifted = (x - mu) / sigma * gamma + beta
        apply = (torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device) < self.p).to(x.dtype)
        return apply * shifted + (1 - apply) * x


#: Short name (the paper's): domain shifts with uncertainty.
DSU = FeatureStatisticsShift
