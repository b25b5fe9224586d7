"""Where a dataset's caches live by default (decoded images, preprocessed volumes, features)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from medmodal.io import is_writable_dir

__all__ = ["default_cache_dir", "cache_note"]


def default_cache_dir(data_root: str | Path) -> Path:
    """``<dataset folder>/.medmodal_cache`` when that folder is writable (:func:`medmodal.io.is_writable_dir`:
    a folder marked read-only counts as read-only for the superuser too), else a per-dataset folder
    under ``$MEDMODAL_CACHE`` (default ``~/.cache/medmodal``).

    The dataset folder is ``data_root`` itself, or the folder holding it when ``data_root`` is a
    file (a CSV / JSON table). The result is absolute (symlinks resolved). One definition for
    every family (formerly three: the segmentation one, with the writable fallback; the CXR
    pre-training one, with the file-root rule; the CXR fine-tuning one, with neither: for a
    writable dataset folder all three gave the same folder).
    """
    root = Path(data_root).resolve()
    if root.is_file():
        root = root.parent
    if is_writable_dir(root):
        return root / ".medmodal_cache"
    base = Path(os.environ.get("MEDMODAL_CACHE", Path.home() / ".cache" / "medmodal"))
    return base / f"{root.name}-{hashlib.sha1(str(root).encode()).hexdigest()[:8]}"


def cache_note(cache_file: str | Path, data_root: str | Path, configured: bool) -> str:
    """The note a run prints when it starts a new image cache: the folder, and why there.

    ``configured``: the folder came from ``data.cache_dir``; else it is :func:`default_cache_dir`.
    """
    folder = Path(cache_file).parent
    if configured:
        why = "data.cache_dir"
    elif folder.name == ".medmodal_cache":
        why = "the data folder's .medmodal_cache; --set data.cache_dir=DIR to put it elsewhere"
    else:
        why = ("the data folder is not writable, so under $MEDMODAL_CACHE, default ~/.cache/medmodal; "
               "--set data.cache_dir=DIR to put it elsewhere")
    return f"image cache: decoded images are cached in {folder} ({why}); later runs on the same files reuse it"
