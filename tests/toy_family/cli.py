"""``medmodal toy``: the toy family's verbs and its :class:`~medmodal.cli.family.Family`.

Importing this module imports the family's library modules, which register their model contract and
model, objective, layout reader, bundle format and presets; ``register_family(FAMILY)`` then mounts
the verbs (``medmodal toy synth|train|demo``) and the old spelling ``medmodal toy-demo``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli._run import (ConfigOpt, ResumeOpt, SetOpt, out_option, preset_option, run_and_report, run_config,
                               seed_option)
from medmodal.cli.common import console, user_errors
from medmodal.cli.family import Alias, Family, family_app
from medmodal.config.core import register_presets

import tests.toy_family.model  # noqa: F401  (registers the contract "toy_classifier" and "toy_net")
import tests.toy_family.objective  # noqa: F401  (registers loss.name "toy_ce")
from tests.toy_family.config import load_toy_config
from tests.toy_family.data import synth_toy
from tests.toy_family.engine import run_train

PRESETS = register_presets("toy", Path(__file__).resolve().parent / "configs")

HELP = "A toy family (tests only): synth, train, demo."
app = family_app("toy", HELP)


def report(result) -> None:
    """The one line of a toy run (before ``run folder:``)."""
    if not result.skipped:
        console.print(f"toy: {result['steps']} steps, val/loss {result['val_loss']:.4f}", highlight=False,
                      soft_wrap=True)


@app.command("synth")
@user_errors
def synth_cmd(out: Path = typer.Argument(..., help="output folder (png-csv layout)"),
              images: int = typer.Option(12, "--images", "-n", help="number of images"),
              size: int = typer.Option(8, "--size", "-s", help="image edge in pixels"),
              seed: int = typer.Option(0, "--seed")):
    """Write a toy png-csv folder: images/<id>.png and labels.csv."""
    synth_toy(out, images, size, seed=seed)
    console.print(f"wrote {images} toy images to {out}", highlight=False, soft_wrap=True)


@app.command("train")
@user_errors
def train_cmd(data: Optional[Path] = typer.Option(None, "--data", help="png-csv folder (data.root)"),
              preset: Optional[str] = preset_option("toy", "train"), config: Optional[Path] = ConfigOpt,
              override: list[str] = SetOpt, out: Optional[Path] = out_option("runs/toy/run"),
              seed: Optional[int] = seed_option("0"), resume: str = ResumeOpt):
    """Train a toy classifier; writes checkpoints, logs, a toy/model bundle and metrics.json."""
    cfg = run_config(load_toy_config, config, preset, override, out=out, seed=seed)
    if data is not None:
        cfg.data.root = str(data)
    run_and_report(run_train, cfg, resume, report)


@app.command("demo")
@user_errors
def demo_cmd(out: Path = typer.Option(Path("runs/toy"), "--out", help="folder for data/ and run/"),
             images: int = typer.Option(12, "--images", "-n", help="synthetic images"),
             override: list[str] = typer.Option([], "--set", help="override a value of the train_demo preset")):
    """Synthesise OUT/data, train the train_demo preset into OUT/run, print one line."""
    if not (out / "data" / "labels.csv").is_file():
        synth_toy(out / "data", images)
    cfg = run_config(load_toy_config, None, "train_demo", override, out=out / "run")
    cfg.data.root = str(out / "data")
    run_and_report(run_train, cfg, "auto", report)


FAMILY = Family(
    key="toy", help=HELP, app=app, presets=("train_demo",), benchmark=None, speed=None, demo="demo",
    aliases=(Alias("toy-demo", demo_cmd, "toy demo"),),
    configs={"train": "tests.toy_family.config:ToyRunConfig"},
    smoke=(("toy", "demo", "--out", "{out}", "-n", "8"),),
)
