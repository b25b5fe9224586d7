"""``medmodal endoscopy <data verb>`` (old spelling ``medmodal data ...``) for paired white-light / narrow-band
endoscopy (MICS): inspect, split, simulate NBI, calibrate the simulation on real pairs, synthesise the built-in
dataset."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Optional

import typer

from medmodal.cli.common import console, err_console, split_option, user_errors

EndoLayoutOpt = typer.Option("auto", "--layout", help="auto | authors (<class>_WLI/ + <class>_NBI/) | wl-nbi "
                                                      "(WL/<class>/ + NBI/<class>/) | kvasir (class folders) | "
                                                      "kvasir-seg | image-folder | csv")
SplitFileOpt = typer.Option(None, "--split-file", help="official split CSV (HyperKvasir official_splits/"
                                                       "2_fold_split.csv), for class-folder data")


class _ConsoleWarnings(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        err_console.print(f"[yellow]warning:[/] {record.getMessage()}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def warnings_on_console():
    """Show the endoscopy readers' warning lines (files without partner, skipped files) on stderr."""
    log = logging.getLogger("medmodal.data.endoscopy")
    handler, propagate = _ConsoleWarnings(logging.WARNING), log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.propagate = propagate


def _read(root: Path, layout: str, split_file: Optional[Path]):
    from medmodal.data.endoscopy.layouts import detect_layout, read_samples

    samples = read_samples(root, layout, split_file)
    return samples, (detect_layout(root) if layout == "auto" else layout)


@user_errors
def summary_endoscopy_cmd(
    root: Path = typer.Argument(..., help="dataset folder (or CSV file: wli,nbi,label)"),
    layout: str = EndoLayoutOpt, split_file: Optional[Path] = SplitFileOpt,
    check: bool = typer.Option(True, help="decode every image (finds truncated / unreadable files)"),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="leave out samples with unreadable images (named) "
                                                            "instead of stopping at the first"),
    out: Optional[Path] = typer.Option(None, "--out", help="also write the sample list as CSV (sample_id,wli,nbi,"
                                                           "label,split), readable with --layout csv"),
):
    """List the samples found per class: pairs, WLI-only, NBI-only, splits; check every image decodes."""
    from rich.table import Table

    from medmodal.data.endoscopy.images import check_images
    from medmodal.data.endoscopy.layouts import write_samples_csv

    with warnings_on_console():
        samples, found_layout = _read(root, layout, split_file)
        bad = []
        if check:
            result = check_images(samples, skip_bad=skip_bad, progress=True)
            samples, bad = result.samples, result.bad
    table = Table("class", "samples", "pairs", "WLI only", "NBI only", "splits")
    classes = sorted({s.label for s in samples}, key=lambda c: (c is None, c or ""))
    for cls in classes:
        group = [s for s in samples if s.label == cls]
        splits: dict[str, int] = {}
        for s in group:
            if s.split is not None:
                splits[s.split] = splits.get(s.split, 0) + 1
        table.add_row(cls if cls is not None else "(unlabelled)", str(len(group)), str(sum(s.paired for s in group)),
                      str(sum(s.present == (True, False) for s in group)),
                      str(sum(s.present == (False, True) for s in group)),
                      ", ".join(f"{k} {v}" for k, v in sorted(splits.items())) or "-")
    console.print(table)
    checked = f"; {sum(len(s.files()) for s in samples)} images decoded" if check else ""
    skipped = f", {len(bad)} unreadable skipped" if bad else ""
    n_classes = sum(c is not None for c in classes)
    console.print(f"layout: {found_layout}; {len(samples)} samples, {n_classes} class{'es' * (n_classes != 1)}"
                  f"{checked}{skipped}")
    if out is not None:
        console.print(f"sample list: {write_samples_csv(out, samples)}")


