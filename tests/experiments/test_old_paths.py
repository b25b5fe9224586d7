"""The old import paths of the moved benchmark / speed modules re-export the new ones (one release)."""

import importlib

import pytest

from medmodal.experiments.cxr import benchmark as cxr_benchmark
from medmodal.experiments.cxr import finetune_speed, speed as cxr_speed
from medmodal.experiments.endoscopy import benchmark as endoscopy_benchmark
from medmodal.experiments.seg import benchmark as seg_benchmark, speed as seg_speed
from medmodal.experiments.suite import Method


@pytest.mark.parametrize("old, names", [
    ("medmodal.evaluation.benchmark", {"run_config": seg_benchmark.run_config, "Profile": seg_benchmark.SegProfile,
                                       "METHODS": seg_benchmark.METHODS}),
    ("medmodal.evaluation.cxr_benchmark", {"run_cxr_benchmark": cxr_benchmark.run, "CXRMethod": Method,
                                           "CXR_PROFILES": cxr_benchmark.CXR_PROFILES}),
    ("medmodal.evaluation.endoscopy", {"run_endoscopy_benchmark": endoscopy_benchmark.run,
                                       "ENDOSCOPY_METHODS": endoscopy_benchmark.ENDOSCOPY_METHODS}),
    ("medmodal.engine.segmentation.speed", {"run_speed_benchmark": seg_speed.run,
                                            "SpeedSettings": seg_speed.SpeedSettings}),
    ("medmodal.engine.image_text.speed", {"run_cmcgns_speed_benchmark": cxr_speed.run,
                                          "format_cmcgns_report": cxr_speed.format_report}),
    ("medmodal.engine.finetune.speed", {"run_linear_probe_speed": finetune_speed.run,
                                        "format_speed_report": finetune_speed.format_report}),
])
def test_old_module_re_exports_with_a_deprecation_warning(old, names):
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match="moved to"):
        importlib.reload(module)
    for name, obj in names.items():
        assert getattr(module, name) is obj


def test_old_benchmark_argument_order(monkeypatch):
    """``run_benchmark(out, profile, methods, protocols, seeds)``: the old positional order."""
    old = importlib.import_module("medmodal.evaluation.benchmark")
    seen = {}
    monkeypatch.setattr(old, "run", lambda *a, **k: seen.update(args=a, kwargs=k))
    old.run_benchmark("out", "cpu-quick", ["dmafnet"], ["imbalanced"], [1])
    assert seen["args"] == ("out", "cpu-quick", ["dmafnet"], [1]) and seen["kwargs"]["protocols"] == ["imbalanced"]


def test_confusion_png_lives_in_evaluation_plots():
    from medmodal.evaluation.endoscopy import confusion_png
    from medmodal.evaluation.plots import confusion_png as moved

    assert confusion_png is moved
