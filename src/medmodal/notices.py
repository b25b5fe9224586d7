"""Warnings about the user's input that do not stop a run.

Whenever a file is skipped, ignored or guessed at, or a model lacks information, medmodal
emits an :class:`InputWarning` naming the file (Python :mod:`warnings`). The command line prints
each as one ``warning:`` line (:func:`medmodal.cli.common.user_errors`); library users see them
as ordinary warnings and can filter or escalate them (``warnings.simplefilter("error", InputWarning)``).
"""

from __future__ import annotations

import warnings


class InputWarning(UserWarning):
    """An input file was skipped, ignored or interpreted in a way the user should know about."""


def warn(message: str) -> None:
    """Emit ``message`` as an :class:`InputWarning` (attributed to the caller's caller)."""
    warnings.warn(message, InputWarning, stacklevel=3)
