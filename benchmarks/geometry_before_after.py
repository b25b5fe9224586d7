"""Issue 14, section 1: the same model with and without its recorded training geometry.

    medmodal demo --out runs/demo          # or any BraTS run trained on the synthetic data
    python benchmarks/geometry_before_after.py --run runs/demo/run --data runs/demo/data \
        [--real /work/shared/data/brats-real/TCGA-DU-7294] [--out /tmp/geometry_bench] [--cases 1]

"before": the model's bundle with its ``geometry`` record removed, so every case is used as
stored (what medmodal did before the training geometry was recorded, and what old bundles still
do). "after": the bundle as ``train`` writes it. Both predict with ``medmodal predict`` (all four
sequences) and are scored on each file's own grid against its own label (Dice, BraTS regions).

Situations (the issue's measurements):
* native: the demo's test case(s) as synthesised;
* half spacing: the same case(s) resampled to half the voxel size (2x voxels per axis);
* double thickness: slices twice as thick (half the voxels along the last axis);
* LPS vs RAS: a real glioma stored as LPS and as RAS (``nib.as_closest_canonical``); the two
  predictions are compared in world space (both mapped to RAS): WT Dice between them.

Resampled copies: images linear (scipy ``zoom(order=1, grid_mode=True)``) inside the
nearest-neighbour resampled non-zero region, labels nearest neighbour.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from medmodal.data.splits import read_splits
from medmodal.data.volumes.layouts import discover_cases
from medmodal.data.volumes.spec import BRATS2020
from medmodal.evaluation.metrics import region_metrics

REAL_MAPPING = "flair=*_fla_bet*,t1=*_t1_bet*,t1ce=*_t1c_bet*,t2=*_t2_bet*,seg=*_seg_fusion*"


def bundles(run: Path, out: Path) -> dict[str, Path]:
    """``after``: the run's bundle; ``before``: a copy whose model.json has no geometry record."""
    after = run / "model"
    meta = json.loads((after / "model.json").read_text())
    if "geometry" not in meta:
        raise SystemExit(f"{after / 'model.json'} records no geometry: train it with this branch first")
    before = out / "bundle_before"
    before.mkdir(parents=True, exist_ok=True)
    shutil.copy(after / "model.safetensors", before)
    (before / "model.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "geometry"}, indent=2))
    return {"before": before, "after": after}


def resampled_copy(case, dest: Path, factors) -> Path:
    """Write ``case`` with its voxel size multiplied by ``factors`` (per axis), same field of view."""
    folder = dest / case.case_id
    folder.mkdir(parents=True, exist_ok=True)
    zoom = [1.0 / f for f in factors]
    files = dict(case.images, seg=case.label)
    for key, path in files.items():
        img = nib.load(str(path))
        array = np.asarray(img.dataobj)
        if key == "seg":
            data = ndimage.zoom(array, zoom, order=0, grid_mode=True, mode="nearest")
        else:
            data = ndimage.zoom(array.astype(np.float32), zoom, order=1, grid_mode=True, mode="nearest")
            data *= ndimage.zoom(array != 0, zoom, order=0, grid_mode=True, mode="nearest")
        affine = img.affine @ np.diag([*factors, 1.0])
        dtype = array.dtype if key == "seg" else np.float32
        nib.save(nib.Nifti1Image(data.astype(dtype), affine), str(folder / path.name))
    return folder


def predict(bundle: Path, inputs: Path, out: Path, *extra: str) -> Path:
    cmd = [sys.executable, "-m", "medmodal.cli", "predict", "-i", str(inputs), "-o", str(out), "-m", str(bundle),
           "--device", "cpu", "--disable-progress-bar", *extra]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout}{result.stderr}")
    warnings = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if "warning" in line]
    for line in warnings[:2]:
        print(f"    {line.strip()[:160]}")
    return out


