"""The demos on built-in synthetic data: ``medmodal seg demo`` (old spelling ``medmodal demo``) and
``medmodal cxr demo``; ``medmodal endoscopy demo`` lives in :mod:`medmodal.cli.endoscopy`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli.common import console, user_errors

@user_errors
def demo_cmd(
    ctx: typer.Context,
    out: Optional[Path] = typer.Option(None, "--out", help="folder for the demo's data and outputs (default "
                                       "runs/demo; --task vessels: runs/demo-vessels)"),
    cases: int = typer.Option(16, "--cases", help="synthetic cases to generate (vessels: DRIVE images, half training "
                              "and half test, and half as many CHASE_DB1 images)"),
    size: int = typer.Option(64, "--size", help="volume edge length in voxels (vessels: fixed, 128 px DRIVE and "
                             "160 px CHASE_DB1 photographs)"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="training epochs (default: the demo preset's)"),
    task: str = typer.Option("volumes", "--task", help="volumes (DMAF-Net on synthetic BraTS-layout MRI) | vessels "
                             "(a retinal vessel model on synthetic DRIVE -> CHASE_DB1 twins, then predict) | 2d "
                             "(MSLAU-Net on a synthetic ACDC twin, then predict NIfTI frames) | semi (supervised-only "
                             "vs Mean Teacher on an ACDC twin with 2 labelled patients, then SWDL-Net on an LA2018 "
                             "twin and a predicted volume)"),
):
    """The main job on built-in synthetic data: synthesise, train DMAF-Net briefly, evaluate all subsets
    (--task vessels: synthesise DRIVE and CHASE_DB1 twins, train on DRIVE, score both, predict CHASE_DB1)."""
    import time

    if task == "vessels":
        _vessel_demo(ctx, out or Path("runs/demo-vessels"), cases, epochs)
        return
    if task == "2d":
        _seg2d_demo(ctx, out or Path("runs/demo-2d"), cases, epochs)
        return
    if task == "semi":
        _semi_demo(ctx, out or Path("runs/demo-semi"), cases, epochs)
        return
    if task != "volumes":
        from medmodal.errors import ConfigError

        raise ConfigError(f"unknown --task {task!r}; choose volumes, vessels, 2d or semi")
    from medmodal.experiments.seg.demo import run_demo

    out = out or Path("runs/demo")
    start = time.perf_counter()
    result, run_dir = run_demo(out, cases, size, epochs, say=lambda line: console.print(line, soft_wrap=True))
    console.print(result.markdown, markup=False, soft_wrap=True)
    minutes = (time.perf_counter() - start) / 60
    console.print(f"done in {minutes:.1f} min. per-case CSV: {result.csv}\ntable: {result.table}\n"
                  f"heatmap: {result.heatmap}\nmodel bundle: {run_dir / 'model'}", soft_wrap=True)


def _vessel_demo(ctx: typer.Context, out: Path, images: int, epochs: Optional[int]) -> None:
    """The family's own verbs in a row: ``seg synth`` (DRIVE and CHASE_DB1 twins, once), ``seg train --preset
    train_vessels_demo_cpu``, ``seg predict`` on the CHASE_DB1 twin (probability, mask, overlay per image)."""
    drive, chase, run = out / "fundus" / "DRIVE", out / "fundus" / "CHASEDB1", out / "run"
    steps = []
    if not drive.is_dir():
        steps.append(["synth", str(drive), "--dataset", "drive", "-n", str(images // 2), "-s", "128"])
    if not chase.is_dir():
        steps.append(["synth", str(chase), "--dataset", "chase_db1", "-n", str(images // 2), "-s", "160"])
    steps.append(["train", "--preset", "train_vessels_demo_cpu", "--data", str(drive), "--out", str(run),
                  "--set", f"data.targets=[{chase}]", *(["--set", f"trainer.max_epochs={epochs}"] if epochs else [])])
    steps.append(["predict", "-i", str(chase), "-o", str(out / "predictions"), "-m", str(run), "--continue"])
    family = ctx.parent.command
    for args in steps:
        code = family.main(args, prog_name=ctx.parent.command_path, standalone_mode=False)
        if code:  # a step's one-line error is printed: stop with its exit code
            raise typer.Exit(code)
    console.print(f"overlays (vessels tinted, FOV outlined) in {out / 'predictions'}; synthetic twins: the "
                  f"scores show that the pipeline runs, not how good a method is", soft_wrap=True, highlight=False)


def _seg2d_demo(ctx: typer.Context, out: Path, patients: int, epochs: Optional[int]) -> None:
    """``seg synth`` (an ACDC twin in the SSL4MIS HDF5 form and, for prediction, two patients in the challenge's
    NIfTI layout), ``seg train --preset train_2d_demo_cpu``, ``seg predict`` on a NIfTI patient folder (label maps
    with the input's affine)."""
    acdc, raw, run = out / "ACDC", out / "ACDC-nifti", out / "run"
    steps = []
    if not acdc.is_dir():
        steps.append(["synth", str(acdc), "--dataset", "acdc-h5", "-n", str(max(patients, 10)), "-s", "64"])
    if not raw.is_dir():
        steps.append(["synth", str(raw), "--dataset", "acdc", "-n", "2", "-s", "64", "--seed", "7"])
    steps.append(["train", "--preset", "train_2d_demo_cpu", "--data", str(acdc), "--out", str(run),
                  *(["--set", f"trainer.max_epochs={epochs}"] if epochs else [])])
    family = ctx.parent.command
    for args in steps:
        code = family.main(args, prog_name=ctx.parent.command_path, standalone_mode=False)
        if code:
            raise typer.Exit(code)
    patient = next((p for p in sorted(raw.rglob("patient*")) if p.is_dir()), raw)
    code = family.main(["predict", "-i", str(patient), "-o", str(out / "predictions"), "-m", str(run), "--continue"],
                       prog_name=ctx.parent.command_path, standalone_mode=False)
    if code:
        raise typer.Exit(code)
    console.print(f"label maps (NIfTI, the input's affine) in {out / 'predictions'}; synthetic twins: the scores show "
                  f"that the pipeline runs, not how good a method is", soft_wrap=True, highlight=False)


def _semi_demo(ctx: typer.Context, out: Path, patients: int, epochs: Optional[int]) -> None:
    """``seg synth`` (an ACDC twin, an LA2018 twin), ``seg train --preset train_semi_demo_cpu`` twice (supervised-only
    on the 2 labelled patients, then Mean Teacher with the others unlabelled), ``seg train --preset
    train_swdl_demo_cpu`` (SWDL-Net, 2 labelled volumes), ``seg predict`` on one LA volume; a comparison line."""
    import json

    acdc, la = out / "ACDC", out / "LA"
    more = ["--set", f"trainer.max_epochs={epochs}"] if epochs else []
    steps = []
    if not acdc.is_dir():
        steps.append(["synth", str(acdc), "--dataset", "acdc-h5", "-n", str(max(patients, 10)), "-s", "64"])
    if not la.is_dir():
        steps.append(["synth", str(la), "--dataset", "la2018", "-n", "10", "-s", "40"])
    steps += [["train", "--preset", "train_semi_demo_cpu", "--data", str(acdc), "--out", str(out / "supervised"),
               "--set", "semi.method=none", *more],
              ["train", "--preset", "train_semi_demo_cpu", "--data", str(acdc), "--out", str(out / "mt"), *more],
              ["train", "--preset", "train_swdl_demo_cpu", "--data", str(la), "--out", str(out / "swdl"), *more]]
    family = ctx.parent.command
    for args in steps:
        code = family.main(args, prog_name=ctx.parent.command_path, standalone_mode=False)
        if code:
            raise typer.Exit(code)
    volume = next(iter(sorted(la.rglob("mri_norm2.h5"))))
    code = family.main(["predict", "-i", str(volume), "-o", str(out / "predictions"), "-m", str(out / "swdl"),
                        "--continue"], prog_name=ctx.parent.command_path, standalone_mode=False)
    if code:
        raise typer.Exit(code)
    dice = {}
    for name in ("supervised", "mt", "swdl"):
        metrics = json.loads((out / name / "metrics.json").read_text())
        dice[name] = 100 * (metrics["splits"]["test"]["scores"]["Dice"]["mean"] or 0.0)
    console.print(f"test mean Dice: supervised-only {dice['supervised']:.2f} vs Mean Teacher {dice['mt']:.2f} (2 "
                  f"labelled ACDC-twin patients); SWDL-Net {dice['swdl']:.2f} (2 labelled LA-twin volumes). Label "
                  f"map in {out / 'predictions'}. Synthetic twins and a seconds-long budget: the scores show that the "
                  f"pipeline runs, not which method is better (docs/results/semi.md has the real-data tables)",
                  soft_wrap=True, highlight=False)


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
