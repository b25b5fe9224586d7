"""Atomic file output: write to a temporary file in the target folder, then rename.

A crash or a bad input never leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from medmodal.errors import DamagedFileError


class OutputError(OSError):
    """An output path cannot be written (e.g. the folder is not writable)."""


def is_writable_dir(path: str | Path) -> bool:
    """Whether ``path`` is a folder medmodal may write into beside the user's data.

    A folder counts as writable when this process may write there (``os.access``) **and** its permission
    bits grant write to someone: a folder marked read-only (``chmod a-w``) stays read-only for the
    superuser too, who could otherwise write into it. Data folders are input; caches and split files go
    elsewhere when this is ``False``.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return path.is_dir() and bool(mode & 0o222) and os.access(path, os.W_OK | os.X_OK)


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check it is a writable folder; raise :class:`OutputError` if not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: output path exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{path}: cannot create output folder ({err.strerror or err})") from None
    if not path.is_dir():
        raise OutputError(f"{path}: output path exists and is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: output folder is not writable")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``, else delete it.

    The temporary name keeps the full suffix (``.nii.gz``) so writers that infer the format
    from the extension behave. The result gets the permissions of a normally created file
    (``0o666`` minus the umask), not ``mkstemp``'s owner-only ``0o600``.
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix="-" + path.name)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_save_npy(path: str | Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
    return Path(path)


def create_npy_once(path: str | Path, shape: tuple[int, ...], dtype) -> Path:
    """Create a zero-filled ``.npy`` of ``shape`` / ``dtype`` at ``path`` unless one is there.

    Safe between concurrent processes (DataLoader workers, DDP ranks, runs): the file is written
    under a temporary name in the same folder, then hard-linked into place only if absent, so all
    agree on one file (a file system without hard links: renamed into place, last creator wins).
    Read it back with ``np.load(path, mmap_mode="r+")``.
    """
    path = Path(path)
    if path.exists():
        return path
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
    os.close(fd)
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        array.flush()
        del array
        try:
            os.link(tmp, path)  # create-if-absent: a concurrent creator's file wins
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: plain rename (last creator wins)
            if not path.exists():
                os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ---------------------------------------------------------------------------------------------------------------
# Reading run files (checkpoints, weights, JSON) with one clear error naming the file
# ---------------------------------------------------------------------------------------------------------------

_PICKLE_PROTOCOL_2_PLUS = b"\x80"  # legacy (pre-zip) torch.save files start with a pickle PROTO opcode


def check_torch_file(path: str | Path) -> Path:
    """Check cheaply that ``path`` is a complete ``torch.save`` file before it is loaded or resumed from.

    A torch >= 1.6 file is a zip archive: a truncated copy has no end-of-archive record and is
    refused here in microseconds (instead of torch's ``PytorchStreamReader failed reading zip
    archive`` deep inside Lightning). Legacy non-zip pickles are passed through to ``torch.load``.

    Raises:
        FileNotFoundError: no such file. DamagedFileError: an empty, truncated or non-torch file.
    """
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    size = path.stat().st_size
    if size == 0:
        raise DamagedFileError(f"{path}: damaged or incomplete checkpoint (empty file); delete it or pass another")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                archive.infolist()
        except (zipfile.BadZipFile, OSError) as err:
            raise DamagedFileError(f"{path}: damaged or incomplete checkpoint ({err}); delete it or pass "
                                   f"another") from None
        return path
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head[:1] == _PICKLE_PROTOCOL_2_PLUS:
        return path
    raise DamagedFileError(f"{path}: damaged or incomplete checkpoint (not a complete torch zip archive, "
                           f"{size} bytes; truncated copy or interrupted save?); delete it or pass another")


def load_torch_file(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` after :func:`check_torch_file`.

    Raises:
        FileNotFoundError: no such file. DamagedFileError: damaged, or holds pickled code / objects
            other than tensors and plain containers (refused, never executed).
    """
    import pickle

    import torch

    path = check_torch_file(path)
    try:
        return torch.load(str(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = _first_line(err)
        raise DamagedFileError(f"{path}: refused: holds pickled objects other than tensors ({first}); only "
                               f"weights are loaded, pickled code is never run") from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise DamagedFileError(f"{path}: damaged or unreadable checkpoint ({type(err).__name__}: "
                               f"{_first_line(err)})") from None


def load_safetensors_file(path: str | Path) -> dict:
    """``safetensors.torch.load_file`` with one clear error naming the file.

    Raises:
        FileNotFoundError: no such file. DamagedFileError: damaged, incomplete or not safetensors.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weight file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise DamagedFileError(f"{path}: damaged or incomplete safetensors file ({_first_line(err)})") from None


def read_json_file(path: str | Path) -> Any:
    """The parsed content of a JSON file (e.g. a run's ``model.json`` / ``metrics.json``).

    Raises:
        FileNotFoundError: no such file. DamagedFileError: not valid UTF-8 JSON (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DamagedFileError(f"{path}: damaged or not valid JSON ({err})") from None


def _first_line(err: BaseException, limit: int = 200) -> str:
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    return first if len(first) <= limit else first[:limit] + "..."
