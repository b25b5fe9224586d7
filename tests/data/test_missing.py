import numpy as np
import pytest

from medmodal.data.missing import (all_subsets, assign_imbalanced, parse_rates, parse_subset, random_subset_mask,
                                   read_missing_csv, realised_missing_rates, subset_name, write_missing_csv)
from medmodal.data.volumes.spec import BRATS_MODALITIES


def test_all_subsets_count_order_and_uniqueness():
    subsets = all_subsets(4)
    assert len(subsets) == 15 and len(set(subsets)) == 15
    assert subsets[:4] == [(True, False, False, False), (False, True, False, False),
                           (False, False, True, False), (False, False, False, True)]
    assert subsets[-1] == (True,) * 4
    assert [sum(s) for s in subsets] == sorted(sum(s) for s in subsets)
    assert len(all_subsets(3)) == 7 and len(all_subsets(1)) == 1


def test_subset_names_roundtrip():
    for s in all_subsets(4):
        assert parse_subset(subset_name(s, BRATS_MODALITIES), BRATS_MODALITIES) == s
    with pytest.raises(ValueError, match="bad subset"):
        parse_subset("flair+pet", BRATS_MODALITIES)


def test_random_subset_mask_balanced_and_restricted():
    rng = np.random.default_rng(0)
    draws = np.array([random_subset_mask(4, rng) for _ in range(3000)])
    assert draws.any(axis=1).all()
    patterns = {tuple(d) for d in draws}
    assert len(patterns) == 15
    counts = np.unique(draws, axis=0, return_counts=True)[1]
    assert counts.min() > 3000 / 15 * 0.7  # roughly uniform over the 15 subsets
    restricted = np.array([random_subset_mask(4, rng, available=[True, False, True, False]) for _ in range(200)])
    assert not restricted[:, [1, 3]].any()


@pytest.mark.parametrize("n", [100, 369])
def test_imbalanced_assignment_matches_rates(n, tmp_path):
    rates = {"flair": 0.2, "t1": 0.4, "t1ce": 0.6, "t2": 0.8}
    ids = [f"case{i:03d}" for i in range(n)]
    assignment = assign_imbalanced(ids, rates, BRATS_MODALITIES, seed=3)
    assert set(assignment) == set(ids) and all(any(m) for m in assignment.values())
    real = realised_missing_rates(assignment, BRATS_MODALITIES)
    for m, r in rates.items():
        assert abs(real[m] - r) < 0.05, (m, real[m], r)
    assert sum(all(m) for m in assignment.values()) < 0.05 * n  # very few complete cases
    path = write_missing_csv(tmp_path / "mr.csv", assignment, BRATS_MODALITIES)
    assert read_missing_csv(path, BRATS_MODALITIES) == assignment
    assert assign_imbalanced(ids, rates, BRATS_MODALITIES, seed=3) == assignment
    assert assign_imbalanced(ids, rates, BRATS_MODALITIES, seed=4) != assignment


def test_missing_csv_columns_by_name(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("t2,case_id,flair,t1,t1ce\n1,a,0,0,0\n0,b,1,1,1\n")
    assert read_missing_csv(path, BRATS_MODALITIES) == {"a": (False, False, False, True), "b": (True, True, True, False)}
    path.write_text("case_id,flair,t1,t1ce,t2\na,0,0,0,0\n")
    with pytest.raises(ValueError, match=r"m.csv:2: case a has no sequence present"):
        read_missing_csv(path, BRATS_MODALITIES)
    path.write_text("case_id,flair\na,1\n")
    with pytest.raises(ValueError, match="columns"):
        read_missing_csv(path, BRATS_MODALITIES)


def test_parse_rates():
    assert parse_rates("flair=0.2,T1=40%,t1ce=60") == {"flair": 0.2, "t1": 0.4, "t1ce": 0.6}
    with pytest.raises(ValueError, match="unknown sequences"):
        assign_imbalanced(["a"], {"pet": 0.5}, BRATS_MODALITIES)
