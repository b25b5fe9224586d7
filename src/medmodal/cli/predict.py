"""``medmodal seg predict``: segment new cases with whatever sequences they have, or (a fundus vessel
model, ``image_kind: fundus`` in its bundle) vessel maps of fundus photographs
(:mod:`medmodal.engine.fundus.predict`), or (a 2-D model, ``image_kind: 2d``) label maps of slices, volumes and
pictures (:mod:`medmodal.engine.seg2d.predict`), or (a 3-D model, ``image_kind: 3d``) label maps of single-channel
volumes by sliding window (:mod:`medmodal.engine.seg3d.predict`)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import typer

from medmodal.cli.common import AffineTolOpt, LayoutOpt, MapOpt, console, discover, user_errors
from medmodal.errors import ConfigError

@user_errors
def predict_cmd(
    input: Path = typer.Option(..., "-i", "--input", help="a case folder or a folder of cases (any layout); fundus "
                                                         "model: a folder of photographs or a DRIVE / CHASE_DB1 / "
                                                         "HRF / STARE folder; 2-D model: a file or a folder of "
                                                         "NIfTI / HDF5 / NPZ / pictures; 3-D model: a NIfTI / "
                                                         "UA-MT .h5 volume or a folder of them"),
    output: Path = typer.Option(..., "-o", "--output", help="folder for <case>.nii.gz and <case>.json "
                                                           "(fundus: <id>_vessel_prob.png, <id>_vessels.png, <id>_overlay.png, "
                                                           "<id>.json; 2-D: <name>_seg.nii.gz|.h5|.npz|.png and "
                                                           "<name>.json; 3-D: <name>_seg.nii.gz and <name>.json; "
                                                           "not the input folder, not inside a case folder)"),
    model: Path = typer.Option(..., "-m", "--model", help="run folder, model bundle folder (or its model.safetensors "
                                                         "/ model.json), or .ckpt"),
    device: str = typer.Option("auto", "--device", help="auto (GPU if available) | cpu | cuda"),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32"),
    save_probabilities: bool = typer.Option(False, "--save-probabilities", help="also write <case>.npz"),
    resume: bool = typer.Option(False, "--continue", help="skip cases already predicted"),
    disable_progress_bar: bool = typer.Option(False, "--disable-progress-bar"),
    layout: str = LayoutOpt, mapping: Optional[str] = MapOpt,
    label_convention: Optional[str] = typer.Option(None, "--output-labels",
                                                   help="brats2020 (ET=4) | brats2023 (ET=3) for BraTS models; "
                                                        "default: the input's"),
    affine_tolerance: float = AffineTolOpt,
    skip_invalid: bool = typer.Option(False, "--skip-invalid", "--skip-invalid-sequences",
                                      help="treat a constant / all-zero sequence as missing instead of refusing the "
                                           "case; fundus / 2-D / 3-D: name and skip an unreadable file"),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="fundus: vessel where p >= this "
                                                                        "(default: the model's, 0.5)"),
    fov_masks: Optional[Path] = typer.Option(None, "--fov-masks", help="fundus: folder of FOV masks named like the "
                                             "photographs (<id>[_mask|_fov].<ext>); default: the layout's masks, "
                                             "else derived from each photograph"),
):
    """Segment new cases (any non-empty subset of the model's sequences), or fundus photographs with a vessel model.

    Each case is brought to the model's training geometry (orientation, voxel size) and the
    prediction is mapped back to the input's grid; <case>.json records what was used.
    A vessel model refuses the volume options (--save-probabilities, --output-labels, --map, --layout,
    --affine-tolerance, --precision bf16); it runs in fp32. A 2-D model (MSLAU-Net and its baselines) writes one
    label map per NIfTI / HDF5 / NPZ / picture file in the input's geometry (NIfTI affine kept) and refuses the
    volume and fundus options. A 3-D model (task: 3d; V-Net, SWDL-Net) writes <name>_seg.nii.gz per NIfTI or
    UA-MT .h5 volume: read with its training data set's intensity rule, resampled by its scale, segmented by
    sliding window, mapped back to the input's grid (nearest; the NIfTI's affine kept, identity for .h5), plus
    <name>.json (voxels per class, notes); it refuses the MRI and fundus options.
    """
    import torch

    from medmodal.engine.checkpoint import load_model
    from medmodal.engine.segmentation.inference import resolve_device
    from medmodal.engine.segmentation.predict import PredictOptions, check_output_location, predict_cases

    device = str(resolve_device(device))
    net, meta = load_model(model, map_location=device)
    if meta.get("image_kind") in ("2d", "3d"):
        planar = meta["image_kind"] == "2d"
        given = [name for name, used in (("--save-probabilities", save_probabilities),
                                         ("--output-labels", label_convention is not None),
                                         ("--map", mapping is not None), ("--layout", layout != "auto"),
                                         ("--affine-tolerance", affine_tolerance != 1e-3),
                                         ("--precision bf16", precision == "bf16"),
                                         ("--threshold", threshold is not None), ("--fov-masks", fov_masks is not None))
                 if used]
        if given:
            dim = "2-D" if planar else "3-D"
            raise ConfigError(f"{', '.join(given)}: not options of a {dim} model; {model} is a {dim} segmentation "
                              f"model ({dim} options: --continue, --skip-invalid, --disable-progress-bar"
                              f"{'' if planar else ', --device'}; it runs in fp32)")
        branch = _predict_seg2d if planar else _predict_seg3d
        return branch(net, meta, input, output, resume, skip_invalid, disable_progress_bar)
    if meta.get("image_kind") == "fundus":
        given = [name for name, used in (("--save-probabilities", save_probabilities),
                                         ("--output-labels", label_convention is not None),
                                         ("--map", mapping is not None), ("--layout", layout != "auto"),
                                         ("--affine-tolerance", affine_tolerance != 1e-3),
                                         ("--precision bf16", precision == "bf16")) if used]
        if given:
            raise ConfigError(f"{', '.join(given)}: volume (MRI) options; {model} is a retinal vessel model "
                              f"(fundus options: --threshold, --fov-masks, --skip-invalid, --continue; it runs in fp32)")
        return _predict_fundus(net, meta, input, output, device, resume, threshold, fov_masks, skip_invalid,
                               disable_progress_bar)
    if threshold is not None or fov_masks is not None:
        raise ConfigError("--threshold and --fov-masks apply to fundus vessel models only")
    cases = discover(input, layout, mapping, None, meta["modalities"])
    check_output_location(output, cases, input)
    options = PredictOptions(save_probabilities=save_probabilities, skip_existing=resume,
                             label_convention=label_convention, precision=precision,
                             affine_tolerance=affine_tolerance, skip_invalid=skip_invalid)

    statuses = {"written": 0, "skipped": 0}

    def report(case, status, record):
        statuses[status] = statuses.get(status, 0) + 1
        if disable_progress_bar:
            return
        if record is None:
            console.print(f"{case.case_id}: {status} (already predicted)", highlight=False, soft_wrap=True)
            return
        used = "+".join(record["sequences_used"])
        skipped = "".join(f"; {m} skipped ({why})" for m, why in record["sequences_skipped"].items())
        grid = record["geometry"]["applied"] or {}
        moved = [w for w in ("reoriented", "resampled") if grid.get(w)]
        geometry = f"; {' + '.join(moved)} to the model's geometry" if moved else ""
        console.print(f"{case.case_id}: {status} ({used}{skipped}{geometry})", highlight=False, soft_wrap=True)

    with torch.inference_mode():
        predict_cases(net, meta, cases, output, options, device=torch.device(device), on_case=report, input_root=input)
    console.print(f"{predicted_line(statuses['written'], statuses['skipped'], getattr(cases, 'skipped', []))}; "
                  f"predictions in {output}", highlight=False, soft_wrap=True)


def predicted_line(written: int, existing: int, folders) -> str:
    """``"1 case predicted, 2 skipped (1 already predicted (--continue); 1 folder not read as a case: X)"``."""
    reasons = []
    if existing:
        reasons.append(f"{existing} already predicted (--continue)")
    if folders:
        names = ", ".join(f.name for f in folders[:3]) + (", ..." if len(folders) > 3 else "")
        reasons.append(f"{len(folders)} folder{'s' if len(folders) > 1 else ''} not read as a case: {names}; "
                       f"see the warnings above")
    skipped = existing + len(folders)
    why = f" ({'; '.join(reasons)})" if reasons else ""
    return f"{written} case{'' if written == 1 else 's'} predicted, {skipped} skipped{why}"


def _predict_fundus(net, meta: dict, input: Path, output: Path, device: str, resume: bool,
                    threshold: Optional[float], fov_masks: Optional[Path], skip_invalid: bool, quiet: bool) -> None:
    """The fundus branch of ``seg predict``: one line per photograph, then the count line."""
    import torch

    from medmodal.engine.fundus.predict import FundusPredictOptions, predict_fundus

    def report(item, status, detail):
        if status == "invalid":
            console.print(f"{item.image}: skipped ({detail})", highlight=False, soft_wrap=True, markup=False)
        elif quiet:
            return
        elif status == "skipped":
            console.print(f"{item.id}: skipped (already predicted)", highlight=False, soft_wrap=True, markup=False)
        else:
            g = detail["geometry"]
            console.print(f"{item.id}: written ({g['native_size']['width']}x{g['native_size']['height']}, FOV "
                          f"{detail['fov']['source']}, diameter {g['fov_diameter']} px, scale {g['scale']:.3f}; "
                          f"vessels {100 * detail['vessel_fraction_in_fov']:.1f}% of the FOV)",
                          highlight=False, soft_wrap=True, markup=False)

    options = FundusPredictOptions(threshold=threshold, skip_existing=resume, skip_invalid=skip_invalid,
                                   fov_masks=fov_masks)
    with torch.inference_mode():
        counts = predict_fundus(net, meta, input, output, options, device=torch.device(device), on_image=report)
    console.print(f"{fundus_line(counts)}; predictions in {output}", highlight=False, soft_wrap=True, markup=False)


def _predict_seg2d(net, meta: dict, input: Path, output: Path, resume: bool, skip_invalid: bool, quiet: bool) -> None:
    """The 2-D branch of ``seg predict``: one line per input, the ignored files, then the count line."""
    from medmodal.engine.seg2d.predict import Seg2DPredictOptions, not_image_reason, predict_seg2d

    def tally(detail):
        found = ", ".join(f"{c} {n}" for c, n in detail["pixels_per_class"].items() if n and c != "background")
        return f"{found or 'no foreground'}{''.join(f'; {n}' for n in detail['notes'])}"

    options = Seg2DPredictOptions(skip_existing=resume, skip_invalid=skip_invalid)
    counts = predict_seg2d(net, meta, input, output, options,
                           on_item=_file_reporter(quiet, lambda path: path.name, tally))
    _print_file_counts(counts, not_image_reason, "input", "unreadable or not for this model", output)


def _predict_seg3d(net, meta: dict, input: Path, output: Path, resume: bool, skip_invalid: bool, quiet: bool) -> None:
    """The 3-D branch of ``seg predict``: one line per volume, the ignored files, then the count line."""
    from medmodal.engine.seg3d.predict import Seg3DPredictOptions, not_volume_reason, predict_seg3d

    def tally(detail):
        found = ", ".join(f"{c} {n}" for c, n in detail["voxels_per_class"].items() if n and c != "background")
        n = len(detail["notes"])
        noted = f"; {n} note{'' if n == 1 else 's'} in its JSON" if n else ""
        return f"{found + ' voxels' if found else 'no foreground'}{noted}"

    options = Seg3DPredictOptions(skip_existing=resume, skip_invalid=skip_invalid)
    counts = predict_seg3d(net, meta, input, output, options, on_item=_file_reporter(quiet, str, tally))
    _print_file_counts(counts, not_volume_reason, "volume", "unreadable or not a 3-D volume", output)


def _file_reporter(quiet: bool, name: Callable[[Path], str], tally: Callable[[dict], str]):
    """The ``on_item`` of the 2-D / 3-D branches: an invalid input always (its full path), else, unless ``quiet``,
    ``<name(path)>: skipped`` or ``<name(path)>: written <output> (<kind> <shape>; <tally(record)>)``."""
    def report(path, status, detail):
        if status == "invalid":
            console.print(f"{path}: skipped ({detail})", highlight=False, soft_wrap=True, markup=False)
        elif quiet:
            return
        elif status == "skipped":
            console.print(f"{name(path)}: skipped (already predicted)", highlight=False, soft_wrap=True, markup=False)
        else:
            console.print(f"{name(path)}: written {detail['output']} ({detail['kind']} "
                          f"{'x'.join(map(str, detail['shape']))}; {tally(detail)})", highlight=False, soft_wrap=True,
                          markup=False)
    return report


def _print_file_counts(counts: dict, reason: Callable[[Path], Optional[str]], noun: str, invalid: str,
                       output: Path) -> None:
    """The end of the 2-D / 3-D branches: one line per ignored file (``reason`` says why), then the count line
    (:func:`counts_line`) and the output folder."""
    for path in counts["ignored"]:
        console.print(f"{path}: ignored ({reason(Path(path))})", highlight=False, soft_wrap=True, markup=False)
    console.print(f"{counts_line(counts, noun, invalid)}; predictions in {output}", highlight=False, soft_wrap=True,
                  markup=False)


def counts_line(counts: dict, noun: str, invalid: str) -> str:
    """``"3 <noun>s predicted, 2 skipped (1 already predicted (--continue); 1 <invalid> (--skip-invalid))"`` of a
    ``{"written", "skipped", "invalid"}`` count (a missing count is 0)."""
    written, existing, invalid_count = counts.get("written", 0), counts.get("skipped", 0), counts.get("invalid", 0)
    reasons = ([f"{existing} already predicted (--continue)"] if existing else []) + \
        ([f"{invalid_count} {invalid} (--skip-invalid)"] if invalid_count else [])
    why = f" ({'; '.join(reasons)})" if reasons else ""
    return f"{written} {noun}{'' if written == 1 else 's'} predicted, {existing + invalid_count} skipped{why}"


def fundus_line(counts: dict) -> str:
    """``"3 images predicted, 2 skipped (1 already predicted (--continue); 1 unreadable (--skip-invalid))"``."""
    return counts_line(counts, "image", "unreadable")
