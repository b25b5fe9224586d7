"""Check the design claim of the synthetic endoscopy data: each modality carries what the other lacks.

Writes the built-in dataset, computes hand-crafted colour + texture features per image
(:mod:`medmodal.data.endoscopy.features`) and cross-validates a logistic regression (scikit-learn,
a test/benchmark dependency only) on WLI features, NBI features and both concatenated; prints
the accuracies, the two designed class pairs and the confusion matrices.

    python benchmarks/endoscopy_synth_separability.py [--n 600] [--size 128] [--seed 0] [--folds 5]
"""

import argparse
import tempfile
import time

import numpy as np


def separability(root, folds=5, seed=0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from medmodal.data.endoscopy.features import image_features
    from medmodal.data.endoscopy.images import load_image
    from medmodal.data.endoscopy.layouts import read_samples

    samples = read_samples(root)
    classes = sorted({s.label for s in samples})
    y = np.array([classes.index(s.label) for s in samples])
    feats = {m: np.stack([image_features(load_image(getattr(s, m))) for s in samples]) for m in ("wli", "nbi")}
    feats["wli+nbi"] = np.concatenate([feats["wli"], feats["nbi"]], axis=1)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    results = {}
    for name, x in feats.items():
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0))
        pred = cross_val_predict(model, x, y, cv=cv)
        results[name] = {"accuracy": float((pred == y).mean()), "confusion": confusion_matrix(y, pred),
                         "pairs": {}}
        for a, b in (("polyps", "normal-cecum"), ("esophagitis", "normal-z-line")):
            keep = np.isin(y, [classes.index(a), classes.index(b)])
            pair_pred = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
                                          x[keep], y[keep], cv=cv)
            results[name]["pairs"][f"{a} vs {b}"] = float((pair_pred == y[keep]).mean())
    return classes, results


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=600)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", type=int, default=5)
    args = p.parse_args()
    from medmodal.data.endoscopy.synthetic import synth_endoscopy

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        synth_endoscopy(tmp, args.n, args.size, args.seed)
        print(f"synth-endoscopy: {args.n} pairs at {args.size} px in {time.perf_counter() - start:.1f} s")
        classes, results = separability(tmp, args.folds, args.seed)
    print(f"\nlogistic regression on 40 colour+texture features per image, {args.folds}-fold CV "
          f"(chance 6 classes {1 / len(classes):.3f}, pairs 0.5)")
    print("| features | 6-class accuracy | polyps vs normal-cecum | esophagitis vs normal-z-line |")
    print("|---|---|---|---|")
    for name, r in results.items():
        pairs = list(r["pairs"].values())
        print(f"| {name} | {r['accuracy']:.3f} | {pairs[0]:.3f} | {pairs[1]:.3f} |")
    for name, r in results.items():
        print(f"\nconfusion ({name}); rows = true, columns = predicted: {', '.join(classes)}")
        print(r["confusion"])


if __name__ == "__main__":
    main()