@user_errors
def split_endoscopy_cmd(
    root: Path = typer.Argument(..., help="dataset folder (or CSV file)"),
    layout: str = EndoLayoutOpt, split_file: Optional[Path] = SplitFileOpt,
    seed: int = typer.Option(0, "--seed"),
    fractions: str = typer.Option("0.7,0.1,0.2", "--fractions", help="train,val,test fractions, per class"),
    test_fold: Optional[str] = typer.Option(None, "--test-fold", help="use the official folds of --split-file: "
                                                                       "this fold is the test set (e.g. fold0)"),
    label_fraction: Optional[float] = typer.Option(None, "--label-fraction", help="also list the labelled "
                                                   "training ids at this fraction (0.01, 0.05, 0.1, 1.0)"),
    out: Optional[Path] = typer.Option(None, "--out", help="split file (default splits_seed<seed>.json in the "
                                                           "current folder; the data folder is left untouched)"),
):
    """Write a class-stratified train/val/test split (JSON), optionally with a label-fraction subset."""
    from medmodal.data.stratified import fold_splits, label_fraction_subset, stratified_splits
    from medmodal.io import atomic_write_json

    with warnings_on_console():
        samples, _ = _read(root, layout, split_file)
    ids, labels = [s.sample_id for s in samples], [s.label for s in samples]
    if test_fold is not None:
        splits = fold_splits(ids, [s.split for s in samples], labels, test_fold, seed=seed)
    else:
        frac = tuple(split_option(fractions, float, "--fractions"))
        splits = stratified_splits(ids, labels, frac, seed)
    payload = {"seed": seed, **splits}
    if label_fraction is not None:
        lab = dict(zip(ids, labels))
        train = splits["train"]
        payload["label_fraction"] = label_fraction
        payload["labelled"] = label_fraction_subset(train, [lab[i] for i in train], label_fraction, seed)
    target = out or Path(f"splits_seed{seed}.json")  # a data folder is input: never written into
    atomic_write_json(target, payload)
    extra = f", labelled {len(payload['labelled'])}" if "labelled" in payload else ""
    console.print(f"{target}: " + ", ".join(f"{k} {len(splits[k])}" for k in ("train", "val", "test")) + extra)


@user_errors
def simulate_nbi_cmd(
    src: Path = typer.Argument(..., help="white-light dataset (Kvasir class folders, image folder, any layout)"),
    out: Path = typer.Argument(..., help="output folder: the authors' layout <class>_WLI/ + <class>_NBI/ (PNG)"),
    layout: str = EndoLayoutOpt, split_file: Optional[Path] = SplitFileOpt,
    params: Optional[Path] = typer.Option(None, "--params", help="NBI parameters JSON (from calibrate-nbi); "
                                                                 "default: the packaged calibration"),
    size: Optional[int] = typer.Option(None, "--size", help="resize to SIZE x SIZE (default: keep the size)"),
    authors_classes: bool = typer.Option(False, "--authors-classes", help="map Kvasir / HyperKvasir class names "
                                         "to the authors' six classes and leave the others out (counted)"),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="skip unreadable images (named) instead of stopping"),
):
    """Pair white-light images with simulated NBI images, written in the MICS authors' layout."""
    from medmodal.data.endoscopy.export import simulate_nbi_dataset
    from medmodal.data.endoscopy.nbi import NBIParams
    from medmodal.data.endoscopy.samples import harmonise_labels
    from medmodal.errors import DataError

    nbi_params = NBIParams.from_json(params) if params else NBIParams()
    with warnings_on_console():
        samples, found_layout = _read(src, layout, split_file)
        if authors_classes:
            unlabelled = [s for s in samples if s.label is None]
            if unlabelled:  # they would be written to a class 'unlabelled' that reads back as a real class
                raise DataError(f"{src}: --authors-classes maps class names, but {len(unlabelled)} of {len(samples)} "
                                f"samples have no class (layout {found_layout}, e.g. {unlabelled[0].wli or unlabelled[0].nbi}"
                                f"); give class folders, or leave out --authors-classes")
            samples = harmonise_labels(samples)
        written = simulate_nbi_dataset(samples, out, nbi_params, size=size, skip_bad=skip_bad, progress=True,
                                       source=f"{src} ({found_layout})")
    classes = sorted({s.label for s in written})
    console.print(f"wrote {len(written)} WLI / simulated-NBI pairs ({len(classes)} classes) to {out}")


