"""Generate ``reference/config.md`` (the configuration reference) from the run-config dataclasses, at
build time.

Run by mkdocs-gen-files; ``python docs/gen/config_reference.py`` prints the page instead. The run configs
are found through the families (:attr:`medmodal.cli.family.Family.configs`: a ``*RunConfig`` class, or
a loader whose module has ``TASK_CONFIGS``, one class per task), so a new family or verb appears here
without an edit. For each run config: its packaged presets (first sentence of each preset's leading
comment), then one table per section with the key path as ``--set`` takes it (``data.crop_size``), the
type, the default (of the run config, e.g. the fine-tuning tasks' own batch sizes) and the description.

Where a description comes from, first found wins, walking the class and its bases: a ``#:`` or ``#``
comment on the line(s) just above the field, a trailing ``# comment`` on the field's line, the
``Attributes:`` section of the class docstring (``name: text``; ``a / b: text`` documents both; several
``name: text.`` entries may share a line). A field without any is flagged in the build log and left
empty.

Anchors: ``#<family>-<verb>`` per run config (``#seg-train``, ``#cxr-pretrain``, ``#endoscopy-finetune``;
the fine-tuning tasks of ``cxr finetune``: ``#cxr-finetune-classification``, ``-segmentation``,
``-detection``), ``#<that>-<section>`` per section (``#seg-train-data``, ``#cxr-pretrain-optim``) and
``#presets-<family>`` per family's preset list.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import sys
import textwrap
import typing
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

PAGE = "reference/config.md"

#: free-form mapping fields whose keys are the fields of another dataclass (documented as a sub-table)
MAPPED = {
    ("medmodal.config.segmentation.SegmentationRunConfig", "loss"): "medmodal.losses.dmafnet_loss:DMAFNetLossConfig",
    ("medmodal.config.segmentation.SegmentationRunConfig", "dtm"): "medmodal.engine.segmentation.dtm:DTMConfig",
}

#: fields that mean the same in every run config that has them (used when the class documents none)
GENERIC = {
    "out_dir": "the run folder (`--out` overrides it)",
    "task": "`classification` | `segmentation` | `detection` (the fine-tuning task; `--task` / the preset sets it)",
    "deterministic": "Lightning's `deterministic` (reproducible kernels, slower)",
    "max_epochs": "training epochs",
    "export": "export the image and text encoders into `<run>/export` at the end",
}

#: what each family's verbs are called in the headings
TITLES = {"seg": "Segmentation", "cxr": "Chest X-rays", "endoscopy": "Endoscopy"}


def _log(message: str) -> None:
    import logging

    logging.getLogger("mkdocs.plugins.gen_files").info("config_reference: %s", message)


# ---------------------------------------------------------------- field descriptions


def _comments(cls) -> dict[str, str]:
    """Field name -> comment text from ``cls``'s own source (comments above or beside the field)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    tree = ast.parse(source)
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    found = {}
    for node in body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        row = node.lineno - 1
        above = []
        k = row - 1
        while k >= 0 and lines[k].strip().startswith("#"):
            above.insert(0, lines[k].strip().lstrip("#:").strip())
            k -= 1
        line = lines[node.end_lineno - 1]
        trailing = ""
        if "#" in line:  # a trailing comment (not inside a string: good enough for field lines)
            code, _, comment = line.partition("  #")
            trailing = comment.strip() if comment else ""
        text = " ".join([*above, trailing]).strip()
        if text:
            found[node.target.id] = text
    return found


def _attributes(cls) -> dict[str, str]:
    """Field name -> text from the ``Attributes:`` section of ``cls``'s own docstring."""
    doc = cls.__dict__.get("__doc__") or ""
    doc = inspect.cleandoc(doc)
    match = re.search(r"^Attributes:\s*$(.*?)(?=^\S|\Z)", doc, flags=re.MULTILINE | re.DOTALL)
    if not match:
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    entries: list[tuple[list[str], str]] = []
    for raw in match.group(1).splitlines():
        if not raw.strip():
            continue
        indent = len(raw) - len(raw.lstrip())
        head = re.match(r"^\s*([\w ,/]+?):\s+(.*)$", raw)
        keys = [k.strip() for k in re.split(r"[/,]", head.group(1))] if head else []
        if head and indent <= 4 and keys and all(k in names for k in keys):
            entries.append((keys, head.group(2)))
        elif entries:
            entries[-1] = (entries[-1][0], f"{entries[-1][1]} {raw.strip()}")
    found = {}
    for keys, text in entries:
        # several entries on one line: "lr: peak learning rate. weight_decay: the optimiser's."
        pieces = re.split(r"(?<=[.;])\s+([\w /]+?):\s+", text)
        parts = [(keys, pieces[0])]
        for extra, more in zip(pieces[1::2], pieces[2::2]):
            extra_keys = [k.strip() for k in extra.split("/")]
            if all(k in names for k in extra_keys):
                parts.append((extra_keys, more))
            else:
                parts[-1] = (parts[-1][0], f"{parts[-1][1]} {extra}: {more}")
        for ks, t in parts:
            for key in ks:
                found.setdefault(key, t.strip())
    return found


