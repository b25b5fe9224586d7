"""Calibrating the WLI -> NBI simulation on real pairs, and measuring how close it gets.

Real pairs (Mesejo et al. 2016: the same lesion under white light and NBI) are separate crops,
not pixel-registered, so the simulation is fitted and judged on colour *distributions*, never on
pixels:

* distance: per-channel 1-D Wasserstein distance between pixel-value distributions (8-bit units,
  ``scipy.stats.wasserstein_distance``) and per-channel KL divergence ``KL(real || simulated)``
  of 32-bin histograms (half a count added to every bin);
* fit (:func:`calibrate`): the six calibrated fields of :class:`NBIParams`, Nelder-Mead from
  :data:`PHYSICAL_PRIOR`, minimising the sum over channels of the Wasserstein distance between
  the *pooled* pixels of the simulated and of the real NBI images (all resized to ``size``);
* protocol (:func:`cross_validate`): leave one lesion out: fit on the other pairs, simulate the
  held-out WLI image at its own resolution, compare with its real NBI image. Reported per pair
  (mean over lesions) and pooled (the held-out simulations of all lesions against all real NBI
  images), next to the WLI image itself and to a control: a per-channel tone curve
  (``a_c * c^gamma_c`` on each WLI channel, six parameters as many as the simulation) fitted the
  same way, which can match marginal colour statistics without any haemoglobin physics.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from scipy import optimize, stats

from medmodal.data.endoscopy.images import load_image, resize_square
from medmodal.data.endoscopy.nbi import (PHYSICAL_PRIOR, NBIParams, band_densities, band_inputs, linear_to_srgb,
                                         nbi_display, simulate_nbi, srgb_to_linear)
from medmodal.data.endoscopy.samples import PairedSample
from medmodal.errors import ConfigError, DataError

CALIBRATION_SIZE = 96
KL_BINS = 32
CHANNELS = ("R", "G", "B")


def _pixels(images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """``uint8`` images (one or several, any sizes) -> ``[N, 3]`` pooled pixels."""
    if isinstance(images, np.ndarray):
        images = [images]
    return np.concatenate([np.asarray(im).reshape(-1, 3) for im in images])


def channel_wasserstein(real, model) -> np.ndarray:
    """Per-channel 1-D Wasserstein distance ``[3]`` (8-bit units) between two ``uint8`` image sets."""
    a, b = _pixels(real), _pixels(model)
    values = np.arange(256)
    return np.array([stats.wasserstein_distance(values, values, np.bincount(a[:, c], minlength=256),
                                                np.bincount(b[:, c], minlength=256)) for c in range(3)])


def channel_kl(real, model, bins: int = KL_BINS) -> np.ndarray:
    """Per-channel ``KL(real || model)`` ``[3]`` (nats) of ``bins``-bin histograms, half a count added per bin."""
    a, b = _pixels(real), _pixels(model)
    out = []
    for c in range(3):
        p = np.histogram(a[:, c], bins=bins, range=(0, 256))[0] + 0.5
        q = np.histogram(b[:, c], bins=bins, range=(0, 256))[0] + 0.5
        p, q = p / p.sum(), q / q.sum()
        out.append(float((p * np.log(p / q)).sum()))
    return np.array(out)


def load_pairs(samples: Sequence[PairedSample]) -> tuple[list[str], list[tuple[np.ndarray, np.ndarray]]]:
    """``(ids, [(wli, nbi), ...])`` decoded ``uint8`` images of the paired samples (unpaired ones skipped)."""
    paired = [s for s in samples if s.paired]
    if not paired:
        raise DataError("no WLI / NBI pairs to calibrate on")
    return [s.sample_id for s in paired], [(load_image(s.wli), load_image(s.nbi)) for s in paired]


def _theta(params: NBIParams) -> np.ndarray:
    return np.array([params.hb_gain_415, params.hb_gain_540, np.log(params.gain_r), np.log(params.gain_g),
                     np.log(params.gain_b), params.gamma])


def _from_theta(theta: np.ndarray, base: NBIParams) -> NBIParams:
    k415, k540, lr, lg, lb, gamma = (float(t) for t in theta)
    return replace(base, hb_gain_415=k415, hb_gain_540=k540, gain_r=float(np.exp(lr)), gain_g=float(np.exp(lg)),
                   gain_b=float(np.exp(lb)), gamma=gamma)


def _fit(simulate, theta0: np.ndarray, pairs, size: int, max_evals: int) -> np.ndarray:
    """Nelder-Mead on the pooled per-channel Wasserstein distance (equal pixel counts: sorted differences)."""
    target = np.sort(_pixels([resize_square(nbi, size) for _, nbi in pairs]).astype(np.float64) / 255.0, axis=0)
    wlis = [resize_square(wli, size) for wli, _ in pairs]
    prepared = [simulate.prepare(w) for w in wlis]

    def objective(theta):
        sim = np.concatenate([simulate.run(p, theta).reshape(-1, 3) for p in prepared])
        return float(np.abs(np.sort(sim, axis=0) - target).mean(axis=0).sum() * 255.0)

    result = optimize.minimize(objective, theta0, method="Nelder-Mead",
                               options={"maxfev": max_evals, "xatol": 1e-3, "fatol": 1e-3})
    return result.x


class _NBIModel:
    def __init__(self, base: NBIParams):
        self.base = base

    def prepare(self, wli):
        return band_inputs(wli, self.base.detail_sigma)

    def run(self, inputs, theta):
        params = _from_theta(theta, self.base)
        return nbi_display(*band_densities(inputs, params), params, as_uint8=False)


class _ToneCurve:
    """Control model: ``a_c * c_lin ** gamma_c`` per WLI channel (no band remapping, no haemoglobin)."""

    def prepare(self, wli):
        return np.clip(srgb_to_linear(wli.astype(np.float64) / 255.0), 1e-3, 1.0)

    def run(self, lin, theta):
        return linear_to_srgb(np.exp(theta[:3]) * lin ** theta[3:])

    def apply(self, wli, theta) -> np.ndarray:
        return (self.run(self.prepare(wli), theta) * 255.0 + 0.5).astype(np.uint8)


def calibrate(pairs: Sequence[tuple[np.ndarray, np.ndarray]], size: int = CALIBRATION_SIZE,
              init: NBIParams = PHYSICAL_PRIOR, max_evals: int = 2000) -> NBIParams:
    """Fit the calibrated fields of :class:`NBIParams` to real pairs by colour-distribution matching.

    Args:
        pairs: ``(wli, nbi)`` ``uint8 [H, W, 3]`` images of the same sites (any sizes; not registered).
        size: images are resized to ``size x size`` for the fit.
        init: starting point (its fixed fields are kept).
        max_evals: Nelder-Mead function evaluations.

    Returns:
        The fitted :class:`NBIParams` (deterministic for given inputs).
    """
    if not pairs:
        raise DataError("no WLI / NBI pairs to calibrate on")
    return _from_theta(_fit(_NBIModel(init), _theta(init), pairs, size, max_evals), init)


def fit_tone_curve(pairs, size: int = CALIBRATION_SIZE, max_evals: int = 2000) -> np.ndarray:
    """The control: per-channel gains (log) and exponents ``[6]`` fitted as :func:`calibrate` fits."""
    return _fit(_ToneCurve(), np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]), pairs, size, max_evals)


ROWS = ("WLI as is", "simulated NBI, physical prior (no fit)", "simulated NBI, calibrated (held out)",
        "control: WLI tone curve, fitted (held out)")


@dataclass
class CalibrationReport:
    """Cross-validated (by default leave-one-lesion-out) distances to the real NBI images.

    ``per_pair[row]``: mean over lesions of the per-channel Wasserstein distance ``[3]``;
    ``pooled[row]``: per-channel Wasserstein distance of the pooled held-out images ``[3]``;
    ``pooled_kl[row]``: per-channel KL of the pooled images ``[3]``; ``params``: the per-fold
    fits; ``ids``: the lesions.
    """

    ids: list[str]
    per_pair: dict[str, np.ndarray]
    pooled: dict[str, np.ndarray]
    pooled_kl: dict[str, np.ndarray]
    params: list[NBIParams]
    size: int
    folds: int

    def table(self) -> str:
        """Markdown table, one row per image source, per-channel R / G / B columns."""
        head = ("| images compared with real NBI | per-pair W1 R / G / B (sum) | pooled W1 R / G / B (sum) "
                "| pooled KL R / G / B |")
        lines = [head, "|---|---|---|---|"]
        for row in ROWS:
            pp, po, kl = self.per_pair[row], self.pooled[row], self.pooled_kl[row]
            lines.append(f"| {row} | {' / '.join(f'{v:.1f}' for v in pp)} ({pp.sum():.1f}) "
                         f"| {' / '.join(f'{v:.1f}' for v in po)} ({po.sum():.1f}) "
                         f"| {' / '.join(f'{v:.3f}' for v in kl)} |")
        return "\n".join(lines)


def cross_validate(ids: Sequence[str], pairs: Sequence[tuple[np.ndarray, np.ndarray]],
                   size: int = CALIBRATION_SIZE, max_evals: int = 2000, folds: int | None = None,
                   progress=None) -> CalibrationReport:
    """Cross-validated distances of the calibration (see the module docstring).

    Args:
        ids: the lesions' sample ids.
        pairs: their ``(wli, nbi)`` images, in the order of ``ids``.
        size: edge length the images are resized to for the fits.
        max_evals: Nelder-Mead evaluations per fit.
        folds: number of folds, pair ``i`` in fold ``i % folds`` (interleaved, so class-sorted ids
            spread over the folds); ``None``: leave one pair out.
        progress (Callable | None): optional callable ``(done, total)`` after each fold.

    Every held-out image is simulated by parameters fitted without it. Needs at least 2 pairs.
    """
    n = len(pairs)
    folds = n if folds is None else int(folds)
    if n < 2 or not 2 <= folds <= n:
        raise ConfigError(f"cross-validation needs at least 2 pairs and 2 <= folds <= pairs (pairs {n}, folds {folds})")
    outputs = {row: [None] * n for row in ROWS}
    fitted, tone = [], _ToneCurve()
    for k in range(folds):
        held = [i for i in range(n) if i % folds == k]
        train = [p for i, p in enumerate(pairs) if i % folds != k]
        params = calibrate(train, size, max_evals=max_evals)
        curve = fit_tone_curve(train, size, max_evals)
        fitted.append(params)
        for i in held:
            wli = pairs[i][0]
            outputs[ROWS[0]][i] = wli
            outputs[ROWS[1]][i] = simulate_nbi(wli, PHYSICAL_PRIOR)
            outputs[ROWS[2]][i] = simulate_nbi(wli, params)
            outputs[ROWS[3]][i] = tone.apply(wli, curve)
        if progress is not None:
            progress(k + 1, folds)
    real = [nbi for _, nbi in pairs]
    per_pair = {r: np.mean([channel_wasserstein(n_, o) for n_, o in zip(real, outs)], axis=0)
                for r, outs in outputs.items()}
    pooled = {r: channel_wasserstein(real, outs) for r, outs in outputs.items()}
    pooled_kl = {r: channel_kl(real, outs) for r, outs in outputs.items()}
    return CalibrationReport(list(ids), per_pair, pooled, pooled_kl, fitted, size, folds)