def dice(pred_path: Path, label_path: Path) -> np.ndarray:
    pred = BRATS2020.encode_labels(np.asarray(nib.load(str(pred_path)).dataobj).astype(np.int64))
    ref = BRATS2020.encode_labels(np.asarray(nib.load(str(label_path)).dataobj).astype(np.int64))
    scores = region_metrics(pred, ref, BRATS2020, hd95=False)
    return np.array([scores[f"Dice_{r}"] for r in ("WT", "TC", "ET")])


def scored(bundle: Path, cases, out: Path) -> np.ndarray:
    per_case = []
    for case in cases:
        predict(bundle, case.images["flair"].parent, out)
        per_case.append(dice(out / f"{case.case_id}.nii.gz", case.label))
    return np.mean(per_case, axis=0)


def orientation_agreement(bundle: Path, real: Path, out: Path) -> float:
    """WT Dice between the predictions for the LPS file and its RAS copy, compared in RAS."""
    lps, ras = out / "LPS" / real.name, out / "RAS" / real.name
    for folder in (lps, ras):
        folder.mkdir(parents=True, exist_ok=True)
    for f in real.glob("*.nii.gz"):
        (lps / f.name).unlink(missing_ok=True)
        (lps / f.name).symlink_to(f)
        nib.save(nib.as_closest_canonical(nib.load(str(f))), str(ras / f.name))
    maps = []
    for folder in (lps, ras):
        pred = predict(bundle, folder, folder.parent / "pred", "--map", REAL_MAPPING) / f"{real.name}.nii.gz"
        maps.append(np.isin(np.asarray(nib.as_closest_canonical(nib.load(str(pred))).dataobj), (1, 2, 4)))
    a, b = maps
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", type=Path, required=True, help="run folder trained on --data (with this branch)")
    p.add_argument("--data", type=Path, required=True, help="its synthetic BraTS-layout data")
    p.add_argument("--real", type=Path, default=Path("/work/shared/data/brats-real/TCGA-DU-7294"))
    p.add_argument("--out", type=Path, default=Path("/tmp/geometry_bench"))
    p.add_argument("--cases", type=int, default=1, help="test cases to score (the issue used the first one)")
    args = p.parse_args()
    start = time.perf_counter()
    out = args.out.resolve()
    models = bundles(args.run.resolve(), out)
    test_ids = read_splits(args.run / "splits.json")["test"][: args.cases]
    cases = [c for c in discover_cases(args.data.resolve()) if c.case_id in test_ids]
    spacing = nib.load(str(cases[0].images["flair"])).header.get_zooms()[:3]
    variants = {"native": (1.0, 1.0, 1.0), "half spacing": (0.5, 0.5, 0.5), "double thickness": (1.0, 1.0, 2.0)}
    rows = []
    for name, factors in variants.items():
        data = out / "data" / name.replace(" ", "_")
        copies = discover_cases(data) if data.is_dir() else []
        if not copies:
            for case in cases:
                resampled_copy(case, data, factors)
            copies = discover_cases(data)
        grid = " x ".join(f"{s * f:g}" for s, f in zip(spacing, factors))
        for when, bundle in models.items():
            print(f"{name} ({grid} mm), {when}")
            score = scored(bundle, copies, out / "pred" / name.replace(" ", "_") / when)
            rows.append((f"{name} ({grid} mm)", when, "WT/TC/ET Dice", "/".join(f"{s:.2f}" for s in score)))
    if args.real.is_dir():
        for when, bundle in models.items():
            print(f"LPS vs RAS, {when}")
            agreement = orientation_agreement(bundle, args.real, out / "real" / when)
            rows.append(("real glioma stored LPS and RAS", when, "WT Dice between the two", f"{agreement:.2f}"))
    print(f"\n{len(cases)} test case(s) of {args.data}; model {args.run}; "
          f"{(time.perf_counter() - start) / 60:.1f} min\n")
    print("| situation | model | measure | value |\n|---|---|---|--:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
