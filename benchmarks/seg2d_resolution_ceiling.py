"""The Dice a 2-D model could reach at most on a data set's test cases when it predicts on a coarser grid.

Each test reference is resized to the network grid (nearest neighbour, as training labels are) and back to its
native size: the ceiling of any model trained at that grid. Then its one-hot map is averaged down to the grid
of a decoder of stride ``--stride`` (MSLAU-Net's aggregation decoder: 4), upsampled bilinearly to the network
grid, arg-maxed and resized back: the ceiling of a model whose logits live on that coarser grid. Scores are per
class Dice under the ``transunet`` protocol on the native grid.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/seg2d_resolution_ceiling.py --data ../shared/data/cardiac-real/ACDC \\
        [--grid 128] [--stride 4] [--split test]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from medmodal.data.seg2d import load_case, read_seg2d
from medmodal.data.seg2d.slice_dataset import resize_label
from medmodal.evaluation.seg2d import volume_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--grid", type=int, default=128)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    dataset = read_seg2d(args.data)
    cases = [c for c in dataset.cases if c.split == args.split]
    grid, low = (args.grid, args.grid), (args.grid // args.stride, args.grid // args.stride)
    k = len(dataset.classes)
    rows = {"grid": [], "stride": []}
    for case in cases:
        arrays = load_case(dataset, case)
        ref = torch.from_numpy(arrays.label)
        native = tuple(ref.shape[-2:])
        on_grid = resize_label(ref, grid)
        coarse = F.interpolate(F.one_hot(on_grid, k).permute(0, 3, 1, 2).float(), size=low, mode="area")
        back = F.interpolate(coarse, size=grid, mode="bilinear", align_corners=False).argmax(1)
        for key, pred in (("grid", resize_label(on_grid, native)), ("stride", resize_label(back, native))):
            scores = volume_scores(pred.numpy(), arrays.label, dataset.classes, hd95=False)
            rows[key].append([scores[f"Dice_{c}"] for c in dataset.classes[1:]])
    names = " / ".join(dataset.classes[1:])
    print(f"{len(cases)} {args.split} cases of {args.data}; Dice (%) {names}, then the mean")
    for key, label in (("grid", f"labels at {args.grid} px and back"),
                       ("stride", f"through a stride-{args.stride} grid ({low[0]} px), bilinear up")):
        values = 100 * np.asarray(rows[key])
        per_class = " / ".join(f"{v:.2f}" for v in values.mean(0))
        print(f"{label}: {per_class}; mean {values.mean():.2f}")


if __name__ == "__main__":
    main()
