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


@data_app.command("cxr-reports")
@user_errors
def cxr_reports_cmd(
    root: Path = typer.Argument(..., help="MIMIC-CXR-JPG folder, IU annotation.json, indiana_reports.csv or a CSV"),
    out: Path = typer.Option(..., "--out", "-o", help="study table to write (.csv)"),
    layout: str = typer.Option("auto", "--layout", help="auto | mimic | iu | openi | csv"),
    views: Optional[str] = typer.Option(None, "--views", help="frontal | all (default: frontal; all for csv)"),
    rows: str = typer.Option("image", "--rows", help="image (one row per image) | study"),
    reports_root: Optional[Path] = typer.Option(None, "--reports-root", help="MIMIC: folder with files/pXX/.../s*.txt"),
    merge_val_test: bool = typer.Option(False, "--merge-val-test", help="MIMIC: validate + test -> val (reference)"),
    projections: Optional[Path] = typer.Option(None, "--projections", help="IU: indiana_projections.csv"),
    image_root: Optional[Path] = typer.Option(None, "--image-root", help="folder the image paths are relative to"),
    report_col: Optional[str] = typer.Option(None, "--report-col", help="csv: report column"),
    image_col: Optional[str] = typer.Option(None, "--image-col", help="csv: image column"),
    patient_col: Optional[str] = typer.Option(None, "--patient-col", help="csv: patient column"),
    label_cols: Optional[str] = typer.Option(None, "--label-cols", help="csv: comma-separated label columns"),
    split_seed: Optional[int] = typer.Option(None, "--split-seed", help="give rows without an official split a "
                                             "patient-level train/val/test split (70/10/20) drawn with this seed"),
    check_images: bool = typer.Option(True, "--check-images/--no-check-images", help="check every image exists"),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="skip bad reports / images, count and name them"),
):
    """Extract FINDINGS / IMPRESSION, sentences, split and images into one table; print what was kept and dropped."""
    import warnings

    from medmodal.data.cxr.readers import read_studies
    from medmodal.data.cxr.records import CXRDataWarning
    from medmodal.data.cxr.table import write_study_table

    options = dict(views=views, rows=rows, reports_root=reports_root, merge_val_test=merge_val_test or None,
                   projections=projections, image_root=image_root, report_col=report_col, image_col=image_col,
                   patient_col=patient_col, check_images=check_images, skip_bad=skip_bad,
                   label_cols=[c.strip() for c in label_cols.split(",")] if label_cols else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CXRDataWarning)  # printed below from result.notes
        result = read_studies(root, layout, **options)
    if split_seed is not None and any(s.split is None for s in result.studies):
        from medmodal.data.cxr.splits import assign_patient_splits

        result.studies = assign_patient_splits(result.studies, seed=split_seed)
        result.notes.append(f"rows without split got a patient-level split (70/10/20, seed {split_seed})")
    if not result.studies:
        raise ValueError(f"{root}: no image-report pair kept (dropped: {dict(result.dropped) or 'none'}; "
                         f"bad: {len(result.skipped)})")
    write_study_table(result.studies, out)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    for _, problem in result.skipped[:20]:
        console.print(f"[yellow]skipped:[/] {problem}", highlight=False, soft_wrap=True)
    if len(result.skipped) > 20:
        console.print(f"[yellow]skipped:[/] ... and {len(result.skipped) - 20} more", highlight=False)
    summary = result.summary()
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    console.print(f"{out}: {summary['rows']} rows, {summary['studies']} studies, {summary['patients']} patients "
                  f"({splits})", highlight=False, soft_wrap=True)
    dropped = ", ".join(f"{reason}: {n}" for reason, n in sorted(result.dropped.items())) or "none"
    console.print(f"dropped: {dropped}; skipped as bad input: {len(result.skipped)}", highlight=False, soft_wrap=True)
