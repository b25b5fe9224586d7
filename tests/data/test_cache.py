"""medmodal.data.cache.default_cache_dir: one default cache folder for every family."""

from __future__ import annotations

import os

from medmodal.data.cache import default_cache_dir


def test_folder_file_and_read_only_roots(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "table.csv").write_text("a\n")
    assert default_cache_dir(data) == data.resolve() / ".medmodal_cache"
    assert default_cache_dir(data / "table.csv") == data.resolve() / ".medmodal_cache"
    monkeypatch.setenv("MEDMODAL_CACHE", str(tmp_path / "home-cache"))
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    fallback = default_cache_dir(data)
    assert fallback.parent == tmp_path / "home-cache" and fallback.name.startswith("data-")


def test_old_homes_reexport_it():
    from medmodal.data.volumes.preprocess import default_cache_dir as volumes
    from medmodal.engine.finetune.data import default_cache_dir as finetune
    from medmodal.engine.image_text.data import default_cache_dir as image_text

    assert volumes is finetune is image_text is default_cache_dir
