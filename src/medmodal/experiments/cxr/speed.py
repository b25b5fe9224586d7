"""CM-CGNS speed benchmark (``medmodal cxr speed``; old spelling ``cxr speed``): batched vs
per-sample step.

Measured in one run on one machine, on the same batch and from the same initial weights:

* ``batched``: :meth:`CMCGNS.compute_losses` (padded batches with masks, no loop over samples);
* ``per-sample``: :func:`~medmodal.models.image_text.reference_loop.reference_compute_losses`,
  the released code's structure (Python loops over reports and sentences, per-report
  cross-attention / SimSiam / attention pooling, broadcast pairwise cosines, a Python-list
  hard-negative weight matrix).

Each is timed as a full training step (forward, backward, Adam step; released optimiser Adam
lr 1e-5, wd 1e-6) in stage I and stage II, and once more with the encoders' outputs cached
("heads only": everything after the image / text encoders, the part the two formulations
differ in). The k-means is seeded during warm-up (activation threshold forced to 1.0), so the
cluster-guided path is timed.

The batch: real Indiana University (Open-i) reports (``findings`` + ``impression`` of
``indiana_reports.csv``; sentences split at full stops), tokenised by the model's tokenizer,
and random images. Prints a table and writes JSON.
"""

from __future__ import annotations

import copy
import csv
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from medmodal.data.cxr.synthetic import default_reports_path
from medmodal.errors import ConfigError
from medmodal.experiments.suite import SpeedSuite
from medmodal.experiments.timing import time_interleaved
from medmodal.models import create_model
from medmodal.models.image_text.reference_loop import reference_compute_losses

__all__ = ["CMCGNSSpeedSettings", "SUITE", "format_report", "load_report_sentences", "run"]

#: used when no IU reports file is given (``--reports`` / ``$MEDMODAL_IU_REPORTS``)
FALLBACK_REPORTS = (
    "The heart is normal in size. The mediastinum is unremarkable. The lungs are clear.",
    "Borderline cardiomegaly. Midline sternotomy wires. Enlarged pulmonary arteries. Clear lungs.",
    "No displaced rib fractures, pneumothorax, or pleural effusion identified. Well-expanded and clear lungs. "
    "Mediastinal contour within normal limits. No acute cardiopulmonary abnormality identified.",
    "There is a small left pleural effusion. Patchy opacity at the left lung base. No pneumothorax.",
)


@dataclass
class CMCGNSSpeedSettings:
    image_encoder: str = "resnet18"
    image_size: int = 128
    batch_size: int = 32
    text_encoder_path: str | None = None  # None: the shipped MiniLM-L6
    max_text_length: int = 256
    reports_csv: str | None = None  # None: $MEDMODAL_IU_REPORTS (data/cxr/synthetic.py default_reports_path)
    steps: int = 3  # timed rounds (the two variants alternate); the median is reported
    warmup: int = 1  # the first warm-up step seeds the k-means
    threads: int | None = None  # torch.set_num_threads; None: leave as is
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    model_kwargs: dict | None = None  # further CMCGNSConfig fields
    preset: str | None = None  # the pre-training preset the settings were taken from (reported)

    @classmethod
    def from_pretrain_config(cls, cfg, preset: str | None = None, **overrides) -> "CMCGNSSpeedSettings":
        """The model a pre-training config trains (:class:`~medmodal.engine.image_text.config.PretrainConfig`):
        its ``model.kwargs`` (image encoder, embedding size, clusters, decoder, text-feature cache ...),
        ``data.image_size``, ``data.max_length`` and ``data.batch_size``; ``overrides`` win.

        Raises:
            ValueError: the config's model is not ``cmcgns``.
        """
        if cfg.model.name != "cmcgns":
            raise ConfigError(f"cxr speed times CM-CGNS, but the config trains {cfg.model.name!r}")
        kwargs = dict(cfg.model.kwargs)
        values = {"image_encoder": kwargs.pop("image_encoder", cls.image_encoder),
                  "image_size": kwargs.pop("image_size", cfg.data.image_size),
                  "max_text_length": cfg.data.max_length, "batch_size": cfg.data.batch_size,
                  "text_encoder_path": kwargs.pop("text_encoder_path", None), "model_kwargs": kwargs,
                  "preset": preset}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def load_report_sentences(path: str | Path | None, count: int) -> tuple[list[list[str]], str]:
    """``count`` reports as sentence lists: ``impression + findings`` of the IU CSV split at full
    stops (first reports in file order with at least one sentence); cycles the built-in
    :data:`FALLBACK_REPORTS` when no file is found. Returns ``(reports, source description)``."""
    path = Path(path) if path else default_reports_path()
    texts: list[str] = []
    if path is not None and Path(path).is_file():
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                text = f"{row.get('impression') or ''} {row.get('findings') or ''}".strip()
                if text:
                    texts.append(text)
                if len(texts) >= count:
                    break
        source = f"{path} (first {len(texts)} reports)"
    else:
        source = ("built-in fallback sentences: no indiana_reports.csv found (give --reports or set "
                  "MEDMODAL_IU_REPORTS); the README's figures use the real IU reports")
    while len(texts) < count:
        texts.append(FALLBACK_REPORTS[len(texts) % len(FALLBACK_REPORTS)])
    reports = [[s.strip() for s in re.split(r"\.", t) if s.strip()] for t in texts[:count]]
    return reports, source


