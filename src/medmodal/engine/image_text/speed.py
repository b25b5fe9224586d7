"""Moved to :mod:`medmodal.experiments.cxr.speed` (``run``, ``format_report``); this re-export goes in the
next release."""

from __future__ import annotations

import warnings

from medmodal.experiments.cxr.speed import (  # noqa: F401
    FALLBACK_REPORTS,
    CMCGNSSpeedSettings,
    format_report,
    load_report_sentences,
    run,
)

warnings.warn("medmodal.engine.image_text.speed moved to medmodal.experiments.cxr.speed", DeprecationWarning,
              stacklevel=2)

run_cmcgns_speed_benchmark = run
format_cmcgns_report = format_report
