"""The import-linter layers contract (``.importlinter``): cli > experiments > engine > evaluation > inference >
losses > models > layers > data > errors / notices / io / distributed / config / bundle; and no import cycle
between modules, function-local imports included (a local import may keep ``--help`` fast, never hide a cycle)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_layers_contract_holds():
    pytest.importorskip("importlinter")
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if command is None:
        pytest.skip("lint-imports not installed (pip install import-linter; it is in the test extra)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([command, "--no-cache"], cwd=ROOT, env=env,  # reads ROOT/.importlinter
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _module_cycles(graph) -> list[list[str]]:
    """Strongly connected components (> 1 module) of the import graph; a package and its own submodules
    importing each other (``__init__`` re-exports) do not count."""
    edges = {m: {d for d in graph.find_modules_directly_imported_by(m)
                 if not (d.startswith(m + ".") or m.startswith(d + "."))} for m in graph.modules}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return cycles


def test_no_module_cycle_even_through_function_local_imports(monkeypatch):
    grimp = pytest.importorskip("grimp")  # import-linter's graph builder: it reads every import statement
    monkeypatch.syspath_prepend(str(ROOT / "src"))
    graph = grimp.build_graph("medmodal", include_external_packages=False, cache_dir=None)
    assert _module_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    class Graph:
        modules = {"p.a", "p.b", "p.c", "p", "p.d"}
        imports = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p": {"p.d"}, "p.d": {"p"}}

        def find_modules_directly_imported_by(self, module):
            return self.imports.get(module, set())

    assert _module_cycles(Graph()) == [["p.a", "p.b", "p.c"]]
