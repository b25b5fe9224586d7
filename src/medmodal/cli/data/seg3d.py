"""3-D single-image segmentation bodies of ``medmodal seg synth`` / ``seg summary`` (UA-MT's LA2018 HDF5, BHSD-style
haemorrhage CT, a NIfTI folder with unlabelled images): the data of ``task: 3d`` runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from medmodal.cli.common import console, print_wide

#: ``seg synth --dataset`` names of the synthetic 3-D twins and the layout each writes.
SYNTH_DATASETS = {"la2018": "la2018", "bhsd": "bhsd", "nifti-folder": "nifti_folder"}
#: ``seg summary --layout`` names read by the 3-D readers.
SUMMARY_LAYOUTS = ("la2018", "bhsd", "nifti_folder")


def is_seg3d_request(root: Path, layout: str) -> bool:
    """True for a 3-D ``layout``, or ``auto`` on a folder the LA2018 or BHSD reader recognises (a NIfTI folder with
    ``imagesTr/`` is an nnU-Net folder of the MRI readers unless ``--layout nifti_folder`` says otherwise)."""
    if layout in SUMMARY_LAYOUTS:
        return True
    if layout != "auto" or not Path(root).is_dir():
        return False
    from medmodal.data.layouts import find_layout
    from medmodal.data.seg3d import FAMILY

    found = find_layout(FAMILY, root)
    return found is not None and found[0] in ("la2018", "bhsd")


def _line(found) -> str:
    splits: dict = {}
    for case in found.cases:
        splits[case.split] = splits.get(case.split, 0) + 1
    unlabelled = sum(not c.has_label for c in found.cases)
    parts = ", ".join(f"{k or 'no split'} {v}" for k, v in splits.items())
    return f"{len(found.cases)} volumes ({parts})" + (f"; unlabelled {unlabelled}" if unlabelled else "")


def synth_seg3d_cmd(out: Path, dataset: str, n: int, size: Optional[int], seed: int) -> None:
    """Write the synthetic twin of ``dataset`` (a key of :data:`SYNTH_DATASETS`) and print one line of counts."""
    from medmodal.data.seg3d import read_seg3d, write_synthetic

    layout = SYNTH_DATASETS[dataset]
    edge = size or 48   # in-plane edge; the twin's third axis is half of it (at least 16)
    write_synthetic(out, layout, n=n, size=(edge, edge, max(16, edge // 2)), seed=seed)
    found = read_seg3d(out, layout)
    console.print(f"wrote synthetic {dataset} data to {out} ({layout} layout): {_line(found)}", highlight=False,
                  soft_wrap=True)


def summary_seg3d_cmd(root: Path, layout: str) -> None:
    """A table per case (id, split, labelled, shape from the header), the notes, one line of counts."""
    from rich.table import Table

    from medmodal.data.seg3d import read_seg3d, volume_shape

    found = read_seg3d(root, layout)
    table = Table(show_edge=False)
    for column in ("id", "split", "label", "shape"):
        table.add_column(column)
    for case in found.cases:
        table.add_row(case.id, case.split or "-", "yes" if case.has_label else "unlabelled",
                      " x ".join(str(s) for s in volume_shape(case, found)))
    print_wide(table)
    for note in found.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    console.print(f"{found.layout} ({found.dataset}; classes {', '.join(found.classes)}): {_line(found)}",
                  highlight=False, soft_wrap=True)