def describe(cls) -> dict[str, str]:
    """Field -> description for every field of dataclass ``cls`` (class first, then its bases)."""
    result: dict[str, str] = {}
    for klass in cls.__mro__:  # noqa: B007
        if not dataclasses.is_dataclass(klass):
            continue
        for source in (_comments(klass), _attributes(klass)):
            for key, text in source.items():
                result.setdefault(key, text)
    return result


# ---------------------------------------------------------------- types and values


def type_name(hint) -> str:
    if hint is type(None):
        return "null"
    if isinstance(hint, str):
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        return " \\| ".join(type_name(a) for a in args)
    if origin in (list, tuple):
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return f"list of {type_name(args[0])}"
        inner = sorted({type_name(a) for a in args if a is not Ellipsis})
        return f"list of {' / '.join(inner)}" if inner else "list"
    if origin is dict:
        return "mapping"
    if hint is typing.Any:
        return "any"
    if dataclasses.is_dataclass(hint):
        return "section"
    return {str: "text", int: "integer", float: "number", bool: "boolean"}.get(hint, getattr(hint, "__name__", str(hint)))


def value_text(value) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`" if abs(value) >= 1e-3 or value == 0 else f"`{value:.0e}`".replace("e-0", "e-")
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, (list, dict)):
        import yaml

        text = yaml.safe_dump(_plain(value), default_flow_style=True, width=10_000).strip()
        return "`" + text.replace("|", "&#124;") + "`" if len(text) <= 80 else f"`{text[:77]}...`"
    return f"`{value}`".replace("|", "&#124;")


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


