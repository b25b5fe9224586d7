"""The ``medmodal`` command line: ``medmodal <family> <verb>`` (see :mod:`medmodal.cli.main` for the
families and the old spellings, :mod:`medmodal.cli.common` for the error guard shared by all)."""

from __future__ import annotations

from medmodal.cli.main import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - entry point
    app(prog_name="medmodal")
