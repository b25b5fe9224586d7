"""Moved to :mod:`medmodal.experiments.cxr.benchmark` (``run``; ``CXRMethod`` is the shared
:class:`~medmodal.experiments.suite.Method`, ``init=None`` meaning pre-trained); this re-export goes in
the next release."""

from __future__ import annotations

import warnings

from medmodal.experiments.cxr.benchmark import (  # noqa: F401
    CXR_METHODS,
    CXR_PROFILES,
    DATASET_TITLES,
    DOWNSTREAM_TASKS,
    TASK_METRICS,
    CXRProfile,
    encoder_source,
    finetune_run,
    pretrain_method,
    pretrain_quality,
    run,
    task_table,
    with_overrides,
    write_cxr_report,
)
from medmodal.experiments.suite import Method as CXRMethod  # noqa: F401

warnings.warn("medmodal.evaluation.cxr_benchmark moved to medmodal.experiments.cxr.benchmark", DeprecationWarning,
              stacklevel=2)

run_cxr_benchmark = run
