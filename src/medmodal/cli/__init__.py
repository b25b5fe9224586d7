"""The ``medmodal`` command line, one module per command group; each command is a thin layer
over the library (see :mod:`medmodal.cli.common` for the error guard shared by all)."""

from __future__ import annotations

from medmodal.cli import benchmark, data, demo, evaluate, finetune, predict, pretrain, train  # noqa: F401  (register commands)
from medmodal.cli.common import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - entry point
    app(prog_name="medmodal")
