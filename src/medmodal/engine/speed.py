"""Speed benchmark (``medmodal bench-speed``): reference-style loop vs medmodal's fast path.

Measured in one run on one machine, same network and crop:

* training steps/s and peak memory: (a) fp32 eager, contiguous tensors (what RFNet / mmFormer /
  PASSION do) vs (b) bf16 autocast + ``channels_last_3d`` (+ ``torch.compile`` if asked) on CUDA;
  on CPU (b) is fp32 eager again, so the ratio is ~1 and only the evaluation speed-up shows;
* 15-subset evaluation of one case: 15 separate sliding-window passes vs shared encoding;
* full-case inference time (all sequences) on a ``case_size`` volume;
* achieved TFLOP/s of the fast training step (FLOPs counted by ``torch.utils.flop_counter``).

Prints a table and writes JSON.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from medmodal.data.missing import all_subsets
from medmodal.engine.inference import predict_probabilities, predict_probabilities_all_subsets
from medmodal.models import create_model


@dataclass
class SpeedSettings:
    model: str = "dmafnet"
    model_kwargs: dict = field(default_factory=dict)
    crop: int = 80
    batch_size: int = 1
    case_size: tuple[int, int, int] = (160, 192, 144)  # a typical BraTS brain box
    steps: int = 10
    warmup: int = 3
    compile: bool = False
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    num_modalities: int = 4
    num_classes: int = 4
    overlap: float = 0.5
    sw_batch_size: int = 2
    peak_tflops: float | None = None  # device bf16 dense peak, for the utilisation column


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], None], device: torch.device, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / max(repeats, 1)


def _peak_memory_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _train_step_fn(model, batch, fast: bool, device: torch.device):
    images, mask, target = batch
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    use_bf16 = fast and device.type == "cuda"
    if use_bf16 and images.ndim == 5:
        model.to(memory_format=torch.channels_last_3d)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            out = model.forward_train(images, mask) if hasattr(model, "forward_train") else {"logits": model(images, mask)}
            loss = torch.nn.functional.cross_entropy(out["logits"].float(), target)
        loss.backward()
        opt.step()

    return step


def _count_flops(step: Callable[[], None]) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def benchmark_training(s: SpeedSettings, fast: bool) -> dict:
    device = torch.device(s.device)
    torch.manual_seed(0)
    model = create_model(s.model, modalities=[f"m{i}" for i in range(s.num_modalities)], num_classes=s.num_classes,
                         **s.model_kwargs).to(device).train()
    if fast and s.compile:
        model = torch.compile(model)
    shape = (s.batch_size, s.num_modalities, s.crop, s.crop, s.crop)
    images = torch.randn(shape, device=device)
    mask = torch.ones(s.batch_size, s.num_modalities, dtype=torch.bool, device=device)
    mask[:, 0] = False  # a realistic incomplete sample
    target = torch.randint(0, s.num_classes, (s.batch_size, s.crop, s.crop, s.crop), device=device)
    step = _train_step_fn(model, (images, mask, target), fast, device)
    _reset_peak(device)
    seconds = _timed(step, device, s.steps, s.warmup)
    flops = _count_flops(step)
    return {"seconds_per_step": seconds, "steps_per_s": 1 / seconds, "peak_memory_gb": _peak_memory_gb(device),
            "tflops_per_step": flops / 1e12, "achieved_tflops": flops / seconds / 1e12}


def benchmark_evaluation(s: SpeedSettings) -> dict:
    device = torch.device(s.device)
    torch.manual_seed(0)
    model = create_model(s.model, modalities=[f"m{i}" for i in range(s.num_modalities)], num_classes=s.num_classes,
                         **s.model_kwargs).to(device).eval()
    image = torch.randn(1, s.num_modalities, *s.case_size, device=device)
    subsets = torch.tensor(all_subsets(s.num_modalities), device=device)
    roi = (s.crop,) * 3
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    results = {}
    with torch.inference_mode(), autocast:
        naive = lambda: [predict_probabilities(model, image, m, roi, s.overlap, s.sw_batch_size) for m in subsets]  # noqa: E731
        shared = lambda: predict_probabilities_all_subsets(model, image, subsets, roi, s.overlap, s.sw_batch_size)  # noqa: E731
        full = lambda: predict_probabilities(model, image, subsets[-1], roi, s.overlap, s.sw_batch_size)  # noqa: E731
        for name, fn in (("subsets_naive", naive), ("subsets_shared", shared), ("full_case", full)):
            _reset_peak(device)
            results[f"{name}_seconds"] = _timed(fn, device, repeats=1, warmup=1)
            results[f"{name}_peak_memory_gb"] = _peak_memory_gb(device)
    return results


def run_speed_benchmark(s: SpeedSettings, out_json: str | Path | None = None) -> dict:
    device = torch.device(s.device)
    report = {
        "settings": asdict(s),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "train_reference_fp32": benchmark_training(s, fast=False),
        "train_fast": benchmark_training(s, fast=True),
        "evaluation": benchmark_evaluation(s),
    }
    ref, fast, ev = report["train_reference_fp32"], report["train_fast"], report["evaluation"]
    report["ratios"] = {
        "train_speedup": fast["steps_per_s"] / ref["steps_per_s"],
        "subset_eval_speedup": ev["subsets_naive_seconds"] / ev["subsets_shared_seconds"],
    }
    if s.peak_tflops:
        report["ratios"]["fast_train_utilisation"] = fast["achieved_tflops"] / s.peak_tflops
    if out_json:
        from medmodal.io import atomic_write_json

        atomic_write_json(out_json, report)
    return report


def format_report(report: dict) -> str:
    ref, fast, ev, r = (report["train_reference_fp32"], report["train_fast"], report["evaluation"], report["ratios"])
    mem = lambda v: "-" if v is None else f"{v:.2f} GB"  # noqa: E731
    lines = [
        f"device: {report['device']}, torch {report['torch']}, crop {report['settings']['crop']}^3, "
        f"case {'x'.join(map(str, report['settings']['case_size']))}",
        "| measurement | reference (fp32 eager) | medmodal fast path | ratio |",
        "|---|---|---|---|",
        f"| train steps/s | {ref['steps_per_s']:.2f} | {fast['steps_per_s']:.2f} | {r['train_speedup']:.2f}x |",
        f"| train peak memory | {mem(ref['peak_memory_gb'])} | {mem(fast['peak_memory_gb'])} | |",
        f"| train achieved TFLOP/s | {ref['achieved_tflops']:.2f} | {fast['achieved_tflops']:.2f} | |",
        f"| 15-subset evaluation of one case (s) | {ev['subsets_naive_seconds']:.2f} | "
        f"{ev['subsets_shared_seconds']:.2f} | {r['subset_eval_speedup']:.2f}x |",
        f"| full-case inference, all sequences (s) | | {ev['full_case_seconds']:.2f} | |",
    ]
    if "fast_train_utilisation" in r:
        lines.append(f"| share of bf16 peak (fast train) | | {100 * r['fast_train_utilisation']:.1f} % | |")
    return "\n".join(lines)
