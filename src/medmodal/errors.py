"""The errors medmodal raises for bad *input*: one base class, one subclass per kind of input.

Every error a user can cause with their files, folders, configs or options derives from
:class:`InputError`; its message is one line naming the file (or option) and the problem. The
command line (:func:`medmodal.cli.common.user_errors`) prints such an error, and any ``OSError``,
as one ``error:`` line with exit code 1. Every other exception is a programming error and keeps
its traceback (``medmodal --debug ...`` shows the traceback of input errors too).

:class:`InputError` subclasses :class:`ValueError`, so code that caught ``ValueError`` around a
reader keeps working. Output problems (a folder that cannot be written) are
:class:`medmodal.io.OutputError`, an ``OSError``.

This module imports nothing from medmodal, so every layer may raise these errors.
"""

from __future__ import annotations

__all__ = ["InputError", "ConfigError", "UnknownNameError", "UnknownOptionError", "LayoutError", "CaseError",
           "InvalidSequenceError", "DataError", "ImageReadError", "DamagedFileError", "CheckpointError", "EncoderLoadError"]


class InputError(ValueError):
    """Bad user input; the message is one line naming the file or option and the problem."""


class ConfigError(InputError):
    """A config file, preset, ``--set`` override or option value is invalid (unknown key, bad value)."""


class UnknownNameError(ConfigError, KeyError):
    """An unknown name (model, dataset spec, protocol, sequence); the message lists the known ones.

    Also a ``KeyError``, so callers that looked a name up with ``except KeyError`` keep working.
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownOptionError(ConfigError, TypeError):
    """An option a component does not take (a model's or an objective's config key); also a ``TypeError``,
    as an unexpected keyword argument is in Python."""


class LayoutError(InputError):
    """A data folder does not look like the requested layout, or its files are ambiguous."""


class CaseError(InputError):
    """A case's files are unusable (volumes); the message names the file and the problem."""


class InvalidSequenceError(CaseError):
    """A sequence file is readable but holds no image (all voxels one value)."""


class DataError(InputError):
    """Bad dataset content (a table row, a report, a label file); names the file and the problem."""


class ImageReadError(DataError):
    """An image file cannot be decoded (truncated, not an image, unsupported mode)."""


class DamagedFileError(InputError):
    """An input file (checkpoint, weights, run JSON) is damaged or incomplete; the message names it."""


class CheckpointError(InputError):
    """A checkpoint or model bundle cannot be used; the message names the file and the problem."""


class EncoderLoadError(InputError):
    """An encoder cannot be loaded; the message names the file (or spec) and the problem."""
