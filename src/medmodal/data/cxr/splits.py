"""Patient-level splits of chest X-ray rows.

Rows of one patient (all their studies and images) always share a split: a patient in two
splits leaks their anatomy from training into evaluation. :func:`check_patient_splits` refuses
that; :func:`assign_patient_splits` draws a split by patient where a dataset has none (IU X-ray
in the Open-i CSV layout, a generic CSV without split column), with
:func:`medmodal.data.splits.make_splits` on the sorted patient ids, so the result depends only
on the patients and the seed.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from medmodal.data.cxr.records import Study
from medmodal.data.splits import check_disjoint_groups, make_splits
from medmodal.errors import DataError

#: R2Gen's IU X-ray proportions (train / val / test = 70 / 10 / 20 %).
IU_FRACTIONS = (0.7, 0.1, 0.2)


def check_patient_splits(studies: Sequence[Study]) -> None:
    """Raise ValueError when a patient has rows in more than one split (rows without split ignored)."""
    check_disjoint_groups(((s.patient_id, s.split) for s in studies if s.split is not None), what="patient")


def assign_patient_splits(studies: Sequence[Study], fractions: Sequence[float] = IU_FRACTIONS, seed: int = 0,
                          overwrite: bool = False) -> list[Study]:
    """Copies of ``studies`` with ``split`` drawn per patient (``train`` / ``val`` / ``test``).

    Args:
        fractions: train, val, test proportions of *patients*.
        overwrite: replace existing splits; by default only rows without split get one and the
            existing splits are checked to be patient-disjoint first.

    Raises:
        ValueError: a patient already has rows in two splits, or in a split and without one.
    """
    if not overwrite:
        check_patient_splits(studies)
        fixed = {s.patient_id for s in studies if s.split is not None}
        mixed = sorted(fixed & {s.patient_id for s in studies if s.split is None})
        if mixed:
            raise DataError(f"patient {mixed[0]} has rows with and without a split; use overwrite=True")
    todo = sorted({s.patient_id for s in studies if overwrite or s.split is None})
    split_of = {p: name for name, ids in make_splits(todo, fractions, seed).items() for p in ids} if todo else {}
    return [dataclasses.replace(s, split=split_of.get(s.patient_id, None if overwrite else s.split))
            if (overwrite or s.split is None) else s for s in studies]


def select_split(studies: Sequence[Study], split: str) -> list[Study]:
    """Rows of one split (``train`` | ``val`` | ``test``)."""
    return [s for s in studies if s.split == split]
