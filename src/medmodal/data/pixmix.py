"""PixMix photometric mixing with a procedural mixing set (DGSSA's style augmentation).

PixMix: Hendrycks, Zou, Mazeika, Tang, Li, Song, Steinhardt, CVPR 2022, "PixMix: Dreamlike
Pictures Comprehensively Improve Safety Measures" (reference implementation ``andyzoujm/pixmix``,
read to understand; nothing copied). An image is mixed ``0..k`` times, each time with either another
augmentation of itself or a "mixing picture" (fractals, feature visualisations), by additive or
multiplicative mixing with Beta-distributed weights.

**Procedural mixing set.** The paper's mixing pictures (fractals from DeviantArt, feature
visualisations) are not reachable offline. :func:`mixing_picture` renders a replacement,
deterministic by seed, at any size: iterated-function-system fractals (chaos game, density-coloured),
spectral ``1/f^alpha`` noise, multi-octave value noise (Perlin-like) and sums of random plane waves
(sinusoids, optionally domain-warped). :class:`MixingSet` keeps ``n`` of them (cycling through the
kinds) at a base size, generated on first use and cached.

**Why ``data/`` and not ``layers/``.** PixMix is a per-sample image transform without parameters or
device state, applied where an item is loaded (a dataset's ``__getitem__``, in loader workers), as
:class:`medmodal.data.views.Cutout` is; a dataset wrapper in ``data/`` must be able to import it,
and ``data`` may not import ``layers``. The batch-level, on-device blocks (DSU in
:mod:`medmodal.layers.domain`, RandConv in :mod:`medmodal.layers.randconv`) stay in ``layers/``.

**Deviations from PixMix's ImageNet / CIFAR setting** (the issue's task is vessel segmentation):

* *No geometric ops.* The reference augmentation set is autocontrast, equalize, posterize, rotate,
  solarize, shear x/y, translate x/y. Here only the photometric four are used (autocontrast, equalize,
  posterize, solarize): a rotated / sheared / translated copy mixed into the image would move vessel
  pixels away from the untouched vessel label. Every op here is a per-channel intensity map, and the
  mixing is pixel-wise, so no pixel of the input moves; the label stays aligned.
* The paper's optional ops that overlap the test corruptions (color, contrast, brightness,
  sharpness: ImageNet-C / CIFAR-C; the reference's ``--all-ops``, off by default) are excluded, as
  in the paper's default.
* Mixing pictures: procedural (above), not the paper's fractal / feature-visualisation set. A
  picture is cropped (random fraction ``[0.5, 1]`` of each side), flipped at random and resized
  bilinearly to the image (the reference resizes and random-crops them).
* Randomness from a ``numpy.random.Generator`` passed in (or a seed), not the global state, so an
  item is reproducible from ``(seed, epoch, index)``.
* Output stays in ``[0, 1]``; the reference's final normalisation (mean 0.5, std 0.5) is left to the
  caller's normalisation.

Defaults and their sources (reference ``cifar.py`` / ``pixmix_utils.py``, CIFAR settings): ``k = 4``
mixing rounds at most (the number of rounds is drawn uniformly from ``{0, ..., k}``), ``beta = 3``
(ImageNet uses ``beta = 4``), base-augmentation severity 3 (ImageNet: 1); the first image is an
augmentation of the original with probability 0.5; each round mixes with an augmentation (p 0.5)
or a mixing picture (p 0.5), by ``add`` or ``multiply`` (p 0.5 each); the mixed image is clipped to
``[0, 1]`` after each round.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "MIXING_KINDS", "PHOTOMETRIC_OPS", "mixing_picture", "MixingSet", "mixing_weights", "add_mix",
    "multiply_mix", "PixMix",
]

#: The kinds of procedural mixing picture, in the order :class:`MixingSet` cycles through them.
MIXING_KINDS = ("fractal", "spectral", "value_noise", "waves")


# --------------------------------------------------------------------------- mixing pictures

def _unit(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return np.zeros_like(x) if hi - lo < 1e-12 else (x - lo) / (hi - lo)


def _palette(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour a ``[H, W]`` field in ``[0, 1]`` with a random smooth cosine palette -> ``[3, H, W]``."""
    a, b = rng.uniform(0.3, 0.7, 3), rng.uniform(0.2, 0.5, 3)
    c, d = rng.uniform(0.5, 2.0, 3), rng.uniform(0.0, 1.0, 3)
    rgb = a[:, None, None] + b[:, None, None] * np.cos(2 * np.pi * (c[:, None, None] * t[None] + d[:, None, None]))
    return np.clip(rgb, 0.0, 1.0)


