import pytest

from medmodal.data.splits import load_or_make_splits, make_splits, read_splits, write_splits


def test_splits_deterministic_disjoint_complete():
    ids = [f"c{i:03d}" for i in range(369)]
    s = make_splits(ids, seed=0)
    assert [len(s[k]) for k in ("train", "val", "test")] == [219, 50, 100]
    assert sorted(s["train"] + s["val"] + s["test"]) == ids
    assert make_splits(list(reversed(ids)), seed=0) == s  # order of discovery does not matter
    assert make_splits(ids, seed=1) != s


def test_small_dataset_keeps_every_split():
    s = make_splits(["a", "b", "c", "d"], seed=0)
    assert all(len(v) >= 1 for v in s.values())


def test_split_file_roundtrip_and_reuse(tmp_path):
    ids = [f"c{i}" for i in range(10)]
    first = load_or_make_splits(tmp_path, ids, seed=2)
    assert (tmp_path / "splits_seed2.json").is_file()
    assert load_or_make_splits(tmp_path, ids, seed=2) == first
    write_splits(tmp_path / "x.json", {"train": ["zz"], "val": [], "test": []})
    assert read_splits(tmp_path / "x.json")["train"] == ["zz"]
    (tmp_path / "splits_seed3.json").write_text('{"train": ["ghost"], "val": [], "test": []}')
    with pytest.raises(ValueError, match="ghost"):
        load_or_make_splits(tmp_path, ids, seed=3)
