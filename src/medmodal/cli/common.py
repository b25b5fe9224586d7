"""Shared pieces of the command line: the Typer apps, consoles, common options and the error guard.

Errors caused by the user's input (:class:`medmodal.errors.InputError`: bad files, bad layout, bad
options; and any ``OSError``, e.g. an unwritable folder) are printed as one clear line naming the
file and the problem, with exit code 1: never a torch traceback. Every other exception is a
programming error and keeps its traceback. ``medmodal --debug ...`` (or ``MEDMODAL_DEBUG=1``)
shows the traceback of input errors too.
Input warnings (:class:`medmodal.notices.InputWarning`: a file ignored, a sequence treated as
missing, a model without a training geometry) are printed as one ``warning:`` line each.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from pathlib import Path
from typing import Callable, Optional, TypeVar

import typer
from rich.console import Console

from medmodal.errors import ConfigError, InputError
from medmodal.notices import InputWarning

app = typer.Typer(help="medmodal: multi-modal medical image learning with missing modalities.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
#: the old ``medmodal data <verb>`` spellings (hidden; each family's data verbs live under ``medmodal <family>``)
data_app = typer.Typer(help="Old spellings of the data verbs, kept one release: use medmodal seg|cxr|endoscopy "
                       "<verb>.", no_args_is_help=True)
app.add_typer(data_app, name="data", hidden=True)

console = Console()
err_console = Console(stderr=True)

LayoutOpt = typer.Option("auto", "--layout", help="auto | brats2020 | brats2023 | myops2020 | nnunet | msd | mapping")
REAL_CASE_MAPPING = "flair=*_fla_bet*,t1=*_t1_bet*,t1ce=*_t1c_bet*,t2=*_t2_bet*,seg=*_seg_fusion*"
MapOpt = typer.Option(None, "--map", help="glob per sequence, e.g. 'flair=*_fla*.nii.gz,t1=*_t1_*.nii.gz,seg=*seg*'")
LabelsOpt = typer.Option(None, "--labels", help="label convention of the files (brats2020 | brats2023 | "
                                                  "myops2020); default: the layout's")
ProtocolOpt = typer.Option("auto", "--protocol", help="evaluation protocol: auto (passion for BraTS, myops for "
                                                       "MyoPS) | passion | brats-challenge | monai-max-directed "
                                                       "| myops")
AffineTolOpt = typer.Option(1e-3, "--affine-tolerance", help="allowed affine difference between files of one case "
                                                             "(or prediction and reference), as a fraction of the "
                                                             "voxel size (default 0.001)")
SkipInvalidOpt = typer.Option(False, "--skip-invalid-sequences", help="treat a constant / all-zero sequence as "
                                                                     "missing instead of refusing the case")
DatasetOpt = typer.Option("auto", "--dataset", help="auto (myops2020 for MyoPS-layout files, else brats2020) | "
                                                    "brats2020 | brats2023 | myops2020")

T = TypeVar("T")
DEBUG_ENV = "MEDMODAL_DEBUG"
_debug = {"on": False}  # set by the root callback on every invocation of ``app``


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="show the traceback of every error, input errors "
                                                              "included (or set MEDMODAL_DEBUG=1)")) -> None:
    """medmodal: multi-modal medical image learning with missing modalities."""
    _debug["on"] = debug


def debug_enabled() -> bool:
    """``True`` under ``medmodal --debug ...`` or with ``$MEDMODAL_DEBUG`` set to anything but ``""`` / ``0``."""
    return _debug["on"] or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def print_wide(renderable) -> None:
    """Print a table whole: on a terminal at its width, when piped / redirected at its natural width
    (rich would otherwise squeeze it into 80 columns and cut cells to ``3…``)."""
    if console.is_terminal:
        console.print(renderable)
        return
    from rich.measure import Measurement

    wide = Console(width=10_000, file=console.file, no_color=True)
    width = Measurement.get(wide, wide.options, renderable).maximum
    Console(width=max(width, 80), file=console.file, no_color=True).print(renderable)


@contextlib.contextmanager
def print_input_warnings():
    """Show each :class:`~medmodal.notices.InputWarning` as one ``warning:`` line on stderr, as it happens."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, InputWarning):
            err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
        else:
            original(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", InputWarning)
        warnings.showwarning = show
        try:
            yield
        finally:
            warnings.showwarning = original


def error_line(err: BaseException) -> str:
    """The message of ``err`` for the one ``error:`` line.

    An error raised inside a DataLoader worker (e.g. a truncated image met while the image cache is
    filled) reaches the main process re-raised by torch with the worker's whole traceback in its
    message (``Caught CXRDataError in DataLoader worker process 0. Original Traceback ...``); its last
    line is the original one-line message, which is what is shown.
    """
    message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    if message.startswith("Caught ") and "Original Traceback" in message:
        last = [line for line in message.strip().splitlines() if line.strip()][-1]
        name, sep, text = last.partition(": ")
        message = text if sep and " " not in name else last
    return str(message)


def user_errors(func):
    """Turn input errors into one red line on stderr and exit code 1; print input warnings as lines.

    Caught: :class:`medmodal.errors.InputError` (every error the user's files, folders, options or
    config can cause) and ``OSError`` (missing / unreadable files; :class:`medmodal.io.OutputError`).
    Anything else (``ValueError``, ``KeyError``, ``ZeroDivisionError`` ...) is a programming error and
    propagates with its traceback. Under ``--debug`` (``$MEDMODAL_DEBUG``) input errors propagate too.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with print_input_warnings():
                return func(*args, **kwargs)
        except (InputError, OSError) as err:
            if debug_enabled():
                raise
            err_console.print(f"[bold red]error:[/] {error_line(err)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def split_option(text: str, convert: Callable[[str], T], option: str) -> list[T]:
    """A comma-separated option value as a list (``"1,2"`` -> ``[1, 2]`` with ``convert=int``).

    Raises:
        ConfigError: an item does not convert (the message names the option and the item), so a
            typo is one ``error:`` line, not a traceback.
    """
    values = []
    for item in (part.strip() for part in text.split(",")):
        try:
            values.append(convert(item))
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(convert, "valid")
            raise ConfigError(f"{option}: {item!r} is not {kind} (expected a comma-separated list)") from None
    return values


def discover(root: Path, layout: str, mapping: Optional[str], labels: Optional[str], modalities=None):
    from medmodal.data.volumes.layouts import discover_cases

    extra = {"modalities": tuple(modalities)} if modalities else {}
    return discover_cases(root, layout=layout, mapping=mapping, source_labels=labels, **extra)


def discover_dataset(root: Path, dataset: str, layout: str, mapping: Optional[str], labels: Optional[str]):
    """``(cases, spec)``; ``dataset="auto"``: MyoPS 2020 when the files are in the MyoPS layout, else BraTS 2020."""
    from medmodal.data.volumes.spec import BRATS2020, MYOPS2020, get_spec

    spec = None if dataset == "auto" else get_spec(dataset)
    found = discover(root, layout, mapping, labels, spec.modalities if spec else None)
    if spec is None:
        spec = MYOPS2020 if found[0].layout == "myops2020" else BRATS2020
    return found, spec


def experiment_config(config, preset, out, data, override):
    """The segmentation run config of ``--config`` / ``--preset`` with ``--set`` items, ``--out`` and ``--data``."""
    from medmodal.config import SegmentationRunConfig, load_run_config

    cfg = load_run_config(SegmentationRunConfig, config, preset, override)
    if out:
        cfg.out_dir = str(out)
    if data:
        cfg.data.root = str(data)
    return cfg
