"""Segmentation speed benchmark (``medmodal seg speed``; old spelling ``bench-speed``): reference-style loop
vs medmodal's fast path.

Measured in one run on one machine, same network and crop:

* training steps/s and peak memory: (a) fp32 eager, contiguous tensors (what RFNet / mmFormer /
  PASSION do) vs (b) bf16 autocast + ``channels_last_3d`` on CUDA, plus, if asked,
  ``torch.compile`` of forward + loss as one graph (``compile_mode``; ``reduce-overhead`` replays
  it as a CUDA graph); on CPU (b) is fp32 (compiled or eager), so without ``compile`` the ratio
  is ~1 and only the evaluation speed-up shows;
* 15-subset evaluation of one case: 15 separate sliding-window passes vs shared encoding;
* full-case inference time (all sequences) on a ``case_size`` volume;
* achieved TFLOP/s of the fast training step (FLOPs counted by ``torch.utils.flop_counter``).

Prints a table and writes JSON.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from medmodal.data.missing import all_subsets
from medmodal.engine.segmentation.inference import predict_probabilities, predict_probabilities_all_subsets
from medmodal.engine.segmentation.module import compile_training_step
from medmodal.experiments.suite import SpeedSuite
from medmodal.experiments.timing import timed
from medmodal.models import create_model
from medmodal.models.segmentation.blocks import to_channels_last_3d


@dataclass
class SpeedSettings:
    model: str = "dmafnet"
    model_kwargs: dict = field(default_factory=dict)
    crop: int = 80
    batch_size: int = 1
    case_size: tuple[int, int, int] = (240, 240, 155)  # a full BraTS volume
    steps: int = 10
    warmup: int = 3
    compile: bool = False  # fast path: torch.compile(forward_train + loss, fullgraph=True)
    compile_mode: str = "default"  # default | reduce-overhead (CUDA graphs) | max-autotune[-no-cudagraphs]
    channels_last: bool = True  # fast path: channels_last_3d memory format (CUDA only)
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    num_modalities: int = 4
    num_classes: int = 4
    overlap: float = 0.5
    sw_batch_size: int = 2
    peak_tflops: float | None = None  # device bf16 dense peak, for the utilisation column
    evaluate: bool = True  # also time the 15-subset evaluation and full-case inference


def _peak_memory_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _fast_context(fast: bool, device: torch.device):
    """bf16 autocast on CUDA for the fast path; nothing otherwise (CPU bf16 convs are slower)."""
    if fast and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _channels_last(fast: bool, device: torch.device, x: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    if enabled and fast and device.type == "cuda" and x.ndim == 5:
        return x.contiguous(memory_format=torch.channels_last_3d)
    return x


def _build_model(s: SpeedSettings, device: torch.device, fast: bool, train: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(s.model, modalities=[f"m{i}" for i in range(s.num_modalities)], num_classes=s.num_classes,
                         **s.model_kwargs).to(device).train(train)
    if fast and device.type == "cuda" and s.channels_last:
        to_channels_last_3d(model)
    return model


def _criterion(model, s: SpeedSettings, device: torch.device):
    """The method's real training objective where there is one (DMAF-Net loss), else Dice+CE."""
    from medmodal.losses.dmafnet_loss import DMAFNetLoss

    return DMAFNetLoss(feature_channels=getattr(model, "feature_channels", None), num_modalities=s.num_modalities,
                       num_classes=s.num_classes).to(device)


def _train_step_fn(model, criterion, batch, fast: bool, device: torch.device, s: SpeedSettings,
                   count_flops: bool = False):
    """One optimiser step; the fast path compiles forward + loss as the engine does (trainer.compile).

    ``count_flops=True`` gives the eager step (FLOPs are counted on it: the useful work, without
    the absent-sequence pairs a compiled static-shape step also computes).
    """
    images, mask, target = batch
    images = _channels_last(fast, device, images, s.channels_last)
    params = list(model.parameters()) + list(criterion.parameters())
    # the reference codes use the default (for-each) AdamW; the fast path the fused CUDA kernel
    opt = torch.optim.AdamW(params, lr=1e-4, fused=fast and device.type == "cuda")

    def forward_loss(images, mask, target):
        return criterion(model.forward_train(images, mask), target)

    forward = compile_training_step(forward_loss, s.compile_mode) if fast and s.compile and not count_flops \
        else forward_loss

    def step():
        opt.zero_grad(set_to_none=True)
        with _fast_context(fast, device):
            loss, _, _ = forward(images, mask, target)
        loss.backward()
        opt.step()

    return step


