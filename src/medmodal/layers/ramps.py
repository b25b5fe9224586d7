"""Ramp-up / ramp-down schedules of a loss weight (consistency, distillation, pseudo-label terms).

Each maps the training progress ``current`` (epochs or steps, any unit shared with ``length``)
to a factor in ``[0, 1]``; multiply the term's weight by it. Formulas: Laine & Aila, ICLR 2017
("Temporal ensembling for semi-supervised learning", sec. 3.1: ``exp(-5 (1 - t)^2)`` over the first
80 epochs) and Tarvainen & Valpola, NeurIPS 2017 (mean teacher: the same sigmoid ramp-up, and a
cosine ramp-down of the learning rate).

This module is the one home of these schedules. DMAF-Net, CM-CGNS and MICS do not use them (they weight
their terms by constants; their learning-rate warm-ups are optimiser schedules, not loss-weight ramps);
they are here for the semi-supervised paradigms.
"""

from __future__ import annotations

import math

__all__ = ["sigmoid_rampup", "linear_rampup", "cosine_rampdown"]


def _check(current: float, length: float) -> None:
    if current < 0 or length < 0:
        raise ValueError(f"ramp position and length must be >= 0, got {current} and {length}")


def sigmoid_rampup(current: float, length: float) -> float:
    """``exp(-5 (1 - t)^2)`` with ``t = min(current, length) / length``: 0.0067 at the start, 1 from
    ``length`` on (1 at once when ``length`` is 0). Raises ValueError for a negative argument."""
    _check(current, length)
    if length == 0:
        return 1.0
    phase = 1.0 - min(float(current), float(length)) / float(length)
    return math.exp(-5.0 * phase * phase)


def linear_rampup(current: float, length: float) -> float:
    """``min(1, current / length)`` (1 when ``length`` is 0). Raises ValueError for a negative argument."""
    _check(current, length)
    if current >= length:
        return 1.0
    return float(current) / float(length)


def cosine_rampdown(current: float, length: float) -> float:
    """``(cos(pi t) + 1) / 2`` with ``t = min(current, length) / length``: 1 at the start, 0 from
    ``length`` on (0 at once when ``length`` is 0). Raises ValueError for a negative argument."""
    _check(current, length)
    if length == 0:
        return 0.0
    return 0.5 * (math.cos(math.pi * min(float(current), float(length)) / float(length)) + 1.0)
