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


def _read_only(path):
    path.chmod(0o555)
    return path


def test_a_data_folder_marked_read_only_is_never_written(tmp_path, monkeypatch):
    """Data folders are input: one marked read-only (chmod a-w) gets no split file and no cache, for the
    superuser too (who could write there anyway)."""
    from typer.testing import CliRunner

    from medmodal.cli import app
    from medmodal.data.cache import default_cache_dir
    from medmodal.io import is_writable_dir

    data = tmp_path / "data"
    result = CliRunner().invoke(app, ["seg", "synth", str(data), "--cases", "3", "--size", "16"])
    assert result.exit_code == 0, result.output
    assert is_writable_dir(data)
    _read_only(data)
    try:
        assert not is_writable_dir(data)
        monkeypatch.setenv("MEDMODAL_CACHE", str(tmp_path / "cache"))
        assert default_cache_dir(data).parent == tmp_path / "cache"
        ids = ["a", "b", "c", "d"]
        assert sum(map(len, load_or_make_splits(data, ids).values())) == 4
        assert not list(data.glob("splits_seed*.json"))
        result = CliRunner().invoke(app, ["seg", "split", str(data)])
        assert result.exit_code == 1 and "the data folder is read-only; give --out" in result.output
        out = tmp_path / "split.json"
        assert CliRunner().invoke(app, ["seg", "split", str(data), "--out", str(out)]).exit_code == 0
        assert out.is_file() and not list(data.glob("splits_seed*.json"))
    finally:
        data.chmod(0o755)


def test_a_reader_never_writes_the_split_file(tmp_path):
    assert load_or_make_splits(tmp_path, ["a", "b", "c"], write=False)
    assert not list(tmp_path.glob("splits_seed*.json"))
    assert load_or_make_splits(tmp_path, ["a", "b", "c"])
    assert (tmp_path / "splits_seed0.json").is_file()
