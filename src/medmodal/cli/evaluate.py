"""``medmodal seg evaluate``: score a trained model on every case under every subset of sequences; a fundus
vessel run (:func:`medmodal.engine.fundus.evaluate.is_vessel_run`) is scored on the native grid instead
(:func:`medmodal.engine.fundus.evaluate.evaluate_vessel_run`), a 2-D run by
:func:`medmodal.engine.seg2d.evaluate.evaluate_seg2d_run` and a 3-D run (``task: 3d``) by sliding window
(:func:`medmodal.engine.seg3d.evaluate.evaluate_seg3d_run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli.common import (AffineTolOpt, LabelsOpt, LayoutOpt, MapOpt, SkipInvalidOpt, console,
                                  user_errors)
from medmodal.errors import ConfigError

@user_errors
def evaluate_cmd(
    run: Path = typer.Argument(..., help="run folder (or model bundle / .ckpt with --data)"),
    data: Optional[Path] = typer.Option(None, "--data", help="dataset folder (default: the run's data.root); a 3-D "
                                        "run: any 3-D layout (la2018, bhsd, nifti_folder) with the model's classes"),
    split: str = typer.Option("test", "--split", help="train | val | test | all"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output folder (default <run>/eval_<split>; with --data "
                                       "another dataset: <run>/eval_<data folder name>_<split>; <run> is the run "
                                       "folder also when its model bundle or a checkpoint is given; a vessel run's default: "
                                       "<run>/eval_<data folder name>_<split>, its own source included)"),
    device: str = typer.Option("auto", "--device", help="auto (GPU if available) | cpu | cuda"),
    layout: str = LayoutOpt, mapping: Optional[str] = MapOpt, labels: Optional[str] = LabelsOpt,
    hd95: Optional[bool] = typer.Option(None, "--hd95/--no-hd95",
                                       help="also compute HD95 (slower; a 3-D run: HD95 and ASD); default: the "
                                            "run's eval.hd95 (a 3-D run: eval.surface; on)"),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="evaluation protocol: passion | brats-challenge | "
                                           "monai-max-directed | myops | transunet | auto; default: the run's eval.protocol "
                                           "(monai-max-directed for a model bundle that records none)"),
    affine_tolerance: float = AffineTolOpt, skip_invalid: bool = SkipInvalidOpt,
):
    """Score every case under every subset of sequences; writes CSV, markdown table and heatmap.

    A fundus vessel run: Dice, Sen, Spe, Acc, AUC-ROC, AUC-PR inside the FOV and whole-image Dice per image on
    the native grid; writes per_image.csv, table.md and summary.json into <run>/eval_<data name>_<split>
    (--map, --labels, --hd95, --protocol are volume options and are refused there).

    A 2-D run (task: 2d): per-class Dice and HD95 (voxels) per volume under its bundle's protocol (transunet), or
    Dice / IoU / precision / recall per polyp image, on the native grid; writes per_case.csv, table.md and
    summary.json into <run>/eval_<data name>_<split> (no heatmap; --map, --labels, --protocol refused).

    A 3-D run (task: 3d; V-Net, SWDL-Net): Dice, Jaccard, HD95 and ASD per class per volume by sliding window with
    the bundle's patch, overlap and scale, as the run scored its test split (its own test split reproduces
    metrics.json); --data another 3-D data folder (la2018, bhsd, nifti_folder; its test split, or --split all);
    writes per_case.csv, table.md and summary.json into <run>/eval_<data name>_<split> (no heatmap; --map,
    --labels, --protocol refused).
    """
    from medmodal.engine.fundus.evaluate import evaluate_vessel_run, is_vessel_run
    from medmodal.engine.seg2d.evaluate import evaluate_seg2d_run, is_seg2d_run
    from medmodal.engine.seg3d.evaluate import evaluate_seg3d_run, is_seg3d_run

    if is_seg2d_run(run):
        given = [name for name, value in (("--map", mapping), ("--labels", labels), ("--protocol", protocol))
                 if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: volume (MRI) options; {run} is a 2-D run (scored under the "
                              f"protocol its bundle records)")
        planar = evaluate_seg2d_run(run, data=data, split=split, out=out, device=device, layout=layout, hd95=hd95)
        console.print(planar.markdown, markup=False, soft_wrap=True)
        console.print(f"per-case CSV: {planar.csv}\ntable: {planar.table}", soft_wrap=True, markup=False,
                      highlight=False)
        return
    if is_seg3d_run(run):
        given = [name for name, value in (("--map", mapping), ("--labels", labels), ("--protocol", protocol))
                 if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: volume (MRI) options; {run} is a 3-D run (scored as it was "
                              f"trained: sliding window, Dice, Jaccard, HD95, ASD)")
        volumes = evaluate_seg3d_run(run, data=data, split=split, out=out, device=device, layout=layout,
                                     surface=hd95)
        console.print(volumes.markdown, markup=False, soft_wrap=True)
        console.print(f"per-case CSV: {volumes.csv}\ntable: {volumes.table}\nsummary: {volumes.summary}",
                      soft_wrap=True, markup=False, highlight=False)
        return
    if is_vessel_run(run):
        given = [name for name, value in (("--map", mapping), ("--labels", labels), ("--hd95/--no-hd95", hd95),
                                          ("--protocol", protocol)) if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: volume (MRI) options; {run} is a retinal vessel run")
        vessels = evaluate_vessel_run(run, data=data, split=split, out=out, device=device, layout=layout)
        console.print(vessels.markdown, markup=False, soft_wrap=True)
        console.print(f"per-image CSV: {vessels.csv}\ntable: {vessels.table}", soft_wrap=True, markup=False,
                      highlight=False)
        return
    from medmodal.evaluation.report import run_evaluation

    result = run_evaluation(run, data=data, split=split, out=out, device=device, layout=layout, mapping=mapping,
                            labels=labels, hd95=hd95, progress=progress, precision=precision, protocol=protocol,
                            affine_tolerance=affine_tolerance, skip_invalid=skip_invalid)
    console.print(result.markdown, markup=False, soft_wrap=True)
    console.print(f"per-case CSV: {result.csv}\ntable: {result.table}\nheatmap: {result.heatmap}", soft_wrap=True)
