"""A griffe extension for the API reference: medmodal's docstrings are Google style with a few reST
constructs; this turns those into Markdown before mkdocstrings renders them.

* Roles (``:mod:`x```, ``:class:`~x.Y```, ``:func:``, ``:meth:``, ``:attr:``, ``:data:``, ``:exc:``,
  ``:obj:``) become cross-references: the name is resolved in the docstring's scope (absolute
  ``medmodal.…`` paths, names imported or defined in the module, relative ``.core``) to the object's
  canonical path and written as an *optional* autoref, so it is a link when that object is rendered
  on some page and plain code otherwise (no warning, so ``mkdocs build --strict`` stays clean). A
  leading ``~`` shows the last component only, as in Sphinx. Names outside medmodal stay code.
* reST simple tables (``====`` borders) become Markdown tables (Markdown would read a ``====`` line
  under text as a heading).
* A paragraph ending in ``::`` before an indented block ends in ``:`` (the block is code either way).

Loaded by mkdocstrings (``mkdocs.yml``: ``handlers.python.options.extensions``).
"""

from __future__ import annotations

import html
import re

import griffe

ROLE = re.compile(r":(?:py:)?(mod|class|func|meth|attr|data|exc|obj|const):`(~?)([^`<>]+?)`")
BORDER = re.compile(r"^\s*=+(\s+=+)*\s*$")


def _object(pkg: griffe.Module, path: str):
    """The griffe object at ``path`` under ``pkg`` (``None`` if absent), aliases followed."""
    if path == pkg.path:
        return pkg
    if not path.startswith(pkg.path + "."):
        return None
    try:
        obj = pkg[path[len(pkg.path) + 1:]]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    try:
        return obj.final_target if obj.is_alias else obj
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def resolve(pkg: griffe.Module, obj, name: str) -> str | None:
    """The canonical path of ``name`` as written in ``obj``'s docstring, or ``None`` outside medmodal."""
    name = name.strip().rstrip("()")
    module = obj if obj.is_module else obj.module
    candidates = []
    if name.startswith("."):  # relative to the module's package
        dots = len(name) - len(name.lstrip("."))
        base = module.path if module.is_package else module.parent.path if module.parent else module.path
        parts = base.split(".")
        base = ".".join(parts[:len(parts) - (dots - 1)]) if dots > 1 else base
        candidates.append(f"{base}.{name.lstrip('.')}")
    elif name.startswith(pkg.path + ".") or name == pkg.path:
        candidates.append(name)
    else:
        head, _, rest = name.partition(".")
        scope = obj
        while scope is not None:  # the object itself, its class, its module
            if head in scope.members:
                member = scope.members[head]
                try:
                    target = member.final_target.path if member.is_alias else member.path
                except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                    target = member.target_path if member.is_alias else member.path
                candidates.append(f"{target}.{rest}" if rest else target)
                break
            scope = scope.parent
        candidates.append(f"{module.path}.{name}")
    for path in candidates:
        found = _object(pkg, path)
        if found is not None:
            return found.path
    return None


def _roles_first(pkg, obj, text: str) -> str:
    """Replace roles outside ````double```` code spans (``:class:`x``` inside code is shown as written)."""
    parts = re.split(r"(``.+?``)", text, flags=re.DOTALL)
    return "".join(p if p.startswith("``") else ROLE.sub(lambda m: _one(pkg, obj, m), p) for p in parts)


def _one(pkg, obj, match: re.Match) -> str:
    _, short, name = match.groups()
    shown = name.strip()
    shown = shown.rsplit(".", 1)[-1] if short else shown
    target = resolve(pkg, obj, name)
    if target is None:
        return f"`{shown}`"
    return f'<autoref identifier="{target}" optional><code>{html.escape(shown)}</code></autoref>'


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def simple_tables(text: str) -> str:
    """reST simple tables -> Markdown tables (multi-line rows joined; the first row is the header)."""
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        if not BORDER.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        border = lines[i]
        indent = len(border) - len(border.lstrip())
        spans = [(m.start(), m.end()) for m in re.finditer(r"=+", border)]
        j, rows, header_rows, borders = i + 1, [], None, 1
        while j < len(lines) and borders < 3:
            line = lines[j]
            if BORDER.match(line):
                borders += 1
                if borders == 2:
                    header_rows = len(rows)
                j += 1
                if borders == 2 and (j >= len(lines) or not lines[j].strip()):
                    break  # a table without header: two borders only
                continue
            if not line.strip():
                j += 1
                continue
            cells = []
            for k, (start, end) in enumerate(spans):
                stop = spans[k + 1][0] if k + 1 < len(spans) else None
                cells.append(line[start:stop].strip() if stop else line[start:].strip())
            if rows and not cells[0] and (header_rows is None or len(rows) > header_rows or borders == 2):
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
            else:
                rows.append(cells)
            j += 1
        if not rows:
            out.append(lines[i])
            i += 1
            continue
        head_n = header_rows if header_rows and borders == 3 else 0
        header = rows[0] if head_n == 0 else [" ".join(c) for c in zip(*rows[:head_n])]
        body = rows[1:] if head_n == 0 else rows[head_n:]
        pad = " " * indent
        table = [pad + "| " + " | ".join(_cell(c) for c in header) + " |",
                 pad + "|" + "---|" * len(header)]
        table += [pad + "| " + " | ".join(_cell(c) for c in row) + " |" for row in body]
        if out and out[-1].strip():
            out.append("")
        out += table + [""]
        i = j
    return "\n".join(out)


def literal_blocks(text: str) -> str:
    lines = text.split("\n")
    for k, line in enumerate(lines):
        if line.rstrip().endswith("::"):
            nxt = next((n for n in lines[k + 1:] if n.strip()), "")
            if len(nxt) - len(nxt.lstrip()) > len(line) - len(line.lstrip()):
                stripped = line.rstrip()[:-2].rstrip()
                lines[k] = (stripped + ":") if stripped else ""
    return "\n".join(lines)


class RstDocstrings(griffe.Extension):
    """Markdown docstrings from medmodal's reST roles, tables and literal blocks (module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:  # griffe >= 2
        self._convert(pkg, pkg, set())

    def on_package_loaded(self, *, pkg: griffe.Module, **kwargs) -> None:  # griffe 1.x
        self._convert(pkg, pkg, set())

    def _convert(self, pkg, obj, seen: set) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            value = simple_tables(obj.docstring.value)
            value = literal_blocks(value)
            obj.docstring.value = _roles_first(pkg, obj, value)
        for member in list(obj.members.values()):
            if member.is_alias:
                continue
            self._convert(pkg, member, seen)
