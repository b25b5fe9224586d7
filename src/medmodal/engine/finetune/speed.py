"""Moved to :mod:`medmodal.experiments.cxr.finetune_speed` (``run``, ``format_report``); this re-export goes
in the next release."""

from __future__ import annotations

import warnings

from medmodal.experiments.cxr.finetune_speed import (  # noqa: F401
    LinearProbeSpeedSettings,
    format_report,
    load_report,
    run,
)

warnings.warn("medmodal.engine.finetune.speed moved to medmodal.experiments.cxr.finetune_speed", DeprecationWarning,
              stacklevel=2)

run_linear_probe_speed = run
format_speed_report = format_report
