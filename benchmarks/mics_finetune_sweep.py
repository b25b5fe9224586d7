"""Fine-tuning variants of the endoscopy benchmark on one dataset + pre-training run, same seeds.

Prints and appends to ``OUT/sweep.csv`` one row per run: validation accuracy of the best checkpoint
(the one used for choices) and test accuracy (all modalities, WLI only).

    python benchmarks/mics_finetune_sweep.py DATA PRETRAIN_RUN OUT NAME:METHOD[:override,...] ... [--seeds 0,1,2]

``METHOD`` is a benchmark method (``wli-only``, ``fusion-no-pretrain``, ``mics`` ...); overrides are
fine-tuning config overrides, e.g. ``frozen:mics:optim.freeze_encoders_epochs=10``.
"""

import argparse
import csv
from pathlib import Path

from medmodal.engine.endoscopy.config import load_finetune_config
from medmodal.engine.endoscopy.train import run_finetune
from medmodal.experiments.endoscopy.benchmark import ENDOSCOPY_METHODS


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("pretrain")
    ap.add_argument("out")
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--fraction", type=float, default=0.05)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for spec in args.variants:
        name, method, *rest = spec.split(":")
        extra = rest[0].split(",") if rest and rest[0] else []
        variant, overrides = ENDOSCOPY_METHODS[method]
        for seed in (int(s) for s in args.seeds.split(",")):
            cfg = load_finetune_config(preset="mics_finetune_demo_cpu", overrides=overrides + extra + [
                f"data.root={args.data}", f"data.label_fraction={args.fraction}", f"trainer.seed={seed}"])
            if variant is not None:
                cfg.init = args.pretrain
            cfg.out_dir = str(out / name / f"seed{seed}")
            r = run_finetune(cfg)
            row = {"name": name, "method": method, "overrides": ";".join(extra), "seed": seed,
                   "val_accuracy": r.get("val_accuracy"), "test_accuracy": r["test"]["accuracy"],
                   "test_wli_accuracy": r.get("test_wli", r["test"])["accuracy"], "wall_s": r["wall_seconds"]}
            print(row, flush=True)
            new = not (out / "sweep.csv").is_file()
            with open(out / "sweep.csv", "a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(row))
                if new:
                    w.writeheader()
                w.writerow(row)


if __name__ == "__main__":
    main()
