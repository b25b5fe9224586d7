"""Trees per second: vectorised space colonisation (k-d tree) vs the per-attractor Python loop.

Both implementations run side by side in one process, alternating tree by tree on the same seeds,
and every pair of trees is asserted identical. Prints a markdown table.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/vessel_tree_speed.py [--attractors 500 2000 5000] \
        [--trees 10 6 4] [--seed 0]
"""

import argparse
import os
import platform
import time

import numpy as np

from medmodal.data.fundus.vessel_tree import grow_vessel_tree, grow_vessel_tree_reference


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--attractors", type=int, nargs="+", default=[500, 2000, 5000])
    p.add_argument("--trees", type=int, nargs="+", default=[10, 6, 4],
                   help="trees per attractor count (per implementation); the last value repeats")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}; "
          f"numpy {np.__version__}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}\n")
    rows = []
    for i, n in enumerate(args.attractors):
        n_trees = args.trees[min(i, len(args.trees) - 1)]
        t_vec, t_ref, nodes = [], [], []
        for k in range(n_trees):
            seed = args.seed + k
            order = (grow_vessel_tree, grow_vessel_tree_reference) if k % 2 == 0 else \
                (grow_vessel_tree_reference, grow_vessel_tree)       # alternate which goes first
            out = {}
            for fn in order:
                t0 = time.perf_counter()
                out[fn] = fn(seed, n_attractors=n)
                (t_vec if fn is grow_vessel_tree else t_ref).append(time.perf_counter() - t0)
            a, b = out[grow_vessel_tree], out[grow_vessel_tree_reference]
            assert a.same_as(b) and np.array_equal(a.attractors, b.attractors), f"trees differ: N={n} seed={seed}"
            nodes.append(len(a))
        rows.append((n, n_trees, np.mean(nodes), np.mean(t_vec), np.mean(t_ref)))
    print("| attractors N | trees (seeds) | nodes (mean) | vectorised s/tree | per-attractor loop s/tree "
          "| vectorised trees/s | speed-up | identical |")
    print("|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for n, k, nodes, tv, tr in rows:
        print(f"| {n} | {k} ({args.seed}-{args.seed + k - 1}) | {nodes:.0f} | {tv:.3f} | {tr:.3f} | {1 / tv:.1f} "
              f"| {tr / tv:.1f}x | yes |")


if __name__ == "__main__":
    main()
