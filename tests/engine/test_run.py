"""RunResult reads like the dicts / run folder the run functions returned before; the segmentation
engine's "finished" rule (model bundle + train_time.json with the configured epochs)."""

import json
import os
from pathlib import Path

from medmodal.config import load_config, packaged_config
from medmodal.engine.run import RunResult, finished_result
from medmodal.engine.segmentation.train import TRAIN_TIME_FILE, finished_training


def test_run_result_reads_like_the_old_dict_and_path(tmp_path):
    flat = {"run_dir": str(tmp_path), "test": {"accuracy": 0.5}, "notes": ["n"], "train_seconds": 1.5}
    result = RunResult.from_dict(flat, {"model": tmp_path / "model.safetensors"})
    assert result["test"] == {"accuracy": 0.5} and result["notes"] == ["n"] and not result.get("skipped")
    assert result.get("evaluation") is None and "test" in result and result.seconds == 1.5
    assert {**result} == {**flat, "skipped": False} and result.to_dict() == dict(result)
    assert os.fspath(result) == str(tmp_path) and result / "model" == tmp_path / "model"
    assert result.artefacts == {"model": str(tmp_path / "model.safetensors")}


def test_finished_result_is_skipped_and_rebased(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"run_dir": "/elsewhere", "notes": [], "value": 1}))
    assert finished_result(tmp_path, "never") is None
    done = finished_result(tmp_path, "auto")
    assert done.skipped and done.run_dir == str(tmp_path) and done["value"] == 1


def test_segmentation_run_is_finished_when_its_epochs_are_done(tmp_path):
    cfg = load_config(packaged_config("demo_cpu"), ["trainer.max_epochs=2"])
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_text("{}")
    assert finished_training(tmp_path, cfg, "auto") is None  # no train_time.json: not finished
    (tmp_path / TRAIN_TIME_FILE).write_text(json.dumps({"train_seconds": 3.0}))
    assert finished_training(tmp_path, cfg, "auto") is None  # written before the epochs were recorded: continue
    (tmp_path / TRAIN_TIME_FILE).write_text(json.dumps({"train_seconds": 3.0, "epochs": 2}))
    done = finished_training(tmp_path, cfg, "auto")
    assert done.skipped and done.seconds == 3.0 and done.artefacts["model"] == str(tmp_path / "model")
    assert finished_training(tmp_path, cfg, "never") is None
    more = load_config(packaged_config("demo_cpu"), ["trainer.max_epochs=3"])
    assert finished_training(tmp_path, more, "auto") is None  # more epochs asked: the run continues


def test_bad_input_before_training_leaves_no_half_made_run_folder(tmp_path):
    from types import SimpleNamespace

    import pytest

    from medmodal.engine.run import removes_new_files_on_input_error
    from medmodal.errors import DataError

    @removes_new_files_on_input_error
    def run(cfg, trained=False):
        folder = Path(cfg.out_dir)
        folder.mkdir(exist_ok=True)
        (folder / "config.yaml").write_text("x: 1\n")
        (folder / "logs").mkdir()
        if trained:
            (folder / "checkpoints").mkdir()
        raise DataError("a.png: truncated image")

    with pytest.raises(DataError):
        run(SimpleNamespace(out_dir=str(tmp_path / "new")))
    assert not (tmp_path / "new").exists()  # made by the run, emptied: gone
    old = tmp_path / "old"
    old.mkdir()
    (old / "notes.txt").write_text("mine")
    os.utime(old / "notes.txt", (os.path.getmtime(old) - 60,) * 2)  # written before the run, as a user's file is
    with pytest.raises(DataError):
        run(SimpleNamespace(out_dir=str(old)))
    assert sorted(p.name for p in old.iterdir()) == ["notes.txt"]  # the user's file and folder stay
    with pytest.raises(DataError):
        run(SimpleNamespace(out_dir=str(tmp_path / "trained")), trained=True)
    assert (tmp_path / "trained" / "config.yaml").is_file()  # it had trained: kept to continue from