def _count_flops(step: Callable[[], None]) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def benchmark_training(s: SpeedSettings, fast: bool) -> dict:
    """(a) ``fast=False``: fp32 eager, contiguous; (b) ``fast=True``: bf16 + channels_last_3d (+ compile)."""
    device = torch.device(s.device)
    model = _build_model(s, device, fast, train=True)
    criterion = _criterion(model, s, device)
    shape = (s.batch_size, s.num_modalities, s.crop, s.crop, s.crop)
    images = torch.randn(shape, device=device)
    mask = torch.ones(s.batch_size, s.num_modalities, dtype=torch.bool, device=device)
    mask[:, 0] = False  # a realistic incomplete sample
    target = torch.randint(0, s.num_classes, (s.batch_size, s.crop, s.crop, s.crop), device=device)
    batch = (images, mask, target)
    step = _train_step_fn(model, criterion, batch, fast, device, s)
    _reset_peak(device)
    seconds = timed(step, device, s.steps, s.warmup)
    peak = _peak_memory_gb(device)
    flops = _count_flops(_train_step_fn(model, criterion, batch, fast, device, s, count_flops=True))
    return {"seconds_per_step": seconds, "steps_per_s": 1 / seconds, "peak_memory_gb": peak,
            "tflops_per_step": flops / 1e12, "achieved_tflops": flops / seconds / 1e12}


