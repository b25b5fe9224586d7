"""The unsupervised floor of retinal vessel segmentation: Frangi vesselness on DRIVE and CHASE_DB1 (issue 27).

Threshold chosen on DRIVE *training* (max mean FOV Dice), then applied to DRIVE test (in-domain) and
CHASE_DB1 (cross-domain). For reference only, a threshold chosen on CHASE_DB1 itself ("oracle": uses the
test labels, not a valid result). Human reference: the 2nd observer scored against the 1st.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/frangi_floor.py [--root /work/shared/data/fundus-real]

Full resolution (DRIVE 565 x 584, CHASE_DB1 999 x 960); FOV: DRIVE's masks, CHASE_DB1 derived from the
image (its official release has none).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from medmodal.data.fundus import derive_fov, load_fov, load_image, load_label, read_fundus
from medmodal.evaluation.vessels import (choose_threshold, observer_scores, scores_table, summarise,
                                         vessel_scores)
from medmodal.models.fundus.frangi import FrangiVessels


def load(samples, model, chase: bool):
    out = []
    for s in samples:
        image = load_image(s)
        fov = derive_fov(image) if chase else load_fov(s, image)
        labels = [load_label(s, k, image.shape[:2]) for k in range(len(s.labels))]
        out.append((s.id, model.predict(image, fov), labels, fov))
    return out


def main() -> None:
    shared = Path(os.environ.get("MEDMODAL_SHARED_DATA", "/work/shared/data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=shared / "fundus-real")
    args = parser.parse_args()
    model = FrangiVessels()
    t0 = time.perf_counter()
    drive = read_fundus(args.root / "DRIVE")
    chase = read_fundus(args.root / "CHASEDB1")
    train = load(drive.split("training"), model, False)
    test = load(drive.split("test"), model, False)
    chase_maps = load(chase.samples, model, True)
    thr, train_dice = choose_threshold((p, lab[0], f) for _, p, lab, f in train)
    oracle, _ = choose_threshold((p, lab[0], f) for _, p, lab, f in chase_maps)

    def score(maps, t):
        return summarise(vessel_scores(p, lab[0], f, threshold=t, name=i) for i, p, lab, f in maps)

    def human(maps):
        return summarise(observer_scores(lab[1], lab[0], f, name=i) for i, _, lab, f in maps if len(lab) > 1)

    rows = {
        f"DRIVE training (threshold chosen here: {thr:.4f})": (len(train), score(train, thr)),
        "DRIVE test (in-domain)": (len(test), score(test, thr)),
        "CHASE_DB1 (cross-domain, DRIVE threshold)": (len(chase_maps), score(chase_maps, thr)),
        f"CHASE_DB1 (oracle threshold {oracle:.4f}, chosen on CHASE itself; reference only)":
            (len(chase_maps), score(chase_maps, oracle)),
        "DRIVE test: 2nd observer vs 1st (human)": (len(test), human(test)),
        "CHASE_DB1: 2nd observer vs 1st (human)": (len(chase_maps), human(chase_maps)),
    }
    print(f"Frangi (skimage), sigmas {tuple(model.base_sigmas)} x FOV diameter / 540 px, CLAHE {model.clahe}; "
          f"threshold {thr:.4f} chosen on DRIVE training (mean FOV Dice there {train_dice:.4f}); "
          f"mean ± std over images; {time.perf_counter() - t0:.0f} s\n")
    print(scores_table(rows))


if __name__ == "__main__":
    main()
