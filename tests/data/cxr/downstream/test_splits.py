"""Downstream splits by patient, the leakage check, label-fraction sampling and the balanced subset."""

from pathlib import Path

import numpy as np
import pytest

from medmodal.data.cxr.downstream.base import DownstreamReadResult, DownstreamSample
from medmodal.data.cxr.downstream.chexpert import DESCRIPTOR as CHEXPERT
from medmodal.data.cxr.downstream.covidx import DESCRIPTOR as COVIDX
from medmodal.data.cxr.downstream.splits import (balance_positive_negative, check_no_leakage,
                                                 sample_training_fraction, split_by_group, split_off_images)

pytestmark = pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")


def samples(n=200, per_patient=2, positives=None):
    positives = positives or {}
    out = []
    for i in range(n):
        labels = tuple(float(i in positives.get(k, ())) for k in range(5))
        out.append(DownstreamSample(f"img{i}", f"p{i // per_patient}", Path(f"{i}.png"), split="train", labels=labels))
    return out


def test_leakage_check_names_patients_and_images():
    rows = samples(6)
    rows[0].split, rows[1].split = "train", "test"  # patient p0 in two splits
    with pytest.raises(ValueError, match=r"patient p0 in test, train"):
        check_no_leakage(rows)
    rows[1].split = "train"
    twin = DownstreamSample("img2", "p9", Path("x"), split="val")  # the same image under two patients
    with pytest.raises(ValueError, match=r"image img2 in train, val"):
        check_no_leakage(rows + [twin])


def test_split_by_group_keeps_patients_together_and_is_seeded():
    rows = samples(300, per_patient=3)
    split_by_group(rows, (0.7, 0.15, 0.15), seed=0)
    check_no_leakage(rows)
    patients = {s: len({r.patient_id for r in rows if r.split == s}) for s in ("train", "val", "test")}
    assert patients == {"train": 70, "val": 15, "test": 15}
    first = [r.split for r in rows]
    again = samples(300, per_patient=3)
    split_by_group(again, (0.7, 0.15, 0.15), seed=0)
    assert [r.split for r in again] == first
    split_by_group(again, (0.7, 0.15, 0.15), seed=1)
    assert [r.split for r in again] != first
    two = samples(100, per_patient=1)
    split_by_group(two, (0.8, 0.2), seed=0, names=("train", "val"))
    assert sum(r.split == "val" for r in two) == 20 and {r.split for r in two} == {"train", "val"}


def test_split_off_images_moves_whole_patients():
    rows = samples(100, per_patient=3)
    moved = split_off_images(rows, 20, "val", seed=0)
    val = [r for r in rows if r.split == "val"]
    assert moved == len(val) and 20 <= moved < 23
    check_no_leakage(rows)


def result_of(rows, descriptor=CHEXPERT, task="classification"):
    return DownstreamReadResult(dataset=descriptor, task=task, samples=rows)


def test_fraction_is_deterministic_training_only_and_the_reference_draw():
    rows = samples(200, per_patient=1)
    for s in rows[150:]:
        s.split = "test"
    result = result_of(rows)
    a = sample_training_fraction(result, 0.1, seed=42, ensure_positives=False)
    b = sample_training_fraction(result, 0.1, seed=42, ensure_positives=False)
    c = sample_training_fraction(result, 0.1, seed=7, ensure_positives=False)
    ids = lambda r: [s.sample_id for s in r.select("train")]  # noqa: E731
    assert ids(a) == ids(b) and ids(a) != ids(c) and len(ids(a)) == 15  # round(0.1 * 150)
    expected = np.random.RandomState(42).choice(150, 15, replace=False)  # pandas' DataFrame.sample(frac, 42)
    assert set(ids(a)) == {f"img{i}" for i in expected}
    assert [s.sample_id for s in a.select("test")] == [s.sample_id for s in result.select("test")]
    assert len(result.select("train")) == 150  # the input is not changed
    dense = sample_training_fraction(result_of(rows, task="detection"), 0.013, ensure_positives=False)
    assert len(dense.select("train")) == 1  # int(0.013 * 150) = 1, the reference's np.random.choice size
    assert a.dropped["training images outside the 0.1 label fraction"] == 135
    assert a.split_ids()["train"] == ids(a) and len(a.split_ids()["test"]) == 50 and a.split_ids()["val"] == []
    with pytest.raises(ValueError, match=r"label fraction must be in \(0, 1\]"):
        sample_training_fraction(result, 0)


def test_one_percent_keeps_a_positive_per_finding_when_possible():
    rows = samples(300, per_patient=1, positives={0: range(0, 300, 3), 3: [17], 4: []})
    result = result_of(rows)
    subset = sample_training_fraction(result, 0.01, seed=42)
    train = subset.select("train")
    assert any(s.labels[3] == 1 for s in train)  # the single Edema positive was added
    assert not any(s.labels[4] == 1 for s in train)  # impossible: none in the training split
    assert 3 <= len(train) <= 3 + 4 and any("added" in n and "Edema" in n for n in subset.notes)
    multiclass = [DownstreamSample(f"i{i}", f"p{i}", Path("x"), split="train", class_index=int(i == 5))
                  for i in range(200)]
    picked = sample_training_fraction(result_of(multiclass, COVIDX), 0.01, seed=42).select("train")
    assert {s.class_index for s in picked} == {0, 1}


def test_balanced_subset_keeps_positives_and_as_many_negatives():
    rows = samples(100, per_patient=1, positives={0: range(10)})
    kept, dropped = balance_positive_negative(rows, seed=42)
    assert sum(s.labels[0] == 1 for s in kept) == 10 and len(kept) == 20 and dropped == 80
    again, _ = balance_positive_negative(rows, seed=42)
    assert [s.sample_id for s in again] == [s.sample_id for s in kept]
    few = samples(10, per_patient=1, positives={0: range(8)})
    assert balance_positive_negative(few)[1] == 0
