"""2-D segmentation bodies of ``medmodal seg synth`` / ``seg summary`` (Synapse, ACDC, CVC-ClinicDB, Kvasir-SEG,
ERANet's meniscus slices, a user's folder2d).

The ``seg`` data verbs read MRI volumes by default; :func:`is_seg2d_request` decides, before the fundus and
NIfTI checks, when a call is about a 2-D segmentation set instead: a 2-D ``--layout``, or ``--layout auto`` on a
folder one of the (specific) 2-D detectors recognises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from medmodal.cli.common import console, print_wide

#: ``seg synth --dataset`` names of the synthetic 2-D twins and the layout each writes.
SYNTH_DATASETS = {"synapse": "synapse", "synapse-raw": "synapse_raw", "acdc": "acdc", "acdc-h5": "acdc_h5",
                  "cvc-clinicdb": "cvc_clinicdb", "kvasir-seg": "kvasir_seg", "meniscus": "meniscus",
                  "folder2d": "folder2d"}
#: ``seg summary --layout`` names read by the 2-D readers.
SUMMARY_LAYOUTS = ("synapse", "synapse_raw", "acdc_h5", "acdc", "cvc_clinicdb", "kvasir_seg", "meniscus", "folder2d")
_SPLIT_NAMES = ("train", "val", "test", None)


def is_seg2d_request(root: Path, layout: str, mapping: Optional[str]) -> bool:
    """True for a 2-D ``layout``, or ``auto`` without ``--map`` on a folder a 2-D reader recognises."""
    if layout in SUMMARY_LAYOUTS:
        return True
    if layout != "auto" or mapping is not None or not Path(root).is_dir():
        return False
    from medmodal.data.layouts import find_layout
    from medmodal.data.seg2d import FAMILY

    return find_layout(FAMILY, root) is not None


def _per_split(values: dict) -> str:
    return ", ".join(f"{split or 'no split'} {values[split]}" for split in _SPLIT_NAMES if split in values)


def counts_line(found, depths: dict[str, int]) -> str:
    """``<n> cases: train a, val b, test c; patients: ...; slices: ...`` (patients for ACDC; photographs and
    folder2d pictures: images; meniscus: slices and patients, ``unlabelled u`` when some are).

    Args:
        found: the :class:`~medmodal.data.seg2d.Seg2DSet`.
        depths: slices per case id.
    """
    from medmodal.data.seg2d import case_patient

    cases: dict = {}
    slices: dict = {}
    patients: dict = {}
    for case in found:
        cases[case.split] = cases.get(case.split, 0) + 1
        slices[case.split] = slices.get(case.split, 0) + depths[case.id]
        patients.setdefault(case.split, set()).add(case_patient(case))
    if found.dataset in ("polyp", "folder2d"):
        return f"{_count(len(found), 'image')} ({_per_split(cases)})"
    if found.dataset == "meniscus":
        unlabelled = sum(not c.has_label for c in found)
        return (f"{_count(len(found), 'slice')}: {_per_split(cases)}; patients: "
                f"{_per_split({k: len(v) for k, v in patients.items()})}"
                + (f"; unlabelled {unlabelled}" if unlabelled else ""))
    text = f"{_count(len(found), 'case')}: {_per_split(cases)}"
    if found.dataset == "acdc":
        text += f"; patients: {_per_split({k: len(v) for k, v in patients.items()})}"
    return text + f"; slices: {_per_split(slices)}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def synth_seg2d_cmd(out: Path, dataset: str, n: int, size: Optional[int], seed: int) -> None:
    """Write the synthetic twin of ``dataset`` (a key of :data:`SYNTH_DATASETS`) and print one line of counts."""
    from medmodal.data.seg2d import case_shape, read_seg2d, write_synthetic

    layout = SYNTH_DATASETS[dataset]
    write_synthetic(out, layout, n=n, size=size or 64, seed=seed)
    found = read_seg2d(out, layout)
    depths = {c.id: case_shape(found, c)[0] for c in found}
    console.print(f"wrote synthetic {dataset} data to {out} ({layout} layout): {counts_line(found, depths)}",
                  highlight=False, soft_wrap=True)


def summary_seg2d_cmd(root: Path, layout: str, validate: bool = True) -> None:
    """A table per case (id, split, kind, slices, size, classes present), the notes, one line of counts.

    Shapes come from the file headers; the labels are read for the classes column only when ``validate``.
    """
    import numpy as np
    from rich.table import Table

    from medmodal.data.seg2d import case_shape, load_label, read_seg2d

    found = read_seg2d(root, layout, require_labels=False)
    table = Table(show_edge=False)
    for column in ("id", "split", "kind", "slices", "size", "classes"):
        table.add_column(column)
    depths = {}
    for case in found:
        depth, height, width = case_shape(found, case)
        depths[case.id] = depth
        if not case.has_label:
            classes = "unlabelled"
        elif validate:
            present = [int(v) for v in np.unique(load_label(found, case)) if v]
            classes = ", ".join(found.classes[v] for v in present) or "background only"
        else:
            classes = "-"
        table.add_row(case.id, case.split or "-", case.kind, str(depth), f"{height}x{width}", classes)
    print_wide(table)
    for note in found.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    labelled = sum(c.has_label for c in found)
    console.print(f"layout: {found.layout}; {counts_line(found, depths)}; {labelled} labelled", highlight=False,
                  soft_wrap=True)