def cell(text: str) -> str:
    """A description as one table cell: reST roles and double backticks as code, ``|`` escaped."""
    text = re.sub(r":[a-z]+:`~?\.?([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    out, last = [], 0
    for m in re.finditer(r"`[^`]*`", text):
        out.append(re.sub(r"([|<>*_])", r"\\\1", text[last:m.start()]))
        out.append(m.group(0).replace("|", "&#124;"))
        last = m.end()
    out.append(re.sub(r"([|<>*_])", r"\\\1", text[last:]))
    return " ".join("".join(out).split())


# ---------------------------------------------------------------- run configs


def run_configs():
    """``(family key, verb, task or None, class)`` for every run config the families name, in order."""
    import medmodal.cli.main  # noqa: F401 - registers the built-in families
    from medmodal.cli.family import FAMILIES

    found = []
    for family in FAMILIES:
        for verb, target in family.configs.items():
            module_name, _, attr = target.partition(":")
            module = importlib.import_module(module_name)
            obj = getattr(module, attr)
            if isinstance(obj, type):
                found.append((family.key, verb, None, obj))
            elif isinstance(getattr(module, "TASK_CONFIGS", None), dict):
                found += [(family.key, verb, task, cls) for task, cls in module.TASK_CONFIGS.items()]
            else:
                raise RuntimeError(f"config_reference: {family.key} {verb}: {target} is neither a run config class "
                                   "nor a loader beside TASK_CONFIGS; teach docs/gen/config_reference.py about it")
    return found


def section_rows(cls, instance, prefix: str, missing: list[str]) -> tuple[list[str], list[tuple[str, object, object]]]:
    """Table rows of ``instance``'s scalar fields and the nested sections ``(key, class, instance)``."""
    rows, nested = [], []
    hints = typing.get_type_hints(cls)
    docs = describe(cls)
    for f in dataclasses.fields(cls):
        if f.name.startswith("_"):
            continue
        key = f"{prefix}{f.name}"
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            nested.append((key, type(value), value, docs.get(f.name, "")))
            continue
        text = docs.get(f.name) or GENERIC.get(f.name, "")
        mapped = MAPPED.get((_qualname(type(instance)), f.name)) if not prefix else None
        if mapped:
            target = mapped.split(":")[1]
            text = f"a mapping of `{target}` fields (table below)"
        if not text:
            missing.append(f"{cls.__name__}.{f.name}")
        rows.append(f"| `{key}` | {type_name(hints.get(f.name, f.type))} | {value_text(value)} | {cell(text)} |")
    return rows, nested


def _qualname(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def table(rows: list[str]) -> list[str]:
    return ["| key | type | default | description |", "|---|---|---|---|", *rows, ""]


def config_section(family: str, verb: str, task: str | None, cls, missing: list[str]) -> list[str]:
    ident = "-".join(p for p in (family, verb, task) if p)
    title = f"`medmodal {family} {verb}`" + (f", task `{task}`" if task else "")
    doc = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0]
    lines = [f"### {title} {{#{ident}}}", "",
             f"Run config [`{cls.__name__}`][{cls.__module__}.{cls.__name__}]: {cell(' '.join(doc.split()))}", ""]
    instance = cls()
    top, nested = section_rows(cls, instance, "", missing)
    if top:
        lines += ["Top-level keys:", "", *table(top)]
    queue = list(nested)
    while queue:
        key, sub_cls, sub, text = queue.pop(0)
        sub_doc = cell(" ".join(inspect.cleandoc(sub_cls.__doc__ or "").split("\n\n")[0].split()))
        if sub_doc.startswith(sub_cls.__name__ + "("):  # dataclass's generated signature: not a description
            sub_doc = ""
        lines += [f"#### `{key}` {{#{ident}-{key.replace('.', '-')}}}", ""]
        lead = " ".join(t for t in (cell(text), sub_doc) if t)
        lines += [f"[`{sub_cls.__name__}`][{sub_cls.__module__}.{sub_cls.__name__}]" + (f": {lead}" if lead else ""),
                  ""]
        rows, deeper = section_rows(sub_cls, sub, f"{key}.", missing)
        lines += table(rows)
        queue[:0] = deeper
    for (owner, field_name), target in MAPPED.items():
        if owner != _qualname(cls):
            continue
        module_name, _, attr = target.partition(":")
        mapped_cls = getattr(importlib.import_module(module_name), attr)
        lines += [f"#### `{field_name}` {{#{ident}-{field_name}}}", "",
                  f"Keys of [`{attr}`][{module_name}.{attr}] (a key not set keeps this default).", ""]
        rows, _ = section_rows(mapped_cls, mapped_cls(), f"{field_name}.", missing)
        lines += table(rows)
    return lines


def preset_lines(family: str) -> list[str]:
    from medmodal.config.core import packaged_config, preset_names

    lines = [f"### Presets {{#presets-{family}}}", "", "| preset | what it is |", "|---|---|"]
    for name in preset_names(family):
        path = packaged_config(name)
        comment = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            text = line.lstrip("#").strip()
            if text.startswith("medmodal "):  # a command line, not a description
                break
            comment.append(text)
        text = " ".join(comment)
        cut = re.search(r"(?<=[a-z0-9)%])\.\s+(?=[A-Z])", text)
        text = text[:cut.start() + 1] if cut else text
        lines.append(f"| `{name.split('/', 1)[1]}` | {cell(text)} |")
    return lines + [""]


def render() -> str:
    missing: list[str] = []
    lines = [
        "# Configuration", "",
        "Generated from the run-config dataclasses at build time (`docs/gen/config_reference.py`), so the keys, "
        "types and defaults are the code's.", "",
        "A training verb reads its run config from a packaged preset (`--preset NAME`), a YAML file "
        "(`--config FILE`, keys as below) or the defaults, then applies `--set key=value` items in order "
        "(the value is read as YAML: `--set data.crop_size=[64,64,64]`, `--set optim.grad_clip=null`). "
        "An unknown key is an error naming the key and its section. Every run folder gets the fully resolved "
        "config as `config.yaml`, which `--config` reads back.", "",
        "The `trainer`, `optim` and `data` sections of every family share the fields of "
        "[`TrainerSettings`][medmodal.config.common.TrainerSettings], "
        "[`OptimSettings`][medmodal.config.common.OptimSettings] and "
        "[`LoaderSettings`][medmodal.config.common.LoaderSettings] "
        "([`medmodal.config.common`][medmodal.config.common]); each family sets its own defaults.", "",
    ]
    by_family: dict[str, list] = {}
    for family, verb, task, cls in run_configs():
        by_family.setdefault(family, []).append((verb, task, cls))
    lines += ["| command | run config | section |", "|---|---|---|"]
    for family, entries in by_family.items():
        for verb, task, cls in entries:
            ident = "-".join(p for p in (family, verb, task) if p)
            what = f"`medmodal {family} {verb}`" + (f" (`{task}`)" if task else "")
            lines.append(f"| {what} | `{cls.__name__}` | [{ident}](#{ident}) |")
    lines.append("")
    for family, entries in by_family.items():
        lines += [f"## {TITLES.get(family, family)} (`{family}`) {{#{family}}}", ""]
        lines += preset_lines(family)
        for verb, task, cls in entries:
            lines += config_section(family, verb, task, cls, missing)
    if missing:
        _log(f"{len(missing)} fields without a description: {', '.join(sorted(set(missing)))}")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
elif __name__ == "<run_path>":  # run by mkdocs-gen-files (runpy); imported (tests): nothing written
    import mkdocs_gen_files

    with mkdocs_gen_files.open(PAGE, "w") as f:
        f.write(render())
    mkdocs_gen_files.set_edit_path(PAGE, "docs/gen/config_reference.py")
