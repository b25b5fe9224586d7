"""Built-in paired WLI / NBI endoscopy dataset, written in the MICS authors' layout.

``synth_endoscopy(out, n)`` writes ``<class>_WLI/<name>.png`` + ``<class>_NBI/<name>.png`` for
the authors' six Kvasir classes, so the real reader (:func:`read_authors_layout`) is the one
exercised. Each scene is one tissue model rendered twice, so the pair is pixel-registered, like
the authors' simulated pairs.

Tissue model (all random draws from ``np.random.default_rng([seed, index])``: deterministic per
seed, each sample independent of the others). Per pixel, an optical density per band
(WLI camera R, G, B; NBI 415 nm, 540 nm) is the mucosa's base density plus

* superficial capillaries and pit borders ``C`` (coefficients R, G, B, 415, 540 =
  0.02, 0.05, 0.06, 1.0, 0.2): the Soret band sees them, broadband light barely, and in white
  light they are also blurred (sub-surface scattering of long wavelengths, 1 px at 128 px);
* deep vessels ``V`` (0.1, 0.55, 0.4, 0.15, 0.9): seen in both, cyan in NBI;
* erythema ``E`` (0, 0.55, 0.45, 0, 0): a white-light colour (redness) cue **by construction**
  (real NBI shows hyperaemia as a weak brownish tint; here it is left out so that redness is
  information only white light carries);
* shading of the geometry (folds, raised lesions, openings), illumination fall-off from the scope
  tip, a dark lumen, the same in every band; specular highlights added after.

The NBI image goes through the NBI palette of :func:`medmodal.data.endoscopy.nbi.nbi_display`
(calibrated parameters), the WLI image through the sRGB encoding. Nuisances: rotation, scale and
position of every structure, pattern scale, lighting centre and fall-off, exposure per modality,
white balance, mucosal texture, defocus, sensor noise, a random mild erythema in every class.

Classes and what separates them (the design claim; ``benchmarks/endoscopy_synth_separability.py``
checks it with a linear classifier on colour and texture features):

* ``polyps`` vs ``normal-cecum``: the same raised structure (polyp / ileocecal valve: same size,
  shape, colour distributions); only the surface pattern differs: elongated tubular pits with
  a dense capillary mesh (Kudo IIIL-like) vs round pits in a fine honeycomb network (Kudo I). The
  mean pattern density is matched, so white light (low, blurred contrast) hardly separates them;
  NBI does.
* ``esophagitis`` vs ``normal-z-line``: the same squamo-columnar junction (pale squamous side with
  intra-papillary capillary loops, salmon columnar side); esophagitis adds erythematous streaks
  across the junction (mucosal breaks), a colour cue: white light separates them, NBI hardly.
* ``normal-pylorus``: a round opening with converging folds on gastric mucosa (both modalities).
* ``ulcerative-colitis``: diffuse patchy erythema (WLI), lost vascular pattern, granular surface
  and fibrin-covered erosions (both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

from medmodal.data.endoscopy.export import write_authors_pair
from medmodal.data.endoscopy.nbi import NBIParams, linear_to_srgb, nbi_display
from medmodal.data.endoscopy.samples import AUTHORS_CLASSES, PairedSample
from medmodal.errors import ConfigError
from medmodal.io import atomic_write_json, ensure_writable_dir

#: base optical density of each tissue per band (R, G, B, 415 nm, 540 nm); chosen so that the WLI
#: and NBI renderings have the colours of real Kvasir WLI and of real NBI (calibrated palette).
TISSUE = {
    "colon": np.array([0.40, 1.45, 1.70, 1.75, 1.65], np.float32),
    "gastric": np.array([0.33, 1.30, 1.85, 1.85, 1.55], np.float32),
    "squamous": np.array([0.30, 0.85, 1.00, 1.25, 1.05], np.float32),
    "columnar": np.array([0.42, 1.65, 1.85, 1.95, 1.85], np.float32),
    "fibrin": np.array([0.22, 0.50, 0.95, 0.95, 0.55], np.float32),
}
#: added density per unit of each component map, per band (R, G, B, 415 nm, 540 nm).
CAPILLARY = np.array([0.02, 0.05, 0.06, 1.0, 0.2], np.float32)
VESSEL = np.array([0.10, 0.55, 0.40, 0.15, 0.9], np.float32)
ERYTHEMA = np.array([0.0, 0.55, 0.45, 0.0, 0.0], np.float32)
#: mean capillary density inside a raised lesion, the same for polyp and cecum patterns.
PATTERN_MEAN = 0.3


class _Scene:
    """Coordinate grid and the component maps of one scene (``[S, S]`` float32 each)."""

    def __init__(self, size: int, rng: np.random.Generator):
        self.size, self.rng = size, rng
        self.scale = size / 128.0
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        self.x, self.y = xx, yy
        self.base = np.zeros((size, size, 5), np.float32)
        self.capillary = np.zeros((size, size), np.float32)
        self.vessel = np.zeros((size, size), np.float32)
        self.erythema = np.zeros((size, size), np.float32)
        self.height = np.zeros((size, size), np.float32)
        self.light = np.ones((size, size), np.float32)

    def tissue(self, name: str, mask: np.ndarray | None = None) -> None:
        value = TISSUE[name]
        if mask is None:
            self.base[:] = value
        else:
            self.base += mask[..., None] * (value - self.base)

    def noise(self, sigma: float) -> np.ndarray:
        """Smooth periodic Gaussian noise of unit standard deviation, correlation length ``sigma`` (px at 128 px).

        White noise filtered by a Gaussian in the Fourier domain (smooth derivatives, any ``sigma``
        at the cost of two FFTs).
        """
        n = self.size
        s = sigma * self.scale
        fy = np.fft.fftfreq(n).astype(np.float32)[:, None]
        fx = np.fft.rfftfreq(n).astype(np.float32)[None, :]
        kernel = np.exp(-2 * (np.pi * s) ** 2 * (fx**2 + fy**2))
        field = np.fft.irfft2(np.fft.rfft2(self.rng.standard_normal((n, n)).astype(np.float32)) * kernel, s=(n, n))
        return (field / (field.std() + 1e-6)).astype(np.float32)

    def cells(self, cell: float, stretch: float = 1.0, angle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Distances ``(d1, d2)`` (px) to the nearest and second-nearest seed of a jittered grid (Voronoi).

        ``cell``: seed spacing (px at 128 px); ``stretch`` > 1 elongates the cells along ``angle``
        (distances are measured in the stretched frame). Seeds move at most 0.35 spacing from their
        grid node, so the two nearest seeds are among the 3 x 3 nodes around the pixel (no tree).
        """
        c, s = np.cos(angle), np.sin(angle)
        spacing = cell * self.scale
        u = (self.x * c + self.y * s) / np.float32(stretch * spacing)
        v = (-self.x * s + self.y * c) / np.float32(spacing)
        i0, j0 = np.floor(u), np.floor(v)
        fu, fv = u - i0 - 0.5, v - j0 - 0.5  # position inside the node's cell, in [-0.5, 0.5)
        i0, j0 = i0.astype(np.int64), j0.astype(np.int64)
        ilo, jlo = i0.min() - 1, j0.min() - 1
        width = int(j0.max() - jlo + 3)
        rows = int(i0.max() - ilo + 3)
        jit_u = self.rng.uniform(-0.35, 0.35, rows * width).astype(np.float32)
        jit_v = self.rng.uniform(-0.35, 0.35, rows * width).astype(np.float32)
        flat = (i0 - ilo) * width + (j0 - jlo)
        d1 = np.full(u.shape, np.inf, np.float32)
        d2 = d1.copy()
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                idx = flat + (di * width + dj)
                d = np.hypot(di + jit_u[idx] - fu, dj + jit_v[idx] - fv)
                np.minimum(d2, np.maximum(d1, d), out=d2)
                np.minimum(d1, d, out=d1)
        return d1 * np.float32(spacing), d2 * np.float32(spacing)

    def network(self, cell: float, width: float, stretch: float = 1.0, angle: float = 0.0) -> np.ndarray:
        """Capillary mesh around pits: high on Voronoi cell borders, in [0, 1]."""
        d1, d2 = self.cells(cell, stretch, angle)
        return np.exp(-(((d2 - d1) / (width * self.scale)) ** 2))

    def loops(self, cell: float, radius: float) -> np.ndarray:
        """Intra-papillary capillary loops: dots at the seeds, in [0, 1]."""
        d1, _ = self.cells(cell)
        return np.exp(-((d1 / (radius * self.scale)) ** 2))

    def vessels(self, count: int, width: float) -> np.ndarray:
        """Branching sub-epithelial vessels as smooth random walks, in [0, 1]."""
        rng, n = self.rng, self.size
        acc = np.zeros((n, n), np.float32)
        for _ in range(count):
            steps = int(rng.uniform(0.6, 1.4) * n)
            theta = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.08, steps))
            start = rng.uniform(0, n, 2)
            xs = start[0] + np.cumsum(np.cos(theta))
            ys = start[1] + np.cumsum(np.sin(theta))
            keep = (xs >= 0) & (xs < n) & (ys >= 0) & (ys < n)
            np.add.at(acc, (ys[keep].astype(int), xs[keep].astype(int)), 1.0)
        blurred = ndimage.gaussian_filter(acc, width * self.scale)
        return np.clip(blurred / (blurred.max() + 1e-6) * 1.6, 0, 1)

    def ellipse(self, cx, cy, a, b, angle) -> np.ndarray:
        """Normalised elliptic radius (1 on the border)."""
        c, s = np.cos(angle), np.sin(angle)
        dx, dy = self.x - cx, self.y - cy
        return np.sqrt(((dx * c + dy * s) / a) ** 2 + ((-dx * s + dy * c) / b) ** 2)

    def segment(self, x0, y0, x1, y1, width) -> np.ndarray:
        """Gaussian profile around the segment (x0, y0)-(x1, y1), peak 1."""
        px, py = self.x - x0, self.y - y0
        vx, vy = x1 - x0, y1 - y0
        t = np.clip((px * vx + py * vy) / (vx * vx + vy * vy + 1e-6), 0, 1)
        d2 = (px - t * vx) ** 2 + (py - t * vy) ** 2
        return np.exp(-d2 / (2 * width**2))


