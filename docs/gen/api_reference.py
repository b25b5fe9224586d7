"""Generate the Python API reference (``reference/api/``) at build time: one page per public module of
``src/medmodal`` (``reference/api/<dotted.module.path>.md``, e.g. ``reference/api/medmodal.evaluation.protocols.md``)
rendered by mkdocstrings, and ``reference/api/index.md`` listing them by subpackage with each module's
summary line.

A module is public when no part of its dotted path starts with ``_`` (``__init__`` stands for its
package; ``__main__`` is left out). Pages link to API objects with autorefs, by the object's dotted
path: ``[medmodal.evaluation.protocols][]``, ``[the registry][medmodal.models.registry]``,
``[create_model][medmodal.models.registry.create_model]``. Docstrings are Google style; their reST
roles (``:class:`x```) and simple tables are turned into Markdown by ``docs/gen/griffe_rst.py``.

``python docs/gen/api_reference.py`` prints the module list instead (no build).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "medmodal"
API = "reference/api"


def public_modules() -> list[str]:
    """Dotted paths of the public modules, packages first within each folder, sorted."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] == "__main__" or any(p.startswith("_") for p in parts):
            continue
        found.append(".".join(parts))
    return sorted(set(found))


def source_of(module: str) -> Path:
    base = PACKAGE.parent.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def summary(module: str) -> str:
    """The first sentence of the module docstring (read from the source, nothing imported)."""
    doc = ast.get_docstring(ast.parse(source_of(module).read_text(encoding="utf-8"))) or ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ")
    first = " ".join(first.split())
    first = re.sub(r":[a-z]+:`~?\.?([^`]+)`", r"`\1`", first)  # reST roles as code
    cut = first.find(". ")
    first = first[:cut + 1] if 0 < cut < 200 else first
    return first.replace("|", "\\|")


def page(module: str) -> str:
    return f"{API}/{module}.md"


def index(modules: list[str]) -> str:
    lines = ["# Python API", "",
             "Generated from the docstrings at build time (`docs/gen/api_reference.py`): one page per public "
             "module. The command line, the run configs and the evaluation protocols have their own references "
             "([command line](../cli.md), [configuration](../config.md), "
             "[evaluation protocols](../evaluation-protocols.md)).", ""]
    groups: dict[str, list[str]] = {}
    for module in modules:
        parts = module.split(".")
        groups.setdefault(".".join(parts[:2]), []).append(module)
    for group, members in groups.items():
        lines += [f"## `{group}`", "", "| module | summary |", "|---|---|"]
        for module in members:
            text = summary(module)
            lines.append(f"| [`{module}`]({module}.md) | {text} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    import mkdocs_gen_files

    modules = public_modules()
    for module in modules:
        with mkdocs_gen_files.open(page(module), "w") as f:
            f.write(f"::: {module}\n")
        mkdocs_gen_files.set_edit_path(page(module), source_of(module).relative_to(ROOT).as_posix())
    with mkdocs_gen_files.open(f"{API}/index.md", "w") as f:
        f.write(index(modules))


if __name__ == "__main__":
    print("\n".join(public_modules()))
elif __name__ == "<run_path>":  # run by mkdocs-gen-files (runpy); imported (tests): nothing written
    main()
