"""``medmodal seg <data verb>`` (old spelling ``medmodal data ...``) for multi-sequence volumes: synthesise,
inspect, split, assign missing sequences, preprocess."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medmodal.cli.common import (AffineTolOpt, DatasetOpt, LabelsOpt, LayoutOpt, MapOpt, console, discover,
                                  discover_dataset, print_wide, split_option, user_errors)
from medmodal.errors import ConfigError

SummaryLayoutOpt = typer.Option("auto", "--layout", help="auto | brats2020 | brats2023 | myops2020 | nnunet | msd | "
                                "mapping | fundus: drive | chase_db1 | hrf | stare | generic | 2-D: synapse | "
                                "synapse_raw | acdc_h5 | acdc | cvc_clinicdb | kvasir_seg | meniscus | folder2d "
                                "| 3-D one image per case: la2018 | bhsd | nifti_folder "
                                "(auto: the 2-D detectors "
                                "first; a folder without NIfTI files is read as fundus photographs)")


def _beside_data(root: Path, path: Path, what: str) -> Path:
    """``path`` (a default inside the data folder ``root``), or one line when ``root`` is read-only."""
    from medmodal.io import OutputError, is_writable_dir

    if not is_writable_dir(root):
        raise OutputError(f"{root}: the data folder is read-only; give --out for {what}")
    return path


@user_errors
def synth_brats_cmd(
    out: Path = typer.Argument(..., help="output folder (BraTS 2020 layout is written inside)"),
    cases: int = typer.Option(8, "--cases", "-n", help="number of cases"),
    size: int = typer.Option(64, "--size", "-s", help="volume edge length in voxels"),
    seed: int = typer.Option(0, "--seed"),
    naming: str = typer.Option("brats2020", "--naming", help="brats2020 | brats2023 file naming"),
):
    """Write a synthetic dataset in the official BraTS layout (real NIfTI files)."""
    from medmodal.data.volumes.synthetic_brats import synth_brats

    folders = synth_brats(out, num_cases=cases, size=size, seed=seed, naming=naming)
    console.print(f"wrote {len(folders)} cases to {out}")


@user_errors
def synth_myops_cmd(
    out: Path = typer.Argument(..., help="output folder (official MyoPS 2020 layout: train25/, train25_myops_gd/)"),
    cases: int = typer.Option(8, "--cases", "-n", help="number of cases"),
    size: int = typer.Option(96, "--size", "-s", help="in-plane edge length in pixels"),
    slices: int = typer.Option(6, "--slices", help="short-axis slices per stack"),
    seed: int = typer.Option(0, "--seed"),
):
    """Write a synthetic cardiac MR dataset (C0 / DE / T2 + labels) in the MyoPS 2020 layout."""
    from medmodal.data.volumes.synthetic_myops import synth_myops

    ids = synth_myops(out, num_cases=cases, size=size, slices=slices, seed=seed)
    console.print(f"wrote {len(ids)} cases to {out}")


@user_errors
def synth_cmd(
    out: Path = typer.Argument(..., help="output folder (the dataset's official layout is written inside)"),
    dataset: str = typer.Option("brats2020", "--dataset", "-d", help="brats2020 | brats2023 (BraTS layout, "
                                "brain MR: FLAIR / T1 / T1ce / T2) | myops2020 (MyoPS layout, cardiac MR: C0 / DE / T2)"
                                " | drive | chase_db1 | hrf | stare | fundus-generic (retinal fundus photographs with "
                                "vessel labels in that data set's layout; fundus-generic: images/ + masks/ + fov/)"
                                " | synapse | synapse-raw | acdc | acdc-h5 | cvc-clinicdb | kvasir-seg | meniscus | "
                                "folder2d (2-D segmentation: Synapse CT as TransUNet's npz / h5 or BTCV NIfTI, ACDC "
                                "cine MR as the challenge's NIfTI or SSL4MIS's HDF5, polyp photographs, knee-MRI "
                                "meniscus .npy slices + CSVs as ERANet's, a folder of images/ + masks/ + "
                                "unlabelled/) | la2018 | bhsd | nifti-folder (3-D volumes: UA-MT's left-atrium "
                                "HDF5 + lists, BHSD-style head CT in HU with haemorrhages, an imagesTr/ + labelsTr/ + "
                                "unlabelled/ NIfTI folder)"),
    cases: int = typer.Option(8, "--cases", "-n", help="number of cases (fundus: images; DRIVE: per split; Synapse: "
                              "scans; ACDC: patients; polyps and folder2d: images; meniscus: knees)"),
    size: Optional[int] = typer.Option(None, "--size", "-s", help="volume edge (BraTS) / in-plane edge (MyoPS) in "
                                       "voxels / fundus or 2-D image edge in pixels (default: BraTS 64, MyoPS 96, "
                                       "fundus and 2-D 64)"),
    slices: int = typer.Option(6, "--slices", help="myops2020: short-axis slices per stack"),
    seed: int = typer.Option(0, "--seed"),
):
    """Write a synthetic segmentation dataset in an official layout (MRI: real NIfTI files; fundus: images,
    vessel labels and FOV masks as the data set releases them; 2-D: Synapse, ACDC and polyp twins in their data
    sets' own files and list files)."""
    from medmodal.cli.data.fundus import SYNTH_DATASETS, synth_fundus_cmd
    from medmodal.cli.data.seg2d import SYNTH_DATASETS as SEG2D_DATASETS, synth_seg2d_cmd
    from medmodal.cli.data.seg3d import SYNTH_DATASETS as SEG3D_DATASETS, synth_seg3d_cmd

    if dataset in SEG3D_DATASETS:
        synth_seg3d_cmd(out, dataset, cases, size, seed)
    elif dataset in SYNTH_DATASETS:
        synth_fundus_cmd(out, dataset, cases, size, seed)
    elif dataset in SEG2D_DATASETS:
        synth_seg2d_cmd(out, dataset, cases, size, seed)
    elif dataset in ("brats2020", "brats2023"):
        synth_brats_cmd(out, cases=cases, size=size or 64, seed=seed, naming=dataset)
    elif dataset == "myops2020":
        synth_myops_cmd(out, cases=cases, size=size or 96, slices=slices, seed=seed)
    else:
        raise ConfigError(f"--dataset must be brats2020, brats2023, myops2020, drive, chase_db1, hrf, stare, "
                          f"fundus-generic, synapse, synapse-raw, acdc, acdc-h5, cvc-clinicdb, kvasir-seg, "
                          f"meniscus, folder2d, la2018, bhsd or nifti-folder, "
                          f"got {dataset!r}")


@user_errors
def summary_cmd(
    root: Path = typer.Argument(..., help="dataset folder or case folder (MRI volumes, fundus photographs or a 2-D "
                                "segmentation set)"),
    layout: str = SummaryLayoutOpt, mapping: Optional[str] = MapOpt, labels: Optional[str] = LabelsOpt,
    dataset: str = DatasetOpt,
    validate: bool = typer.Option(True, help="read and validate every file (slower; 2-D sets: read the labels "
                                  "for the classes column)"),
    affine_tolerance: float = AffineTolOpt,
):
    """List the cases found, their sequences, grid and label voxel counts, and any file not used (fundus
    folders: each image's split, size, observers and FOV, and the notes; 2-D segmentation sets: each case's
    split, kind, slices, size and classes present, the notes and the counts per split)."""
    from medmodal.cli.data.fundus import is_fundus_request, summary_fundus_cmd
    from medmodal.cli.data.seg2d import is_seg2d_request, summary_seg2d_cmd
    from medmodal.data.volumes.summary import availability, summarize_case, summary_table

    from medmodal.cli.data.seg3d import is_seg3d_request, summary_seg3d_cmd

    _check_summary_layout(layout)
    if is_seg3d_request(root, layout) and mapping is None:
        summary_seg3d_cmd(root, layout)
        return
    if is_seg2d_request(root, layout, mapping):
        summary_seg2d_cmd(root, layout, validate)
        return
    if is_fundus_request(root, layout, mapping):
        summary_fundus_cmd(root, layout)
        return

    found, spec = discover_dataset(root, dataset, layout, mapping, labels)
    summaries = [summarize_case(c, spec, validate=validate, affine_tolerance=affine_tolerance) for c in found]
    print_wide(summary_table(summaries, spec))
    avail = ", ".join(f"{m} {n}/{len(found)}" for m, n in availability(summaries, spec).items())
    console.print(f"layout: {found[0].layout}; sequences available: {avail}", highlight=False)
    unmatched = getattr(found, "unmatched", [])
    if unmatched:
        console.print(f"{len(unmatched)} NIfTI files matched no sequence or label (not used):", highlight=False)
        for path in unmatched:
            console.print(f"  {path}", highlight=False, soft_wrap=True)


def _check_summary_layout(layout: str) -> None:
    """Raises ConfigError: ``layout`` is no layout of any segmentation family (naming every family's layouts)."""
    from medmodal.cli.data.fundus import SUMMARY_LAYOUTS
    from medmodal.data.layouts import known_layouts
    from medmodal.data.seg2d import LAYOUTS as PLANAR_LAYOUTS
    from medmodal.data.volumes.layouts import LAYOUTS as VOLUME_LAYOUTS

    volumes = known_layouts("volumes", VOLUME_LAYOUTS)
    from medmodal.cli.data.seg3d import SUMMARY_LAYOUTS as SINGLE_VOLUME_LAYOUTS

    planar = [name for name in known_layouts("seg2d", PLANAR_LAYOUTS) if name != "auto"]
    if layout not in (*volumes, *SUMMARY_LAYOUTS, *planar, *SINGLE_VOLUME_LAYOUTS):
        raise ConfigError(f"unknown --layout {layout!r}; choose one of {', '.join(volumes)} (MRI volumes), "
                          f"{', '.join(SUMMARY_LAYOUTS)} (fundus), {', '.join(planar)} (2-D) or "
                          f"{', '.join(SINGLE_VOLUME_LAYOUTS)} (3-D, one image per case)")


@user_errors
def split_cmd(
    root: Path = typer.Argument(..., help="dataset folder"),
    seed: int = typer.Option(0, "--seed"),
    fractions: str = typer.Option("", "--fractions", help="train,val,test fractions (default PASSION's 219/50/100)"),
    out: Optional[Path] = typer.Option(None, "--out", help="split file (default <root>/splits_seed<seed>.json)"),
    layout: str = LayoutOpt, mapping: Optional[str] = MapOpt,
):
    """Write a deterministic train/val/test split file."""
    from medmodal.data.splits import DEFAULT_FRACTIONS, default_split_path, make_splits, write_splits

    found = discover(root, layout, mapping, None)
    frac = tuple(split_option(fractions, float, "--fractions")) if fractions else DEFAULT_FRACTIONS
    splits = make_splits([c.case_id for c in found], frac, seed)
    path = write_splits(out or _beside_data(root, default_split_path(root, seed), "the split file"), splits, seed)
    console.print(f"{path}: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))


@user_errors
def missing_rates_cmd(
    root: Path = typer.Argument(..., help="dataset folder"),
    rates: Optional[str] = typer.Option(None, "--rates", help="per-sequence missing rates (default BraTS "
                                        "flair=0.2,t1=0.4,t1ce=0.6,t2=0.8; MyoPS c0=0.2,de=0.425,t2=0.675)"),
    seed: int = typer.Option(0, "--seed"),
    out: Optional[Path] = typer.Option(None, "--out", help="CSV path (default <root>/missing_<rates>_seed<seed>.csv)"),
    split_seed: Optional[int] = typer.Option(None, "--split-seed", help="assign only the training cases of this split"),
    layout: str = LayoutOpt, mapping: Optional[str] = MapOpt, dataset: str = DatasetOpt,
):
    """Assign each (training) case a fixed set of available sequences under imbalanced missing rates."""
    from medmodal.config import default_missing_rates
    from medmodal.data.missing import assign_imbalanced, parse_rates, realised_missing_rates, write_missing_csv
    from medmodal.data.splits import load_or_make_splits

    found, spec = discover_dataset(root, dataset, layout, mapping, None)
    modalities = spec.modalities
    ids = [c.case_id for c in found]
    if split_seed is not None:
        ids = load_or_make_splits(root, ids, split_seed)["train"]
    parsed = parse_rates(rates) if rates else default_missing_rates(spec.name)
    assignment = assign_imbalanced(ids, parsed, modalities, seed=seed)
    tag = "".join(f"{int(round(parsed.get(m, 0) * 10))}" for m in modalities)
    path = write_missing_csv(out or _beside_data(root, Path(root) / f"missing_mr{tag}_seed{seed}.csv", "the CSV"),
                             assignment, modalities)
    real = realised_missing_rates(assignment, modalities)
    console.print(f"{path}: {len(assignment)} cases; realised missing rates "
                  + ", ".join(f"{m} {real[m]:.2f}" for m in modalities))


@user_errors
def preprocess_cmd(
    root: Path = typer.Argument(..., help="dataset folder"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="cache folder (default <root>/.medmodal_cache, or ~/.cache/medmodal if read-only)"),
    layout: str = LayoutOpt, mapping: Optional[str] = MapOpt, labels: Optional[str] = LabelsOpt,
    dataset: str = DatasetOpt, affine_tolerance: float = AffineTolOpt,
):
    """Validate, crop and normalise every case once (as stored: no training geometry), caching the result as .npy."""
    from medmodal.data.cache import default_cache_dir
    from medmodal.data.volumes.preprocess import PreprocessedCache

    found, spec = discover_dataset(root, dataset, layout, mapping, labels)
    store = PreprocessedCache(cache or default_cache_dir(root), spec, affine_tolerance)
    store.build_all(found, progress=True)
    console.print(f"{len(found)} cases cached in {store.cache_dir}")
