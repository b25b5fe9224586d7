"""The documentation cannot rot: the site builds with ``mkdocs build --strict`` (broken links, missing
pages and unresolved API references fail), and every command block marked runnable in the getting-started
and how-to pages, and the README's Python example, runs on tiny built-in data.

A block is runnable when the line just above its opening fence is ``<!-- runnable -->`` (invisible on
the site). The runnable blocks of one page run in order, in one fresh working folder, ``bash`` blocks
with ``bash -euo pipefail`` and ``python`` blocks with this interpreter; ``medmodal`` is the one
installed beside this interpreter, and no ``MEDMODAL_*`` variable is passed on, so a block cannot lean
on data outside the built-in generators.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARK = "<!-- runnable -->"
FENCE = re.compile(r"^(```+|~~~+)\s*([A-Za-z0-9_+-]*)")
#: The pages whose runnable blocks run here; each how-to page must have at least one.
RUN_PAGES = sorted([DOCS / "getting-started.md", *(DOCS / "how-to").glob("*.md"), ROOT / "README.md"])
#: Seconds one page's blocks may take together (a block that hangs fails the page instead of the suite).
PAGE_TIMEOUT_S = 600


def runnable_blocks(path: Path) -> list[tuple[int, str, str]]:
    """The runnable blocks of a markdown file as ``(line number, language, code)``, in order.

    Raises:
        AssertionError: a marker not followed by a fence, a fence that is never closed, or a runnable
            block in a language other than bash / sh / python.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() != MARK:
            continue
        opening = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        assert opening, f"{path}:{i + 1}: {MARK} must be followed directly by a code fence"
        fence, lang = opening.group(1), opening.group(2).lower()
        assert lang in {"bash", "sh", "python"}, f"{path}:{i + 2}: a runnable block must be bash or python, not {lang!r}"
        end = next((j for j in range(i + 2, len(lines)) if lines[j].strip().startswith(fence)), None)
        assert end is not None, f"{path}:{i + 2}: the code fence is never closed"
        blocks.append((i + 2, "python" if lang == "python" else "bash", "\n".join(lines[i + 2:end])))
    return blocks


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_every_how_to_page_has_runnable_blocks():
    pages = sorted((DOCS / "how-to").glob("*.md"))
    assert pages, "docs/how-to/ has no page"
    bare = [_page_id(p) for p in pages if not runnable_blocks(p)]
    assert not bare, f"how-to pages without a runnable block: {bare}"


@pytest.mark.parametrize("page", [p for p in RUN_PAGES if p.exists() and runnable_blocks(p)], ids=_page_id)
def test_runnable_blocks_run(page: Path, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDMODAL_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    for line, lang, code in runnable_blocks(page):
        cmd = [sys.executable, "-c", code] if lang == "python" else ["bash", "-euo", "pipefail", "-c", code]
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=PAGE_TIMEOUT_S)
        assert done.returncode == 0, (
            f"{_page_id(page)}:{line}: the {lang} block failed (exit {done.returncode})\n"
            f"--- block\n{code}\n--- stdout (last 3000)\n{done.stdout[-3000:]}\n--- stderr (last 3000)\n{done.stderr[-3000:]}")


def test_site_builds_strict(tmp_path: Path):
    env = dict(os.environ, DISABLE_MKDOCS_2_WARNING="true", NO_MKDOCS_2_WARNING="1")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    assert (tmp_path / "site" / "index.html").is_file()


def test_readme_is_a_short_guide_without_history():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 160, "README.md should stay a one-screen guide (about 150 lines)"
    for pattern in (r"\bearlier\b", r"before this change", r"\bissue \d+", r"\bthis project's (shared )?machine"):
        hit = re.search(pattern, text, flags=re.IGNORECASE)
        assert not hit, f"README.md says {hit.group(0)!r}: history and machines belong in CHANGELOG.md / docs/results"


def _gen(name: str):
    """A generator script of docs/gen/ as a module (imported, it writes nothing)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"docs_gen_{name}", DOCS / "gen" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_has_every_family_verb():
    """The generated command-line page has a section (and its anchor) for every verb of every registered family,
    and no section for a hidden old spelling."""
    from medmodal.cli.family import FAMILIES

    page = _gen("cli_reference").render()
    assert FAMILIES
    for family in FAMILIES:
        assert f"{{#medmodal-{family.key}}}" in page
        for command in family.app.registered_commands:
            name = command.name or command.callback.__name__.replace("_", "-")
            assert f"{{#medmodal-{family.key}-{name}}}" in page, f"medmodal {family.key} {name} is not on the CLI page"
        for alias in family.aliases:
            assert f"### `medmodal {alias.old}`" not in page
    assert "{#old-spellings}" in page


def test_config_reference_lists_every_field():
    """The generated configuration page lists every key of the segmentation run config (as --set takes it)
    and has a section for every run config the families name."""
    import dataclasses

    from medmodal.config import SegmentationRunConfig

    gen = _gen("config_reference")
    page = gen.render()

    def keys(obj, prefix=""):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                yield from keys(value, f"{prefix}{f.name}.")
            else:
                yield f"{prefix}{f.name}"

    for key in keys(SegmentationRunConfig()):
        assert f"| `{key}` |" in page, f"{key} is not on the configuration page"
    for family, verb, task, _ in gen.run_configs():
        anchor = "-".join(p for p in (family, verb, task) if p)
        assert f"{{#{anchor}}}" in page


def test_api_docstring_markdown():
    """reST roles become optional autorefs (code when the target is not rendered), simple tables become
    Markdown tables."""
    rst = _gen("griffe_rst")
    table = "====  =====\nkey   value\n====  =====\na     one\n      more\nb     two\n====  =====\n"
    assert rst.simple_tables(table).split("\n")[:4] == ["| key | value |", "|---|---|", "| a | one more |",
                                                       "| b | two |"]
    assert rst.literal_blocks("Example::\n\n    code") == "Example:\n\n    code"
    assert "medmodal.evaluation.protocols" in _gen("api_reference").public_modules()


def test_cxr_how_to_lists_every_file_of_the_run_folders():
    """The chest X-ray how-to's run-folder sentences name every file the engines' docstrings list."""
    import re

    from medmodal.engine.finetune import train as finetune
    from medmodal.engine.image_text import train as pretrain

    text = (DOCS / "how-to" / "cxr.md").read_text()
    sentences = {"pretrain": text.split("The run folder holds", 1)[1].split("\n\n", 1)[0],
                 "finetune": text.split("A fine-tuning run folder holds", 1)[1].split("\n\n", 1)[0]}
    for verb, module in (("pretrain", pretrain), ("finetune", finetune)):
        listing = module.__doc__.split("::", 1)[1].split("``resume", 1)[0]
        names = set()
        for line in listing.splitlines():
            if line.startswith("    ") and not line.startswith("     "):  # a file column entry
                first = re.split(r"\s{2,}", line.strip())[0]
                names.update(n.strip() for n in first.split(","))
                if first == "export/":
                    names.update(re.findall(r"\w+_encoder/|export\.json", line))
        assert {"config.yaml", "train_time.json", "metrics.json"} <= names, names
        missing = sorted(n for n in names if f"`{n}" not in sentences[verb] and f"/{n}`" not in sentences[verb])
        assert not missing, (verb, missing)
