"""The ``medmodal`` command line, one module per command group; each command is a thin layer
over the library (see :mod:`medmodal.cli.common` for the error guard shared by all)."""

from __future__ import annotations

# importing the command modules registers their commands on ``app``
from medmodal.cli import (benchmark, data, demo, endoscopy, evaluate, finetune, predict, pretrain,  # noqa: F401
                          score, train)
from medmodal.cli.common import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - entry point
    app(prog_name="medmodal")
