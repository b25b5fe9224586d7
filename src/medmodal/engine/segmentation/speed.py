"""Moved to :mod:`medmodal.experiments.seg.speed` (``run``, ``format_report``); this re-export goes in the
next release."""

from __future__ import annotations

import warnings

from medmodal.experiments.seg.speed import SpeedSettings, format_report, run  # noqa: F401

warnings.warn("medmodal.engine.segmentation.speed moved to medmodal.experiments.seg.speed", DeprecationWarning,
              stacklevel=2)

run_speed_benchmark = run
