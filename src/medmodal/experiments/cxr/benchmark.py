"""``medmodal cxr benchmark`` (old spelling ``benchmark --suite cxr``): pre-train every method on the same
image-report data and budget, then run every downstream task at every label fraction and seed on the same splits.

Protocol (CM-CGNS / MGCA, notes sections 2.2-2.3): the image encoder of each method is evaluated
frozen by

* **linear classification**: CheXpert (AUROC, macro over the 5 competition findings), RSNA
  (AUROC), COVIDx (accuracy);
* **segmentation** (U-Net decoder on the frozen encoder, Dice): SIIM, RSNA (boxes as masks);
* **detection** (YOLOv3 head on the frozen C3-C5, mAP over IoU 0.40:0.05:0.75): RSNA, Object-CXR;

each at the label fractions 1 / 10 / 100 % of the training split, for each seed, with the
fine-tuning engine (:func:`medmodal.engine.finetune.train.run_finetune`) and the task presets'
reference settings, shortened by the profile (:data:`CXR_PROFILES`).

Methods (:data:`CXR_METHODS`): random init and ImageNet init (a local weight file, when given) are
not pre-trained; ConVIRT, GLoRIA-style, MGCA-style, CM-CGNS and its three ablations are pre-trained
by the same engine (:func:`pretrain_method`, the only place that calls the pre-training engine) on
the same synthetic image-report data with the same epochs, batch, learning rate and image encoder
(CM-CGNS's budget split into its two stages). Each method is pre-trained once (seed 42); the seeds
vary the downstream runs (head initialisation, data order); the labelled subset of a fraction is the
references' fixed draw (``data.fraction_seed`` 42, as MGCA), the same for every seed and method.

The data: synthetic twins of the profile's size (``OUT/data``), or the user's own (``data``: a folder with
``pretrain/`` and ``downstream/<dataset>/``, laid out as ``OUT/data``).

Layout of ``<out>/``::

    data/pretrain/              synthetic image-report studies (IU layout, medmodal cxr synth)
    data/downstream/<dataset>/  synthetic twins of the downstream datasets (their official layouts)
    pretrain/<method>/          pre-training run (export/image_encoder is what the tasks load)
    runs/<task>/<dataset>/<method>/frac<f>/seed<k>/   fine-tuning run (its own results.csv)
    report/                     report.md, results.csv (one row per run), pretrain.csv, fractions.png

Resume: a pre-training run with ``metrics.json`` and a fine-tuning run with ``metrics.json`` are
finished and skipped; an interrupted one continues from its ``last.ckpt``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from medmodal.data.cxr.downstream import synth_downstream
from medmodal.data.cxr.synthetic import synth_cxr
from medmodal.engine.finetune.config import load_finetune_config
from medmodal.engine.finetune.train import run_finetune
from medmodal.engine.image_text import load_pretrain_config, run_pretraining
from medmodal.errors import ConfigError
from medmodal.evaluation.tables import csv_text, mean_std
from medmodal.experiments.suite import BenchmarkSuite, Method, Profile
from medmodal.io import atomic_write_text, ensure_writable_dir

__all__ = [
    "CXR_METHODS",
    "CXR_PROFILES",
    "DOWNSTREAM_TASKS",
    "CXRProfile",
    "METHODS",
    "PROFILES",
    "SUITE",
    "finetune_run",
    "pretrain_method",
    "run",
    "with_overrides",
    "write_cxr_report",
]

#: (task, dataset) pairs of the papers' three tables, in table order
DOWNSTREAM_TASKS: tuple[tuple[str, str], ...] = (
    ("classification", "chexpert"), ("classification", "rsna"), ("classification", "covidx"),
    ("segmentation", "siim"), ("segmentation", "rsna"),
    ("detection", "rsna"), ("detection", "object-cxr"),
)
DATASET_TITLES = {"chexpert": "CheXpert", "rsna": "RSNA", "covidx": "COVIDx", "siim": "SIIM",
                  "object-cxr": "Object-CXR"}
TASK_METRICS = {"classification": "AUROC / ACC (%)", "segmentation": "Dice (%)", "detection": "mAP (%)"}


#: ``model``: the registered ``image_text`` model pre-trained; ``init``: the initialisation of an entry
#: without pre-training (``"random"`` | ``"imagenet"``)
CXR_METHODS: dict[str, Method] = {
    "random": Method(init="random"),
    "imagenet": Method(init="imagenet"),
    "convirt": Method("convirt"),
    "gloria": Method("gloria"),
    "mgca": Method("mgca"),
    "cmcgns": Method("cmcgns"),
    "cmcgns w/o CGNS": Method("cmcgns_no_cgns", ablation=True),
    "cmcgns w/o CM-MIR": Method("cmcgns_no_mir", ablation=True),
    "cmcgns w/o local": Method("cmcgns_global", ablation=True),
}
METHODS = CXR_METHODS


@dataclass(kw_only=True)
class CXRProfile(Profile):
    """Data, budget and model size of a profile.

    Attributes:
        arch: timm image encoder of every method. image_size: input edge (pre-training and tasks).
        pretrain_studies / pretrain_size: synthetic image-report studies and their pixel size.
        pretrain_epochs: epochs of every pre-trained method; cmcgns_stage2_epochs of them are
            CM-CGNS's stage II (CM-MIR). pretrain_batch_size / pretrain_lr: shared by all methods.
        model_kwargs: per model family (``"cmcgns"`` covers the ablations) size overrides.
        twin_images / twin_size: images and pixel size of each downstream twin.
        fractions / seeds / methods / tasks: what is run by default; task_seeds: per task, seeds that
            replace ``seeds`` (e.g. one seed for a task whose budget is the largest).
        epochs: fine-tuning epochs per task. batch_size: fine-tuning batch.
        detection_width / decoder_channels: head sizes.
        pretrain_eval: also evaluate each pre-trained model on the held-out studies (retrieval R@K and
            zero-shot AUROC beside the untrained pipeline; ``pretrain/<method>/report.md``), summarised in
            the report's pre-training table.
    """

    arch: str
    image_size: int
    pretrain_studies: int
    pretrain_size: int
    pretrain_epochs: int
    cmcgns_stage2_epochs: int
    pretrain_batch_size: int
    pretrain_lr: float
    model_kwargs: dict[str, dict]
    twin_images: int
    twin_size: int
    fractions: tuple[float, ...]
    seeds: tuple[int, ...]
    methods: tuple[str, ...]
    tasks: tuple[tuple[str, str], ...]
    epochs: dict[str, int]
    batch_size: int
    detection_width: float
    decoder_channels: tuple[int, ...]
    accelerator: str = "cpu"
    precision: str = "32-true"
    num_workers: int = 0
    patience: int | None = None
    pretrain_eval: bool = False
    task_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)


_CPU_SIZES = {"cmcgns": {"embed_dim": 64, "text_pool_heads": 4, "num_clusters": 16, "decoder_channels": [32, 16, 16],
                         "decoder_heads": 4},
              "convirt": {"embed_dim": 64}, "gloria": {"embed_dim": 64},
              "mgca": {"embed_dim": 64, "projection_hidden_dim": 256, "num_prototypes": 64}}

#: cpu-compare: the pretrain_demo_cpu preset's model sizes; every method keeps its text encoder frozen with
#: cached token features (the CPU time goes to the image side) and the demo's embedding width
_DEMO_SHARED = {"embed_dim": 256, "cache_text_features": True}
_DEMO_SIZES = {"cmcgns": {**_DEMO_SHARED, "num_clusters": 64, "decoder_channels": [128, 64, 32, 16]},
               "convirt": dict(_DEMO_SHARED), "gloria": dict(_DEMO_SHARED), "mgca": dict(_DEMO_SHARED)}

CXR_PROFILES: dict[str, CXRProfile] = {
    # 2 CPU cores, < 30 min: ResNet-18 at 64 px, 4 pre-training epochs on 160 studies, random init + 4
    # pre-trained methods, 7 task/dataset pairs x 3 fractions x 1 seed. A plumbing check (report text).
    "cpu-quick": CXRProfile(
        arch="resnet18", image_size=64, pretrain_studies=160, pretrain_size=128, pretrain_epochs=4,
        cmcgns_stage2_epochs=1, pretrain_batch_size=16, pretrain_lr=1e-4, model_kwargs=_CPU_SIZES,
        twin_images=100, twin_size=128, fractions=(0.01, 0.1, 1.0), seeds=(0,),
        methods=("random", "imagenet", "convirt", "gloria", "mgca", "cmcgns"), tasks=DOWNSTREAM_TASKS,
        epochs={"classification": 20, "segmentation": 2, "detection": 2}, batch_size=16, detection_width=0.125,
        decoder_channels=(32, 16, 16, 8, 8), name="cpu-quick",
        note="2 CPU cores, sized for < 30 min on two free cores: ResNet-18 at 64 px pre-trained 4 epochs on 160 "
             "synthetic studies; "
             "twins of 100 images; 20 probe epochs, 2 segmentation / detection epochs; one seed."),
    # 2 CPU cores, about an hour: the CM-CGNS demo's pre-training (pretrain_demo_cpu: encoder, size, epochs, lr,
    # batch, cached text features) for every method on its 2000 studies, twins of 600 images, 3 seeds. The
    # smallest setting in which pre-training measurably learns (demo: retrieval and zero-shot well above the
    # untrained pipeline), so the one CPU profile that can compare methods. Kept equal to the preset by a test.
    "cpu-compare": CXRProfile(
        arch="resnet10t", image_size=64, pretrain_studies=2000, pretrain_size=256, pretrain_epochs=7,
        cmcgns_stage2_epochs=1, pretrain_batch_size=32, pretrain_lr=5e-4, model_kwargs=_DEMO_SIZES,
        twin_images=600, twin_size=128, fractions=(0.01, 0.1, 1.0), seeds=(0, 1, 2),
        methods=("random", "imagenet", "convirt", "mgca", "cmcgns"), tasks=DOWNSTREAM_TASKS,
        epochs={"classification": 50, "segmentation": 10, "detection": 10}, batch_size=32, detection_width=0.25,
        decoder_channels=(64, 32, 16, 16, 8), pretrain_eval=True, task_seeds={"detection": (0,)},
        name="cpu-compare",
        note="2 CPU cores, about an hour: every method pre-trained as the CM-CGNS CPU demo (pretrain_demo_cpu: "
             "timm ResNet-10-T at 64 px, 7 epochs on 2000 synthetic studies, frozen MiniLM with cached token "
             "features); twins of 600 images; 50 probe epochs, 10 segmentation / detection epochs; 3 seeds "
             "(detection: one)."),
    # one GPU: ResNet-50 at 224 px, every method and ablation, 3 seeds, the references' task budgets
    "gpu-full": CXRProfile(
        arch="resnet50", image_size=224, pretrain_studies=4000, pretrain_size=256, pretrain_epochs=30,
        cmcgns_stage2_epochs=20, pretrain_batch_size=64, pretrain_lr=1e-5, model_kwargs={},
        twin_images=1000, twin_size=256, fractions=(0.01, 0.1, 1.0), seeds=(0, 1, 2),
        methods=tuple(CXR_METHODS), tasks=DOWNSTREAM_TASKS,
        epochs={"classification": 100, "segmentation": 50, "detection": 50}, batch_size=16, detection_width=1.0,
        decoder_channels=(256, 128, 64, 32, 16), accelerator="gpu", precision="bf16-mixed", num_workers=8,
        patience=10, name="gpu-full",
        note="one GPU: ResNet-50 at 224 px pre-trained 30 epochs (CM-CGNS 10 + 20) on 4000 synthetic studies; "
             "twins of 1000 images; the references' task epochs with early stopping; 3 seeds."),
}


def _slug(name: str) -> str:
    return name.replace(" w/o ", "-no-").replace(" ", "_").replace("/", "-")


def _family(model: str) -> str:
    return "cmcgns" if model.startswith("cmcgns") else model


# ----------------------------------------------------------------------------- pre-training
def pretrain_method(name: str, profile: CXRProfile, data: Path, run_dir: Path,
                    imagenet_weights: Path | None = None) -> dict:
    """Pre-train method ``name`` on ``data`` into ``run_dir`` with the profile's shared budget; the one
    function that calls the pre-training engine. Skips a finished run (``metrics.json``).

    Returns the engine's result (``run_dir``, ``train_seconds``, ``export`` ...).
    """
    method = CXR_METHODS[name]
    stage2 = profile.cmcgns_stage2_epochs if _family(method.model) == "cmcgns" else 0
    if method.model == "cmcgns_no_mir":
        stage2 = profile.cmcgns_stage2_epochs  # same schedule as CM-CGNS; its stage II has no CM-MIR term
    kwargs = {"image_encoder": profile.arch, **profile.model_kwargs.get(_family(method.model), {})}
    if imagenet_weights is not None:
        kwargs["image_pretrained_path"] = str(imagenet_weights)
    overrides = [
        f"out_dir={run_dir}", f"data.root={data}", f"data.image_size={profile.image_size}",
        f"data.batch_size={profile.pretrain_batch_size}", f"data.num_workers={profile.num_workers}",
        f"model.name={method.model}", f"model.kwargs={json.dumps(kwargs)}",
        f"optim.lr={profile.pretrain_lr}", f"optim.optimizer={'adamw' if method.model == 'mgca' else 'adam'}",
        f"trainer.stage1_epochs={profile.pretrain_epochs - stage2}", f"trainer.stage2_epochs={stage2}",
        f"trainer.accelerator={profile.accelerator}", "trainer.devices=1",
        f"trainer.precision={profile.precision}", "trainer.progress_bar=false", "trainer.seed=42",
        f"eval.enabled={'true' if profile.pretrain_eval else 'false'}",
    ]
    cfg = load_pretrain_config(preset="pretrain_demo_cpu", overrides=overrides)
    return run_pretraining(cfg, resume="auto")


def pretrain_quality(result: dict) -> dict:
    """The held-out evaluation of a pre-training run (when it was evaluated), in %: image -> report and
    report -> image R@10 and its chance level, zero-shot mean AUROC of the trained and the untrained model."""
    evaluation = result.get("evaluation") or {}
    trained, untrained = evaluation.get("pretrained"), evaluation.get("untrained")
    if not trained:
        return {}
    retrieval = trained["retrieval"]
    row = {"i2r_R@10": 100 * retrieval["image_to_report"]["R@10"], "r2i_R@10": 100 * retrieval["report_to_image"]["R@10"],
           "chance_R@10": 100 * retrieval["chance"]["R@10"], "zero_shot_auroc": 100 * trained["zero_shot"]["mean_auroc"]}
    if untrained:
        row["zero_shot_auroc_untrained"] = 100 * untrained["zero_shot"]["mean_auroc"]
    return row


# ----------------------------------------------------------------------------- downstream
def encoder_source(name: str, profile: CXRProfile, pretrain_dir: Path,
                   imagenet_weights: Path | None) -> tuple[str, str | None]:
    """``(encoder.source, encoder.arch)`` of method ``name`` for the fine-tuning engine."""
    method = CXR_METHODS[name]
    if method.init == "random":
        return "random", profile.arch
    if method.init == "imagenet":
        if imagenet_weights is None:
            raise ConfigError("the imagenet method needs a local weight file (--imagenet-weights)")
        return f"imagenet:{imagenet_weights}", profile.arch
    return str(pretrain_dir / _slug(name)), profile.arch  # the export must be this arch (checked on load)


def finetune_run(task: str, dataset: str, fraction: float, seed: int, source: str, arch: str | None,
                 profile: CXRProfile, data_root: Path, run_dir: Path) -> dict:
    """One downstream run via the fine-tuning engine (skipped when finished); returns ``metrics.json``."""
    epochs = profile.epochs[task]
    overrides = [
        f"out_dir={run_dir}", f"data.root={data_root}", f"data.fraction={fraction}",
        f"data.image_size={profile.image_size}", f"data.batch_size={profile.batch_size}",
        f"data.num_workers={profile.num_workers}", f"encoder.source={source}",
        f"trainer.max_epochs={epochs}", f"optim.t_max={epochs}", f"trainer.seed={seed}",
        f"trainer.accelerator={profile.accelerator}", "trainer.devices=1", f"trainer.precision={profile.precision}",
        "trainer.progress_bar=false", f"trainer.patience={'null' if profile.patience is None else profile.patience}",
    ]
    if arch:
        overrides.append(f"encoder.arch={arch}")
    if task == "detection":
        overrides.append(f"detection.width={profile.detection_width}")
    if task == "segmentation":
        overrides.append(f"segmentation.decoder_channels={list(profile.decoder_channels)}")
    cfg = load_finetune_config(preset=f"finetune_tiny_{task}", overrides=overrides, task=task, dataset=dataset)
    return run_finetune(cfg, resume="auto")


def _fraction_slug(fraction: float) -> str:
    return f"frac{fraction:g}"


def run(out: str | Path, profile: str | CXRProfile = "cpu-quick", methods: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None, fractions: Sequence[float] | None = None,
        tasks: Sequence[tuple[str, str]] | None = None, imagenet_weights: str | Path | None = None,
        on_run: Callable[[dict], None] | None = None, data: str | Path | None = None) -> Path:
    """Run the suite (module docstring); returns the report folder.

    ``data``: the user's own data, a folder with ``pretrain/`` (pre-training data in any layout the
    pre-training engine reads) and ``downstream/<dataset>/`` (each task's dataset as distributed);
    ``None``: synthetic twins of the profile's size written once into ``OUT/data``.

    Raises:
        ConfigError: an unknown profile / method / task, or the ImageNet method without weights.
        FileNotFoundError: ``imagenet_weights`` is not a file; ``data`` lacks ``pretrain/`` or a task's dataset.
    """
    if isinstance(profile, str):
        if profile not in CXR_PROFILES:
            raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(CXR_PROFILES)}")
        prof = CXR_PROFILES[profile]
    else:
        prof = profile
    weights = Path(imagenet_weights) if imagenet_weights else None
    if weights is not None and not weights.is_file():
        raise FileNotFoundError(f"{weights}: no such weight file (--imagenet-weights)")
    names = list(methods or prof.methods)
    unknown = [m for m in names if m not in CXR_METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}; methods: {', '.join(CXR_METHODS)}")
    notes = []
    if "imagenet" in names and weights is None:
        names.remove("imagenet")
        notes.append("ImageNet init: left out (no local weight file given; --imagenet-weights PATH, timm / "
                     f"torchvision {prof.arch} state dict). Pre-training starts from random init.")
    task_list = [tuple(t) for t in (tasks or prof.tasks)]
    bad = [t for t in task_list if t not in DOWNSTREAM_TASKS]
    if bad:
        raise ConfigError(f"unknown task/dataset pair(s) {bad}; known: {list(DOWNSTREAM_TASKS)}")
    if data is not None:
        datasets = dict.fromkeys(d for _, d in task_list)
        wanted = [Path(data) / "pretrain"] + [Path(data) / "downstream" / d for d in datasets]
        absent = [str(p) for p in wanted if not p.exists()]
        if absent:
            raise FileNotFoundError(f"{', '.join(absent)}: not found (--data: a folder with pretrain/ and "
                                    f"downstream/<dataset>/)")
    out = ensure_writable_dir(out)
    started = time.perf_counter()
    own = data is not None
    pretrain_data = Path(data) / "pretrain" if own else out / "data" / "pretrain"
    if not own and not (pretrain_data / ".complete").is_file():
        synth_cxr(pretrain_data, num_studies=prof.pretrain_studies, seed=0, size=prof.pretrain_size)
        atomic_write_text(pretrain_data / ".complete", "")
    downstream = Path(data) / "downstream" if own else out / "data" / "downstream"
    for dataset in dict.fromkeys(d for _, d in task_list):
        if not own and not (downstream / dataset / ".complete").is_file():
            synth_downstream(downstream, dataset, images=prof.twin_images, size=prof.twin_size, seed=0)
            atomic_write_text(downstream / dataset / ".complete", "")
    pretrain_dir = out / "pretrain"
    pretrain_rows = []
    for name in names:
        if CXR_METHODS[name].init is not None:  # not pre-trained
            continue
        result = pretrain_method(name, prof, pretrain_data, pretrain_dir / _slug(name), weights)
        pretrain_rows.append({"method": name, "model": CXR_METHODS[name].model,
                              "train_s": float(result.get("train_seconds", math.nan)),
                              "epochs": prof.pretrain_epochs, **pretrain_quality(result)})
    rows = []
    for task, dataset in task_list:
        for fraction in fractions or prof.fractions:
            for seed in seeds or prof.task_seeds.get(task, prof.seeds):
                for name in names:
                    source, arch = encoder_source(name, prof, pretrain_dir, weights)
                    run_dir = out / "runs" / task / dataset / _slug(name) / _fraction_slug(fraction) / f"seed{seed}"
                    result = finetune_run(task, dataset, fraction, seed, source, arch, prof, downstream / dataset,
                                          run_dir)
                    row = {"task": task, "dataset": dataset, "method": name, "fraction": fraction, "seed": seed,
                           "ablation": CXR_METHODS[name].ablation, "metric": result.get("metric"),
                           "value": 100.0 * float(result["value"]) if result.get("value") is not None else math.nan,
                           "run": str(run_dir.relative_to(out))}
                    rows.append(row)
                    on_run and on_run(row)
    return write_cxr_report(rows, pretrain_rows, out / "report", prof.name, prof, notes,
                            wall_s=time.perf_counter() - started)


# ----------------------------------------------------------------------------- report
def _nan_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan




def task_table(rows: Sequence[dict], task: str) -> str:
    """Markdown, the papers' layout: one row per method, columns dataset x fraction (mean ± std over seeds)."""
    mine = [r for r in rows if r["task"] == task]
    datasets = list(dict.fromkeys(r["dataset"] for r in mine))
    fractions = sorted(dict.fromkeys(r["fraction"] for r in mine))
    head = ["method"] + [f"{DATASET_TITLES.get(d, d)} {f * 100:g}%" for d in datasets for f in fractions]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":--"] + ["--:"] * (len(head) - 1)) + "|"]
    for method in dict.fromkeys(r["method"] for r in mine):
        cells = [method]
        for d in datasets:
            for f in fractions:
                cells.append(mean_std([r["value"] for r in mine
                                        if r["method"] == method and r["dataset"] == d and r["fraction"] == f]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)




def _scope_text(profile_name: str, prof: CXRProfile) -> list[str]:
    if profile_name == "cpu-quick":
        return [
            ("**What cpu-quick can show:** that every method pre-trains with the same engine, data and budget, "
            "exports an encoder that every downstream task loads, and that every task / dataset / fraction / "
            "seed runs, resumes and lands in these tables (the whole pipeline, end to end, on 2 CPU cores)."),
            "",
            ("**What it cannot show:** which method is better. ResNet-18 at 64 px pre-trained for a few epochs on "
            "a few hundred synthetic studies, twins of about a hundred images (the 1 % fraction is one or two "
            "training images), two epochs of segmentation / detection heads and one seed: the differences "
            "between methods here are within run-to-run noise, and no number is comparable to the papers'. "
            "Use `--profile gpu-full` (or your own data with the same code) for the comparison."),
        ]
    if profile_name == "cpu-compare":
        return [
            ("**What cpu-compare can show:** how the methods rank when pre-trained in the CPU demo's setting, where "
             "pre-training measurably learns (the pre-training table: retrieval and zero-shot against the untrained "
             "pipeline), each with the same data, epochs, batch, learning rate and encoder, over 3 seeds of every "
             "downstream run."),
            "",
            (f"**What it cannot show:** the papers' numbers or their margins: {prof.arch} at {prof.image_size} px, "
             "synthetic radiographs drawn from real reports (small findings such as nodules are a few pixels), "
             f"{prof.pretrain_studies} studies instead of ~200,000, one pre-training run per method (seed 42; the "
             "seeds vary only the downstream runs, on the references' fixed labelled subsets), short downstream "
             "budgets; the reference Dice scores an image without foreground 1 when nothing is predicted, so "
             "RSNA / SIIM Dice jump between seeds when a decoder does or does not learn to stay empty."),
        ]
    return [f"Profile {profile_name}: {prof.note}"]


def write_cxr_report(rows: Sequence[dict], pretrain_rows: Sequence[dict], report_dir: Path, profile_name: str,
                     prof: CXRProfile, notes: Sequence[str] = (), wall_s: float | None = None) -> Path:
    """``report.md`` (three tables in the papers' layout + pre-training summary), ``results.csv``,
    ``pretrain.csv`` and ``fractions.png`` in ``report_dir``."""
    report_dir = ensure_writable_dir(report_dir)
    atomic_write_text(report_dir / "results.csv", csv_text(rows))
    if pretrain_rows:
        atomic_write_text(report_dir / "pretrain.csv", csv_text(pretrain_rows))
    seeds = sorted(dict.fromkeys(r["seed"] for r in rows))
    parts = ["# Chest X-ray benchmark", "", f"Profile `{profile_name}`: {prof.note}", "",
             *_scope_text(profile_name, prof), "",
             (f"Frozen image encoder ({prof.arch}, {prof.image_size} px); mean ± std over seeds {seeds} "
             "(a single value: one seed). Per-run files: `runs/<task>/<dataset>/<method>/frac<f>/seed<k>/` "
             "(`results.csv`, `metrics.json`, `config.yaml`, `splits.json`)."), ""]
    parts += [f"Note: {n}" for n in notes] + ([""] if notes else [])
    titles = {"classification": "Linear classification (AUROC % for CheXpert / RSNA, accuracy % for COVIDx)",
              "segmentation": "Segmentation (Dice %)", "detection": "Detection (mAP % over IoU 0.40:0.05:0.75)"}
    for task in ("classification", "segmentation", "detection"):
        if any(r["task"] == task for r in rows):
            parts += [f"## {titles[task]}", "", task_table(rows, task), ""]
    if pretrain_rows:
        parts += ["## Pre-training", ""]
        if all("i2r_R@10" in r for r in pretrain_rows):
            parts += ["Held-out studies of the pre-training data (`pretrain/<method>/report.md`): R@10 (%) both ways "
                      f"(chance {pretrain_rows[0]['chance_R@10']:.1f}), zero-shot mean AUROC (%) of the trained model "
                      "and of the same pipeline untrained.", "",
                      "| method | model | epochs | train (s) | image -> report R@10 | report -> image R@10 "
                      "| zero-shot AUROC | untrained |", "|:--|:--|--:|--:|--:|--:|--:|--:|"]
            parts += [f"| {r['method']} | {r['model']} | {r['epochs']} | {r['train_s']:.0f} | {r['i2r_R@10']:.1f} "
                      f"| {r['r2i_R@10']:.1f} | {r['zero_shot_auroc']:.1f} "
                      f"| {r.get('zero_shot_auroc_untrained', math.nan):.1f} |" for r in pretrain_rows]
        else:
            parts += ["| method | model | epochs | train (s) |", "|:--|:--|--:|--:|"]
            parts += [f"| {r['method']} | {r['model']} | {r['epochs']} | {r['train_s']:.0f} |" for r in pretrain_rows]
        parts.append("")
    if wall_s is not None:
        parts += [f"Wall time of this invocation: {wall_s / 60:.1f} min (finished runs are skipped on resume).", ""]
    atomic_write_text(report_dir / "report.md", "\n".join(parts) + "\n")
    if rows:
        fraction_plot(rows, report_dir / "fractions.png")
    return report_dir


def fraction_plot(rows: Sequence[dict], path: Path) -> Path:
    """One panel per (task, dataset): metric (%) against the label fraction (log axis), one line per method."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from medmodal.io import atomic_path

    pairs = list(dict.fromkeys((r["task"], r["dataset"]) for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cols = min(4, len(pairs))
    nrows = math.ceil(len(pairs) / cols)
    fig = Figure(figsize=(3.2 * cols + 1.5, 2.8 * nrows), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, (task, dataset) in zip(axes, pairs):
        for method in methods:
            mine = [r for r in rows if r["task"] == task and r["dataset"] == dataset and r["method"] == method]
            fractions = sorted(dict.fromkeys(r["fraction"] for r in mine))
            means = [_nan_mean([r["value"] for r in mine if r["fraction"] == f]) for f in fractions]
            ax.plot([100 * f for f in fractions], means, marker="o", label=method)
        ax.set_xscale("log")
        ax.set_title(f"{task}: {DATASET_TITLES.get(dataset, dataset)}", fontsize=9)
        ax.set_xlabel("labels (%)")
        ax.set_ylabel(TASK_METRICS[task], fontsize=8)
    for ax in axes[len(pairs):]:
        ax.set_visible(False)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def with_overrides(profile: CXRProfile, **changes) -> CXRProfile:
    """A copy of ``profile`` with some fields changed (tests, ``--epochs``)."""
    return replace(profile, **changes)


PROFILES = CXR_PROFILES
SUITE = BenchmarkSuite("cxr", CXR_METHODS, CXR_PROFILES, run)
