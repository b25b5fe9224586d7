"""Fundus bodies of ``medmodal seg synth`` / ``seg summary`` (retinal vessel data, 2-D RGB photographs).

The ``seg`` data verbs read MRI volumes by default; :func:`is_fundus_request` decides when a call is
about fundus photographs instead: a fundus ``--layout``, or ``--layout auto`` on a folder that holds no
NIfTI file (then the fundus detector is asked; a folder neither family recognises is one line naming
both families' layouts).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from medmodal.cli.common import console, print_wide
from medmodal.errors import LayoutError

#: ``seg synth --dataset`` names of the synthetic fundus twins and the layout each writes.
SYNTH_DATASETS = {"drive": "drive", "chase_db1": "chase_db1", "hrf": "hrf", "stare": "stare",
                  "fundus-generic": "generic"}
#: ``seg summary --layout`` names read by the fundus readers.
SUMMARY_LAYOUTS = ("drive", "chase_db1", "hrf", "stare", "generic")
VOLUME_LAYOUTS_LINE = ("MRI volumes: BraTS 2020 '<case>_flair.nii.gz', BraTS 2023 '<case>-t2f.nii.gz', MyoPS "
                       "'<case>_C0.nii.gz', nnU-Net / Decathlon dataset.json")
FUNDUS_LAYOUTS_LINE = ("fundus: DRIVE training/ + test/, CHASE_DB1 Image_<nn><L|R>.jpg, HRF images/ + manual1/, "
                       "STARE stare-images/, or images/ + masks/")


def _has_nifti(root: Path) -> bool:
    for _, _, files in os.walk(root):
        if any(f.endswith((".nii", ".nii.gz")) for f in files):
            return True
    return False


def is_fundus_request(root: Path, layout: str, mapping: Optional[str]) -> bool:
    """True for a fundus ``layout``, or ``auto`` without ``--map`` on a folder without NIfTI files that a
    fundus reader recognises. Raises one :class:`LayoutError` line naming both families' layouts when an
    ``auto`` folder without NIfTI files is no fundus folder either."""
    if layout in SUMMARY_LAYOUTS:
        return True
    if layout != "auto" or mapping is not None or not root.is_dir() or _has_nifti(root):
        return False
    from medmodal.data.fundus.layouts import FAMILY
    from medmodal.data.layouts import find_layout

    if find_layout(FAMILY, root) is None:
        from medmodal.data.seg2d.layouts import EXPECTED_LAYOUTS_LINE

        raise LayoutError(f"{root}: no NIfTI files and no fundus layout recognised (expected {VOLUME_LAYOUTS_LINE}; "
                          f"or {FUNDUS_LAYOUTS_LINE}; or 2-D: {EXPECTED_LAYOUTS_LINE}); pass --layout")
    return True


def synth_fundus_cmd(out: Path, dataset: str, n: int, size: Optional[int], seed: int) -> None:
    """Write the synthetic twin of ``dataset`` (a key of :data:`SYNTH_DATASETS`) and print one line."""
    from medmodal.data.fundus.layouts import read_fundus
    from medmodal.data.fundus.synthetic import write_synthetic

    layout = SYNTH_DATASETS[dataset]
    write_synthetic(out, layout, n=n, size=size or 64, seed=seed)
    found = read_fundus(out, layout)
    splits = {}
    for sample in found:
        splits[sample.split] = splits.get(sample.split, 0) + 1
    per_split = (" (" + ", ".join(f"{k} {v}" for k, v in splits.items()) + ")") if None not in splits else ""
    fov = sum(s.fov is not None for s in found)
    console.print(f"wrote {_count(len(found), 'synthetic ' + dataset + ' image')}{per_split} with vessel labels "
                  f"and {_count(fov, 'FOV mask')} to {out} ({layout} layout)", highlight=False, soft_wrap=True)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def fov_kind(sample, layout: str) -> str:
    """:attr:`~medmodal.data.fundus.layouts.FundusSample.fov_source` (kept for callers of the CLI helper)."""
    return sample.fov_source


def summary_fundus_cmd(root: Path, layout: str) -> None:
    """A table per image (id, split, size, observers, FOV), the reader's notes, one line of counts."""
    from PIL import Image
    from rich.table import Table

    from medmodal.data.fundus.layouts import read_fundus

    found = read_fundus(root, layout, require_labels=False)
    table = Table(show_edge=False)
    for column in ("id", "split", "size", "observers", "FOV"):
        table.add_column(column)
    kinds: dict[str, int] = {}
    for sample in found:
        with Image.open(sample.image) as image:
            width, height = image.size
        kind = fov_kind(sample, found.layout)
        kinds[kind] = kinds.get(kind, 0) + 1
        table.add_row(sample.id, sample.split or "-", f"{width}x{height}", str(len(sample.labels)), kind)
    print_wide(table)
    for note in found.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    splits: dict[str, int] = {}
    for sample in found:
        if sample.split:
            splits[sample.split] = splits.get(sample.split, 0) + 1
    split_text = "".join(f", {k} {v}" for k, v in splits.items())
    labelled = sum(bool(s.labels) for s in found)
    console.print(f"layout: {found.layout}; {_count(len(found), 'image')}{split_text}; {labelled} labelled; FOV "
                  + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())), highlight=False, soft_wrap=True)
