"""``medmodal score``: score a folder of predictions against a folder of references (nnU-Net style)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli.common import (AffineTolOpt, LabelsOpt, LayoutOpt, MapOpt, ProtocolOpt, console, err_console,
                                  user_errors)


@user_errors
def score_cmd(
    pred: Path = typer.Option(..., "-p", "--pred", help="folder of predicted label maps <case>.nii.gz"),
    ref: Path = typer.Option(..., "-r", "--ref", help="reference labels: any known layout (BraTS case folders, "
                                                     "nnU-Net raw or labelsTr, MyoPS, a flat folder of <case>.nii.gz)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output folder (default <pred>/score_<protocol>)"),
    protocol: str = ProtocolOpt,
    labels: Optional[str] = LabelsOpt,
    pred_labels: Optional[str] = typer.Option(None, "--pred-labels", help="label convention of the predictions "
                                                                           "(default: the references')"),
    layout: str = LayoutOpt, mapping: Optional[str] = MapOpt,
    et_min_voxels: Optional[int] = typer.Option(None, "--et-min-voxels", help="ET post-processing threshold "
                                                                               "(default: the protocol's)"),
    affine_tolerance: float = AffineTolOpt,
    quiet: bool = typer.Option(False, "--quiet", help="no line per case"),
):
    """Score predicted label maps against references, matched by case id; writes per_case.csv, summary.json/.md."""
    from medmodal.evaluation.score import score_folders

    def report(case_id: str, row: dict) -> None:
        if not quiet:
            dice = "  ".join(f"{k[5:]} {v:.4f}" for k, v in row.items() if k.startswith("Dice_"))
            console.print(f"{case_id}: Dice {dice}", highlight=False, soft_wrap=True)

    result = score_folders(pred, ref, protocol, out, labels, pred_labels, layout, mapping, et_min_voxels,
                           affine_tolerance, on_case=report)
    console.print(result.markdown, markup=False, highlight=False, soft_wrap=True)
    for ids, what in ((result.missing_predictions, "reference cases have no prediction"),
                      (result.missing_references, "predictions have no reference")):
        if ids:
            err_console.print(f"[bold yellow]warning:[/] {len(ids)} {what} and were not scored: {', '.join(ids)}",
                              highlight=False, soft_wrap=True)
    console.print(f"per-case CSV: {result.csv}\nsummary: {result.json}\ntable: {result.table}", soft_wrap=True)
