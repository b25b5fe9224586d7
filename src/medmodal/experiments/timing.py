"""The one timing helper of the speed suites: device synchronisation, timed repeats, interleaved timing."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

__all__ = ["sync", "time_interleaved", "timed"]


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device, repeats: int, warmup: int) -> float:
    """Mean wall seconds of ``fn`` over ``repeats`` calls after ``warmup`` untimed ones (synchronised)."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / max(repeats, 1)


def time_interleaved(steps: dict[str, Callable[[], None]], device: torch.device, repeats: int,
                     warmup: int) -> dict[str, dict[str, float]]:
    """Warm every step up, then time them alternately (``repeats`` rounds) so that a drifting
    machine load affects all alike; per step the median wall time and median process CPU time
    (all threads; less sensitive to other processes on a shared machine)."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    wall: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(max(repeats, 1)):
        for name, step in steps.items():
            sync(device)
            w0, c0 = time.perf_counter(), time.process_time()
            step()
            sync(device)
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    return {name: {"seconds_per_step": statistics.median(wall[name]),
                   "cpu_seconds_per_step": statistics.median(cpu[name]), "wall_seconds_all": wall[name]}
            for name in steps}
