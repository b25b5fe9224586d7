"""Moved to :mod:`medmodal.experiments.seg.benchmark` (``run``, ``SegProfile``); this re-export goes in the
next release."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Sequence

from medmodal.experiments.seg.benchmark import (  # noqa: F401
    METHODS,
    PROFILES,
    PROTOCOLS,
    Method,
    SegProfile,
    comparison_table,
    default_real_case,
    dice_bars,
    methods_by_subset_table,
    model_kwargs,
    run,
    run_config,
    subset_results,
    train_and_evaluate,
    write_benchmark_report,
)

warnings.warn("medmodal.evaluation.benchmark moved to medmodal.experiments.seg.benchmark", DeprecationWarning,
              stacklevel=2)

Profile = SegProfile


def run_benchmark(out: str | Path, profile: str | SegProfile = "cpu-quick", methods: Sequence[str] | None = None,
                  protocols: Sequence[str] = PROTOCOLS, seeds: Sequence[int] | None = None, epochs: int | None = None,
                  real: bool | None = None, real_cases: Sequence[tuple[Path, str | None]] = (),
                  on_run: Callable[[dict], None] | None = None, eval_protocol: str | None = None) -> Path:
    """The old argument order of :func:`medmodal.experiments.seg.benchmark.run`."""
    return run(out, profile, methods, seeds, protocols=protocols, epochs=epochs, real=real, real_cases=real_cases,
               on_run=on_run, eval_protocol=eval_protocol)
