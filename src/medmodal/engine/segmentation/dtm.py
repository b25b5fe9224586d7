r"""Dynamic Training Monitoring (DTM): per-sequence loss weights and encoder gradient scales.

DMAF-Net's paper describes DTM only in words (track each sequence's distillation gap; slower
sequences get larger loss weights, faster ones get their gradients scaled down). This is
medmodal's documented version, built on PASSION's preference-aware weighting and OGM-GE-style
gradient modulation. Every coefficient is a :class:`DTMConfig` field.

Notation: ``M`` sequences; ``g_m`` the gap reported for sequence ``m`` at a training step (the
RD + PD distillation loss of the samples where ``m`` is present, see
:class:`medmodal.losses.dmafnet_loss.DMAFNetLoss`; NaN = absent from the step's batch).

**Per step** (:meth:`DynamicTrainingMonitor.update`), for every finite ``g_m``::

    D_m <- g_m                                   (first observation)
    D_m <- mu * D_m + (1 - mu) * g_m             (afterwards; mu = ema_momentum)

**Per epoch** (:meth:`DynamicTrainingMonitor.step_epoch`, epoch index ``e`` = 0, 1, ...)::

    r_m   = (D_m^{prev} - D_m) / max(D_m^{prev}, eps)      relative drop of the gap over the epoch
                                                           (0 until two epoch ends were seen)
    Dt_m  = D_m * exp(-gamma * r_m)                        effective gap (gamma = rate_weight):
                                                           a slower-falling gap counts as larger
    mean  = mean over tracked sequences of Dt             (tracked = seen at least once)

  loss weights (PASSION)::

    RP_m   = 1 - Dt_m / mean                               relative preference (> 0: ahead)
    eta_e  = eta * eta_growth ** floor(e / eta_growth_every)
    beta_m <- beta_m - eta_e * RP_m                        (tracked m only)
    beta   <- clamp(beta, beta_min, beta_max), then rescaled to ||beta||_2 = norm_target
              (default sqrt(M), i.e. PASSION's 2 for M = 4); clamp and rescale alternate until
              both hold, and the clamp is applied last, so the bounds always hold (the norm is
              exact unless the bounds make it unreachable).

  gradient scales (OGM-GE style)::

    ratio_m = mean / max(Dt_m, eps)                        > 1: converges faster than average
    k_m     = max(k_min, 1 - tanh(alpha * relu(ratio_m - 1)))

  so a sequence at or behind the average keeps ``k_m = 1`` and one ahead of it is slowed down.
  Untracked sequences keep ``beta_m`` (up to the rescale) and ``k_m = 1``. Nothing changes during
  the first ``warmup_epochs`` epochs or while fewer than two sequences are tracked.

:meth:`DynamicTrainingMonitor.scale_encoder_gradients` multiplies every ``.grad`` of
``encoders[m]`` by ``k_m`` (call after ``backward``, before ``optimizer.step``).

Neither per-step method reads a tensor value on the host: after :meth:`~DynamicTrainingMonitor.to`
moves the state to the training GPU, a step never waits for the GPU on DTM's account (the
state is read, once, in :meth:`~DynamicTrainingMonitor.step_epoch`).

Caveat: adaptive optimisers (Adam/AdamW) divide by a running gradient RMS, so a scale that
stays constant for many steps is largely normalised away (Adam's update is invariant to a
constant gradient scale, up to ``eps``); the modulation acts mainly when scales change. With
SGD (OGM-GE's setting) it acts fully.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from medmodal.errors import ConfigError

__all__ = ["DTMConfig", "DynamicTrainingMonitor", "register_monitor", "build_monitor", "list_monitors",
           "split_monitor_config"]


@dataclass
class DTMConfig:
    """Coefficients of :class:`DynamicTrainingMonitor` (YAML ``dtm:`` section).

    Attributes:
        ema_momentum: ``mu`` of the per-step gap EMA (default 0.99: about the last 100 steps).
        rate_weight: ``gamma``, how much the gap's relative per-epoch drop enters the effective
            gap (default 1.0; 0 = PASSION, gap level only).
        eta: initial step size of the weight update (default 0.01, PASSION).
        eta_growth: factor applied to ``eta`` every ``eta_growth_every`` epochs (default 1.5).
        eta_growth_every: epochs between growth steps (default 100).
        beta_min, beta_max: clamp of the loss weights (default 0.1, 4.0).
        norm_target: L2 norm of the loss weights after each update (default ``None`` =
            ``sqrt(M)``; PASSION's 2 for four sequences).
        grad_alpha: ``alpha`` of the gradient-scale formula (default 0.5).
        grad_min_scale: floor ``k_min`` of the gradient scales (default 0.2).
        warmup_epochs: epochs before weights and scales start changing (default 0).
        update_loss_weights: switch for the loss-weight part (default True).
        scale_gradients: switch for the gradient-scaling part (default True).
        eps: numerical floor (default 1e-8).
    """

    ema_momentum: float = 0.99
    rate_weight: float = 1.0
    eta: float = 0.01
    eta_growth: float = 1.5
    eta_growth_every: int = 100
    beta_min: float = 0.1
    beta_max: float = 4.0
    norm_target: float | None = None
    grad_alpha: float = 0.5
    grad_min_scale: float = 0.2
    warmup_epochs: int = 0
    update_loss_weights: bool = True
    scale_gradients: bool = True
    eps: float = 1e-8

    def __post_init__(self):
        if not 0.0 <= self.ema_momentum < 1.0:
            raise ConfigError(f"ema_momentum must be in [0, 1), got {self.ema_momentum}")
        if not 0.0 < self.beta_min <= self.beta_max:
            raise ConfigError(f"need 0 < beta_min <= beta_max, got {self.beta_min}, {self.beta_max}")
        if not 0.0 <= self.grad_min_scale <= 1.0:
            raise ConfigError(f"grad_min_scale must be in [0, 1], got {self.grad_min_scale}")
        if self.eta_growth_every < 1:
            raise ConfigError(f"eta_growth_every must be >= 1, got {self.eta_growth_every}")


class DynamicTrainingMonitor:
    """Tracks per-sequence distillation gaps; gives loss weights and encoder gradient scales.

    Args:
        num_modalities: ``M``.
        config: :class:`DTMConfig` (default: all defaults).

    State: float64 tensors on :attr:`device` (CPU until :meth:`to`); :meth:`state_dict` holds
    only CPU tensors, ints and floats, so a checkpoint containing it loads with
    ``torch.load(weights_only=True)`` on any machine.
    """

    def __init__(self, num_modalities: int, config: DTMConfig | None = None) -> None:
        if num_modalities < 1:
            raise ValueError(f"num_modalities must be >= 1, got {num_modalities}")
        self.num_modalities = m = int(num_modalities)
        self.config = config or DTMConfig()
        nan = torch.full((m,), math.nan, dtype=torch.float64)
        self.gap_ema = nan.clone()          # D_m
        self.prev_gap = nan.clone()         # D_m at the previous epoch end
        self.gap_rate = torch.zeros(m, dtype=torch.float64)   # r_m
        self.beta = torch.ones(m, dtype=torch.float64)
        self._grad_scales = torch.ones(m, dtype=torch.float64)
        self.counts = torch.zeros(m, dtype=torch.int64)       # steps in which each sequence was seen
        self._host_grad_scales = [1.0] * m  # k_m as Python floats: scaling reads no tensor value
        self.epoch = 0
        self.steps = 0

    _STATE_TENSORS = ("gap_ema", "prev_gap", "gap_rate", "beta", "_grad_scales", "counts")

    @property
    def device(self) -> torch.device:
        return self.gap_ema.device

    def to(self, device: torch.device | str) -> "DynamicTrainingMonitor":
        """Move the state to ``device`` (the training device), in place; returns ``self``.

        Devices without float64 (Apple MPS) keep the state on the CPU.
        """
        device = torch.device(device)
        if device.type == "mps":
            device = torch.device("cpu")
        if device != self.device:
            for name in self._STATE_TENSORS:
                setattr(self, name, getattr(self, name).to(device))
        return self

    # ------------------------------------------------------------------ properties
    @property
    def norm_target(self) -> float:
        t = self.config.norm_target
        return float(t) if t is not None else math.sqrt(self.num_modalities)

    @property
    def eta(self) -> float:
        """Step size used by the next :meth:`step_epoch` (``eta * growth ** floor(epoch / every)``)."""
        c = self.config
        return c.eta * c.eta_growth ** (self.epoch // c.eta_growth_every)

    @property
    def loss_weights(self) -> torch.Tensor:
        """``[M]`` float32 per-sequence loss weights ``beta`` (ones if weighting is switched off)."""
        if not self.config.update_loss_weights:
            return torch.ones(self.num_modalities, device=self.device)
        return self.beta.float()

    @property
    def grad_scales(self) -> torch.Tensor:
        """``[M]`` float32 encoder gradient scales ``k`` (ones if scaling is switched off)."""
        if not self.config.scale_gradients:
            return torch.ones(self.num_modalities, device=self.device)
        return self._grad_scales.float()

    def effective_gaps(self) -> torch.Tensor:
        """``Dt_m = D_m * exp(-rate_weight * r_m)`` (NaN for untracked sequences)."""
        return self.gap_ema * torch.exp(-self.config.rate_weight * self.gap_rate)

    # ---------------------------------------------------------------------- update
    def update(self, gaps: torch.Tensor) -> None:
        """Feed one step's per-sequence gaps ``[M]`` (NaN / inf entries are ignored).

        Element-wise tensor operations only (no boolean indexing, no host read), so on a GPU
        the step is queued, not waited for.
        """
        g = torch.as_tensor(gaps).detach().to(self.device, torch.float64).reshape(-1)
        if g.numel() != self.num_modalities:
            raise ValueError(f"expected {self.num_modalities} gaps, got {g.numel()}")
        ok = torch.isfinite(g)
        mu = self.config.ema_momentum
        blended = mu * self.gap_ema + (1.0 - mu) * g
        self.gap_ema = torch.where(ok, torch.where(torch.isnan(self.gap_ema), g, blended), self.gap_ema)
        self.counts += ok.to(torch.int64)
        self.steps += 1

    def step_epoch(self) -> None:
        """End of an epoch: update rates, loss weights ``beta`` and gradient scales ``k``."""
        c = self.config
        eta = self.eta
        tracked = torch.isfinite(self.gap_ema)
        both = tracked & torch.isfinite(self.prev_gap)
        rate = torch.zeros_like(self.gap_rate)
        rate[both] = (self.prev_gap[both] - self.gap_ema[both]) / self.prev_gap[both].clamp_min(c.eps)
        self.gap_rate = rate
        self.prev_gap = self.gap_ema.clone()
        self.epoch += 1
        if self.epoch <= c.warmup_epochs or int(tracked.sum()) < 2:
            return
        eff = self.effective_gaps()
        mean = eff[tracked].mean()
        if not torch.isfinite(mean) or mean <= c.eps:
            return
        if c.update_loss_weights:
            rp = torch.zeros_like(self.beta)
            rp[tracked] = 1.0 - eff[tracked] / mean
            self.beta = self._clamp_and_normalise(self.beta - eta * rp)
        if c.scale_gradients:
            k = torch.ones_like(self._grad_scales)
            ratio = mean / eff[tracked].clamp_min(c.eps)
            k[tracked] = (1.0 - torch.tanh(c.grad_alpha * torch.relu(ratio - 1.0))).clamp_min(c.grad_min_scale)
            self._grad_scales = k
            self._host_grad_scales = k.tolist()

    def _clamp_and_normalise(self, beta: torch.Tensor) -> torch.Tensor:
        c = self.config
        target = self.norm_target
        for _ in range(50):
            beta = beta.clamp(c.beta_min, c.beta_max)
            beta = beta * (target / beta.norm().clamp_min(c.eps))
            if bool(((beta >= c.beta_min - 1e-12) & (beta <= c.beta_max + 1e-12)).all()):
                break
        return beta.clamp(c.beta_min, c.beta_max)

    @torch.no_grad()
    def scale_encoder_gradients(self, encoders: nn.ModuleList) -> None:
        """Multiply each ``encoders[m]`` parameter's ``.grad`` by ``k_m`` in place.

        Call after ``backward`` and before ``optimizer.step``. Parameters without a gradient
        are skipped; a scale of exactly 1 is a no-op. The scales are host floats kept since the
        last :meth:`step_epoch`, so this reads nothing back from the GPU.
        """
        if len(encoders) != self.num_modalities:
            raise ValueError(f"expected {self.num_modalities} encoders, got {len(encoders)}")
        if not self.config.scale_gradients:
            return
        for enc, k in zip(encoders, self._host_grad_scales):
            grads = [p.grad for p in enc.parameters() if p.grad is not None]
            if k != 1.0 and grads:
                torch._foreach_mul_(grads, k)

    # ---------------------------------------------------------------- persistence
    def state_dict(self) -> dict:
        """CPU tensors / ints / floats only (``torch.load(weights_only=True)`` compatible)."""
        cpu = lambda t: t.to("cpu", copy=True)  # noqa: E731
        return {
            "num_modalities": self.num_modalities,
            "gap_ema": cpu(self.gap_ema),
            "prev_gap": cpu(self.prev_gap),
            "gap_rate": cpu(self.gap_rate),
            "beta": cpu(self.beta),
            "grad_scales": cpu(self._grad_scales),
            "counts": cpu(self.counts),
            "epoch": int(self.epoch),
            "steps": int(self.steps),
        }

    def load_state_dict(self, state: dict) -> None:
        m = int(state.get("num_modalities", self.num_modalities))
        if m != self.num_modalities:
            raise ValueError(f"DTM state is for {m} sequences, this monitor has {self.num_modalities}")
        here = lambda key, dtype=torch.float64: torch.as_tensor(state[key]).to(  # noqa: E731
            self.device, dtype, copy=True).reshape(m)
        self.gap_ema, self.prev_gap, self.gap_rate = here("gap_ema"), here("prev_gap"), here("gap_rate")
        self.beta, self._grad_scales = here("beta"), here("grad_scales")
        self._host_grad_scales = self._grad_scales.tolist()
        self.counts = here("counts", torch.int64)
        self.epoch, self.steps = int(state["epoch"]), int(state["steps"])

    def summary(self) -> dict[str, list[float]]:
        """Current values as plain lists (for logging)."""
        return {
            "gap_ema": self.gap_ema.tolist(),
            "gap_rate": self.gap_rate.tolist(),
            "loss_weights": self.loss_weights.tolist(),
            "grad_scales": self.grad_scales.tolist(),
        }


# ------------------------------------------------------------------ training monitors by name
#: ``name -> factory(num_modalities, **options)``; a monitor offers ``loss_weights [M]``,
#: ``update(gaps [M])``, ``scale_encoder_gradients(encoders)``, ``step_epoch()``, ``to(device)``,
#: ``state_dict()`` / ``load_state_dict()`` and ``loss_weights`` / ``grad_scales`` for logging
_MONITORS: dict[str, Callable[..., Any]] = {}


def register_monitor(name: str) -> Callable:
    """Decorator registering a training-monitor factory ``factory(num_modalities, **options)`` under ``name``."""
    key = name.strip().lower()

    def decorator(factory):
        _MONITORS[key] = factory
        return factory

    return decorator


def list_monitors() -> list[str]:
    """Sorted names of the registered training monitors."""
    return sorted(_MONITORS)


def split_monitor_config(section: Mapping[str, Any] | None, default: str = "dtm") -> tuple[str, bool | None, dict]:
    """``(name, enabled, options)`` of a config's ``dtm`` section: ``name`` (``default`` when absent) and
    ``enabled`` (``None`` when absent) popped, the other keys the monitor's options."""
    options = dict(section or {})
    name = options.pop("name", None) or default
    enabled = options.pop("enabled", None)
    return str(name), (None if enabled is None else bool(enabled)), options


def build_monitor(name: str, num_modalities: int, **options) -> Any:
    """Build the training monitor registered as ``name`` for ``num_modalities`` sequences.

    Raises:
        ConfigError: unknown ``name`` (the message lists the known ones).
    """
    key = str(name).strip().lower()
    if key not in _MONITORS:
        raise ConfigError(f"unknown dtm.name {name!r}; known monitors: {', '.join(list_monitors())}")
    return _MONITORS[key](num_modalities, **options)


@register_monitor("dtm")
def _dtm(num_modalities: int, **options) -> DynamicTrainingMonitor:
    """DTM from the fields of :class:`DTMConfig`."""
    return DynamicTrainingMonitor(num_modalities, DTMConfig(**options))
