"""Time the training data path alone: crops/s of the train DataLoader (no model).

    python benchmarks/dataloader_speed.py DATA_ROOT [--workers 8] [--batches 100] [--crop 80]
"""

import argparse
import tempfile
import time

from medmodal.config import load_config, packaged_config
from medmodal.engine.segmentation.datamodule import SegmentationDataModule


def main():
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--batches", type=int, default=100)
    p.add_argument("--crop", type=int, default=80)
    args = p.parse_args()
    cfg = load_config(packaged_config("dmafnet_brats2020"),
                      [f"data.root={args.root}", f"data.num_workers={args.workers}",
                       f"data.crop_size=[{args.crop},{args.crop},{args.crop}]", f"data.samples_per_epoch={args.batches}"])
    dm = SegmentationDataModule(cfg.data, tempfile.mkdtemp())
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    start, n = time.perf_counter(), 0
    for i, batch in enumerate(loader):
        if i == 5:
            start, n = time.perf_counter(), 0
        n += batch["image"].shape[0]
    dt = time.perf_counter() - start
    print(f"workers={args.workers} crop={args.crop}: {n / dt:.1f} crops/s ({n} crops in {dt:.1f} s)")


if __name__ == "__main__":
    main()
