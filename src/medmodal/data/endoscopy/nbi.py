"""WLI -> NBI simulation: a narrow-band image computed from a white-light image.

Kvasir has no narrow-band images; the MICS authors paired it with NBI images they synthesised
offline (method unpublished, PNG files). medmodal makes that step explicit and physically
motivated, with parameters calibrated on real WLI / NBI pairs
(:mod:`medmodal.data.endoscopy.nbi_calibration`).

Physics (Gono et al., "Appearance of enhanced tissue features in narrow-band endoscopic
imaging", J. Biomed. Opt. 9(3), 2004; haemoglobin absorption from S. Prahl's tabulated molar
extinction coefficients, OMLC 1999):

* NBI lights the mucosa with two narrow bands: ~415 nm, at the Soret absorption peak of
  haemoglobin (extinction ~10x that at 540 nm; shallow penetration: superficial capillaries and
  pit edges) and ~540 nm, at a Q-band peak (deeper penetration: sub-epithelial vessels). There is
  no red band: the red light that dominates white light and carries little vessel contrast is
  absent ("red suppression").
* The video processor shows the 415 nm image in the display's B and G channels and the 540 nm
  image in R: superficial capillaries look brown, deeper vessels cyan.

Model, per pixel, on linear-light reflectance (sRGB decoded, IEC 61966-2-1):

1. Optical densities of the WLI channels ``D_c = -ln(max(c_lin, 1e-3))`` for ``c`` in R, G, B.
2. Haemoglobin index ``h = D_G - D_R = ln(R_lin / G_lin)`` (the natural-log form of the
   endoscopic IHb = 32 log2(R/G)), centred on the image median ``h_c = h - median(h)``, and its
   fine-scale part ``h_fine = h - Gaussian(h, sigma = detail_sigma * short side)`` (thin
   capillaries, pit borders).
3. Narrow-band optical densities (Beer-Lambert: extra density proportional to haemoglobin):
   ``D_415 = w D_B + (1 - w) D_G + k_415 h_c + k_fine h_fine`` (the 415 nm band lies below the
   camera's blue channel: the broad channels' density plus the stronger Soret absorption) and
   ``D_540 = D_G + k_540 h_c`` (the camera's green channel is centred near 540 nm; the narrow band
   on the Q peak sees more haemoglobin contrast than the broad channel).
4. Display palette: ``R = a_R exp(-gamma D_540)``, ``G = a_G exp(-gamma D_415)``,
   ``B = a_B exp(-gamma D_415)`` in linear light (``gamma``: the processor's contrast; ``a_c``:
   its channel gains / white balance), clipped, sRGB encoded. The WLI red channel enters only
   through ``h``: red is suppressed.

Free parameters, calibrated by colour-distribution matching on the 12 real colonoscopy pairs
(Mesejo et al. 2016): ``k_415``, ``k_540``, ``a_R``, ``a_G``, ``a_B``, ``gamma``. Fixed (no colour
distribution can identify them; distributions do not see spatial structure): ``w = 0.5``,
``k_fine = 1``, ``detail_sigma = 0.02``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from scipy import ndimage

from medmodal.errors import ConfigError, DataError

MIN_REFLECTANCE = 1e-3


@dataclass(frozen=True)
class NBIParams:
    """Parameters of :func:`simulate_nbi` (see the module docstring for the formulas).

    The defaults of the calibrated fields are the fit on all 12 real pairs of
    ``endoscopy-real/wli-nbi-colonoscopy`` (``medmodal endoscopy calibrate-nbi``, images at 96 px,
    pooled per-channel Wasserstein objective); the cross-validated figures are in docs/results/endoscopy.md.

    Attributes:
        hb_gain_415: ``k_415``, extra optical density per unit haemoglobin index at 415 nm (calibrated).
        hb_gain_540: ``k_540``, the same at 540 nm (calibrated).
        gain_r, gain_g, gain_b: ``a_R``, ``a_G``, ``a_B``, display channel gains (calibrated).
        gamma: processor contrast exponent on the band images (calibrated).
        blue_weight: ``w``, share of the WLI blue channel in the 415 nm band (fixed).
        detail_gain: ``k_fine``, extra 415 nm density of fine haemoglobin structure (fixed).
        detail_sigma: scale separating fine from broad structure, fraction of the short image side (fixed).
    """

    hb_gain_415: float = 1.648
    hb_gain_540: float = 2.312
    gain_r: float = 1.119
    gain_g: float = 0.869
    gain_b: float = 0.529
    gamma: float = 0.760
    blue_weight: float = 0.5
    detail_gain: float = 1.0
    detail_sigma: float = 0.02

    CALIBRATED = ("hb_gain_415", "hb_gain_540", "gain_r", "gain_g", "gain_b", "gamma")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> NBIParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown NBI simulation parameters {unknown}; known: {sorted(known)}")
        return cls(**{k: float(v) for k, v in values.items()})

    @classmethod
    def from_json(cls, path: str | Path) -> NBIParams:
        import json

        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such parameter file") from None
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: not a JSON parameter file ({err})") from None
        return cls.from_dict(data.get("params", data))


#: the starting point of the calibration, set from the physics alone: Soret absorption (415 nm) well
#: above the Q band (540 nm), neutral display gains except a weaker blue (NBI mucosa is not blue),
#: linear contrast. ``medmodal endoscopy calibrate-nbi`` reports it as "uncalibrated".
PHYSICAL_PRIOR = NBIParams(hb_gain_415=1.0, hb_gain_540=0.3, gain_r=1.0, gain_g=1.0, gain_b=0.75, gamma=1.0)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1)."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB-encoded values in [0, 1] (clipped)."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


@dataclass
class BandInputs:
    """What the simulation derives from a WLI image before any free parameter enters.

    ``density``: ``[H, W, 3]`` optical densities of R, G, B; ``hb``: centred haemoglobin index
    ``h_c``; ``hb_fine``: its fine-scale part (both ``[H, W]``).
    """

    density: np.ndarray
    hb: np.ndarray
    hb_fine: np.ndarray


def band_inputs(wli: np.ndarray, detail_sigma: float = 0.02) -> BandInputs:
    """Steps 1-2 of the model for ``uint8 [H, W, 3]`` (or float in [0, 1]) RGB."""
    rgb = wli.astype(np.float64) / 255.0 if wli.dtype == np.uint8 else np.asarray(wli, np.float64)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {rgb.shape}")
    density = -np.log(np.clip(srgb_to_linear(rgb), MIN_REFLECTANCE, 1.0))
    h = density[..., 1] - density[..., 0]
    hb = h - np.median(h)
    sigma = detail_sigma * min(h.shape) + 0.5
    return BandInputs(density, hb, h - ndimage.gaussian_filter(h, sigma))


def band_densities(inputs: BandInputs, params: NBIParams) -> tuple[np.ndarray, np.ndarray]:
    """Step 3: optical densities ``(D_415, D_540)``, each ``[H, W]``."""
    d = inputs.density
    d415 = (params.blue_weight * d[..., 2] + (1 - params.blue_weight) * d[..., 1]
            + params.hb_gain_415 * inputs.hb + params.detail_gain * inputs.hb_fine)
    d540 = d[..., 1] + params.hb_gain_540 * inputs.hb
    return d415, d540


def nbi_display(d415: np.ndarray, d540: np.ndarray, params: NBIParams, as_uint8: bool = True) -> np.ndarray:
    """Step 4, the NBI palette: 540 nm -> R, 415 nm -> G and B. Returns ``[H, W, 3]`` sRGB.

    Also used by the synthetic generator (:mod:`medmodal.data.endoscopy.synthetic`), so simulated
    and synthetic NBI share one palette.
    """
    i415 = np.exp(-params.gamma * d415)
    i540 = np.exp(-params.gamma * d540)
    rgb = linear_to_srgb(np.stack([params.gain_r * i540, params.gain_g * i415, params.gain_b * i415], axis=-1))
    return (rgb * 255.0 + 0.5).astype(np.uint8) if as_uint8 else rgb


def simulate_nbi(wli: np.ndarray, params: NBIParams | None = None, as_uint8: bool = True) -> np.ndarray:
    """Simulated NBI image of a white-light image.

    Args:
        wli: ``uint8 [H, W, 3]`` RGB (or float in [0, 1]).
        params: :class:`NBIParams` (default: the calibrated defaults).
        as_uint8: return ``uint8`` (else float in [0, 1]).

    Returns:
        ``[H, W, 3]`` sRGB in the NBI palette, pixel-aligned with ``wli``. Raises ``ValueError``
        for a non-RGB array.
    """
    params = params or NBIParams()
    inputs = band_inputs(wli, params.detail_sigma)
    return nbi_display(*band_densities(inputs, params), params, as_uint8=as_uint8)
