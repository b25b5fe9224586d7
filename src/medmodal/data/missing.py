"""Missing-modality protocols.

* :func:`all_subsets` - every non-empty subset of M sequences (15 for BraTS), in the order the
  papers' tables use: by number of present sequences, then by canonical order.
* :func:`random_subset_mask` - the *balanced* training protocol: a uniformly random non-empty
  subset per sample.
* :func:`assign_imbalanced` - PASSION's *imbalanced* protocol: each training case gets a fixed
  availability pattern drawn from per-sequence missing rates, every case keeping at least one
  sequence. Written to / read from a CSV (:func:`write_missing_csv`, :func:`read_missing_csv`).

Masks are boolean, shape ``[M]`` (True = sequence present), channel order = the dataset spec's.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from medmodal.errors import ConfigError, DataError
from medmodal.io import atomic_write_text


def all_subsets(num_modalities: int) -> list[tuple[bool, ...]]:
    """All ``2**M - 1`` non-empty presence masks, ordered by size then canonical order."""
    subsets: list[tuple[bool, ...]] = []
    for k in range(1, num_modalities + 1):
        for chosen in itertools.combinations(range(num_modalities), k):
            subsets.append(tuple(i in chosen for i in range(num_modalities)))
    return subsets


def subset_name(mask: Sequence[bool], modalities: Sequence[str]) -> str:
    """Readable name of a subset, e.g. ``"flair+t1ce"``."""
    present = [m for m, p in zip(modalities, mask) if p]
    if not present:
        raise ValueError("a subset must contain at least one sequence")
    return "+".join(present)


def parse_subset(name: str, modalities: Sequence[str]) -> tuple[bool, ...]:
    """Inverse of :func:`subset_name`; accepts ``+`` or ``,`` separators, case-insensitive."""
    parts = [p.strip().lower() for p in name.replace(",", "+").split("+") if p.strip()]
    unknown = [p for p in parts if p not in modalities]
    if unknown or not parts:
        raise ConfigError(f"bad subset {name!r}: sequences must be among {', '.join(modalities)}")
    return tuple(m in parts for m in modalities)


def random_subset_mask(num_modalities: int, rng: np.random.Generator,
                       available: Sequence[bool] | None = None) -> np.ndarray:
    """Uniformly random non-empty subset of the ``available`` sequences (default: all). ``[M]`` bool."""
    avail = np.ones(num_modalities, bool) if available is None else np.asarray(available, bool)
    idx = np.flatnonzero(avail)
    if idx.size == 0:
        raise ValueError("no sequence available to draw a subset from")
    while True:
        keep = rng.random(idx.size) < 0.5
        if keep.any():
            mask = np.zeros(num_modalities, bool)
            mask[idx[keep]] = True
            return mask


def assign_imbalanced(case_ids: Sequence[str], missing_rates: Mapping[str, float],
                      modalities: Sequence[str], seed: int = 0) -> dict[str, tuple[bool, ...]]:
    """Assign each case a fixed availability pattern under per-sequence missing rates.

    Patterns are the non-empty subsets; each gets an expected count proportional to its
    probability under independent per-sequence missingness, renormalised over non-empty
    patterns (largest-remainder rounding, as PASSION assigns patterns by expected counts).
    The assignment is shuffled with ``seed``. Realised per-sequence missing rates therefore
    match the requested ones up to the renormalisation and rounding (within ~1/N + the
    all-missing mass).

    Returns: case id -> presence mask (tuple of bool, canonical order).
    """
    rates = np.array([float(missing_rates.get(m, 0.0)) for m in modalities])
    unknown = set(missing_rates) - set(modalities)
    if unknown:
        raise ConfigError(f"missing rates name unknown sequences {sorted(unknown)}; known: {list(modalities)}")
    if ((rates < 0) | (rates >= 1)).any():
        raise ConfigError(f"missing rates must be in [0, 1): {dict(zip(modalities, rates))}")
    patterns = all_subsets(len(modalities))
    probs = np.array([np.prod(np.where(p, 1 - rates, rates)) for p in patterns])
    probs /= probs.sum()
    n = len(case_ids)
    expected = probs * n
    counts = np.floor(expected).astype(int)
    order = np.argsort(-(expected - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    assigned = [patterns[i] for i, c in enumerate(counts) for _ in range(c)]
    rng = np.random.default_rng(seed)
    rng.shuffle(assigned)
    return {cid: tuple(bool(x) for x in pat) for cid, pat in zip(case_ids, assigned)}


def realised_missing_rates(assignment: Mapping[str, Sequence[bool]], modalities: Sequence[str]) -> dict[str, float]:
    """Fraction of cases lacking each sequence."""
    arr = np.array([list(v) for v in assignment.values()], bool)
    return {m: float(1 - arr[:, i].mean()) for i, m in enumerate(modalities)}


def write_missing_csv(path: str | Path, assignment: Mapping[str, Sequence[bool]], modalities: Sequence[str]) -> Path:
    """Write ``case_id,<seq1>,<seq2>,...`` with 1 = present, 0 = missing (atomic)."""
    lines = [",".join(["case_id", *modalities])]
    for cid, mask in assignment.items():
        lines.append(",".join([cid, *("1" if p else "0" for p in mask)]))
    atomic_write_text(Path(path), "\n".join(lines) + "\n")
    return Path(path)


def read_missing_csv(path: str | Path, modalities: Sequence[str]) -> dict[str, tuple[bool, ...]]:
    """Read a CSV written by :func:`write_missing_csv`; columns are matched by sequence *name*."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing-rate CSV not found")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        absent = [m for m in ("case_id", *modalities) if m not in header]
        if absent:
            raise DataError(f"{path}: columns {absent} missing (header: {header})")
        out: dict[str, tuple[bool, ...]] = {}
        for lineno, row in enumerate(reader, start=2):
            try:
                mask = tuple(bool(int(row[m])) for m in modalities)
            except (TypeError, ValueError):
                raise DataError(f"{path}:{lineno}: presence flags must be 0 or 1, got {row}") from None
            if not any(mask):
                raise DataError(f"{path}:{lineno}: case {row['case_id']} has no sequence present")
            out[row["case_id"]] = mask
    return out


def parse_rates(text: str | Iterable[str]) -> dict[str, float]:
    """Parse ``"flair=0.2,t1=0.4"`` (or a list of ``name=rate``) into a dict; percentages allowed."""
    items = text.split(",") if isinstance(text, str) else list(text)
    rates: dict[str, float] = {}
    for item in items:
        if not item.strip():
            continue
        if "=" not in item:
            raise ConfigError(f"bad missing rate {item!r}: expected name=rate")
        name, value = item.split("=", 1)
        v = float(value.strip().rstrip("%"))
        rates[name.strip().lower()] = v / 100 if value.strip().endswith("%") or v > 1 else v
    return rates
