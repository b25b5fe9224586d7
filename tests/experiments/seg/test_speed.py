"""The speed benchmark runs on CPU (tiny) and writes its JSON; speeds themselves are not asserted."""

import json

import torch

from medmodal.experiments.seg.speed import SpeedSettings, format_report, run


def test_speed_benchmark_runs_on_cpu(tmp_path):
    settings = SpeedSettings(model_kwargs={"widths": [4, 8, 16], "token_grid": 2, "num_heads": 2, "depth": 1},
                             crop=16, case_size=(24, 24, 16), steps=1, warmup=0, device="cpu")
    report = run(settings, tmp_path / "speed.json")
    saved = json.loads((tmp_path / "speed.json").read_text())
    assert saved["train_fast"]["steps_per_s"] > 0 and saved["evaluation"]["subsets_shared_seconds"] > 0
    assert saved["train_fast"]["tflops_per_step"] > 0
    evaluation = saved["evaluation"]
    assert evaluation["shared_vs_naive_max_abs_prob_diff"] < 1e-5  # shared encoding changes nothing
    assert evaluation["shared_vs_reference_label_disagreement"] == 0.0  # CPU fast path is fp32 too
    table = format_report(report)
    assert "15-subset evaluation" in table and "train steps/s" in table


def test_speed_benchmark_compiled_fast_path_on_cpu(tmp_path, monkeypatch):
    """--compile: the fast training step goes through compile_training_step (fullgraph); dynamo's
    eager backend keeps the test fast (inductor itself: tests/models/segmentation/test_pairs.py, slow)."""
    calls, real_compile = [], torch.compile

    def eager_backend_compile(fn, **kwargs):
        calls.append(kwargs)
        return real_compile(fn, backend="eager", fullgraph=kwargs["fullgraph"])

    monkeypatch.setattr("medmodal.engine.segmentation.module.torch.compile", eager_backend_compile)
    torch._dynamo.reset()
    settings = SpeedSettings(model_kwargs={"widths": [4, 8, 16], "token_grid": 2, "num_heads": 2, "depth": 1},
                             crop=16, case_size=(16, 16, 16), steps=1, warmup=1, device="cpu", compile=True,
                             compile_mode="max-autotune-no-cudagraphs", batch_size=2, evaluate=False)
    report = run(settings)
    assert "evaluation" not in report and set(report["ratios"]) == {"train_speedup"}
    assert calls == [{"fullgraph": True, "mode": "max-autotune-no-cudagraphs"}]
    assert report["train_fast"]["steps_per_s"] > 0
    # FLOPs are counted on the eager step: the same useful work for both loops
    assert report["train_fast"]["tflops_per_step"] == report["train_reference_fp32"]["tflops_per_step"]
    assert "torch.compile fullgraph (max-autotune-no-cudagraphs)" in format_report(report)
