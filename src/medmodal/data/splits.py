"""Deterministic, seedable train/val/test splits, stored as JSON.

The default fractions follow PASSION's BraTS2020 split (219 / 50 / 100 of 369 cases).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from medmodal.errors import ConfigError, DataError
from medmodal.io import is_writable_dir
from medmodal.io import atomic_write_json

DEFAULT_FRACTIONS = (219 / 369, 50 / 369, 100 / 369)
SPLIT_NAMES = ("train", "val", "test")


def make_splits(case_ids: Sequence[str], fractions: Sequence[float] = DEFAULT_FRACTIONS,
                seed: int = 0) -> dict[str, list[str]]:
    """Shuffle ``case_ids`` with ``seed`` and cut them by ``fractions`` (train, val, test).

    Every split with a positive fraction gets at least one case when there are enough cases.
    The result depends only on the sorted ids and the seed, never on discovery order.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ConfigError(f"fractions must be three non-negative numbers, got {list(fractions)}")
    ids = sorted(case_ids)
    if len(set(ids)) != len(ids):
        raise DataError("case ids are not unique")
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(len(ids))]
    frac = np.asarray(fractions, float) / sum(fractions)
    counts = np.floor(frac * len(ids)).astype(int)
    for i in np.argsort(-(frac * len(ids) - counts), kind="stable")[: len(ids) - counts.sum()]:
        counts[i] += 1
    for i in range(3):  # keep a case in every requested split when possible
        if frac[i] > 0 and counts[i] == 0 and counts.max() > 1:
            counts[counts.argmax()] -= 1
            counts[i] += 1
    bounds = np.cumsum([0, *counts])
    return {name: order[bounds[i]:bounds[i + 1]] for i, name in enumerate(SPLIT_NAMES)}


def write_splits(path: str | Path, splits: dict[str, list[str]], seed: int | None = None) -> Path:
    payload = {"seed": seed, **{k: list(splits.get(k, [])) for k in SPLIT_NAMES}}
    return atomic_write_json(path, payload)


def read_splits(path: str | Path) -> dict[str, list[str]]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: split file not found") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not a valid split file ({err})") from None
    missing = [k for k in SPLIT_NAMES if k not in data]
    if missing:
        raise DataError(f"{path}: split file lacks {missing}")
    return {k: list(data[k]) for k in SPLIT_NAMES}


def default_split_path(data_root: str | Path, seed: int) -> Path:
    """Where splits live next to the data: ``<root>/splits_seed<seed>.json``."""
    return Path(data_root) / f"splits_seed{seed}.json"


def load_or_make_splits(data_root: str | Path, case_ids: Sequence[str], seed: int = 0,
                        fractions: Sequence[float] = DEFAULT_FRACTIONS, write: bool = True) -> dict[str, list[str]]:
    """Read ``<root>/splits_seed<seed>.json`` if it exists and matches the cases; else make the split and,
    when ``write`` and the folder is writable (:func:`medmodal.io.is_writable_dir`), write it there.

    ``write=False``: a reader only (evaluation on a dataset: never writes into the data folder)."""
    path = default_split_path(data_root, seed)
    if path.is_file():
        splits = read_splits(path)
        listed = {c for v in splits.values() for c in v}
        unknown = listed - set(case_ids)
        if unknown:
            raise DataError(f"{path}: lists cases not found in the data: {sorted(unknown)[:5]}")
        return splits
    splits = make_splits(case_ids, fractions, seed)
    if write and is_writable_dir(path.parent):  # else the run folder's copy is what records it
        try:
            write_splits(path, splits, seed)
        except OSError:
            pass
    return splits


def check_disjoint_groups(assignments: Iterable[tuple[str, str]], what: str = "patient") -> None:
    """Refuse a group (e.g. a patient) that appears in more than one split.

    Args:
        assignments: ``(group, split)`` pairs, e.g. one per image row.
        what: the group's name in the message.

    Raises:
        ValueError: naming the first offending group(s) and their splits.
    """
    seen: dict[str, set[str]] = {}
    for group, split in assignments:
        seen.setdefault(str(group), set()).add(str(split))
    bad = {g: s for g, s in seen.items() if len(s) > 1}
    if bad:
        shown = "; ".join(f"{what} {g} in {', '.join(sorted(s))}" for g, s in sorted(bad.items())[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise DataError(f"{len(bad)} {what}(s) in more than one split: {shown}{more}")
