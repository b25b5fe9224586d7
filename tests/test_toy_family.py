"""A new family from the extension points alone (docs/extending.md): ``tests/toy_family`` registers with
ONE call, ``register_family(FAMILY)`` (its modules register their model contract, objective, layout reader,
bundle format and presets on import), runs ``medmodal toy demo`` through the root app, passes the family
sweep and the registry sweep, and leaves nothing behind when unregistered.

No file under ``src/`` names the toy family. Run together with ``tests/test_cli.py`` and
``tests/models/test_contracts.py`` to see that the other tests are unaffected.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from medmodal.bundle import FORMATS, bundle_format, read_bundle
from medmodal.cli.family import FAMILIES, register_family
from medmodal.cli.main import app
from medmodal.config import preset_names
from medmodal.data.layouts import layout_readers
from medmodal.losses import list_objectives
from medmodal.models import create_model, list_models
from medmodal.models.registry import get_contract, get_model_task, get_tiny_kwargs, list_contracts

from tests.models.test_contracts import test_every_registered_model_passes_its_contract as contract_sweep
from tests.test_families_sweep import check_help, check_presets, check_smoke

runner = CliRunner()


@pytest.fixture
def toy():
    """The toy family, mounted for one test and taken back after it."""
    import tests.toy_family
    from tests.toy_family import cli as toy_cli  # importing it registers the family's library pieces

    family = register_family(toy_cli.FAMILY)  # the one registration call
    try:
        yield family
    finally:
        tests.toy_family.unregister()


def test_toy_demo_runs_through_the_root_app(toy, tmp_path):
    result = runner.invoke(app, ["toy", "demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    lines = result.output.splitlines()
    assert lines[0].startswith("toy: 3 steps, val/loss ") and lines[-1] == f"run folder: {run}", result.output
    for name in ("config.yaml", "metrics.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "logs/metrics.csv",
                 "model/model.safetensors", "model/model.json"):
        assert (run / name).is_file(), name
    assert bundle_format(run / "model") == "toy/model"
    state, meta = read_bundle(run / "model", "toy/model")
    model = create_model(meta["model_name"], num_classes=meta["num_classes"], **meta["model_kwargs"])
    model.load_state_dict(state)
    assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 2)
    assert json.loads((run / "metrics.json").read_text())["steps"] == 3

    again = runner.invoke(app, ["toy", "demo", "--out", str(tmp_path)])  # one meaning of resume: finished -> skip
    assert again.exit_code == 0 and "finished run found" in again.output, again.output

    old = runner.invoke(app, ["toy-demo", "--out", str(tmp_path)])  # the old spelling: one note line
    assert old.exit_code == 0 and "'medmodal toy-demo' is now 'medmodal toy demo'" in old.stderr


def test_toy_help_lists_its_verbs(toy):
    assert check_help(toy) == ["synth", "train", "demo"]
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0 and "toy" in result.output and "toy-demo" not in result.output


def test_toy_passes_the_family_sweep(toy, tmp_path):
    assert check_presets(toy) == ["toy/train_demo"]
    run = check_smoke(toy, tmp_path)
    assert run == tmp_path / "run"


def test_toy_models_pass_their_contract(toy):
    assert "toy_classifier" in list_contracts() and list_models(task="toy_classifier") == ["toy_net"]
    for name in list_models(task="toy_classifier"):
        contract_sweep(name)  # the registry sweep's own test body
        get_contract(get_model_task(name)).check(name, get_tiny_kwargs(name))


def test_toy_input_errors_are_one_line(toy, tmp_path):
    result = runner.invoke(app, ["toy", "train", "--preset", "train_demo", "--data", str(tmp_path / "none"),
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "no toy layout found" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["toy", "demo", "--out", str(tmp_path), "-n", "2"])
    assert result.exit_code == 1 and "at least 4 images" in result.output and "Traceback" not in result.output
    assert runner.invoke(app, ["toy", "synth", str(tmp_path / "data")]).exit_code == 0
    result = runner.invoke(app, ["toy", "train", "--preset", "train_demo", "--data", str(tmp_path / "data"),
                                 "--out", str(tmp_path / "run"), "--set", "loss.name=nope"])
    assert result.exit_code == 1 and "unknown loss.name 'nope'" in result.output, result.output


def test_last_checkpoint_every_epoch_even_between_validations(toy, tmp_path):
    """last.ckpt is written every epoch (an interrupted run can continue) although validation runs every 2nd."""
    assert runner.invoke(app, ["toy", "synth", str(tmp_path / "data")]).exit_code == 0
    result = runner.invoke(app, ["toy", "train", "--preset", "train_demo", "--data", str(tmp_path / "data"),
                                 "--out", str(tmp_path / "run"), "--set", "trainer.val_every_n_epochs=2",
                                 "--set", "trainer.max_epochs=3"])
    assert result.exit_code == 0, result.output
    import torch

    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 2  # the 3rd epoch, not validated (Lightning alone would have kept the 2nd)


def test_a_failed_run_leaves_no_half_made_folder(toy, tmp_path):
    result = runner.invoke(app, ["toy", "train", "--preset", "train_demo", "--data", str(tmp_path / "none"),
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and not (tmp_path / "run").exists()


def test_unregistering_leaves_nothing_behind():
    import tests.toy_family
    from tests.toy_family import cli as toy_cli

    register_family(toy_cli.FAMILY)
    assert "toy" in [f.key for f in FAMILIES] and "toy_net" in list_models() and layout_readers("toy")
    tests.toy_family.unregister()
    assert "toy" not in [f.key for f in FAMILIES]
    assert "toy_net" not in list_models() and "toy_classifier" not in list_contracts()
    assert "toy_ce" not in list_objectives() and not layout_readers("toy") and "toy/model" not in FORMATS
    assert not preset_names("toy")
    assert runner.invoke(app, ["toy", "--help"]).exit_code != 0
