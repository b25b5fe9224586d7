"""The error and the warning of the chest X-ray readers (imported by :mod:`~medmodal.data.cxr.records`
and :mod:`~medmodal.data.cxr.images` alike, so neither imports the other for them)."""

from __future__ import annotations

from medmodal.errors import DataError

__all__ = ["CXRDataError", "CXRDataWarning"]


class CXRDataError(DataError):
    """Bad chest X-ray input; the message is one line naming the file and the problem."""


class CXRDataWarning(UserWarning):
    """An assumption a reader made about the data (also kept in :attr:`ReadResult.notes`)."""
