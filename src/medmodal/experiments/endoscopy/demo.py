"""The endoscopy demo (``medmodal endoscopy demo``; old spelling ``demo-endoscopy``): the built-in paired
dataset, MICS pre-training, fine-tuning at 5 % labels with and without pre-training and the WLI-only
baseline, one comparison table (the cpu-quick benchmark profile, three of its methods)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

from medmodal.data.endoscopy.synthetic import synth_endoscopy
from medmodal.experiments.endoscopy.benchmark import run

__all__ = ["DEMO_FINETUNE_EPOCHS", "DEMO_METHODS", "DEMO_PRETRAIN_EPOCHS", "run_demo"]

#: pre-training / fine-tuning epochs of the demo (the cpu-quick benchmark's); 10 / 6 was measured
#: faster but left every model near chance (docs/results/endoscopy.md)
DEMO_PRETRAIN_EPOCHS = 20
DEMO_FINETUNE_EPOCHS = 10
DEMO_METHODS = ("wli-only", "fusion-no-pretrain", "mics")


def run_demo(out: Path, samples: int = 240, seeds: Sequence[int] = (0,), pretrain_epochs: int = DEMO_PRETRAIN_EPOCHS,
             finetune_epochs: int = DEMO_FINETUNE_EPOCHS, say: Callable[[str], None] = print,
             on_run: Optional[Callable[[dict], None]] = None) -> Path:
    """Write ``samples`` synthetic WLI / NBI pairs of 64 px into ``OUT/data`` (once), run the demo's methods
    at 5 % labels for ``seeds``; returns the report folder (``comparison.md``)."""
    data = out / "data"
    if not (data / "synthetic.json").is_file():
        synth_endoscopy(data, samples, 64, seed=0)
        say(f"built-in paired dataset: {samples} WLI / NBI pairs of 64 px in {data}")
    return run(out, "cpu-quick", list(DEMO_METHODS), list(seeds), [0.05], data=data, pretrain_epochs=pretrain_epochs,
               finetune_epochs=finetune_epochs, on_run=on_run)
