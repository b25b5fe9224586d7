"""The root of the command line: ``medmodal <family> <verb>``, one Typer sub-app per registered family.

:data:`BUILTIN_FAMILIES` is the one list of built-in families; a new family adds its module under
:mod:`medmodal.cli.families` and one entry here (or calls :func:`~medmodal.cli.family.register_family`
itself, e.g. from a test or a plug-in, after import). The old spellings (``medmodal train``,
``medmodal data synth-brats``, ``medmodal benchmark --suite cxr`` ...) are hidden aliases for one
release; each prints one ``note:`` line naming the new command.
"""

from __future__ import annotations

from medmodal.cli.benchmark import bench_speed_cmd, benchmark_cmd
from medmodal.cli.common import app
from medmodal.cli.families import cxr, endoscopy, seg
from medmodal.cli.family import FAMILIES, Family, old_spelling, register_family

__all__ = ["BUILTIN_FAMILIES", "FAMILIES", "Family", "app", "register_family"]

BUILTIN_FAMILIES: tuple[Family, ...] = (seg.FAMILY, cxr.FAMILY, endoscopy.FAMILY)

for _family in BUILTIN_FAMILIES:
    register_family(_family)

# the old suite-switching commands serve several families: the note names the family the --suite selects
_BENCHMARK_SUITES = {"segmentation": "seg", "cxr": "cxr", "endoscopy": "endoscopy"}
_SPEED_SUITES = {"segmentation": "seg", "cmcgns": "cxr"}
app.command("benchmark", hidden=True)(old_spelling(
    benchmark_cmd, "benchmark", lambda kw: f"{_BENCHMARK_SUITES.get(kw.get('suite'), '<family>')} benchmark"))
app.command("bench-speed", hidden=True)(old_spelling(
    bench_speed_cmd, "bench-speed", lambda kw: f"{_SPEED_SUITES.get(kw.get('suite'), '<family>')} speed"))
