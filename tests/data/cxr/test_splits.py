"""Patient-level splits."""

import pytest

from medmodal.data.cxr.records import Study
from medmodal.data.cxr.splits import assign_patient_splits, check_patient_splits


def rows(patients, split=None):
    return [Study(f"s{i}", p, [], [], "", "", ["a b"], split) for i, p in enumerate(patients)]


def test_patient_in_two_splits_is_refused():
    studies = rows(["p1", "p1", "p2"])
    studies[0].split, studies[1].split, studies[2].split = "train", "test", "train"
    with pytest.raises(ValueError, match="patient p1 in test, train"):
        check_patient_splits(studies)


def test_assigned_splits_keep_patients_together_and_are_deterministic():
    patients = [f"p{i % 37}" for i in range(200)]
    first = assign_patient_splits(rows(patients), seed=3)
    check_patient_splits(first)
    assert {s.split for s in first} == {"train", "val", "test"}
    assert [s.split for s in first] == [s.split for s in assign_patient_splits(rows(list(reversed(patients)))[::-1],
                                                                                seed=3)]
    assert [s.split for s in first] != [s.split for s in assign_patient_splits(rows(patients), seed=4)]


def test_existing_splits_are_kept_or_refused():
    studies = rows(["a", "b", "c"])
    studies[0].split = "test"
    kept = assign_patient_splits(studies)
    assert kept[0].split == "test" and all(s.split for s in kept)
    mixed = rows(["a", "a"])
    mixed[0].split = "train"
    with pytest.raises(ValueError, match="patient a has rows with and without a split"):
        assign_patient_splits(mixed)
