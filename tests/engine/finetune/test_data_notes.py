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


def test_a_split_of_one_class_is_noted(twins, tmp_path):
    root = tmp_path / "covidx"
    shutil.copytree(twins["covidx"], root, ignore=shutil.ignore_patterns(".medmodal_cache"))
    test_file = root / "test_COVIDx9A.txt"
    rows = [r for r in test_file.read_text().splitlines() if r.split()[2] == "COVID-19"]
    test_file.write_text("\n".join(rows) + "\n")
    data = FinetuneDataModule(covidx_config(root))
    assert (f"the test split holds one class only (COVID-19, {len(rows)} images): test accuracy only counts how "
            f"often that class is predicted; no other class is tested") in data.notes
    assert not any(n.startswith("the train split holds one class") for n in data.notes)
    assert not any("one class only" in n for n in FinetuneDataModule(covidx_config(twins["covidx"])).notes)


def test_a_finding_of_one_value_is_noted():
    from types import SimpleNamespace

    from medmodal.engine.finetune.data import one_class_notes

    nan = float("nan")
    row = lambda *labels: SimpleNamespace(labels=labels, class_index=None)  # noqa: E731
    descriptor = SimpleNamespace(label_names=("Edema", "Atelectasis"), label_kind="multilabel")
    notes = one_class_notes({"train": [row(1.0, 0.0), row(0.0, 1.0)], "test": [row(0.0, 1.0), row(0.0, nan)]},
                            descriptor)
    assert notes == ["the test split holds one class only for Edema (all negative), Atelectasis (all positive): "
                     "its test AUROC is undefined (n/a) and left out of the mean"]


def test_loader_workers_are_capped_at_the_cpus(twins, monkeypatch):
    import medmodal.config.common as common

    monkeypatch.setattr(common, "usable_cpus", lambda: 2)
    data = FinetuneDataModule(covidx_config(twins["covidx"], "data.num_workers=4"))
    assert data.num_workers == 2
    assert "data.num_workers 4 is more than the 2 CPUs this process may use: loading with 2 workers" in data.notes
    fits = FinetuneDataModule(covidx_config(twins["covidx"], "data.num_workers=2"))
    assert fits.num_workers == 2 and not any("CPUs" in n for n in fits.notes)
