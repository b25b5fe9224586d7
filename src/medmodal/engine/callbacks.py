"""Lightning callbacks of the training engine."""

from __future__ import annotations

import time

import torch
from lightning.pytorch.callbacks import Callback, RichProgressBar

__all__ = ["RichProgressBarEveryN", "TrainingSpeedMonitor"]


class RichProgressBarEveryN(RichProgressBar):
    """Rich progress bar that reads the logged metrics every ``metrics_every_n_steps`` batches.

    Lightning's bar turns every ``prog_bar`` metric into a Python float after each training
    batch, and on a GPU that read waits until the step has finished: the next step cannot be
    queued while the current one runs. Here the batch counter still moves every batch, but the
    shown metrics (the training loss) are refreshed every ``n`` batches and at epoch ends.

    Args:
        metrics_every_n_steps: batches between metric reads (1 = Lightning's behaviour).
        **kwargs: passed to :class:`lightning.pytorch.callbacks.RichProgressBar`.
    """

    def __init__(self, metrics_every_n_steps: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        if metrics_every_n_steps < 1:
            raise ValueError(f"metrics_every_n_steps must be >= 1, got {metrics_every_n_steps}")
        self.metrics_every_n_steps = int(metrics_every_n_steps)
        self._shown: dict | None = None
        self._reuse_shown = False

    def get_metrics(self, trainer, pl_module) -> dict:
        if not self._reuse_shown or self._shown is None:
            self._shown = super().get_metrics(trainer, pl_module)
        return self._shown

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._reuse_shown = (batch_idx + 1) % self.metrics_every_n_steps != 0
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._reuse_shown = False


class TrainingSpeedMonitor(Callback):
    """Logs ``train/epoch_seconds`` and ``train/steps_per_s`` at the end of every training epoch.

    The clock runs from the epoch's first batch to its end (validation excluded); on CUDA the
    device is synchronised once at the end so queued work is counted. The first epoch of a
    ``trainer.compile`` run includes the compilation.
    """

    def __init__(self) -> None:
        self._start: float | None = None
        self._first_step = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start, self._first_step = time.perf_counter(), trainer.global_step

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._start is None:
            return
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        seconds = time.perf_counter() - self._start
        steps = trainer.global_step - self._first_step
        # under DDP the epoch lasts as long as its slowest process: max time, min speed
        pl_module.log("train/epoch_seconds", seconds, sync_dist=True, reduce_fx="max")
        pl_module.log("train/steps_per_s", steps / max(seconds, 1e-9), sync_dist=True, reduce_fx="min")
