"""``medmodal cxr <data verb>`` (old spelling ``medmodal data ...``) for chest X-rays: the synthetic IU dataset,
the report tables, and the downstream datasets (synthetic twins, summaries with the reference splits)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from medmodal.cli.common import console, user_errors
from medmodal.errors import DataError

ImageCheckOpt = typer.Option("verify", "--image-check", help="what --check-images checks per image: verify (exists, "
                             "header and size readable, file complete: PNG CRCs / JPEG header and end marker / "
                             "DICOM pixel length; ~0.4 ms) | decode (full decode, as training; also a JPEG cut short "
                             "and closed with an end marker; ~17 ms, ~100 ms for 2 MB radiographs) | exists")


def _count(n: int, singular: str, plural: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``1 study``, ``3 studies``."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _image_check(check_images: bool, image_check: str):
    from medmodal.data.cxr.images import resolve_image_check

    return resolve_image_check(image_check) if check_images else False


def _print_image_check(result) -> None:
    from medmodal.data.cxr.images import IMAGE_CHECK_TEXT

    if result.image_check is None:
        console.print("images: not checked (--no-check-images)", highlight=False)
    else:
        console.print(f"images checked ({result.image_check}: {IMAGE_CHECK_TEXT[result.image_check]}): "
                      f"{result.images_checked}", highlight=False, soft_wrap=True)


@user_errors
def synth_cxr_cmd(
    out: Path = typer.Argument(..., help="output folder (IU X-ray R2Gen layout: annotation.json + images/<id>/0.png)"),
    studies: int = typer.Option(100, "--studies", "-n", help="number of studies (one frontal image each)"),
    seed: int = typer.Option(0, "--seed"),
    size: int = typer.Option(256, "--size", "-s", help="image side in pixels"),
    reports: Optional[Path] = typer.Option(None, "--reports", help="Open-i indiana_reports.csv (default: "
                                           "$MEDMODAL_IU_REPORTS; else the built-in templates)"),
    workers: int = typer.Option(min(2, os.cpu_count() or 1), "--workers", help="rendering processes"),
):
    """Write synthetic chest radiographs drawn from real IU X-ray reports, with labels, masks and boxes."""
    from medmodal.data.cxr.synthetic import TEMPLATE_REPORTS, synth_cxr

    summary = synth_cxr(out, studies, seed=seed, size=size, reports=reports, workers=workers, progress=True)
    if summary["source"] == "templates":
        console.print(f"[yellow]note:[/] no indiana_reports.csv found: reports come from medmodal's "
                      f"{len(TEMPLATE_REPORTS)} built-in templates, not real IU reports (give --reports or set "
                      f"MEDMODAL_IU_REPORTS; make demo: IU_REPORTS=...)", soft_wrap=True)
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    positives = ", ".join(f"{k} {v}" for k, v in summary["positives"].items())
    console.print(f"wrote {summary['studies']} studies to {out} ({splits}); reports from {summary['source']}",
                  highlight=False, soft_wrap=True)
    console.print(f"drawn findings (images): {positives}; {summary['boxes']} boxes", highlight=False, soft_wrap=True)


@user_errors
def cxr_reports_cmd(
    root: Path = typer.Argument(..., help="MIMIC-CXR-JPG folder, IU annotation.json, indiana_reports.csv or a CSV"),
    out: Path = typer.Option(..., "--out", "-o", help="study table to write (.csv)"),
    layout: str = typer.Option("auto", "--layout", help="auto | mimic | iu | openi | csv"),
    views: Optional[str] = typer.Option(None, "--views", help="frontal | all (default: frontal; all for csv)"),
    rows: str = typer.Option("image", "--rows", help="image (one row per image) | study"),
    reports_root: Optional[Path] = typer.Option(None, "--reports-root", help="MIMIC: folder with files/pXX/.../s*.txt"),
    merge_val_test: bool = typer.Option(False, "--merge-val-test", help="MIMIC: validate + test -> val (reference)"),
    projections: Optional[Path] = typer.Option(None, "--projections", help="IU (flat names, R2Gen): "
                                               "indiana_projections.csv (default: beside the annotation)"),
    image_root: Optional[Path] = typer.Option(None, "--image-root", help="folder the image paths are relative to"),
    report_col: Optional[str] = typer.Option(None, "--report-col", help="csv: report column"),
    image_col: Optional[str] = typer.Option(None, "--image-col", help="csv: image column"),
    patient_col: Optional[str] = typer.Option(None, "--patient-col", help="csv: patient column"),
    label_cols: Optional[str] = typer.Option(None, "--label-cols", help="csv: comma-separated label columns"),
    split_seed: Optional[int] = typer.Option(None, "--split-seed", help="give rows without an official split a "
                                             "patient-level train/val/test split (70/10/20) drawn with this seed"),
    check_images: bool = typer.Option(True, "--check-images/--no-check-images", help="check every image file"),
    image_check: str = ImageCheckOpt,
    skip_bad: bool = typer.Option(False, "--skip-bad", help="skip bad reports / images, count and name them"),
):
    """Extract FINDINGS / IMPRESSION, sentences, split and images into one table; print what was kept and dropped."""
    import warnings

    from medmodal.data.cxr.readers import read_studies
    from medmodal.data.cxr.records import CXRDataWarning
    from medmodal.data.cxr.table import write_study_table

    options = dict(views=views, rows=rows, reports_root=reports_root, merge_val_test=merge_val_test or None,
                   projections=projections, image_root=image_root, report_col=report_col, image_col=image_col,
                   patient_col=patient_col, check_images=_image_check(check_images, image_check), skip_bad=skip_bad,
                   label_cols=[c.strip() for c in label_cols.split(",")] if label_cols else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CXRDataWarning)  # printed below from result.notes
        result = read_studies(root, layout, **options)
    if split_seed is not None and any(s.split is None for s in result.studies):
        from medmodal.data.cxr.splits import assign_patient_splits

        result.studies = assign_patient_splits(result.studies, seed=split_seed)
        result.notes.append(f"rows without split got a patient-level split (70/10/20, seed {split_seed})")
    elif any(s.split is None for s in result.studies):
        unsplit = sum(s.split is None for s in result.studies)
        result.notes.append(f"{_count(unsplit, 'row')} without split keep none (empty split column); --split-seed N "
                            f"draws a patient-level 70/10/20 split (pre-training draws one itself, data.split_seed)")
    if not result.studies:
        raise DataError(f"{root}: no image-report pair kept ({result.account_line()})")
    write_study_table(result.studies, out)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    for _, problem in result.skipped[:20]:
        console.print(f"[yellow]skipped:[/] {problem}", highlight=False, soft_wrap=True)
    if len(result.skipped) > 20:
        console.print(f"[yellow]skipped:[/] ... and {len(result.skipped) - 20} more", highlight=False)
    summary = result.summary()
    splits = ", ".join(f"{'no split' if k == 'none' else k} {v}" for k, v in summary["splits"].items())
    console.print(f"{out}: {_count(summary['rows'], 'row')}, {_count(summary['studies'], 'study', 'studies')}, "
                  f"{_count(summary['patients'], 'patient')}; rows per split: {splits}", highlight=False,
                  soft_wrap=True)
    console.print(result.account_line(), highlight=False, soft_wrap=True)
    _print_image_check(result)


@user_errors
def synth_downstream_cmd(
    out: Path = typer.Argument(..., help="output folder: each dataset goes to OUT/<dataset> in its own layout"),
    dataset: str = typer.Option("all", "--dataset", "-d", help="all | chexpert | rsna | covidx | siim | object-cxr"),
    images: int = typer.Option(120, "--images", "-n", help="images per dataset"),
    size: int = typer.Option(128, "--size", "-s", help="side of the drawn radiographs in pixels (>= 64)"),
    seed: int = typer.Option(0, "--seed"),
):
    """Write synthetic twins of the chest X-ray downstream datasets (CheXpert, RSNA, COVIDx, SIIM, Object-CXR)."""
    from medmodal.data.cxr.downstream import synth_downstream

    with console.status("drawing radiographs"):
        summaries = synth_downstream(out, dataset, images=images, size=size, seed=seed)
    for name, summary in summaries.items():
        counts = ", ".join(f"{k} {v}" for k, v in summary.items() if k not in ("dataset", "root"))
        console.print(f"{name}: {summary['root']} ({counts})", highlight=False, soft_wrap=True)


@user_errors
def downstream_summary_cmd(
    root: Path = typer.Argument(..., help="the dataset's folder, as distributed"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="chexpert | rsna | covidx | siim | object-cxr"),
    task: Optional[str] = typer.Option(None, "--task", help="classification | segmentation | detection "
                                       "(default: the dataset's first; selects RSNA's split protocol)"),
    fraction: float = typer.Option(1.0, "--fraction", help="label fraction of the training split (0.01, 0.1, 1)"),
    fraction_seed: int = typer.Option(42, "--fraction-seed", help="seed of the label-fraction draw (reference 42)"),
    seed: Optional[int] = typer.Option(None, "--split-seed", help="seed of the splits (reference 0)"),
    uncertain: Optional[str] = typer.Option(None, "--uncertain", help="CheXpert: mixed | ones | zeros | ignore"),
    blank: Optional[str] = typer.Option(None, "--blank", help="CheXpert: zeros | ignore"),
    val_size: Optional[float] = typer.Option(None, "--val-size", help="CheXpert: validation images (>= 1) or "
                                             "fraction of patients (< 1)"),
    train_file: Optional[Path] = typer.Option(None, "--train-file", help="COVIDx: train label file"),
    test_file: Optional[Path] = typer.Option(None, "--test-file", help="COVIDx: test label file"),
    patients: Optional[str] = typer.Option(None, "--patients", help="SIIM: image | dicom (group by DICOM PatientID)"),
    rle: Optional[str] = typer.Option(None, "--rle", help="SIIM: auto (default: decided from the rows) | relative "
                                      "(stage 1 train-rle.csv) | absolute (stage_2_train.csv)"),
    check_images: bool = typer.Option(True, "--check-images/--no-check-images", help="check every image file"),
    image_check: str = ImageCheckOpt,
    skip_bad: bool = typer.Option(False, "--skip-bad", help="skip bad rows / images, count and name them"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the summary as JSON"),
):
    """Read a downstream dataset with MGCA's splits and print images, patients, positives, boxes and masks per split."""
    import warnings

    from medmodal.data.cxr.downstream import read_downstream, sample_training_fraction
    from medmodal.data.cxr.records import CXRDataWarning

    if val_size is not None:
        val_size = int(val_size) if val_size >= 1 else float(val_size)
    options = dict(seed=seed, uncertain=uncertain, blank=blank, val_size=val_size, train_file=train_file,
                   test_file=test_file, patients=patients, rle=rle, check_images=_image_check(check_images, image_check),
                   skip_bad=skip_bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CXRDataWarning)  # printed below from result.notes
        result = read_downstream(dataset, root, task, **options)
        if fraction != 1.0:
            result = sample_training_fraction(result, fraction, seed=fraction_seed)
    if not result.samples:
        raise DataError(f"{root}: no image kept (dropped: {dict(result.dropped) or 'none'}; "
                        f"bad: {len(result.skipped)})")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    for _, problem in result.skipped[:20]:
        console.print(f"[yellow]skipped:[/] {problem}", highlight=False, soft_wrap=True)
    if len(result.skipped) > 20:
        console.print(f"[yellow]skipped:[/] ... and {len(result.skipped) - 20} more", highlight=False)
    summary = result.summary()
    info = result.dataset
    console.print(f"{info.title}, task {result.task} (metric {info.metric(result.task)}): {summary['images']} images, "
                  f"{summary['patients']} patients; labels: {', '.join(info.label_names)}", highlight=False,
                  soft_wrap=True)
    _print_splits(summary, info)
    dropped = ", ".join(f"{reason}: {n}" for reason, n in sorted(result.dropped.items())) or "none"
    console.print(f"dropped: {dropped}; skipped as bad input: {len(result.skipped)}", highlight=False, soft_wrap=True)
    _print_image_check(result)
    if json_out is not None:
        from medmodal.io import atomic_write_json

        atomic_write_json(json_out, {**summary, "notes": result.notes, "skipped": result.skipped})


def _print_splits(summary: dict, info) -> None:
    from rich.table import Table

    table = Table(show_edge=False)
    columns = ["split", "images", "patients", *info.label_names]
    extras = [c for c in ("boxes", "images_with_mask") if any(c in e for e in summary["splits"].values())]
    for name in columns + extras:
        table.add_column(name.replace("_", " "), justify="left" if name == "split" else "right")
    for split, entry in summary["splits"].items():
        positives = entry.get("positives", {})
        ignored = entry.get("ignored", {})
        cells = [f"{positives.get(n, 0)}" + (f" ({ignored[n]} ignored)" if ignored.get(n) else "")
                 for n in info.label_names]
        table.add_row(split, str(entry["images"]), str(entry["patients"]), *cells,
                      *(str(entry.get(c, "")) for c in extras))
    console.print(table)
