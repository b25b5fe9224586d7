"""Notes of the fine-tuning data module (no training): the image cache's folder, one-class splits,
loader workers capped at the CPUs."""

from __future__ import annotations

import shutil

from medmodal.engine.finetune.config import load_finetune_config
from medmodal.engine.finetune.data import FinetuneDataModule


def covidx_config(root, *extra: str):
    return load_finetune_config(preset="finetune_tiny_classification", dataset="covidx",
                                overrides=[f"data.root={root}", *extra])


def test_a_new_image_cache_is_named_once(twins, tmp_path):
    root = tmp_path / "covidx"
    shutil.copytree(twins["covidx"], root, ignore=shutil.ignore_patterns(".medmodal_cache"))
    first = FinetuneDataModule(covidx_config(root))
    notes = [n for n in first.notes if n.startswith("image cache:")]
    assert len(notes) == 1 and str(root.resolve() / ".medmodal_cache") in notes[0], first.notes
    again = FinetuneDataModule(covidx_config(root))  # the cache is there: nothing to say
    assert not [n for n in again.notes if n.startswith("image cache:")]
    elsewhere = FinetuneDataModule(covidx_config(root, f"data.cache_dir={tmp_path / 'cache'}"))
    assert any(str(tmp_path / "cache") in n and "data.cache_dir" in n for n in elsewhere.notes)
