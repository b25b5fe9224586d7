"""Human-readable dataset summaries (used by ``medmodal data summary``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import nibabel as nib
import numpy as np

from medmodal.data.volumes.layouts import Case
from medmodal.data.volumes.loading import load_case
from medmodal.data.volumes.spec import DatasetSpec


@dataclass
class CaseSummary:
    case_id: str
    present: tuple[bool, ...]
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    class_voxels: dict[str, int] | None


def summarize_case(case: Case, spec: DatasetSpec, validate: bool = True) -> CaseSummary:
    """Sequences present, grid and per-class voxel counts (validating the case when ``validate``)."""
    if validate:
        loaded = load_case(case, spec)
        counts = None
        if loaded.label is not None:
            values, n = np.unique(loaded.label, return_counts=True)
            counts = {spec.class_names[v]: int(c) for v, c in zip(values, n)}
        return CaseSummary(case.case_id, tuple(loaded.present), tuple(loaded.image.shape[1:]), loaded.spacing, counts)
    ref = nib.load(str(next(iter(case.images.values()))))
    return CaseSummary(case.case_id, case.present(spec.modalities), tuple(ref.shape),
                       tuple(float(z) for z in ref.header.get_zooms()[:3]), None)


def summary_table(summaries: Sequence[CaseSummary], spec: DatasetSpec):
    """A :class:`rich.table.Table` with one row per case and a footer of sequence availability."""
    from rich.table import Table

    table = Table(title=f"{len(summaries)} cases ({spec.name})")
    table.add_column("case", no_wrap=True, min_width=max((len(s.case_id) for s in summaries), default=4))
    for m in spec.modalities:
        table.add_column(m, justify="center")
    table.add_column("shape", no_wrap=True)
    table.add_column("spacing (mm)", no_wrap=True)
    for name in spec.class_names[1:]:
        table.add_column(name, justify="right")
    for s in summaries:
        marks = ["●" if p else "○" for p in s.present]
        counts = [str(s.class_voxels.get(n, 0)) if s.class_voxels is not None else "-" for n in spec.class_names[1:]]
        table.add_row(s.case_id, *marks, "x".join(map(str, s.shape)), "x".join(f"{z:g}" for z in s.spacing), *counts)
    return table


def availability(summaries: Sequence[CaseSummary], spec: DatasetSpec) -> dict[str, int]:
    """Number of cases that have each sequence."""
    counter: Counter = Counter()
    for s in summaries:
        for m, p in zip(spec.modalities, s.present):
            counter[m] += int(p)
    return {m: counter[m] for m in spec.modalities}