def _train_step(model, loss_fn, batch, stage: int) -> Callable[[], None]:
    cfg = model.config
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate,
                           weight_decay=cfg.weight_decay)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model, batch, stage=stage, update_clusters=True)["loss"].backward()
        opt.step()

    return step


def _batched(model, batch, *, stage, update_clusters):
    return model.compute_losses(batch, stage=stage, update_clusters=update_clusters)


def _cache_encoders(model, batch) -> None:
    """Replace the model's encoder calls by cached outputs (leaf tensors that take gradients)."""
    with torch.no_grad():
        local, global_, grid = model.image_parts(batch["image"])
        tokens = model.text_tokens(batch["input_ids"], batch["attention_mask"])
    local, global_, tokens = (t.clone().requires_grad_(True) for t in (local, global_, tokens))
    model.image_parts = lambda images: (local, global_, grid)
    model.text_tokens = lambda input_ids, attention_mask: tokens


def run(s: CMCGNSSpeedSettings, out_json: str | Path | None = None) -> dict:
    """Time both formulations (see the module docstring); returns the report dict."""
    if s.threads:
        torch.set_num_threads(int(s.threads))
    device = torch.device(s.device)
    kwargs = dict(s.model_kwargs or {})
    kwargs.setdefault("kmeans_activation_cosine", 1.0)  # seed the clusters during warm-up
    torch.manual_seed(0)
    base = create_model("cmcgns", image_encoder=s.image_encoder, image_size=s.image_size,
                        text_encoder_path=s.text_encoder_path, max_text_length=s.max_text_length, **kwargs).to(device)
    reports, source = load_report_sentences(s.reports_csv, s.batch_size)
    batch = base.text_encoder.tokenize(reports, s.max_text_length)
    g = torch.Generator().manual_seed(0)
    batch["image"] = torch.rand(s.batch_size, 3, s.image_size, s.image_size, generator=g) * 2 - 1
    batch = {k: v.to(device) for k, v in batch.items()}
    sentences = int(batch["num_sentences"].sum())
    results: dict[str, dict] = {}
    for name, stage, heads_only in (("train_stage1", 1, False), ("train_stage2", 2, False),
                                    ("heads_only_stage2", 2, True)):
        models, steps = {}, {}
        for impl, fn in (("per_sample", reference_compute_losses), ("batched", _batched)):
            models[impl] = model = copy.deepcopy(base).train()
            if heads_only:
                _cache_encoders(model, batch)
            steps[impl] = _train_step(model, fn, batch, stage)
        torch.manual_seed(1)
        row = time_interleaved(steps, device, s.steps, s.warmup)
        for impl, model in models.items():
            row[impl]["steps_per_s"] = 1.0 / row[impl]["seconds_per_step"]
            row[impl]["clusters_active"] = bool(model.kmeans.initialized.item())
        row["speedup"] = row["per_sample"]["seconds_per_step"] / row["batched"]["seconds_per_step"]
        row["speedup_cpu_time"] = row["per_sample"]["cpu_seconds_per_step"] / row["batched"]["cpu_seconds_per_step"]
        results[name] = row
        del models, steps
    report = {
        "settings": asdict(s),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "batch": {"reports": s.batch_size, "sentences": sentences, "tokens_padded": int(batch["input_ids"].shape[1]),
                  "source": source, "text_encoder": str(base.text_encoder.path), "embed_dim": base.config.embed_dim,
                  "num_clusters": base.config.num_clusters},
        "results": results,
    }
    if out_json:
        from medmodal.io import atomic_write_json

        atomic_write_json(out_json, report)
    return report


def format_report(report: dict) -> str:
    s, b = report["settings"], report["batch"]
    text = Path(b["text_encoder"])
    lines = [
        f"device: {report['device']}, torch {report['torch']}; CM-CGNS {s['image_encoder']} at {s['image_size']} px, "
        f"text {text.parent.name}/{text.name}, batch {b['reports']} reports / {b['sentences']} sentences / "
        f"{b['tokens_padded']} tokens, E={b['embed_dim']}, K={b['num_clusters']} (clusters active), "
        f"median of {s['steps']} alternating steps"
        + (f"; model of the pre-training preset {s['preset']}" if s.get("preset") else "")
        + (f" (text features cached: {'yes' if (s.get('model_kwargs') or {}).get('cache_text_features') else 'no'})"),
        f"reports: {b['source']}",
        "| measurement | per-sample (reference-style) | batched (medmodal) | speed-up (wall) | speed-up (CPU time) |",
        "|---|---|---|---|---|",
    ]
    labels = {"train_stage1": "train step, stage I", "train_stage2": "train step, stage II (+ CM-MIR)",
              "heads_only_stage2": "heads only (encoders cached), stage II"}
    for key, label in labels.items():
        row = report["results"][key]
        ps, bt = row["per_sample"], row["batched"]
        lines.append(f"| {label}: steps/s (s/step) | {ps['steps_per_s']:.3f} ({ps['seconds_per_step']:.3f}) | "
                     f"{bt['steps_per_s']:.3f} ({bt['seconds_per_step']:.3f}) | {row['speedup']:.2f}x | "
                     f"{row['speedup_cpu_time']:.2f}x |")
    return "\n".join(lines)


SUITE = SpeedSuite("cxr", CMCGNSSpeedSettings, run, format_report)
