"""Generate ``reference/cli.md`` (the command-line reference) from the Typer app, at build time.

Run by mkdocs-gen-files (``mkdocs.yml`` -> ``plugins: gen-files``); ``python docs/gen/cli_reference.py``
prints the page instead (for a look without a build). It walks ``typer.main.get_command(medmodal.cli.app)``:
the root options, then every family in the order ``medmodal --help`` lists them, then each family's verbs
in their ``--help`` order. Per command: the usage line, the help text and tables of the arguments and
options (name, type, default, help). Hidden commands (the old spellings kept for one release) get no
section; they are listed once in the "Old spellings" table, from the families' :class:`Alias` objects.

Anchor scheme (stable; other pages link to these):

=================================  ==============================================================
anchor                             section
=================================  ==============================================================
``#medmodal``                      the root command (``medmodal --debug``) and the family list
``#medmodal-<family>``             a family, e.g. ``reference/cli.md#medmodal-seg``
``#medmodal-<family>-<verb>``      a command, e.g. ``reference/cli.md#medmodal-seg-train``,
                                   ``#medmodal-cxr-synth-downstream``, ``#medmodal-endoscopy-simulate-nbi``
``#old-spellings``                 the table of old spellings and the command each now is
=================================  ==============================================================

The anchor is the command path with spaces as ``-`` (the verbs already use ``-``), so it can be
written down without building the site. A deeper group would continue the same way.
"""

from __future__ import annotations

import inspect
import re
import sys
import typing
from pathlib import Path

try:  # a build: write into the virtual docs folder; a direct run: print
    import mkdocs_gen_files
except ImportError:  # pragma: no cover - only outside mkdocs
    mkdocs_gen_files = None

SRC = Path(__file__).resolve().parents[2] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

import typer  # noqa: E402

from medmodal.cli import app  # noqa: E402
from medmodal.cli.family import FAMILIES  # noqa: E402

PAGE = "reference/cli.md"

_CODE = re.compile(r"(`+)(.+?)\1")
_SPECIAL = re.compile(r"([\\*_\[\]<>|#])")


def md_text(text: str | None, table: bool = False) -> str:
    """Help text as markdown: code spans kept, markdown characters outside them escaped; in a table
    cell newlines become spaces and ``|`` is escaped everywhere (also inside code spans)."""
    if not text:
        return ""
    text = inspect.cleandoc(text).replace("\b\n", "")
    parts, last = [], 0
    for match in _CODE.finditer(text):
        parts.append(_SPECIAL.sub(r"\\\1", text[last:match.start()]))
        code = match.group(2).strip("` ")
        parts.append(f"`{code.replace('|', '&#124;') if table else code}`")
        last = match.end()
    parts.append(_SPECIAL.sub(r"\\\1", text[last:]))
    out = "".join(parts)
    return " ".join(out.split()) if table else out


def anchor(path: str) -> str:
    """``medmodal seg train`` -> ``medmodal-seg-train`` (see the module docstring)."""
    return re.sub(r"[^a-z0-9-]+", "-", path.lower()).strip("-")


_TYPE_NAMES = {str: "text", int: "integer", float: "number", bool: "boolean", Path: "path"}