def _synthetic_case(s: SpeedSettings, device: torch.device) -> torch.Tensor:
    """A smooth random volume (blobs, not white noise), so predictions are not all one class."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.randn(1, s.num_modalities, *[max(2, d // 16) for d in s.case_size], generator=g)
    return torch.nn.functional.interpolate(coarse, size=s.case_size, mode="trilinear").to(device)


def benchmark_evaluation(s: SpeedSettings) -> dict:
    """15-subset evaluation of one case three ways, plus full-case inference time.

    ``subsets_reference``: 15 separate sliding-window passes, fp32 (what the reference codes do);
    ``subsets_naive``: 15 separate passes on the fast path (bf16 on CUDA); ``subsets_shared``:
    shared-encoder evaluation on the fast path. Agreement is reported as the maximum absolute
    probability difference shared vs naive (same precision: the algorithm alone) and the share
    of voxels whose label differs between the fast shared path and the fp32 reference.
    """
    device = torch.device(s.device)
    reference_model = _build_model(s, device, fast=False, train=False)
    fast_model = _build_model(s, device, fast=True, train=False)
    image = _synthetic_case(s, device)
    subsets = torch.tensor(all_subsets(s.num_modalities), device=device)
    roi = (s.crop,) * 3

    def separate(model, fast):
        with _fast_context(fast, device):
            return torch.cat([predict_probabilities(model, _channels_last(fast, device, image, s.channels_last), m, roi, s.overlap,
                                                    s.sw_batch_size) for m in subsets])

    def shared():
        with _fast_context(True, device):
            return predict_probabilities_all_subsets(fast_model, _channels_last(True, device, image, s.channels_last), subsets, roi,
                                                     s.overlap, s.sw_batch_size)

    def full():
        with _fast_context(True, device):
            return predict_probabilities(fast_model, _channels_last(True, device, image, s.channels_last), subsets[-1], roi, s.overlap,
                                         s.sw_batch_size)

    results, outputs = {}, {}
    runs = (("subsets_reference", lambda: separate(reference_model, False)),
            ("subsets_naive", lambda: separate(fast_model, True)), ("subsets_shared", shared), ("full_case", full))
    with torch.inference_mode():
        for name, fn in runs:
            _reset_peak(device)
            results[f"{name}_seconds"] = timed(lambda: outputs.__setitem__(name, fn()), device, repeats=1, warmup=1)
            results[f"{name}_peak_memory_gb"] = _peak_memory_gb(device)
        results["shared_vs_naive_max_abs_prob_diff"] = float((outputs["subsets_shared"] - outputs["subsets_naive"])
                                                             .abs().max())
        results["shared_vs_reference_label_disagreement"] = float(
            (outputs["subsets_shared"].argmax(1) != outputs["subsets_reference"].argmax(1)).float().mean())
    return results


def run(s: SpeedSettings, out_json: str | Path | None = None) -> dict:
    device = torch.device(s.device)
    report = {
        "settings": asdict(s),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "train_reference_fp32": benchmark_training(s, fast=False),
        "train_fast": benchmark_training(s, fast=True),
    }
    ref, fast = report["train_reference_fp32"], report["train_fast"]
    report["ratios"] = {"train_speedup": fast["steps_per_s"] / ref["steps_per_s"]}
    if s.evaluate:
        ev = report["evaluation"] = benchmark_evaluation(s)
        report["ratios"].update({
            "subset_eval_speedup": ev["subsets_reference_seconds"] / ev["subsets_shared_seconds"],
            "subset_eval_speedup_same_precision": ev["subsets_naive_seconds"] / ev["subsets_shared_seconds"],
        })
    if s.peak_tflops:
        report["ratios"]["fast_train_utilisation"] = fast["achieved_tflops"] / s.peak_tflops
    if out_json:
        from medmodal.io import atomic_write_json

        atomic_write_json(out_json, report)
    return report


def _fast_path_name(settings: dict, device: str) -> str:
    parts = ["bf16 autocast"] + (["channels_last_3d"] if settings["channels_last"] else []) \
        if not device.startswith("cpu") else ["fp32"]
    if settings["compile"]:
        parts.append(f"torch.compile fullgraph ({settings['compile_mode']})")
    return " + ".join(parts)


def format_report(report: dict) -> str:
    ref, fast, r = report["train_reference_fp32"], report["train_fast"], report["ratios"]
    mem = lambda v: "-" if v is None else f"{v:.2f} GB"  # noqa: E731
    lines = [
        f"device: {report['device']}, torch {report['torch']}, crop {report['settings']['crop']}^3 x "
        f"batch {report['settings']['batch_size']}, case {'x'.join(map(str, report['settings']['case_size']))}, "
        f"fast path: {_fast_path_name(report['settings'], report['device'])}",
        "| measurement | reference (fp32 eager) | medmodal fast path | ratio |",
        "|---|---|---|---|",
        f"| train steps/s | {ref['steps_per_s']:.2f} | {fast['steps_per_s']:.2f} | {r['train_speedup']:.2f}x |",
        f"| train peak memory | {mem(ref['peak_memory_gb'])} | {mem(fast['peak_memory_gb'])} | |",
        f"| train achieved TFLOP/s | {ref['achieved_tflops']:.2f} | {fast['achieved_tflops']:.2f} | |",
    ]
    if "evaluation" in report:
        lines += _evaluation_lines(report["evaluation"], r)
    if "fast_train_utilisation" in r:
        lines.append(f"| share of bf16 peak (fast train) | | {100 * r['fast_train_utilisation']:.1f} % | |")
    return "\n".join(lines)


def _evaluation_lines(ev: dict, r: dict) -> list[str]:
    return [
        f"| 15-subset evaluation of one case (s) | {ev['subsets_reference_seconds']:.2f} | "
        f"{ev['subsets_shared_seconds']:.2f} | {r['subset_eval_speedup']:.2f}x |",
        f"| ... of which shared encoding alone (same precision, 15 passes: {ev['subsets_naive_seconds']:.2f} s) | | "
        f"| {r['subset_eval_speedup_same_precision']:.2f}x |",
        f"| max prob. difference shared vs 15 passes (same precision) | | "
        f"{ev['shared_vs_naive_max_abs_prob_diff']:.1e} | |",
        f"| voxels labelled differently vs fp32 reference | | "
        f"{100 * ev['shared_vs_reference_label_disagreement']:.3f} % | |",
        f"| full-case inference, all sequences (s) | | {ev['full_case_seconds']:.2f} | |",
    ]


SUITE = SpeedSuite("seg", SpeedSettings, run, format_report)
