"""The five algorithm segmentations of the real case TCGA-DU-7294 scored under each BraTS protocol,
by ``medmodal score`` and by an independent implementation of the same rules on medpy.

    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/protocol_table.py [--case DIR] [--out FILE.md]

medmodal side: each segmentation is put (symlinked) in its own prediction folder as
``TCGA-DU-7294.nii.gz`` next to a flat reference folder holding the fusion label, and scored with
:func:`medmodal.evaluation.score.score_folders` (what ``medmodal score`` runs), under ``passion``,
``brats-challenge`` and ``monai-max-directed``.

Independent side (medpy, a test dependency; the rules re-read from the reference code, see
:mod:`medmodal.evaluation.protocols`): Dice and HD95 per region from medpy's ``dc`` / ``hd95`` /
directed surface distances, on the full 240 x 240 x 155 volumes (no cropping), with

* ``passion`` (PASSION ``code/utils/predict.py``): Dice ``(2|P∩R| + 1e-8) / (|P| + |R| + 1e-8)``;
  HD95 = medpy ``hd95``, both empty -> 0, one empty -> 1.0; ETPro = ET with a predicted ET under
  500 voxels emptied.
* ``brats-challenge`` (nnU-Net ``Task082_BraTS_2020.py``): Dice / HD95 both empty 1 / 0, one
  empty 0 / 373.12866, else medpy ``dc`` / ``hd95``.
* ``monai-max-directed``: predicted ET under 500 voxels relabelled as necrosis first; Dice as
  above (both empty 1, one empty 0); HD95 = the larger of medpy's two directed 95th percentiles,
  one empty -> 373.13.

Prints (and with ``--out`` writes) one markdown table per protocol and the largest difference
between the two sides. Takes ~2-4 min on 2 CPU cores (medpy's distance transforms of full volumes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from medmodal.evaluation.score import score_folders

try:
    from medpy.metric import binary as medpy_binary
except ImportError:  # pragma: no cover
    sys.exit("benchmarks/protocol_table.py needs medpy (pip install medpy; the test extra lists it)")

CASE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brats-real" / "TCGA-DU-7294"
ALGORITHMS = ("hnfnetv1-20", "isen-20", "sanet0-20", "scan-20", "yixinmpl-20")
PROTOCOLS = ("passion", "brats-challenge", "monai-max-directed")
REGIONS = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}  # BraTS 2020 label values
EPS = 1e-8


def _directed_hd95(a: np.ndarray, b: np.ndarray) -> float:
    surface = getattr(medpy_binary, "__surface_distances")  # medpy's own edge distances (a -> b)
    return float(np.percentile(surface(a, b, (1, 1, 1), 1), 95))


def medpy_scores(pred: np.ndarray, ref: np.ndarray, protocol: str) -> dict[str, float]:
    """Dice / HD95 per column of ``protocol`` by medpy and the reference code's rules (BraTS labels)."""
    if protocol == "monai-max-directed" and (pred == 4).sum() < 500:
        pred = np.where(pred == 4, 1, pred)
    columns = dict(REGIONS)
    if protocol == "passion":
        columns["ETPro"] = (4,)
    out = {}
    for column, labels in columns.items():
        p, r = np.isin(pred, labels), np.isin(ref, labels)
        if column == "ETPro" and p.sum() < 500:
            p = np.zeros_like(p)
        n_p, n_r = int(p.sum()), int(r.sum())
        if protocol == "passion":
            dice = (2 * int((p & r).sum()) + EPS) / (n_p + n_r + EPS)
        elif n_p == 0 and n_r == 0:
            dice = 1.0
        elif n_p == 0 or n_r == 0:
            dice = 0.0
        else:
            dice = float(medpy_binary.dc(p, r))
        if n_p == 0 and n_r == 0:
            hd = 0.0
        elif n_p == 0 or n_r == 0:
            hd = {"passion": 1.0, "brats-challenge": 373.12866, "monai-max-directed": 373.13}[protocol]
        elif protocol == "monai-max-directed":
            hd = max(_directed_hd95(p, r), _directed_hd95(r, p))
        else:
            hd = float(medpy_binary.hd95(p, r, (1, 1, 1)))
        out[f"Dice_{column}"], out[f"HD95_{column}"] = dice, hd
    return out


