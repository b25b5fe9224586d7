"""Vessel training step with each DGSSA augmentation on vs off, side by side in one run.

One step = draw a batch of training crops from the run's own data module (``VesselDataModule``: crops,
standard augmentation, PixMix, synthetic pairs) + forward, loss, backward and optimiser step of the
run's module (``VesselModule``: DSU layers, RandConv). Every variant is the benchmark's own method
(:data:`medmodal.experiments.seg.vessels.VESSEL_METHODS`) on the same budget; the steps are timed
interleaved (:func:`medmodal.experiments.timing.time_interleaved`) so that a drifting machine load
affects all alike, and reported as the median wall and process-CPU seconds and the ratio to ERM.

The pix2pix generator of the structure variants is trained for only ``--pix2pix-steps`` steps (its
rendering time does not depend on how well it is trained); its one-off training time is reported apart.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/vessel_train_step_speed.py \
        [--data /work/shared/data/fundus-real/DRIVE] [--model unet_mobilenetv2] [--rounds 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from medmodal.config import config_to_dict, load_run_config
from medmodal.data.fundus import read_fundus
from medmodal.data.fundus.dataset import collate_fundus, fundus_splits
from medmodal.data.fundus.geometry import FundusGeometry
from medmodal.engine.fundus.config import VesselRunConfig
from medmodal.engine.fundus.module import VesselModule, vessel_loss
from medmodal.engine.fundus.structure import prepare_structure
from medmodal.engine.fundus.train import VesselDataModule
from medmodal.experiments.seg.vessels import TRAINED, VESSEL_METHODS, VESSEL_PROFILES
from medmodal.experiments.timing import time_interleaved


def build_step(method: str, args, samples, geometry: FundusGeometry, make_pair):
    profile = VESSEL_PROFILES["cpu-reduced"]
    overrides = [*profile.overrides(), f"model.name={args.model}", *VESSEL_METHODS[method].overrides]
    cfg = load_run_config(VesselRunConfig, overrides=overrides)
    torch.manual_seed(0)
    data = VesselDataModule(cfg, samples, [], geometry, make_pair=make_pair if cfg.structure.source == "pix2pix" else None)
    module = VesselModule(config_to_dict(cfg))
    module.train()
    optimiser = torch.optim.AdamW(module.parameters(), lr=cfg.optim.lr)
    dataset, batch = data.train_set, cfg.data.batch_size
    state = {"next": 0}

    def step():
        start = state["next"]
        state["next"] = (start + batch) % len(dataset)
        items = collate_fundus([dataset[(start + k) % len(dataset)] for k in range(batch)])
        x, y, m = items["image"], items["label"], items["fov"]
        if module.randconv is not None:
            x = module.randconv(x) * m
        loss = vessel_loss(module(x), y, m)["loss"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return step


def main() -> None:
    shared = Path(os.environ.get("MEDMODAL_SHARED_DATA", "/work/shared/data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared / "fundus-real" / "DRIVE")
    parser.add_argument("--model", default=VESSEL_PROFILES["cpu-reduced"].model)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--pix2pix-steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    source = read_fundus(args.data)
    by_id = {s.id: s for s in source.samples}
    samples = [by_id[i] for i in fundus_splits(source.samples)["train"]]
    profile = VESSEL_PROFILES["cpu-reduced"]
    geometry = FundusGeometry(target_diameter=profile.diameter)
    cfg = load_run_config(VesselRunConfig, overrides=[*profile.overrides(), "structure.source=pix2pix",
                                                      f"structure.steps={args.pix2pix_steps}"])
    start = time.perf_counter()
    make_pair, record = prepare_structure(cfg.structure, samples, geometry, None, write=False)
    structure_seconds = time.perf_counter() - start

    steps = {method: build_step(method, args, samples, geometry, make_pair) for method in TRAINED}
    results = time_interleaved(steps, torch.device("cpu"), repeats=args.rounds, warmup=1)
    base = results["erm"]
    print(f"Vessel training step, {args.data.name} training crops {profile.crop} px at FOV diameter "
          f"{profile.diameter}, batch {profile.batch_size}, {args.model}, {torch.get_num_threads()} thread(s), "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}; median of {args.rounds} "
          f"interleaved rounds\n")
    print("| method | s / step (wall) | CPU s / step | x ERM (wall) | x ERM (CPU) |")
    print("|---|--:|--:|--:|--:|")
    for method, r in results.items():
        print(f"| {method} | {r['seconds_per_step']:.3f} | {r['cpu_seconds_per_step']:.3f} | "
              f"{r['seconds_per_step'] / base['seconds_per_step']:.2f} | "
              f"{r['cpu_seconds_per_step'] / base['cpu_seconds_per_step']:.2f} |")
    print(f"\nOne-off structure step (tree calibration + {args.pix2pix_steps} pix2pix steps here; a run trains "
          f"{VesselRunConfig().structure.steps}): {structure_seconds:.1f} s; tree calibration: {record['tree']}")


if __name__ == "__main__":
    main()
