"""Profile one DMAF-Net training step on the GPU (top kernels), and throughput vs batch size.

    python benchmarks/profile_train.py [--crop 80] [--batches 1,2,4]
"""

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from medmodal.engine.segmentation.speed import SpeedSettings, _build_model, _criterion, _train_step_fn


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--crop", type=int, default=80)
    p.add_argument("--batches", default="1,2,4")
    p.add_argument("--fast", type=int, default=1)
    p.add_argument("--channels-last", type=int, default=1)
    p.add_argument("--profile", type=int, default=1)
    args = p.parse_args()
    device = torch.device("cuda")
    for bs in [int(b) for b in args.batches.split(",")]:
        s = SpeedSettings(crop=args.crop, batch_size=bs, device="cuda", channels_last=bool(args.channels_last))
        model = _build_model(s, device, bool(args.fast), train=True)
        crit = _criterion(model, s, device)
        images = torch.randn(bs, 4, s.crop, s.crop, s.crop, device=device)
        mask = torch.ones(bs, 4, dtype=torch.bool, device=device)
        mask[:, 0] = False
        target = torch.randint(0, 4, (bs, s.crop, s.crop, s.crop), device=device)
        step = _train_step_fn(model, crit, (images, mask, target), bool(args.fast), device, s.channels_last)
        for _ in range(3):
            step()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(10):
            step()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - t) / 10
        print(f"fast={args.fast} channels_last={args.channels_last} batch {bs}: {dt * 1000:.1f} ms/step, {bs / dt:.1f} crops/s", flush=True)
        if bs == 1 and args.profile:
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                step()
                torch.cuda.synchronize()
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=60))
            print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=8, max_name_column_width=60))


if __name__ == "__main__":
    main()
