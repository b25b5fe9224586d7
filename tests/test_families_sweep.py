"""The family sweep: every registered family, from its :class:`~medmodal.cli.family.Family` entry alone.

* every preset of the family (``preset_names(key)``) loads through its verb's run config
  (``Family.configs``, :func:`~medmodal.cli.family.load_family_preset`) and validates;
* the family's ``smoke`` commands (tiny synthetic data, the demo preset for one epoch of one or a few
  steps, on the CPU) exit 0 and leave a run folder;
* the family's help lists its verbs, and every verb answers ``--help``.

Nothing here names a family: a new one is swept as soon as it is registered. The helpers are reused
by ``tests/test_toy_family.py`` for a family registered after import. Measured (1 CPU thread, imports
warm): smoke runs seg 0.7 s, cxr 2.3 s, endoscopy 0.4 s; the whole file 10-16 s (budget: 60 s per family;
a family over it marks only its parametrisation ``slow``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmodal.cli.family import FAMILIES, Family, get_family, load_family_preset
from medmodal.cli.main import app
from medmodal.config import packaged_config, preset_names

runner = CliRunner()

#: the families registered when the tests are collected (the built-in ones)
KEYS = [family.key for family in FAMILIES]


def family_verbs(family: Family) -> list[str]:
    """The verbs of ``family``'s app (commands and sub-groups), hidden ones left out."""
    commands = [c.name for c in family.app.registered_commands if not c.hidden]
    groups = [g.name for g in family.app.registered_groups if not g.hidden]
    return [name for name in commands + groups if name]


def check_presets(family: Family) -> list[str]:
    """Every preset of ``family`` loads and validates; returns their names."""
    names = preset_names(family.key)
    assert names, f"family {family.key!r} has no presets"
    for name in names:
        verb = name.split("/", 1)[1].split("_", 1)[0]
        assert verb in family.configs, f"{name}: the family names no run config for verb {verb!r} (Family.configs)"
        cfg = load_family_preset(family, name)
        assert cfg is not None and hasattr(cfg, "validate"), name
    for name in family.presets:  # the names Family lists (flat names of earlier releases included) resolve
        assert packaged_config(name, family.key).is_file(), name
    return names


def check_help(family: Family) -> list[str]:
    """``medmodal <key> --help`` lists every verb; every verb answers ``--help`` with exit 0."""
    verbs = family_verbs(family)
    assert verbs, family.key
    result = runner.invoke(app, [family.key, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for verb in verbs:
        assert re.search(rf"\b{re.escape(verb)}\b", result.output), f"{family.key} --help does not list {verb}"
        sub = runner.invoke(app, [family.key, verb, "--help"], terminal_width=200)
        assert sub.exit_code == 0 and "Usage" in sub.output, f"{family.key} {verb} --help: {sub.output}"
    if family.demo is not None:
        assert family.demo in verbs
    return verbs


def check_smoke(family: Family, out: Path) -> Path:
    """Run ``family.smoke`` into ``out`` (each command exits 0); returns the run folder the last one printed."""
    assert family.smoke, f"family {family.key!r} declares no smoke commands (Family.smoke)"
    for command in family.smoke:
        args = [word.replace("{out}", str(out)) for word in command]
        result = runner.invoke(app, args, terminal_width=400)
        assert result.exit_code == 0, f"medmodal {' '.join(args)}:\n{result.output}"
    found = re.findall(r"run folder: (\S+)", result.output)
    assert found, f"the last smoke command printed no run folder:\n{result.output}"
    run_dir = Path(found[-1])
    assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file(), run_dir
    return run_dir


@pytest.mark.parametrize("key", KEYS)
def test_every_preset_loads_and_validates(key):
    check_presets(get_family(key))


@pytest.mark.parametrize("key", KEYS)
def test_every_verb_answers_help(key):
    check_help(get_family(key))


@pytest.mark.parametrize("key", KEYS)
def test_the_demo_preset_trains_on_tiny_data(key, tmp_path):
    check_smoke(get_family(key), tmp_path)


def test_the_sweep_sees_every_built_in_family():
    from medmodal.cli.main import BUILTIN_FAMILIES

    assert {f.key for f in BUILTIN_FAMILIES} <= set(KEYS)
