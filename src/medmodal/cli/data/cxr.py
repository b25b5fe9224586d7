"""``medmodal data ...`` for chest X-rays: the synthetic IU dataset and the report tables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from medmodal.cli.common import console, data_app, user_errors


@data_app.command("synth-cxr")
@user_errors
def synth_cxr_cmd(
    out: Path = typer.Argument(..., help="output folder (IU X-ray R2Gen layout: annotation.json + images/<id>/0.png)"),
    studies: int = typer.Option(100, "--studies", "-n", help="number of studies (one frontal image each)"),
    seed: int = typer.Option(0, "--seed"),
    size: int = typer.Option(256, "--size", "-s", help="image side in pixels"),
    reports: Optional[Path] = typer.Option(None, "--reports", help="Open-i indiana_reports.csv (default: "
                                           "$MEDMODAL_IU_REPORTS or shared/data/cxr-reports-real/; else the "
                                           "built-in templates)"),
    workers: int = typer.Option(min(2, os.cpu_count() or 1), "--workers", help="rendering processes"),
):
    """Write synthetic chest radiographs drawn from real IU X-ray reports, with labels, masks and boxes."""
    from medmodal.data.cxr.synthetic import TEMPLATE_REPORTS, synth_cxr

    summary = synth_cxr(out, studies, seed=seed, size=size, reports=reports, workers=workers, progress=True)
    if summary["source"] == "templates":
        console.print(f"[yellow]note:[/] no indiana_reports.csv found: reports come from medmodal's "
                      f"{len(TEMPLATE_REPORTS)} built-in templates, not real IU reports (give --reports)")
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    positives = ", ".join(f"{k} {v}" for k, v in summary["positives"].items())
    console.print(f"wrote {summary['studies']} studies to {out} ({splits}); reports from {summary['source']}")
    console.print(f"drawn findings (images): {positives}; {summary['boxes']} boxes")