def _raised_lesion(sc: _Scene) -> np.ndarray:
    """A raised structure (polyp or ileocecal valve: one distribution for both); returns its mask."""
    rng, n = sc.rng, sc.size
    a = rng.uniform(0.18, 0.32) * n
    b = a * rng.uniform(0.6, 1.0)
    cx, cy = rng.uniform(0.3, 0.7, 2) * n
    r = sc.ellipse(cx, cy, a, b, rng.uniform(0, np.pi))
    sc.height += np.clip(1 - r**2, 0, None) ** 1.2 * rng.uniform(0.08, 0.14) * n
    return ndimage.gaussian_filter((r < 1).astype(np.float32), 1.5 * sc.scale)


def _matched(pattern: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Scale ``pattern`` so its mean inside ``mask`` is :data:`PATTERN_MEAN` (same for every class)."""
    return pattern * (PATTERN_MEAN / (float((pattern * mask).sum() / (mask.sum() + 1e-6)) + 1e-6))


def _background_network(sc: _Scene, amplitude: float = 0.8) -> np.ndarray:
    return amplitude * sc.network(sc.rng.uniform(7, 10), 1.1)


def _colon(sc: _Scene) -> None:
    sc.tissue("colon")
    sc.vessel += sc.vessels(int(sc.rng.integers(3, 7)), sc.rng.uniform(0.7, 1.3))


def _polyp_or_cecum(sc: _Scene, polyp: bool) -> None:
    _colon(sc)
    mask = _raised_lesion(sc)
    angle = sc.rng.uniform(0, np.pi)
    if polyp:  # tubular / branched pits, dense mesh (Kudo IIIL, JNET 2A-like)
        pattern = sc.network(sc.rng.uniform(5.0, 6.5), 1.6, stretch=sc.rng.uniform(2.5, 3.5), angle=angle)
    else:  # round pits in a fine honeycomb (Kudo I, normal mucosa)
        pattern = sc.network(sc.rng.uniform(5.0, 6.5), 1.2)
    background = _background_network(sc)
    sc.capillary += mask * _matched(pattern, mask) + (1 - mask) * background


def _junction(sc: _Scene, esophagitis: bool) -> None:
    """Squamo-columnar junction (z-line); esophagitis adds erythematous streaks across it."""
    rng, n = sc.rng, sc.size
    alpha = rng.uniform(0, 2 * np.pi)
    nx, ny = np.cos(alpha), np.sin(alpha)
    px, py = rng.uniform(0.35, 0.65, 2) * n
    along = -(sc.x - px) * ny + (sc.y - py) * nx
    wave = rng.uniform(0.04, 0.1) * n * np.sin(along / n * rng.uniform(6, 12) + rng.uniform(0, 6.3))
    signed = (sc.x - px) * nx + (sc.y - py) * ny + wave + 3 * sc.scale * sc.noise(6)
    squamous = 1 / (1 + np.exp(-signed / (1.5 * sc.scale)))
    sc.tissue("columnar")
    sc.tissue("squamous", squamous)
    loops = sc.loops(rng.uniform(6, 8), 0.9)
    sc.capillary += squamous * 0.9 * loops + (1 - squamous) * _background_network(sc, 0.7)
    sc.vessel += squamous * sc.vessels(int(rng.integers(2, 5)), rng.uniform(0.8, 1.2))
    if esophagitis:  # mucosal breaks: red streaks from the junction into the squamous side
        for _ in range(int(rng.integers(4, 9))):
            t = rng.uniform(-0.4, 0.4) * n
            x0, y0 = px - t * ny, py + t * nx
            length = rng.uniform(0.2, 0.4) * n
            jitter = rng.normal(0, 0.3)
            dx, dy = np.cos(alpha + jitter), np.sin(alpha + jitter)
            sc.erythema += rng.uniform(0.8, 1.1) * sc.segment(x0 - 0.2 * length * dx, y0 - 0.2 * length * dy,
                                                              x0 + length * dx, y0 + length * dy,
                                                              rng.uniform(0.025, 0.055) * n)


def _pylorus(sc: _Scene) -> None:
    rng, n = sc.rng, sc.size
    sc.tissue("gastric")
    cx, cy = rng.uniform(0.35, 0.65, 2) * n
    rho = rng.uniform(0.06, 0.13) * n
    r = np.hypot(sc.x - cx, sc.y - cy)
    phi = np.arctan2(sc.y - cy, sc.x - cx)
    folds = np.cos(phi * int(rng.integers(5, 10)) + 0.8 * sc.noise(20)) * np.exp(-(r - rho) / (0.25 * n))
    sc.height += rng.uniform(0.02, 0.04) * n * folds * (r > rho)
    sc.height += 0.05 * n * np.exp(-(((r - rho) / (0.5 * rho)) ** 2))  # the muscular ring
    sc.light *= 1 - 0.92 / (1 + np.exp(-(rho - r) / (1.2 * sc.scale)))  # the opening
    sc.capillary += _background_network(sc, 0.7)
    sc.vessel += sc.vessels(int(rng.integers(1, 4)), rng.uniform(0.7, 1.1))


def _colitis(sc: _Scene) -> None:
    rng, n = sc.rng, sc.size
    sc.tissue("colon")
    sc.erythema += np.clip(rng.uniform(0.5, 0.8) + 0.3 * sc.noise(10), 0, 1.2)
    sc.height += 0.004 * n * sc.noise(1.2)  # granular surface
    sc.capillary += 0.3 * sc.network(rng.uniform(7, 10), 1.1) * (sc.noise(8) > 0.3)  # lost vascular pattern
    erosions = np.zeros((n, n), np.float32)
    for _ in range(int(rng.integers(3, 9))):
        cx, cy = rng.uniform(0.1, 0.9, 2) * n
        rad = rng.uniform(0.02, 0.05) * n
        erosions = np.maximum(erosions, np.exp(-((np.hypot(sc.x - cx, sc.y - cy) / rad) ** 4)))
    sc.tissue("fibrin", erosions)
    sc.erythema += 0.6 * np.clip(ndimage.gaussian_filter(erosions, 2.5 * sc.scale) * 3 - erosions, 0, 1)


RENDERERS = {
    "esophagitis": lambda sc: _junction(sc, True),
    "normal-z-line": lambda sc: _junction(sc, False),
    "polyps": lambda sc: _polyp_or_cecum(sc, True),
    "normal-cecum": lambda sc: _polyp_or_cecum(sc, False),
    "normal-pylorus": _pylorus,
    "ulcerative-colitis": _colitis,
}


def _shading(sc: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """Lambertian shading and specular highlights of the height map.

    Light and camera sit at the scope tip: diffuse shading ``n . l`` with the light slightly off
    axis; highlights where the surface normal meets the half vector between light and view
    (tilted by ~0.2 rad, so flat mucosa facing the camera has none and the slopes of folds and
    lesions glint), plus sparse glints of the wet surface.
    """
    smooth = ndimage.gaussian_filter(sc.height, 1.0 * sc.scale)
    gy, gx = np.gradient(smooth)
    norm = np.sqrt(1 + gx**2 + gy**2)
    lx, ly = sc.rng.normal(0, 0.1, 2)
    ndotl = (1 - gx * lx - gy * ly) / (norm * np.sqrt(1 + lx**2 + ly**2))
    hx, hy = 0.2 * np.array([np.cos(a := sc.rng.uniform(0, 2 * np.pi)), np.sin(a)])
    ndoth = (1 - gx * hx - gy * hy) / (norm * np.sqrt(1 + hx**2 + hy**2))
    tops = np.clip((ndoth - 0.996) / 0.004, 0, 1) ** 2
    glints = np.clip(sc.noise(0.7) - sc.rng.uniform(2.7, 3.3), 0, None) * 2.0
    return np.clip(ndotl, 0.15, 1).astype(np.float32), np.clip(tops + glints, 0, 1).astype(np.float32)


def render_scene(label: str, size: int = 128, rng: np.random.Generator | None = None,
                 params: NBIParams | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One scene of class ``label`` as ``(wli, nbi)``, each ``uint8 [size, size, 3]``, pixel-registered.

    Raises ``ValueError`` for a class without a renderer (see :data:`RENDERERS`).
    """
    if label not in RENDERERS:
        raise ConfigError(f"no synthetic renderer for class {label!r}; classes: {', '.join(RENDERERS)}")
    rng = rng or np.random.default_rng()
    params = params or NBIParams()
    sc = _Scene(size, rng)
    RENDERERS[label](sc)
    n = size
    # nuisances shared by every class
    sc.erythema += rng.uniform(0.0, 0.3) * np.clip(0.5 + 0.5 * sc.noise(16), 0, 1)
    sc.height += rng.uniform(0.02, 0.05) * n * sc.noise(14)  # folds and undulation
    if rng.random() < 0.5:  # a dark lumen towards one side
        cx, cy = rng.uniform(-0.1, 1.1, 2) * n
        sc.light *= 1 - 0.85 * np.exp(-((np.hypot(sc.x - cx, sc.y - cy) / (rng.uniform(0.15, 0.3) * n)) ** 2))
    lx, ly = rng.uniform(0.3, 0.7, 2) * n
    sc.light *= 1 / (1 + (np.hypot(sc.x - lx, sc.y - ly) / (rng.uniform(0.5, 1.0) * n)) ** 2)
    shade, specular = _shading(sc)
    texture = 0.05 * sc.noise(3) + 0.04 * sc.noise(0.8)

    density = sc.base + texture[..., None]
    density = density + sc.vessel[..., None] * VESSEL + sc.erythema[..., None] * ERYTHEMA
    wli_capillary = ndimage.gaussian_filter(sc.capillary, 1.0 * sc.scale)  # scattering blurs it in white light
    illum = -np.log(np.clip(sc.light * shade, 1e-3, None))
    defocus = rng.uniform(0.0, 0.7) * sc.scale

    d_wli = density[..., :3] + wli_capillary[..., None] * CAPILLARY[:3] + illum[..., None]
    wli_lin = np.exp(-d_wli) * np.float32(rng.uniform(0.8, 1.25)) * rng.normal(1.0, 0.03, 3).astype(np.float32)
    wli = linear_to_srgb(wli_lin)
    d_nbi = density[..., 3:] + sc.capillary[..., None] * CAPILLARY[3:] + illum[..., None]
    d_nbi = d_nbi - np.float32(np.log(rng.uniform(0.8, 1.25)))
    nbi = nbi_display(d_nbi[..., 0], d_nbi[..., 1], params, as_uint8=False)
    out = []
    for img in (wli, nbi):
        img = img + specular[..., None]
        if defocus > 0.1:
            img = ndimage.gaussian_filter(img, (defocus, defocus, 0))
        img = img + rng.normal(0, rng.uniform(0.006, 0.016), img.shape).astype(np.float32)
        out.append((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    return out[0], out[1]


def _render_and_write(job) -> PairedSample:
    out, label, index, size, seed, params = job
    wli, nbi = render_scene(label, size, np.random.default_rng([seed, index]), params)
    return write_authors_pair(out, label, f"synth_{index:05d}", wli, nbi, compress_level=1)


def synth_endoscopy(out: str | Path, num_samples: int = 600, size: int = 128, seed: int = 0,
                    classes: Sequence[str] = AUTHORS_CLASSES, workers: int = 1,
                    progress: bool = False) -> list[PairedSample]:
    """Write ``num_samples`` synthetic pairs in the authors' layout (balanced classes, PNG).

    Sample ``i`` has class ``classes[i % len(classes)]`` and its own generator
    ``default_rng([seed, i])`` (the output does not depend on ``workers``); files are
    ``<class>_WLI/synth_<i>.png`` and ``<class>_NBI/synth_<i>.png``. A ``synthetic.json`` records
    the generator settings. ``workers`` > 1 renders in that many processes. Returns the samples.
    """
    if num_samples < 1:
        raise ConfigError(f"number of samples must be positive, got {num_samples}")
    if size < 32:
        raise ConfigError(f"image size must be at least 32 pixels, got {size}")
    unknown = [c for c in classes if c not in RENDERERS]
    if unknown or not classes:
        raise ConfigError(f"no synthetic renderer for classes {unknown}; classes: {', '.join(RENDERERS)}")
    out = ensure_writable_dir(out)
    params = NBIParams()
    jobs = [(out, classes[i % len(classes)], i, size, seed, params) for i in range(num_samples)]
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("rendering", total=num_samples)
    try:
        if workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(workers) as pool:
                written = []
                for sample in pool.map(_render_and_write, jobs, chunksize=max(1, num_samples // (8 * workers))):
                    written.append(sample)
                    if bar is not None:
                        bar.advance(task)
        else:
            written = []
            for job in jobs:
                written.append(_render_and_write(job))
                if bar is not None:
                    bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    atomic_write_json(out / "synthetic.json", {"generator": "medmodal.data.endoscopy.synthetic", "samples": num_samples,
                                               "size": size, "seed": seed, "classes": list(classes),
                                               "nbi_params": params.to_dict()})
    return written