def medmodal_scores(case: Path, work: Path, protocol: str) -> dict[str, dict[str, float]]:
    """``{algorithm: row}`` from :func:`score_folders` (one prediction folder per algorithm)."""
    ref = work / "ref"
    if not ref.exists():
        ref.mkdir()
        (ref / f"{case.name}.nii.gz").symlink_to(case / f"{case.name}_seg_fusion.nii.gz")
    rows = {}
    for name in ALGORITHMS:
        pred = work / name
        if not pred.exists():
            pred.mkdir()
            (pred / f"{case.name}.nii.gz").symlink_to(case / "algorithm-segmentations" / f"{name}.nii.gz")
        rows[name] = score_folders(pred, ref, protocol, out_dir=work / f"score_{name}_{protocol}").rows[0]
    return rows


def table(protocol: str, ours: dict, theirs: dict) -> tuple[str, float, float]:
    """Markdown table of medmodal's values (mean row last) and the largest |medmodal - medpy|."""
    columns = list(REGIONS) + (["ETPro"] if protocol == "passion" else [])
    keys = [f"Dice_{c}" for c in columns] + [f"HD95_{c}" for c in columns]
    head = ["algorithm"] + [f"Dice {c} (%)" for c in columns] + [f"HD95 {c} (mm)" for c in columns]
    lines = ["| " + " | ".join(head) + " |", "|:--|" + "--:|" * (len(head) - 1)]
    for name in ALGORITHMS:
        lines.append("| " + " | ".join([name] + [_cell(k, ours[name][k]) for k in keys]) + " |")
    lines.append("| **mean** | " + " | ".join(_cell(k, np.mean([ours[n][k] for n in ALGORITHMS])) for k in keys)
                 + " |")
    dice_diff = max(abs(ours[n][k] - theirs[n][k]) for n in ALGORITHMS for k in keys if k.startswith("Dice"))
    hd_diff = max(abs(ours[n][k] - theirs[n][k]) for n in ALGORITHMS for k in keys if k.startswith("HD95"))
    return "\n".join(lines), dice_diff, hd_diff


def _cell(key: str, value: float) -> str:
    return f"{100 * value:.2f}" if key.startswith("Dice") else f"{value:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, default=CASE, help="the TCGA-DU-7294 folder")
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    case = args.case.resolve()
    if not (case / "algorithm-segmentations").is_dir():
        sys.exit(f"{case}: no algorithm-segmentations folder (pass --case)")
    read = {name: np.asarray(nib.load(str(case / "algorithm-segmentations" / f"{name}.nii.gz")).dataobj)
            for name in ALGORITHMS}
    ref = np.asarray(nib.load(str(case / f"{case.name}_seg_fusion.nii.gz")).dataobj)
    et = ", ".join(f"{n} {int((read[n] == 4).sum())}" for n in ALGORITHMS)
    parts = [f"# {case.name}: five algorithm segmentations vs the fusion label, under each protocol", "",
             f"Reference ET voxels: {int((ref == 4).sum())}; predicted ET voxels: {et}.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in PROTOCOLS:
            start = time.perf_counter()
            ours = medmodal_scores(case, Path(tmp), protocol)
            ours_s = time.perf_counter() - start
            start = time.perf_counter()
            theirs = {n: medpy_scores(read[n], ref, protocol) for n in ALGORITHMS}
            theirs_s = time.perf_counter() - start
            text, dice_diff, hd_diff = table(protocol, ours, theirs)
            parts += [f"## `{protocol}`", "", text, "",
                      f"Largest |medmodal - medpy|: Dice {dice_diff:.1e}, HD95 {hd_diff:.1e} mm "
                      f"(medmodal score {ours_s:.1f} s, medpy {theirs_s:.1f} s for the five).", ""]
            print("\n".join(parts[-6:]), flush=True)
    if args.out:
        args.out.write_text("\n".join(parts))
        print(f"written: {args.out}")


if __name__ == "__main__":
    main()