def _annotation_name(annotation) -> str:
    if annotation in _TYPE_NAMES:
        return _TYPE_NAMES[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        names = [_annotation_name(a) for a in args if a is not type(None)]
        return " \\| ".join(names)
    if origin in (list, tuple, set, typing.List, typing.Tuple):
        inner = [_annotation_name(a) for a in args if a is not Ellipsis]
        return f"{' , '.join(inner) or 'text'}"
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if isinstance(annotation, type) and issubclass(annotation, __import__("enum").Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    return getattr(annotation, "__name__", str(annotation))


def param_type(param) -> str:
    """A readable type: from Typer's type descriptor (typer >= 0.2x) or click's ``ParamType``."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return "flag" if getattr(param, "is_flag", False) else "count"
    descriptor = getattr(param, "type_descriptor", None)
    name = None
    if descriptor is not None and getattr(descriptor, "annotation", None) is not None:
        name = _annotation_name(descriptor.annotation)
    elif getattr(param, "type", None) is not None:
        kind = param.type
        choices = getattr(kind, "choices", None)
        name = " \\| ".join(f"`{c}`" for c in choices) if choices else {
            "string": "text", "integer": "integer", "float": "number", "boolean": "boolean",
            "path": "path", "filename": "path"}.get(getattr(kind, "name", ""), getattr(kind, "name", "text"))
    name = name or "text"
    if getattr(param, "multiple", False):
        name += " (repeatable)"
    return name


def param_default(param) -> str:
    if param.required:
        return "required"
    default = param.default
    if callable(default):
        return "computed"
    if default is None or default == () or default == []:
        return ""
    if isinstance(default, bool):
        if getattr(param, "secondary_opts", None):
            return f"`{(param.opts if default else param.secondary_opts)[0]}`"
        return f"`{str(default).lower()}`"
    if isinstance(default, (list, tuple)):
        default = ",".join(map(str, default))
    if hasattr(default, "value"):  # an Enum
        default = default.value
    return f"`{str(default).replace('|', '&#124;')}`"


def param_names(param) -> str:
    if param.param_type_name == "argument":
        return f"`{(param.metavar or param.name).upper()}`"
    names = [*param.opts, *getattr(param, "secondary_opts", [])]
    return ", ".join(f"`{n}`" for n in names)


def params_tables(command, ctx) -> list[str]:
    """The arguments table, then the options table (``--help`` left out)."""
    lines = []
    shown = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False) and p.name != "help"]
    arguments = [p for p in shown if p.param_type_name == "argument"]
    options = [p for p in shown if p.param_type_name != "argument"]
    for title, params in (("Arguments", arguments), ("Options", options)):
        if not params:
            continue
        lines += [f"**{title}**", "", "| name | type | default | description |", "|---|---|---|---|"]
        for p in params:
            lines.append(f"| {param_names(p)} | {param_type(p)} | {param_default(p)} | "
                         f"{md_text(getattr(p, 'help', None), table=True)} |")
        lines.append("")
    return lines


def usage(command, ctx) -> str:
    """``medmodal seg evaluate [OPTIONS] RUN`` (click's own metavars differ between Typer versions)."""
    pieces = [ctx.command_path, "[OPTIONS]"]
    for param in command.get_params(ctx):
        if param.param_type_name != "argument":
            continue
        name = (param.metavar or param.name).upper()
        name += "..." if param.nargs == -1 else ""
        pieces.append(name if param.required else f"[{name}]")
    if hasattr(command, "list_commands"):
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def subcommands(group, ctx):
    """The visible subcommands of a group in ``--help`` order, with their contexts."""
    import click  # noqa: F401 - typer's bundled click or click itself: only duck-typed methods are used

    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        if sub is None or getattr(sub, "hidden", False):
            continue
        yield sub, type(ctx)(sub, info_name=name, parent=ctx)


def command_section(command, ctx, level: int) -> list[str]:
    path = ctx.command_path
    lines = [f"{'#' * level} `{path}` {{#{anchor(path)}}}", "", "```text", usage(command, ctx), "```", ""]
    text = md_text(command.help)
    if text:
        lines += [text, ""]
    lines += params_tables(command, ctx)
    return lines


def old_spellings() -> list[str]:
    """The hidden old spellings, each with the command it now is (from the families' aliases and the
    two suite-switching commands of :mod:`medmodal.cli.main`)."""
    rows = []
    for family in FAMILIES:
        for alias in family.aliases:
            new = alias.new if isinstance(alias.new, str) else None
            target = f"[`medmodal {new}`](#{anchor('medmodal ' + ' '.join(new.split()[:2]))})" if new else (
                "depends on the options")
            rows.append(f"| `medmodal {alias.old}` | {target} |")
    from medmodal.cli import main

    for old, suites, verb in (("benchmark", getattr(main, "_BENCHMARK_SUITES", {}), "benchmark"),
                              ("bench-speed", getattr(main, "_SPEED_SUITES", {}), "speed")):
        for suite, family in suites.items():
            rows.append(f"| `medmodal {old} --suite {suite}` | "
                        f"[`medmodal {family} {verb}`](#{anchor(f'medmodal {family} {verb}')}) |")
    if not rows:
        return []
    return ["## Old spellings {#old-spellings}", "",
            "These spellings still run for one release; each prints one `note:` line on stderr naming the "
            "new command. They are hidden from `--help`.", "",
            "| old spelling | now |", "|---|---|", *rows, ""]


def render() -> str:
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="medmodal") if hasattr(root, "context_class") else None
    lines = ["# Command line", "",
             "Generated from the command-line app at build time (`docs/gen/cli_reference.py`), so it matches "
             "`medmodal <family> <verb> --help`. Every command prints this help with `--help`; "
             "`--set key=value` items are described in the [configuration reference](config.md).", "",
             f"## `medmodal` {{#{anchor('medmodal')}}}", "", "```text", usage(root, ctx), "```", "",
             md_text(root.help), ""]
    lines += params_tables(root, ctx)
    families = list(subcommands(root, ctx))
    lines += ["| family | what it covers |", "|---|---|"]
    lines += [f"| [`{sub_ctx.info_name}`](#{anchor(sub_ctx.command_path)}) | {md_text(sub.help, table=True)} |"
              for sub, sub_ctx in families]
    lines.append("")
    for family, family_ctx in families:
        lines += command_section(family, family_ctx, 2)
        verbs = list(subcommands(family, family_ctx)) if hasattr(family, "list_commands") else []
        if verbs:
            lines += ["| command | what it does |", "|---|---|"]
            lines += [f"| [`{v_ctx.info_name}`](#{anchor(v_ctx.command_path)}) | "
                      f"{md_text((v.help or '').split(chr(10) * 2)[0], table=True)} |" for v, v_ctx in verbs]
            lines.append("")
        for verb, verb_ctx in verbs:
            lines += command_section(verb, verb_ctx, 3)
    lines += old_spellings()
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
elif __name__ == "<run_path>":  # run by mkdocs-gen-files (runpy); imported (tests): nothing written
    with mkdocs_gen_files.open(PAGE, "w") as f:
        f.write(render())
    mkdocs_gen_files.set_edit_path(PAGE, "docs/gen/cli_reference.py")