def _fractal(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """IFS fractal by the chaos game: 2-4 random contractive affine maps, many walkers in parallel."""
    n_maps = int(rng.integers(2, 5))
    # contractive maps: rotation * diag(singular values < 1) * rotation (+ random reflection)
    mats, shifts = [], []
    for _ in range(n_maps):
        t1, t2 = rng.uniform(0, 2 * np.pi, 2)
        r1 = np.array([[np.cos(t1), -np.sin(t1)], [np.sin(t1), np.cos(t1)]])
        r2 = np.array([[np.cos(t2), -np.sin(t2)], [np.sin(t2), np.cos(t2)]])
        s = np.diag(rng.uniform(0.25, 0.85, 2) * rng.choice([-1.0, 1.0], 2))
        mats.append(r1 @ s @ r2)
        shifts.append(rng.uniform(-1, 1, 2))
    mats, shifts = np.stack(mats), np.stack(shifts)
    det = np.abs(np.linalg.det(mats)) + 1e-3
    prob = det / det.sum()
    walkers, steps, burn = 4096, max(40, (h * w * 8) // 4096), 10
    pts = rng.uniform(-1, 1, (walkers, 2))
    cloud = []
    for step in range(steps):
        idx = rng.choice(n_maps, walkers, p=prob)
        pts = np.einsum("nij,nj->ni", mats[idx], pts) + shifts[idx]
        if step >= burn:
            cloud.append(pts)
    xy = np.concatenate(cloud)
    lo, hi = np.percentile(xy, 0.5, axis=0), np.percentile(xy, 99.5, axis=0)
    span = np.maximum(hi - lo, 1e-6)
    col = ((xy[:, 0] - lo[0]) / span[0] * (w - 1)).round().astype(np.int64)
    row = ((xy[:, 1] - lo[1]) / span[1] * (h - 1)).round().astype(np.int64)
    keep = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    density = np.bincount(row[keep] * w + col[keep], minlength=h * w).reshape(h, w).astype(np.float64)
    t = _unit(np.log1p(density))
    rgb = _palette(t, rng) * (t > 0)[None]  # fractal on a dark background
    return rgb


def _spectral(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Coloured spectral noise, power spectrum ``1/f^alpha``, ``alpha ~ U(1, 3)`` per channel (pink to brown)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy ** 2 + fx ** 2)
    f[0, 0] = 1.0
    out = []
    for alpha in rng.uniform(1.0, 3.0, 3):
        spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** (alpha / 2)
        spec[0, 0] = 0
        out.append(_unit(np.fft.irfft2(spec, s=(h, w))))
    return np.stack(out)


def _resize(field: np.ndarray, h: int, w: int, mode: str = "bicubic") -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(field, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(h, w), mode=mode, align_corners=False)[0, 0].numpy().astype(np.float64)


def _value_noise(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Multi-octave value noise (Perlin-like): random grids upsampled bicubically, amplitude halved per octave."""
    octaves = int(rng.integers(3, 7))
    base = int(rng.integers(2, 5))
    out = []
    for _ in range(3):
        field = np.zeros((h, w))
        for o in range(octaves):
            cells = base * 2 ** o
            grid = rng.uniform(-1, 1, (min(cells, h) + 1, min(cells, w) + 1))
            field += 0.5 ** o * _resize(grid, h, w)
        out.append(_unit(field))
    return np.stack(out)


def _waves(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of 2-6 random plane waves per channel, with a random sinusoidal domain warp."""
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    warp = rng.uniform(0, 0.15)
    wf = rng.uniform(1, 6, 2)
    xw = xx + warp * np.sin(2 * np.pi * wf[0] * yy)
    yw = yy + warp * np.sin(2 * np.pi * wf[1] * xx)
    out = []
    for _ in range(3):
        field = np.zeros((h, w))
        for _ in range(int(rng.integers(2, 7))):
            theta, freq, phase = rng.uniform(0, np.pi), rng.uniform(1, 24), rng.uniform(0, 2 * np.pi)
            field += rng.uniform(0.3, 1) * np.sin(2 * np.pi * freq * (np.cos(theta) * xw + np.sin(theta) * yw) + phase)
        out.append(_unit(field))
    return np.stack(out)


_RENDERERS: dict[str, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    "fractal": _fractal, "spectral": _spectral, "value_noise": _value_noise, "waves": _waves,
}


def mixing_picture(kind: str, size: int | tuple[int, int], seed: int = 0) -> np.ndarray:
    """One procedural mixing picture: float32 ``[3, H, W]`` in ``[0, 1]``, deterministic by ``seed``.

    Args:
        kind: one of :data:`MIXING_KINDS` (``fractal``, ``spectral``, ``value_noise``, ``waves``).
        size: ``S`` (square) or ``(H, W)``, any positive size.
        seed: the picture's seed; the same ``(kind, size, seed)`` gives the same picture.

    Raises:
        ValueError: unknown ``kind`` or a non-positive size (a programming error: the kinds are fixed).
    """
    if kind not in _RENDERERS:
        raise ValueError(f"unknown mixing-picture kind {kind!r}; known: {', '.join(MIXING_KINDS)}")
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise ValueError(f"mixing-picture size must be positive, got {(h, w)}")
    rng = np.random.default_rng([int(seed), MIXING_KINDS.index(kind), 271828])
    return _RENDERERS[kind](h, w, rng).astype(np.float32)


class MixingSet:
    """A small, deterministic set of procedural mixing pictures, rendered on first use and cached.

    Picture ``i`` is ``mixing_picture(kinds[i % len(kinds)], size, seed * 1_000_003 + i)``, as a
    float32 tensor ``[3, size, size]`` in ``[0, 1]``. Memory: ``n * 3 * size^2 * 4`` bytes once all
    are rendered (defaults: 32 pictures at 256 px, 25 MB). :meth:`sample` crops, flips and resizes
    one to an image's size.
A plain dict cache, so the set pickles into loader workers (each worker renders its own copy).

    Args:
        n: number of pictures (default 32).
        size: edge of the cached pictures in pixels (default 256).
        seed: the set's seed.
        kinds: which kinds to cycle through (default all of :data:`MIXING_KINDS`).
    """

    def __init__(self, n: int = 32, size: int = 256, seed: int = 0, kinds: Sequence[str] = MIXING_KINDS):
        if n < 1 or size < 1:
            raise ValueError(f"MixingSet needs n >= 1 and size >= 1, got n={n}, size={size}")
        unknown = [k for k in kinds if k not in _RENDERERS]
        if unknown or not kinds:
            raise ValueError(f"unknown mixing-picture kinds {unknown}; known: {', '.join(MIXING_KINDS)}")
        self.n, self.size, self.seed, self.kinds = int(n), int(size), int(seed), tuple(kinds)
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.n

    def _render(self, i: int) -> torch.Tensor:
        kind = self.kinds[i % len(self.kinds)]
        return torch.from_numpy(mixing_picture(kind, self.size, self.seed * 1_000_003 + i))

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -self.n <= i < self.n:
            raise IndexError(f"mixing picture {i} out of range for a set of {self.n}")
        i %= self.n
        if i not in self._cache:
            self._cache[i] = self._render(i)
        return self._cache[i]

    def sample(self, shape: tuple[int, int], rng: np.random.Generator) -> torch.Tensor:
        """A random picture, random crop (``[0.5, 1]`` of each side), random flips, resized to ``shape``."""
        pic = self[int(rng.integers(self.n))]
        s = self.size
        ch, cw = (max(1, int(round(s * rng.uniform(0.5, 1.0)))) for _ in range(2))
        y0, x0 = int(rng.integers(s - ch + 1)), int(rng.integers(s - cw + 1))
        crop = pic[:, y0:y0 + ch, x0:x0 + cw]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        if rng.random() < 0.5:
            crop = crop.flip(-2)
        out = F.interpolate(crop[None], size=tuple(shape), mode="bilinear", align_corners=False)[0]
        return out.clamp(0, 1)


# --------------------------------------------------------------------------- photometric ops

def _level(severity: float, rng: np.random.Generator) -> float:
    # the reference draws the op level uniformly from [0.1, severity] (scale 0..10)
    return float(rng.uniform(0.1, severity))


def autocontrast(x: torch.Tensor, severity: float, rng: np.random.Generator) -> torch.Tensor:
    """Stretch each channel to ``[0, 1]`` (a flat channel is left as it is)."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    return torch.where(span > 1e-6, (x - lo) / span.clamp_min(1e-6), x)


def equalize(x: torch.Tensor, severity: float, rng: np.random.Generator) -> torch.Tensor:
    """Histogram equalisation per channel over 256 levels (CDF mapping, lowest occupied level to 0)."""
    q = (x.clamp(0, 1) * 255).round().long()
    c = q.shape[0]
    flat = q.reshape(c, -1)
    hist = torch.zeros(c, 256, dtype=torch.float64)
    hist.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float64))
    cdf = hist.cumsum(1)
    cdf_min = torch.where(hist > 0, cdf, torch.full_like(cdf, float("inf"))).amin(1, keepdim=True)
    denom = (cdf[:, -1:] - cdf_min)
    lut = torch.where(denom > 0, (cdf - cdf_min) / denom.clamp_min(1), torch.zeros_like(cdf)).clamp(0, 1)
    out = torch.gather(lut, 1, flat).reshape(q.shape).to(x.dtype)
    flat_channel = (denom <= 0).reshape(c, 1, 1)
    return torch.where(flat_channel, x, out)


def posterize(x: torch.Tensor, severity: float, rng: np.random.Generator) -> torch.Tensor:
    """Keep ``4 - int(level * 4 / 10)`` bits of each 8-bit level (reference: 4 or 3 bits at severity 3)."""
    bits = 4 - int(_level(severity, rng) * 4 / 10)
    shift = 8 - max(bits, 1)
    q = (x.clamp(0, 1) * 255).round().to(torch.int32)
    return ((q >> shift) << shift).to(x.dtype) / 255


def solarize(x: torch.Tensor, severity: float, rng: np.random.Generator) -> torch.Tensor:
    """Invert pixels at or above ``(256 - int(level * 256 / 10)) / 255`` (reference threshold)."""
    thr = (256 - int(_level(severity, rng) * 256 / 10)) / 255
    return torch.where(x >= thr, 1 - x, x)


#: PixMix's augmentation set here: the reference's photometric ops only (no rotate / shear /
#: translate: they move pixels off the label; no color / contrast / brightness / sharpness: they
#: overlap the test corruptions).
PHOTOMETRIC_OPS: dict[str, Callable[[torch.Tensor, float, np.random.Generator], torch.Tensor]] = {
    "autocontrast": autocontrast, "equalize": equalize, "posterize": posterize, "solarize": solarize,
}


# --------------------------------------------------------------------------- mixing

def mixing_weights(beta: float, rng: np.random.Generator) -> tuple[float, float]:
    """PixMix's mixing weights ``(a, b)``: with p 0.5 ``a ~ Beta(beta, 1), b ~ Beta(1, beta)``
    (a blend), else ``a = 1 + Beta(1, beta), b = -Beta(1, beta)`` (an extrapolation away from the
    second image)."""
    if rng.random() < 0.5:
        return float(rng.beta(beta, 1)), float(rng.beta(1, beta))
    return 1 + float(rng.beta(1, beta)), -float(rng.beta(1, beta))


def add_mix(x: torch.Tensor, y: torch.Tensor, beta: float, rng: np.random.Generator) -> torch.Tensor:
    """Additive mixing in ``[-1, 1]``: ``((a (2x-1) + b (2y-1)) + 1) / 2`` (not clipped here)."""
    a, b = mixing_weights(beta, rng)
    return (a * (2 * x - 1) + b * (2 * y - 1) + 1) / 2


def multiply_mix(x: torch.Tensor, y: torch.Tensor, beta: float, rng: np.random.Generator) -> torch.Tensor:
    """Multiplicative (geometric) mixing: ``(2x)^a (2y)^b / 2``, ``y`` floored at 1e-37 (not clipped here)."""
    a, b = mixing_weights(beta, rng)
    return (2 * x).pow(a) * (2 * y).clamp_min(1e-37).pow(b) / 2


class PixMix:
    """PixMix on one image tensor ``[C, H, W]`` float in ``[0, 1]`` (``C`` 1 or 3), labels untouched.

    ``pixmix(image, rng)`` returns a new ``[C, H, W]`` tensor in ``[0, 1]`` of the same dtype.
    ``rng`` is a ``numpy.random.Generator`` or an int seed (same seed, same image: same output).
    Apply it to the image only: it never moves a pixel (photometric ops and pixel-wise mixing), so
    a segmentation label stays aligned. Mixing pictures are 3-channel; for ``C == 1`` their channel
    mean is used. See the module docstring for defaults, their sources and the deviations.

    Args:
        mixing_set: the pictures (default: ``MixingSet()``, 32 procedural pictures at 256 px, seed 0).
        k: at most ``k`` mixing rounds, the count drawn from ``{0, ..., k}`` (PixMix: 4).
        beta: mixing severity (PixMix CIFAR: 3; ImageNet: 4).
        severity: base-augmentation severity on the reference's 0-10 scale (PixMix CIFAR: 3; ImageNet: 1).
        ops: names from :data:`PHOTOMETRIC_OPS` (default all four).
    """

    def __init__(self, mixing_set: MixingSet | None = None, k: int = 4, beta: float = 3.0,
                 severity: float = 3.0, ops: Sequence[str] = tuple(PHOTOMETRIC_OPS)):
        if k < 0 or beta <= 0 or severity <= 0.1:
            raise ValueError(f"PixMix needs k >= 0, beta > 0, severity > 0.1; got k={k}, beta={beta}, "
                             f"severity={severity}")
        unknown = [o for o in ops if o not in PHOTOMETRIC_OPS]
        if unknown or not ops:
            raise ValueError(f"unknown PixMix ops {unknown}; known: {', '.join(PHOTOMETRIC_OPS)}")
        self.mixing_set = mixing_set if mixing_set is not None else MixingSet()
        self.k, self.beta, self.severity = int(k), float(beta), float(severity)
        self.ops = tuple(ops)

    def augment(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        op = PHOTOMETRIC_OPS[self.ops[int(rng.integers(len(self.ops)))]]
        return op(x, self.severity, rng)

    def __call__(self, image: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"PixMix takes one image [C, H, W] with C 1 or 3, got shape {tuple(image.shape)}")
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        x = image.detach().float().clamp(0, 1).cpu()
        mixed = self.augment(x, rng) if rng.random() < 0.5 else x
        for _ in range(int(rng.integers(self.k + 1))):
            if rng.random() < 0.5:
                other = self.augment(x, rng)
            else:
                other = self.mixing_set.sample(tuple(x.shape[-2:]), rng)
                if x.shape[0] == 1:
                    other = other.mean(0, keepdim=True)
            mix = add_mix if rng.random() < 0.5 else multiply_mix
            mixed = mix(mixed, other, self.beta, rng).clamp(0, 1)
        return mixed.to(device=image.device, dtype=image.dtype)
