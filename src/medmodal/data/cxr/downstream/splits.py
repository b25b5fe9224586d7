"""Downstream splits (MGCA's protocol, by patient), the leakage check, and label-fraction sampling.

Splits (every one by patient where the dataset has patient ids; :func:`check_no_leakage`):

* :func:`split_by_group`: shuffled groups (patients, or images when there are none) cut by
  fractions with :func:`medmodal.data.splits.make_splits` (fractions of *groups*; seed 0 as the
  reference's ``train_test_split(random_state=0)``; the draw itself differs from scikit-learn's).
* :func:`split_off_images`: whole patients moved to a split until it holds at least ``count``
  images (CheXpert's 5,000 validation images).

Label fractions (:func:`sample_training_fraction`, the training split only; validation and test
never change):

* ``method="classification"``: ``RandomState(seed).choice(n, round(fraction * n), replace=False)``
  over the training rows in reading order, which is exactly what pandas'
  ``DataFrame.sample(frac=fraction, random_state=seed)`` draws (MGCA / CM-CGNS classification
  datasets, seed 42). The rows differ from the reference's anyway, because its training split
  is a different (row-level) draw.
* ``method="dense"`` (detection, segmentation): ``RandomState(seed).choice(n, int(fraction * n),
  replace=False)``, the reference's ``np.random.choice`` after ``np.random.seed(42)`` (there the
  global state may have been advanced by earlier draws; here it is fresh).
* at least one image is kept; with ``ensure_positives`` (default) every label (multi-label
  finding, or multi-class class) that has a positive in the full training split gets at least
  one in the subset: for each one missing, the first positive of a seeded permutation is ADDED
  (the subset grows by at most the number of labels; a note says so). At 1 % of a small
  training split a finding can otherwise vanish and its AUROC is undefined.
* :func:`balance_positive_negative`: all positive training images + as many random negatives
  (SIIM's segmentation training set in the reference), applied before the fraction, as there.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from medmodal.data.cxr.downstream.base import SPLITS, DownstreamReadResult, DownstreamSample
from medmodal.data.splits import check_disjoint_groups, make_splits
from medmodal.errors import ConfigError, DataError

FRACTION_METHODS = ("classification", "dense")


def check_no_leakage(samples: Sequence[DownstreamSample]) -> None:
    """Refuse a patient, or an image, that appears in more than one split.

    Raises:
        ValueError: naming the first offending patients / images and their splits.
    """
    rows = [s for s in samples if s.split is not None]
    check_disjoint_groups(((s.patient_id, s.split) for s in rows), what="patient")
    check_disjoint_groups(((s.sample_id, s.split) for s in rows), what="image")


def split_by_group(samples: Sequence[DownstreamSample], fractions: Sequence[float], seed: int = 0,
                   names: Sequence[str] = SPLITS, group: Callable[[DownstreamSample], str] | None = None) -> None:
    """Set ``split`` of every sample from its group's draw (in place).

    Args:
        fractions: one per name in ``names`` (two or three), of groups.
        names: the splits to fill (e.g. ``("train", "val")`` for COVIDx, whose test is official).
        group: sample -> group id (default: ``patient_id``).
    """
    group = group or (lambda s: s.patient_id)
    if len(fractions) != len(names):
        raise ConfigError(f"{len(names)} splits need {len(names)} fractions, got {list(fractions)}")
    padded = list(fractions) + [0.0] * (3 - len(fractions))
    drawn = make_splits(sorted({group(s) for s in samples}), padded, seed) if samples else {}
    split_of = {}
    for position, key in enumerate(SPLITS[:len(names)]):
        for g in drawn.get(key, []):
            split_of[g] = names[position]
    for s in samples:
        s.split = split_of[group(s)]


def split_off_images(samples: Sequence[DownstreamSample], count: int, split: str, seed: int = 0) -> int:
    """Move whole patients (shuffled with ``seed``) into ``split`` until it holds >= ``count`` images.

    Returns:
        The number of images moved.
    """
    by_patient: dict[str, list[DownstreamSample]] = {}
    for s in samples:
        by_patient.setdefault(s.patient_id, []).append(s)
    order = sorted(by_patient)
    moved = 0
    for i in np.random.default_rng(seed).permutation(len(order)):
        if moved >= count:
            break
        for s in by_patient[order[i]]:
            s.split = split
        moved += len(by_patient[order[i]])
    return moved


def balance_positive_negative(samples: Sequence[DownstreamSample], seed: int = 42) -> tuple[list, int]:
    """All positives + the same number of random negatives (label 0); returns ``(kept, dropped)``.

    Negatives are drawn with ``RandomState(seed).choice(negatives, n_positive, replace=False)``
    over the negatives in reading order (the reference's ``np.random.choice`` of ImageIds).
    """
    positives = [s for s in samples if s.is_positive(0)]
    negatives = [s for s in samples if not s.is_positive(0)]
    if len(negatives) <= len(positives):
        return list(samples), 0
    chosen = set(np.random.RandomState(seed).choice(len(negatives), len(positives), replace=False).tolist())
    keep = {id(s) for s in positives} | {id(negatives[i]) for i in chosen}
    kept = [s for s in samples if id(s) in keep]
    return kept, len(samples) - len(kept)


def sample_training_fraction(result: DownstreamReadResult, fraction: float, seed: int = 42,
                             method: str | None = None, ensure_positives: bool = True) -> DownstreamReadResult:
    """A copy of ``result`` whose training split keeps ``fraction`` of its images (module docstring).

    Args:
        fraction: in ``(0, 1]`` (MGCA's ``data_pct``: 0.01, 0.1, 1).
        method: ``classification`` | ``dense``; default from ``result.task``.

    Raises:
        ValueError: ``fraction`` outside ``(0, 1]``, an unknown method, no training images.
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"label fraction must be in (0, 1], got {fraction}")
    method = method or ("classification" if result.task == "classification" else "dense")
    if method not in FRACTION_METHODS:
        raise ConfigError(f"unknown fraction method {method!r}; choose one of {', '.join(FRACTION_METHODS)}")
    train = [s for s in result.samples if s.split == "train"]
    if not train:
        raise DataError(f"{result.dataset.name if result.dataset else 'dataset'}: no training images to sample")
    out = dataclasses.replace(result, samples=list(result.samples), notes=list(result.notes),
                              dropped=result.dropped.copy(), skipped=list(result.skipped))
    if fraction == 1:
        return out
    n = len(train)
    size = round(fraction * n) if method == "classification" else int(fraction * n)
    size = max(1, size)
    rng = np.random.RandomState(seed)
    picked = [int(i) for i in rng.choice(n, size, replace=False)]
    if ensure_positives and result.dataset is not None:
        added = _add_missing_positives(train, picked, len(result.dataset.label_names), seed)
        if added:
            names = ", ".join(result.dataset.label_names[k] for k in added)
            out.note(f"{result.dataset.name}: the {fraction:g} training subset had no positive for {names}: "
                     f"added {len(added)} image(s), one per such label ({size} + {len(added)} images)")
    keep = {id(train[i]) for i in picked}
    out.samples = [s for s in result.samples if s.split != "train" or id(s) in keep]
    out.dropped[f"training images outside the {fraction:g} label fraction"] += n - len(keep)
    return out


def _add_missing_positives(train: list[DownstreamSample], picked: list[int], num_labels: int, seed: int) -> list[int]:
    added = []
    order = np.random.default_rng([seed, 1]).permutation(len(train))
    for k in range(num_labels):
        if any(train[i].is_positive(k) for i in picked):
            continue
        first = next((int(i) for i in order if train[i].is_positive(k)), None)
        if first is not None:
            picked.append(first)
            added.append(k)
    return added
