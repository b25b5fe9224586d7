"""Moved: ``confusion_png`` to :mod:`medmodal.evaluation.plots`, the endoscopy benchmark to
:mod:`medmodal.experiments.endoscopy.benchmark` (``run``; ``ENDOSCOPY_METHODS`` values are now
:class:`~medmodal.experiments.suite.Method`: ``.pretrain``, ``.overrides``); this re-export goes in the
next release."""

from __future__ import annotations

import warnings

from medmodal.evaluation.plots import confusion_png  # noqa: F401
from medmodal.experiments.endoscopy.benchmark import (  # noqa: F401
    ABLATIONS,
    ENDOSCOPY_METHODS,
    ENDOSCOPY_PROFILES,
    LINEAR_PROBE,
    PRETRAIN_VARIANTS,
    EndoscopyProfile,
    run,
)

warnings.warn("medmodal.evaluation.endoscopy moved to medmodal.evaluation.plots (confusion_png) and "
              "medmodal.experiments.endoscopy.benchmark", DeprecationWarning, stacklevel=2)

run_endoscopy_benchmark = run
