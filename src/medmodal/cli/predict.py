"""``medmodal predict``: segment new cases with whatever sequences they have."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli.common import LayoutOpt, MapOpt, app, console, discover, user_errors

@app.command("predict")
@user_errors
def predict_cmd(
    input: Path = typer.Option(..., "-i", "--input", help="a case folder or a folder of cases (any layout)"),
    output: Path = typer.Option(..., "-o", "--output", help="folder for <case>.nii.gz"),
    model: Path = typer.Option(..., "-m", "--model", help="run folder, model bundle folder, or .ckpt"),
    device: str = typer.Option("auto", "--device", help="auto (GPU if available) | cpu | cuda"),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32"),
    save_probabilities: bool = typer.Option(False, "--save-probabilities", help="also write <case>.npz"),
    resume: bool = typer.Option(False, "--continue", help="skip cases already predicted"),
    disable_progress_bar: bool = typer.Option(False, "--disable-progress-bar"),
    layout: str = LayoutOpt, mapping: Optional[str] = MapOpt,
    label_convention: Optional[str] = typer.Option(None, "--output-labels",
                                                   help="brats2020 (ET=4) | brats2023 (ET=3) for BraTS models; "
                                                        "default: the input's"),
):
    """Segment new cases; any non-empty subset of the model's sequences may be present."""
    import torch

    from medmodal.engine.checkpoint import load_model
    from medmodal.engine.segmentation.inference import resolve_device
    from medmodal.engine.segmentation.predict import PredictOptions, predict_cases

    device = str(resolve_device(device))
    net, meta = load_model(model, map_location=device)
    cases = discover(input, layout, mapping, None, meta["modalities"])
    options = PredictOptions(save_probabilities=save_probabilities, skip_existing=resume,
                             label_convention=label_convention, precision=precision)

    def report(case, status):
        if not disable_progress_bar:
            have = "+".join(m for m in meta["modalities"] if m in case.images)
            console.print(f"{case.case_id}: {status} ({have})")

    with torch.inference_mode():
        predict_cases(net, meta, cases, output, options, device=torch.device(device), on_case=report)
    console.print(f"predictions in {output}")
