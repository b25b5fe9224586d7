"""The demos on built-in synthetic data: ``medmodal seg demo`` (old spelling ``medmodal demo``) and
``medmodal cxr demo``; ``medmodal endoscopy demo`` lives in :mod:`medmodal.cli.endoscopy`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli.common import console, user_errors

@user_errors
def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="folder for the demo's data and outputs"),
    cases: int = typer.Option(16, "--cases", help="synthetic cases to generate"),
    size: int = typer.Option(64, "--size", help="volume edge length in voxels"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="training epochs (default: the demo preset's)"),
):
    """The main job on built-in synthetic data: synthesise, train DMAF-Net briefly, evaluate all subsets."""
    import time

    from medmodal.experiments.seg.demo import run_demo

    start = time.perf_counter()
    result, run_dir = run_demo(out, cases, size, epochs, say=lambda line: console.print(line, soft_wrap=True))
    console.print(result.markdown, markup=False, soft_wrap=True)
    minutes = (time.perf_counter() - start) / 60
    console.print(f"done in {minutes:.1f} min. per-case CSV: {result.csv}\ntable: {result.table}\n"
                  f"heatmap: {result.heatmap}\nmodel bundle: {run_dir / 'model'}", soft_wrap=True)


def cxr_demo_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(Path("runs/demo_cmcgns"), "--out", help="folder for the demo's data/ and run/"),
    studies: int = typer.Option(2000, "--studies", "-n", help="synthetic studies to draw"),
    reports: Optional[Path] = typer.Option(None, "--reports", help="Open-i indiana_reports.csv the studies are "
                                           "drawn from (default: $MEDMODAL_IU_REPORTS; else 20 built-in templates, "
                                           "then the README's CM-CGNS figures do not apply)"),
):
    """CM-CGNS on built-in data, as `make demo`: `cxr synth OUT/data -n 2000`, then `cxr pretrain --preset
    pretrain_demo_cpu` into OUT/run (retrieval and zero-shot tables at the end)."""
    family = ctx.parent.command  # the family's group: its own `synth` and `pretrain` verbs, with their output
    synth = ["synth", str(out / "data"), "-n", str(studies), *(["--reports", str(reports)] if reports else [])]
    pretrain = ["pretrain", "--preset", "pretrain_demo_cpu", "--data", str(out / "data"), "--out", str(out / "run")]
    for args in (synth, pretrain):
        code = family.main(args, prog_name=ctx.parent.command_path, standalone_mode=False)
        if code:  # a step's one-line error is printed: stop with its exit code
            raise typer.Exit(code)
