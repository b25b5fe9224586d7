"""medmodal.layers.ramps: loss-weight ramp-up / ramp-down schedules."""

from __future__ import annotations

import math

import pytest

from medmodal.layers.ramps import cosine_rampdown, linear_rampup, sigmoid_rampup


def test_sigmoid_rampup():
    assert sigmoid_rampup(0, 80) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(40, 80) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(80, 80) == 1.0 and sigmoid_rampup(200, 80) == 1.0 and sigmoid_rampup(3, 0) == 1.0


def test_linear_and_cosine():
    assert linear_rampup(5, 10) == 0.5 and linear_rampup(11, 10) == 1.0 and linear_rampup(0, 0) == 1.0
    assert cosine_rampdown(0, 10) == 1.0 and cosine_rampdown(5, 10) == pytest.approx(0.5)
    assert cosine_rampdown(10, 10) == pytest.approx(0.0) and cosine_rampdown(20, 10) == pytest.approx(0.0)
    with pytest.raises(ValueError, match=">= 0"):
        linear_rampup(-1, 10)
