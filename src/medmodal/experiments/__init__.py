"""Experiments: the benchmark, speed and demo orchestration of each family, above the engine.

One sub-package per family key (:mod:`.seg`, :mod:`.cxr`, :mod:`.endoscopy`), each with
``benchmark.py`` (a :class:`~medmodal.experiments.suite.BenchmarkSuite`: methods, profiles and
``run(out, profile, methods, seeds, ...)``), ``speed.py`` where the family has one (a
:class:`~medmodal.experiments.suite.SpeedSuite`: settings dataclass, ``run``, ``format_report``) and
``demo.py``. Layer order: this package imports the engine, evaluation and everything below; only
the command line imports it.
"""
