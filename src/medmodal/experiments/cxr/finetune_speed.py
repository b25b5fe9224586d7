"""Speed benchmark of the linear probe: cached features vs re-encoding every epoch (``medmodal cxr finetune-speed``).

Both runs go through :func:`~medmodal.engine.finetune.train.run_finetune` on the same data, the
same encoder, the same epochs (early stopping off), the same seed (hence the same head
initialisation and batch order), and both test their best validation checkpoint:

* ``cached``: ``classification.features=cached``: the frozen encoder runs once over train + val +
  test (evaluation view), the head trains on the stored features; the time includes that
  extraction (the feature cache starts empty);
* ``re-encode``: ``classification.features=augmented`` with ``classification.train_transform=eval``:
  the frozen encoder runs on every training and validation batch of every epoch, as the
  references' probe does, but on the evaluation view (centre crop) instead of the training
  augmentation, so both paths see identical images and must reach the same AUROC (up to float
  rounding of batched convolutions). With the reference augmentation the re-encode path would be
  slower still (the augmentation costs time) and its AUROC would differ by design.

The decoded-image cache is filled before either run is timed (image decoding counts for neither),
and an untimed 1-epoch warm-up run at 64 px takes the process's one-time costs (lazy imports, the
first Trainer and logger set-up). Wall times are whole ``run_finetune`` calls (data reading, model
building, Lightning, the test of the best checkpoint).
"""

from __future__ import annotations

import copy
import dataclasses
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from medmodal.engine.finetune.config import ClassificationConfig, check_config
from medmodal.experiments.suite import SpeedSuite

__all__ = ["FINETUNE_SUITE", "LinearProbeSpeedSettings", "format_report", "load_report", "run"]


@dataclass
class LinearProbeSpeedSettings:
    """What the benchmark runs (defaults: an RSNA twin, ResNet-18 random init at 224, 15 epochs)."""

    data: str = "runs/bench_finetune/data/rsna"
    dataset: str = "rsna"
    encoder: str = "random"
    arch: str = "resnet18"
    image_size: int = 224
    epochs: int = 15
    batch_size: int = 48
    fraction: float = 1.0
    num_workers: int = 0
    accelerator: str = "cpu"
    seed: int = 43


def _config(s: LinearProbeSpeedSettings, out: Path, features: str) -> ClassificationConfig:
    cfg = ClassificationConfig()
    cfg.data.dataset, cfg.data.root, cfg.data.fraction = s.dataset, str(s.data), s.fraction
    cfg.data.image_size, cfg.data.batch_size, cfg.data.num_workers = s.image_size, s.batch_size, s.num_workers
    cfg.data.cache_dir = str(out / "cache")
    cfg.encoder.source, cfg.encoder.arch = s.encoder, s.arch
    cfg.trainer.max_epochs, cfg.trainer.patience, cfg.trainer.seed = s.epochs, None, s.seed
    cfg.trainer.accelerator, cfg.trainer.progress_bar, cfg.trainer.devices = s.accelerator, False, 1
    cfg.optim.t_max = 100  # the reference's cosine period, equal for both paths
    cfg.classification.features = features
    cfg.classification.train_transform = "eval"
    cfg.out_dir = str(out / ("cached" if features == "cached" else "re-encode"))
    check_config(cfg)
    return cfg


def run(settings: LinearProbeSpeedSettings, out: str | Path) -> dict:
    """Run both paths (module docstring); write ``out/speed.json``; return the report."""
    from medmodal.engine.finetune.data import FinetuneDataModule
    from medmodal.engine.finetune.train import run_finetune
    from medmodal.io import atomic_write_json

    out = Path(out)
    for name in ("cached", "re-encode"):
        shutil.rmtree(out / name, ignore_errors=True)
    for stale in (out / "cache").glob("features*.npy") if (out / "cache").is_dir() else ():
        stale.unlink()  # the cached path must pay for its extraction
    cached_cfg, encode_cfg = _config(settings, out, "cached"), _config(settings, out, "augmented")
    prefill = FinetuneDataModule(copy.deepcopy(encode_cfg))
    prefill.image_cache.prefill()
    # untimed warm-up (lazy imports, first Trainer / logger set-up), so that neither timed run pays them
    warm = dataclasses.replace(settings, image_size=64, epochs=1)
    warm_cfg = _config(warm, out / "warm-up", "cached")
    warm_cfg.out_dir, warm_cfg.data.cache_dir = str(out / "warm-up" / "run"), str(out / "warm-up" / "cache")
    run_finetune(warm_cfg, resume="never")
    shutil.rmtree(out / "warm-up", ignore_errors=True)
    rows = {}
    for name, cfg in (("cached", cached_cfg), ("re-encode", encode_cfg)):
        start = time.perf_counter()
        result = run_finetune(cfg, resume="never")
        rows[name] = {"wall_seconds": round(time.perf_counter() - start, 2), "epochs": result["epochs"],
                      "metric": result["metric"], "value": result["value"], "test": result["test"]}
    ratio = rows["re-encode"]["wall_seconds"] / max(rows["cached"]["wall_seconds"], 1e-9)
    a, b = rows["cached"]["value"], rows["re-encode"]["value"]
    report = {"settings": settings.__dict__ | {"data": str(settings.data)}, "counts": prefill.counts(),
              "rows": rows, "speedup": round(ratio, 2),
              "metric_difference": None if a is None or b is None else abs(a - b),
              "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
              "machine": f"{platform.machine()} {platform.processor() or ''}".strip()}
    atomic_write_json(out / "speed.json", report)
    return report


def format_report(report: dict) -> str:
    """The printed table: path, wall time, epochs, test metric; then ratio and metric difference."""
    s, counts = report["settings"], report["counts"]
    metric = report["rows"]["cached"]["metric"]
    lines = [f"linear probe, {s['dataset']} ({counts['train']} train / {counts['val']} val / {counts['test']} test "
             f"images), {s['arch']} {s['encoder']} at {s['image_size']} px, {s['epochs']} epochs, batch "
             f"{s['batch_size']}, {report['torch_threads']} torch thread(s)",
             f"{'path':<12} {'wall s':>9} {'epochs':>7} {'test ' + metric:>14}"]
    for name, row in report["rows"].items():
        value = "n/a" if row["value"] is None else f"{row['value']:.4f}"
        lines.append(f"{name:<12} {row['wall_seconds']:>9.1f} {row['epochs']:>7d} {value:>14}")
    diff = report["metric_difference"]
    lines.append(f"speed-up (re-encode / cached): {report['speedup']:.1f}x; |difference in {metric}|: "
                 f"{'n/a' if diff is None else f'{diff:.2e}'}")
    return "\n".join(lines)


def load_report(path: str | Path) -> dict:
    from medmodal.io import read_json_file

    return read_json_file(path)


FINETUNE_SUITE = SpeedSuite("cxr", LinearProbeSpeedSettings, run, format_report)
