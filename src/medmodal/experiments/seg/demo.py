"""The segmentation demo (``medmodal seg demo``; old spelling ``medmodal demo``): synthesise a BraTS-layout
dataset, train DMAF-Net briefly with the ``demo_cpu`` preset, evaluate every subset of sequences."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from medmodal.config import load_config, packaged_config
from medmodal.data.volumes.synthetic_brats import synth_brats
from medmodal.engine.segmentation.train import run_training
from medmodal.evaluation.report import run_evaluation

__all__ = ["run_demo"]


def run_demo(out: Path, cases: int = 16, size: int = 64, epochs: Optional[int] = None,
             say: Callable[[str], None] = print):
    """Write ``cases`` synthetic cases of ``size``^3 into ``OUT/data`` (once), train the ``demo_cpu``
    preset into ``OUT/run`` (resumed / skipped when done; ``epochs``: ``trainer.max_epochs``, default the
    preset's) and evaluate it on the test split. Returns ``(evaluation result, run folder)``."""
    data = out / "data"
    if not any(data.glob("*/*_seg.nii.gz")):
        synth_brats(data, num_cases=cases, size=size, seed=0)
        say(f"synthetic BraTS-layout dataset: {cases} cases of {size}^3 in {data}")
    overrides = [f"trainer.max_epochs={epochs}"] if epochs else []
    cfg = load_config(packaged_config("demo_cpu"), overrides)
    cfg.out_dir = str(out / "run")
    cfg.data.root = str(data)
    run_dir = run_training(cfg, resume="auto")
    return run_evaluation(run_dir, split="test", progress=True), run_dir
