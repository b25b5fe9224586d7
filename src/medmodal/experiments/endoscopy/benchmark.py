"""The endoscopy benchmark (``medmodal endoscopy benchmark``; old spelling ``benchmark --suite endoscopy``).

The suite draws the built-in paired dataset (``endoscopy synth``: polyps / normal-cecum differ only
in the NBI pit pattern, esophagitis / z-line only in white-light redness, so fusion can beat
either modality), then trains, for each label fraction and seed:

=======================  ==============================================================
wli-only / nbi-only      supervised, one encoder + transformer blocks + classifier
late-fusion              both encoders, per-modality classifiers, logits averaged
fusion-no-pretrain       the MICS fine-tuning model from random initialisation
fixmatch                 fusion-no-pretrain + FixMatch on the unlabelled training pairs
mics                     pre-training (all three terms) + fusion fine-tuning with DSU
mics-no-reconstruction   pre-training without the masked reconstruction term
mics-no-contrastive      ... without the contrastive term
mics-no-adversarial      ... without the adversarial term
mics-no-shift            mics fine-tuned without the distribution shift
mics-lp                  MICS encoders frozen (``optim.freeze_encoders_epochs`` = all epochs),
                         per-modality linear heads (late fusion), lr 1e-2, no weight decay:
                         the linear probe of the pre-trained features (LP of LP-FT)
late-fusion-lp           the same recipe on randomly initialised encoders (its no-pre-training
                         counterpart)
=======================  ==============================================================

Pre-training runs once per variant (on the fixed training split, labels unused) and is shared by
all fractions and seeds; a seed changes the labelled subset, the initialisation and the
augmentation. Every run folder that holds ``metrics.json`` is reused (resume). Outputs in
``OUT/report/``: ``results.csv`` (every run x test subset), ``comparison.md`` (mean ± std over
seeds), ``ablation.md``, ``accuracy.png``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from medmodal.data.endoscopy.synthetic import synth_endoscopy
from medmodal.engine.endoscopy.config import load_finetune_config, load_pretrain_config
from medmodal.engine.endoscopy.train import results_rows, run_finetune, run_pretrain
from medmodal.errors import ConfigError
from medmodal.evaluation.tables import mean_std
from medmodal.experiments.suite import BenchmarkSuite, Method, Profile
from medmodal.io import atomic_path, atomic_write_text, ensure_writable_dir

__all__ = ["ENDOSCOPY_METHODS", "ENDOSCOPY_PROFILES", "EndoscopyProfile", "METHODS", "PROFILES", "SUITE", "run"]


#: frozen encoders + per-modality linear heads; a linear head needs a larger lr than end-to-end fine-tuning
#: (chosen on the validation split of the cpu-quick data: 5e-4 left the heads under-fitted)
LINEAR_PROBE = ["model.fusion=late", "model.shift=none", "optim.freeze_encoders_epochs=1000000", "optim.lr=1e-2",
                "optim.weight_decay=0"]
#: ``pretrain``: the pre-training variant fine-tuned from (None: random init); ``overrides``: fine-tuning overrides
ENDOSCOPY_METHODS: dict[str, Method] = {
    "wli-only": Method(overrides=("model.modalities=[wli]", "modality_dropout=0")),
    "nbi-only": Method(overrides=("model.modalities=[nbi]", "modality_dropout=0")),
    "late-fusion": Method(overrides=("model.fusion=late", "model.shift=none")),
    "fusion-no-pretrain": Method(),
    "fixmatch": Method(overrides=("method=fixmatch",)),
    "mics": Method(pretrain="full"),
    "mics-no-reconstruction": Method(pretrain="no-reconstruction", ablation=True),
    "mics-no-contrastive": Method(pretrain="no-contrastive", ablation=True),
    "mics-no-adversarial": Method(pretrain="no-adversarial", ablation=True),
    "mics-no-shift": Method(pretrain="full", overrides=("model.shift=none",), ablation=True),
    "mics-lp": Method(pretrain="full", overrides=tuple(LINEAR_PROBE)),
    "late-fusion-lp": Method(overrides=tuple(LINEAR_PROBE)),
}
METHODS = ENDOSCOPY_METHODS
PRETRAIN_VARIANTS = {"full": [], "no-reconstruction": ["model.recon_weight=0"],
                     "no-contrastive": ["model.contrastive_weight=0"],
                     "no-adversarial": ["model.adversarial_weight=0"]}
ABLATIONS = ("mics", "mics-no-reconstruction", "mics-no-contrastive", "mics-no-adversarial", "mics-no-shift",
             "fusion-no-pretrain")


@dataclass(kw_only=True)
class EndoscopyProfile(Profile):
    """Data size (``samples`` / ``render_size``: the synthetic set drawn when no ``data`` is given), presets
    and overrides of one benchmark profile."""

    samples: int
    render_size: int
    pretrain_preset: str
    finetune_preset: str
    fractions: tuple
    seeds: tuple
    pretrain_overrides: list = field(default_factory=list)
    finetune_overrides: list = field(default_factory=list)


ENDOSCOPY_PROFILES = {
    # 2 CPU cores: 360 pairs at 64 px, tiny ViT; about 2 min per pre-training and 30-60 s per fine-tuning
    "cpu-quick": EndoscopyProfile(name="cpu-quick", samples=360, render_size=64,
                                  pretrain_preset="mics_pretrain_demo_cpu", finetune_preset="mics_finetune_demo_cpu",
                                  fractions=(0.05,), seeds=(0, 1, 2)),
    # one GPU: 3000 pairs at 224 px, ViT-S/16, all fractions, 5 seeds
    "gpu-full": EndoscopyProfile(
        name="gpu-full", samples=3000, render_size=224, pretrain_preset="mics_pretrain_kvasir",
        finetune_preset="mics_finetune_kvasir", fractions=(0.01, 0.05, 0.1, 1.0), seeds=(0, 1, 2, 3, 4),
        pretrain_overrides=["data.image_size=224", "model.arch=vit_small_patch16_224", "model.queue_size=4096",
                            "trainer.accelerator=gpu", "trainer.progress_bar=false", "data.batch_size=64"],
        finetune_overrides=["data.image_size=224", "model.arch=vit_small_patch16_224", "trainer.accelerator=gpu",
                            "trainer.progress_bar=false"]),
}




def _table(rows: list[dict], methods: Sequence[str], fractions: Sequence[float]) -> str:
    lines = ["| method | labels | accuracy (all) | macro F1 (all) | accuracy (WLI only at test) | seeds |",
             "|---|---|---|---|---|---|"]
    for f in fractions:
        for m in methods:
            mine = [r for r in rows if r["bench_method"] == m and math.isclose(float(r["label_fraction"]), f)]
            full = [r for r in mine if r["test_modalities"] == "all"]
            if not full:
                continue
            wli = [float(r["accuracy"]) for r in mine if r["test_modalities"] == "wli"]
            if not wli and full[0]["model_modalities"] == "wli":
                wli = [float(r["accuracy"]) for r in full]
            acc, f1 = ([float(r[k]) for r in full] for k in ("accuracy", "f1"))
            cells = (mean_std(v, scale=100, ddof=1) for v in (acc, f1, wli))
            lines.append(f"| {m} | {100 * f:g} % | {' | '.join(cells)} | {len(full)} |")
    return "\n".join(lines) + "\n"


def _figure(rows: list[dict], methods: Sequence[str], fractions: Sequence[float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(methods) * len(fractions)), 4))
    width = 0.8 / max(1, len(fractions))
    for j, f in enumerate(fractions):
        means, stds = [], []
        for m in methods:
            acc = [float(r["accuracy"]) for r in rows if r["bench_method"] == m and r["test_modalities"] == "all"
                   and math.isclose(float(r["label_fraction"]), f)]
            means.append(100 * np.mean(acc) if acc else np.nan)
            stds.append(100 * np.std(acc, ddof=1) if len(acc) > 1 else 0)
        ax.bar(np.arange(len(methods)) + j * width, means, width, yerr=stds, label=f"{100 * f:g} % labels", capsize=3)
    ax.set_xticks(np.arange(len(methods)) + width * (len(fractions) - 1) / 2, methods, rotation=30, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("MICS on the built-in paired WLI / NBI data (mean ± std over seeds)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def run(out: str | Path, profile: str | EndoscopyProfile = "cpu-quick", methods: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None, fractions: Sequence[float] | None = None,
        pretrain_epochs: int | None = None, finetune_epochs: int | None = None,
        data: str | Path | None = None,
        on_run: Callable[[dict], None] | None = None) -> Path:
    """Train every method; write ``OUT/report`` (module docstring). Returns the report folder.

    ``data``: the user's own paired dataset folder or CSV (``None``: the built-in synthetic set of the
    profile's size, written once into ``OUT/data``).

    Raises:
        ConfigError: unknown profile or method.
    """
    if isinstance(profile, str) and profile not in ENDOSCOPY_PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(ENDOSCOPY_PROFILES)}")
    prof = ENDOSCOPY_PROFILES[profile] if isinstance(profile, str) else profile
    methods = list(methods or ENDOSCOPY_METHODS)
    unknown = [m for m in methods if m not in ENDOSCOPY_METHODS]
    if unknown:
        raise ConfigError(f"unknown methods {unknown}; choose from {', '.join(ENDOSCOPY_METHODS)}")
    seeds = list(seeds if seeds is not None else prof.seeds)
    fractions = [float(f) for f in (fractions or prof.fractions)]
    out = ensure_writable_dir(out)
    if data is None:
        data = out / "data"
        if not (Path(data) / "synthetic.json").is_file():
            synth_endoscopy(data, prof.samples, prof.render_size, seed=0)
    pre_extra = list(prof.pretrain_overrides) + ([f"trainer.max_epochs={pretrain_epochs}"] if pretrain_epochs else [])
    ft_extra = list(prof.finetune_overrides) + ([f"trainer.max_epochs={finetune_epochs}"] if finetune_epochs else [])
    pretrained: dict[str, str] = {}
    rows: list[dict] = []
    for method in methods:
        variant, overrides = ENDOSCOPY_METHODS[method].pretrain, list(ENDOSCOPY_METHODS[method].overrides)
        if variant is not None and variant not in pretrained:
            cfg = load_pretrain_config(preset=prof.pretrain_preset,
                                       overrides=pre_extra + PRETRAIN_VARIANTS[variant] + [f"data.root={data}"])
            cfg.out_dir = str(out / "pretrain" / variant)
            run_pretrain(cfg)
            pretrained[variant] = cfg.out_dir
        for f in fractions:
            for seed in seeds:
                cfg = load_finetune_config(preset=prof.finetune_preset, overrides=ft_extra + overrides + [
                    f"data.root={data}", f"data.label_fraction={f}", f"trainer.seed={seed}"])
                if variant is not None:
                    cfg.init = pretrained[variant]
                cfg.out_dir = str(out / "runs" / method / f"labels{f:g}" / f"seed{seed}")
                result = run_finetune(cfg)
                for row in results_rows(result):
                    rows.append({"bench_method": method, **row})
                if on_run is not None:
                    on_run({**result, "bench_method": method})
    report = ensure_writable_dir(out / "report")
    with atomic_path(report / "results.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    compared = [m for m in methods if m not in ABLATIONS[1:-1]]
    atomic_write_text(report / "comparison.md", "# MICS comparison (test accuracy / macro F1, %, mean ± std)\n\n"
                      + _table(rows, compared, fractions))
    ablated = [m for m in ABLATIONS if m in methods]
    atomic_write_text(report / "ablation.md", "# MICS ablation\n\n" + _table(rows, ablated, fractions))
    _figure(rows, methods, fractions, report / "accuracy.png")
    return report


PROFILES = ENDOSCOPY_PROFILES
SUITE = BenchmarkSuite("endoscopy", ENDOSCOPY_METHODS, ENDOSCOPY_PROFILES, run)
