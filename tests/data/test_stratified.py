import pytest

from medmodal.data.stratified import fold_splits, label_fraction_subset, stratified_splits


def _data():
    ids = [f"s{i:03d}" for i in range(200)]
    labels = ["a"] * 100 + ["b"] * 60 + ["c"] * 30 + ["d"] * 5 + [None] * 5
    return ids, labels


def test_stratified_splits_keep_class_proportions():
    ids, labels = _data()
    s = stratified_splits(ids, labels, (0.7, 0.1, 0.2), seed=0)
    lab = dict(zip(ids, labels))
    assert sorted(s["train"] + s["val"] + s["test"]) == ids
    count = {k: {c: sum(lab[i] == c for i in v) for c in "abcd"} for k, v in s.items()}
    assert count["train"]["a"] == 70 and count["val"]["a"] == 10 and count["test"]["a"] == 20
    assert count["test"]["b"] == 12 and count["test"]["c"] == 6 and count["test"]["d"] >= 1
    assert all(lab[i] is not None for i in s["val"] + s["test"])  # unlabelled ids go to train
    assert stratified_splits(list(reversed(ids)), list(reversed(labels)), (0.7, 0.1, 0.2), seed=0) == s
    assert stratified_splits(ids, labels, (0.7, 0.1, 0.2), seed=1) != s


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.1, 1.0])
def test_label_fraction_subset_stratified_with_one_per_class(fraction):
    ids, labels = _data()
    keep = label_fraction_subset(ids, labels, fraction, seed=0)
    lab = dict(zip(ids, labels))
    per_class = {c: sum(lab[i] == c for i in keep) for c in "abcd"}
    assert all(v >= 1 for v in per_class.values()) and None not in {lab[i] for i in keep}
    assert per_class["a"] == max(1, round(100 * fraction))
    if fraction == 1.0:
        assert len(keep) == 195


def test_label_fractions_are_nested_and_seeded():
    ids, labels = _data()
    subsets = [set(label_fraction_subset(ids, labels, f, seed=4)) for f in (0.01, 0.05, 0.1, 1.0)]
    assert all(a <= b for a, b in zip(subsets, subsets[1:]))
    assert set(label_fraction_subset(ids, labels, 0.1, seed=5)) != subsets[2]
    with pytest.raises(ValueError, match="label fraction"):
        label_fraction_subset(ids, labels, 0.0)


def test_fold_splits():
    ids = [f"x{i}" for i in range(20)]
    folds = ["fold0"] * 10 + ["fold1"] * 9 + [None]
    labels = ["a", "b"] * 10
    s = fold_splits(ids, folds, labels, "fold1", val_fraction=0.2)
    assert s["test"] == sorted(ids[10:19]) and sorted(s["train"] + s["val"]) == sorted(ids[:10])
    assert len(s["val"]) == 2
    with pytest.raises(ValueError, match="fold 'fold7' not found"):
        fold_splits(ids, folds, labels, "fold7")
