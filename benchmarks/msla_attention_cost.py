"""Multi-scale linear attention (MSLA) against softmax attention of the same width: forward + backward time
and peak memory as the image grows, side by side in one run.

Both modules take the tokens of one feature map and return tokens of the same width:

* MSLA: :class:`medmodal.models.segmentation.mslau_net.MultiScaleLinearAttention` (4 channel groups,
  kernels 3 / 5 / 7 / 9, one linear attention per group);
* softmax attention: timm's ViT ``Attention`` with ``fused_attn`` off, i.e. the explicit
  ``softmax(Q K^T / sqrt(d)) V`` that stores the ``N x N`` attention matrix (the fused kernels avoid storing
  it and would hide the quadratic memory the comparison is about).

Two grids: stride 16 at width 256 (stage 3, where MSLAU-Net puts MSLA) and stride 4 at width 64 (stage 1,
what attention there would cost). Time: median of ``--repeats`` forward + backward passes, the two
modules alternating (interleaved, so a drifting machine load affects both alike). Peak memory: each
(module, size) runs once in a fresh subprocess; the figure is the process's peak resident set during one
forward + backward (``VmHWM``, reset just before through ``/proc/self/clear_refs``; Linux only) minus its
resident set just before (``VmRSS``): what the pass itself added.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/msla_attention_cost.py [--sizes 128 256 384 512]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

GRIDS = ((16, 256), (4, 64))  # (stride, width)
HEAD_DIM = 64


def build(kind: str, width: int) -> torch.nn.Module:
    heads = max(1, width // HEAD_DIM)
    if kind == "msla":
        from medmodal.models.segmentation.mslau_net import MultiScaleLinearAttention

        return MultiScaleLinearAttention(width, heads)
    from timm.models.vision_transformer import Attention

    module = Attention(width, num_heads=heads, qkv_bias=True)
    module.fused_attn = False
    return module


def step(kind: str, module: torch.nn.Module, tokens: torch.Tensor, side: int) -> None:
    out = module(tokens, (side, side)) if kind == "msla" else module(tokens)
    out.sum().backward()


def inputs(size: int, stride: int, width: int) -> tuple[torch.Tensor, int]:
    side = size // stride
    return torch.randn(1, side * side, width, requires_grad=True), side


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_child(kind: str, size: int, stride: int, width: int) -> None:
    torch.manual_seed(0)
    module = build(kind, width)
    tokens, side = inputs(size, stride, width)
    with open("/proc/self/clear_refs", "w") as f:  # Linux: reset the peak resident set (VmHWM) to the current one
        f.write("5")
    before = _status_kib("VmRSS")
    step(kind, module, tokens, side)
    print(json.dumps({"peak_mib": (_status_kib("VmHWM") - before) / 1024}))


def peak(kind: str, size: int, stride: int, width: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(size), str(stride), str(width)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 384, 512])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, size, stride, width = args.child
        peak_child(kind, int(size), int(stride), int(width))
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); batch 1, fp32, forward + backward; median of {args.repeats}\n")
    print("| grid | image px | tokens N | MSLA ms | softmax ms | softmax / MSLA (time) | MSLA peak MiB "
          "| softmax peak MiB | softmax / MSLA (memory) |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for stride, width in GRIDS:
        torch.manual_seed(0)
        modules = {kind: build(kind, width) for kind in ("msla", "softmax")}
        for size in args.sizes:
            tokens, side = inputs(size, stride, width)
            times = {kind: [] for kind in modules}
            for kind, module in modules.items():  # warm-up
                step(kind, module, tokens, side)
            for _ in range(args.repeats):
                for kind, module in modules.items():
                    start = time.perf_counter()
                    step(kind, module, tokens, side)
                    times[kind].append(time.perf_counter() - start)
            ms = {kind: 1000 * statistics.median(t) for kind, t in times.items()}
            mem = {kind: peak(kind, size, stride, width) for kind in modules}
            ratio_mem = mem["softmax"] / mem["msla"] if mem["msla"] > 0 else float("nan")
            print(f"| stride {stride}, width {width} | {size} | {side * side} | {ms['msla']:.1f} | "
                  f"{ms['softmax']:.1f} | {ms['softmax'] / ms['msla']:.2f} | {mem['msla']:.1f} | "
                  f"{mem['softmax']:.1f} | {ratio_mem:.2f} |", flush=True)


if __name__ == "__main__":
    main()
