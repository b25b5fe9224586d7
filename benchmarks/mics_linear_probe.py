"""Linear probe of MICS encoders at a label fraction: does the pre-training give better frozen features?

Logistic regression on the pooled encoder tokens (WLI, NBI, both concatenated), trained on the
labelled subset of each seed (the benchmark's subsets) and scored on the validation split (the one
to choose pre-training settings on) and the test split.

    python benchmarks/mics_linear_probe.py DATA [PRETRAIN_RUN ...] [--fraction 0.05] [--seeds 0,1,2]

``random`` as a run name probes randomly initialised encoders of the CPU preset's architecture.
"""

import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from medmodal.engine.endoscopy.config import load_finetune_config
from medmodal.engine.endoscopy.data import EndoscopyDataModule
from medmodal.engine.endoscopy.train import load_pretrained_encoders
from medmodal.models import create_model


def features(dm, model, ids):
    out, labels = [], []
    with torch.no_grad():
        for b in torch.utils.data.DataLoader(dm.dataset(ids, False), batch_size=64):
            out.append(torch.cat([model.encoders[m](b[m]).mean(1) for m in ("wli", "nbi")], 1))
            labels.append(b["label"])
    return torch.cat(out).numpy(), torch.cat(labels).numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("runs", nargs="*", default=["random"])
    ap.add_argument("--fraction", type=float, default=0.05)
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = load_finetune_config(preset="mics_finetune_demo_cpu",
                               overrides=[f"data.root={args.data}", f"data.label_fraction={args.fraction}"])
    dm = EndoscopyDataModule(cfg.data, "finetune", 0)
    row = {i: k for k, i in enumerate(dm.splits["train"])}
    for run in args.runs:
        model = create_model("mics", num_classes=len(dm.classes), arch=cfg.model.arch, image_size=cfg.model.image_size,
                             encoder_kwargs=cfg.model.encoder_kwargs, fusion_depth=1).eval()
        if run != "random":
            model.load_encoders(load_pretrained_encoders(run)[0])
        x_train, y_train = features(dm, model, dm.splits["train"])
        x_test, y_test = features(dm, model, dm.splits["test"])
        x_val, y_val = features(dm, model, dm.splits["val"])
        d = x_train.shape[1] // 2
        for part, cols in (("wli", slice(0, d)), ("nbi", slice(d, None)), ("both", slice(None))):
            acc, val = [], []
            for seed in (int(s) for s in args.seeds.split(",")):
                rows = [row[i] for i in EndoscopyDataModule(cfg.data, "finetune", seed).train_ids]
                x, y = x_train[rows][:, cols], y_train[rows]
                mu, sd = x.mean(0), x.std(0) + 1e-6
                clf = LogisticRegression(max_iter=3000).fit((x - mu) / sd, y)
                acc.append(clf.score((x_test[:, cols] - mu) / sd, y_test))
                val.append(clf.score((x_val[:, cols] - mu) / sd, y_val))
            print(f"{run:<40} {part:<5} val {100 * np.mean(val):.1f} ± {100 * np.std(val, ddof=1):.1f}  "
                  f"test {100 * np.mean(acc):.1f} ± {100 * np.std(acc, ddof=1):.1f} ({len(rows)} labels)")


if __name__ == "__main__":
    main()
