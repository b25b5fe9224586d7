"""Every registered family names suites of the one shape, a demo verb its app has, and presets that exist."""

import importlib

import pytest

from medmodal.cli.main import BUILTIN_FAMILIES
from medmodal.config import packaged_config
from medmodal.experiments.suite import BenchmarkSuite, Method, Profile, SpeedSuite


@pytest.mark.parametrize("family", BUILTIN_FAMILIES, ids=lambda f: f.key)
def test_family_suites_have_the_one_shape(family):
    verbs = {command.name for command in family.app.registered_commands}
    assert family.demo in verbs and "benchmark" in verbs
    suite = importlib.import_module(family.benchmark).SUITE
    assert isinstance(suite, BenchmarkSuite) and suite.family == family.key
    assert suite.methods and all(isinstance(m, Method) for m in suite.methods.values())
    assert "cpu-quick" in suite.profiles and all(isinstance(p, Profile) for p in suite.profiles.values())
    assert all(p.name == key for key, p in suite.profiles.items())
    if family.speed is not None:
        assert "speed" in verbs
        speed = importlib.import_module(family.speed).SUITE
        assert isinstance(speed, SpeedSuite) and speed.family == family.key
    for preset in family.presets:
        assert packaged_config(preset).is_file()