@user_errors
def calibrate_nbi_cmd(
    pairs: Path = typer.Argument(..., help="real WLI / NBI pairs (WL/<class>/ + NBI/<class>/, authors' layout, CSV)"),
    layout: str = EndoLayoutOpt,
    out: Optional[Path] = typer.Option(None, "--out", help="write the fitted parameters (JSON, for simulate-nbi "
                                                           "--params)"),
    size: int = typer.Option(96, "--size", help="images resized to SIZE x SIZE for the fit"),
    max_evals: int = typer.Option(2000, "--max-evals", help="Nelder-Mead evaluations per fit"),
    cross_validate: bool = typer.Option(False, "--cross-validate", help="also report held-out distances to the "
                                        "real NBI images (one fit per fold; minutes)"),
    folds: Optional[int] = typer.Option(None, "--folds", help="cross-validation folds (default: leave one pair out)"),
    report: Optional[Path] = typer.Option(None, "--report", help="write the cross-validation table (Markdown)"),
):
    """Fit the WLI -> NBI simulation to real pairs (colour-distribution matching); report held-out distances."""
    from medmodal.data.endoscopy.layouts import read_samples
    from medmodal.data.endoscopy.nbi_calibration import calibrate, cross_validate as run_cv, load_pairs
    from medmodal.io import atomic_write_json, atomic_write_text

    with warnings_on_console():
        ids, images = load_pairs(read_samples(pairs, layout))
    fitted = calibrate(images, size, max_evals=max_evals)
    console.print(f"fitted on {len(images)} pairs: " + ", ".join(
        f"{k} {getattr(fitted, k):.3f}" for k in fitted.CALIBRATED), soft_wrap=True)
    if out is not None:
        atomic_write_json(out, {"params": fitted.to_dict(), "pairs": ids, "size": size, "source": str(pairs)})
        console.print(f"parameters: {out}")
    if cross_validate:
        with console.status("cross-validating") as status:
            result = run_cv(ids, images, size, max_evals, folds,
                            progress=lambda d, n: status.update(f"cross-validating: fold {d}/{n} done"))
        protocol = ("leave one pair out" if result.folds == len(ids) else f"{result.folds} folds") + \
            f", {len(ids)} pairs; W1 in 8-bit units, images at their own resolution"
        table = f"{result.table()}\n\n({protocol})\n"
        console.print(table, highlight=False, soft_wrap=True)
        if report is not None:
            atomic_write_text(report, table)


@user_errors
def synth_endoscopy_cmd(
    out: Path = typer.Argument(..., help="output folder (the authors' layout <class>_WLI/ + <class>_NBI/, PNG)"),
    samples: int = typer.Option(600, "--samples", "-n", help="number of WLI / NBI pairs (classes balanced)"),
    size: int = typer.Option(128, "--size", "-s", help="image edge length in pixels"),
    seed: int = typer.Option(0, "--seed"),
    workers: int = typer.Option(1, "--workers", help="rendering processes (the output does not depend on it)"),
):
    """Write the built-in paired WLI / NBI dataset (six Kvasir classes; each modality carries what the other lacks)."""
    from medmodal.data.endoscopy.synthetic import synth_endoscopy

    written = synth_endoscopy(out, samples, size, seed, workers=workers, progress=True)
    console.print(f"wrote {len(written)} WLI / NBI pairs ({len({s.label for s in written})} classes, {size} px) "
                  f"to {out}")
