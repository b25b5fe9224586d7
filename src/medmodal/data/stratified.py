"""Class-stratified, seeded train/val/test splits and label-fraction subsets (few-label protocols).

:func:`stratified_splits` cuts each class by the fractions with the count rule of
:func:`medmodal.data.splits.make_splits`; :func:`label_fraction_subset` picks the labelled
training samples for the 1 / 5 / 10 / 100 % protocols (MICS; FixMatch-style semi-supervised
benchmarks) with at least one sample per class. Both depend only on the sorted ids, their labels
and the seed. Subsets for different fractions under one seed are nested (1 % inside 5 % inside
10 %), so a curve over fractions adds labels rather than redrawing them.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from medmodal.data.splits import SPLIT_NAMES, make_splits
from medmodal.errors import ConfigError, DataError


def _by_class(ids: Sequence[str], labels: Sequence[str | None]) -> tuple[dict[str, list[str]], list[str]]:
    if len(ids) != len(labels):
        raise ValueError(f"{len(ids)} ids but {len(labels)} labels")
    if len(set(ids)) != len(ids):
        raise DataError("ids are not unique")
    groups: dict[str, list[str]] = {}
    unlabelled = []
    for i, lab in sorted(zip(ids, labels), key=lambda t: t[0]):
        if lab is None:
            unlabelled.append(i)
        else:
            groups.setdefault(lab, []).append(i)
    return groups, unlabelled


def stratified_splits(ids: Sequence[str], labels: Sequence[str | None],
                      fractions: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0) -> dict[str, list[str]]:
    """Train / val / test ids with each class cut by ``fractions``.

    Unlabelled ids (label ``None``) cannot be scored, so they all go to ``train`` (they serve
    semi-supervised and self-supervised training). Returns lists sorted by id.
    """
    groups, unlabelled = _by_class(ids, labels)
    out = {k: [] for k in SPLIT_NAMES}
    for n, (lab, members) in enumerate(sorted(groups.items())):
        part = make_splits(members, fractions, seed=seed * 1000 + n)
        for k in SPLIT_NAMES:
            out[k] += part[k]
    out["train"] += unlabelled
    return {k: sorted(v) for k, v in out.items()}


def label_fraction_subset(ids: Sequence[str], labels: Sequence[str | None], fraction: float, seed: int = 0,
                          min_per_class: int = 1) -> list[str]:
    """Ids that keep their label at ``fraction`` (0 < fraction <= 1), per class.

    Each class keeps ``max(min_per_class, floor(fraction * n_c + 0.5))`` ids (capped at ``n_c``),
    drawn by one seeded permutation per class, so fractions are nested under a seed. Unlabelled ids
    are never returned. Raises ``ValueError`` for a fraction outside (0, 1].
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"label fraction must be in (0, 1], got {fraction}")
    groups, _ = _by_class(ids, labels)
    rng = np.random.default_rng(seed)
    keep = []
    for lab, members in sorted(groups.items()):
        order = [members[i] for i in rng.permutation(len(members))]
        k = min(len(members), max(min_per_class, math.floor(fraction * len(members) + 0.5)))
        keep += order[:k]
    return sorted(keep)


def fold_splits(ids: Sequence[str], folds: Sequence[str | None], labels: Sequence[str | None], test_fold: str,
                val_fraction: float = 0.1, seed: int = 0) -> dict[str, list[str]]:
    """Official cross-validation folds (e.g. HyperKvasir ``fold0`` / ``fold1``) as train / val / test.

    ``test`` is ``test_fold``; ``val`` is a stratified ``val_fraction`` of the other folds; ids
    without a fold are left out (the caller reports them). Raises ``ValueError`` for an unknown fold.
    """
    if test_fold not in set(folds):
        raise ConfigError(f"fold {test_fold!r} not found; folds are {sorted({f for f in folds if f})}")
    test = sorted(i for i, f in zip(ids, folds) if f == test_fold)
    rest = [(i, lab) for i, f, lab in zip(ids, folds, labels) if f is not None and f != test_fold]
    inner = stratified_splits([i for i, _ in rest], [lab for _, lab in rest], (1 - val_fraction, val_fraction, 0), seed)
    return {"train": inner["train"], "val": inner["val"], "test": test}
