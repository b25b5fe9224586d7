"""Human-readable dataset summaries (used by ``medmodal seg summary``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import nibabel as nib
import numpy as np

from medmodal.data.volumes.layouts import Case
from medmodal.data.volumes.loading import DEFAULT_AFFINE_TOLERANCE, label_spec_for, load_case
from medmodal.data.volumes.spec import DatasetSpec, describe_source_labels


@dataclass
class CaseSummary:
    case_id: str
    present: tuple[bool, ...]
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    class_voxels: dict[str, int] | None
    labels: str | None = None  # the label convention the case's label file is read with


def label_convention(case: Case, spec: DatasetSpec) -> str | None:
    """``"brats2023 (1 = necrosis, 2 = edema, 3 = enhancing)"`` for a case with a label file, else ``None``."""
    if case.label is None:
        return None
    convention = label_spec_for(case, spec)
    return f"{convention.name} ({describe_source_labels(convention.source_labels, spec)})"


def summarize_case(case: Case, spec: DatasetSpec, validate: bool = True,
                   affine_tolerance: float = DEFAULT_AFFINE_TOLERANCE) -> CaseSummary:
    """Sequences present, grid and per-class voxel counts (validating the case when ``validate``)."""
    labels = label_convention(case, spec)
    if validate:
        loaded = load_case(case, spec, affine_tolerance=affine_tolerance)
        counts = None
        if loaded.label is not None:
            values, n = np.unique(loaded.label, return_counts=True)
            counts = {spec.class_names[v]: int(c) for v, c in zip(values, n)}
        return CaseSummary(case.case_id, tuple(loaded.present), tuple(loaded.image.shape[1:]), loaded.spacing, counts,
                           labels)
    ref = nib.load(str(next(iter(case.images.values()))))
    return CaseSummary(case.case_id, case.present(spec.modalities), tuple(ref.shape[:3]),
                       tuple(float(z) for z in ref.header.get_zooms()[:3]), None, labels)


def summary_title(summaries: Sequence[CaseSummary], spec: DatasetSpec) -> str:
    """``"3 cases (BraTS tumour classes; labels read as brats2023 (1 = necrosis, ...))"``: the class set
    (named without a label convention, so BraTS 2023 files do not read as "brats2020") and the
    conventions the label files were read with."""
    conventions = sorted({s.labels for s in summaries if s.labels})
    read = "; labels read as " + " / ".join(conventions) if conventions else "; no label files"
    classes = spec.extra.get("classes_title", f"{spec.name} classes")
    return f"{len(summaries)} case{'' if len(summaries) == 1 else 's'} ({classes}{read})"


def summary_table(summaries: Sequence[CaseSummary], spec: DatasetSpec):
    """A :class:`rich.table.Table` with one row per case and a footer of sequence availability."""
    from rich.table import Table

    title = summary_title(summaries, spec)
    table = Table(title=title, min_width=len(title) + 4)  # the title on one line when there is room
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
