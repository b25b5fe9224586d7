"""Synthetic retinal vessel trees by space colonisation (the structure augmentation of DGSSA).

The generator is the *open venation* space-colonisation algorithm of Runions et al. (2005),
"Modeling and visualization of leaf venation patterns", ACM SIGGRAPH / TOG 24(3):702-711, which
DGSSA (arXiv 2501.03466) uses to grow vessel-like trees. Each iteration:

1. every live attractor finds its nearest tree node; it *influences* that node when the distance is
   below ``influence_radius``;
2. every influenced node grows one new node at ``step`` along the normalised sum of the unit vectors
   towards its attractors;
3. every attractor closer than ``kill_radius`` to a new node dies.

It stops when no attractor is left, when an iteration adds no node, or after ``max_iterations``.

**Coordinates.** All lengths (positions, radii, step, calibre) are in units of the field-of-view
(FOV) radius, with the FOV centre at ``(0, 0)``, ``x`` to the right and ``y`` downwards (image
convention). A position ``(x, y)`` lands on pixel column ``W / 2 + x * R - 0.5`` and row
``H / 2 + y * R - 0.5`` of an image whose FOV radius is ``R`` pixels (see :func:`rasterise_tree`),
so one tree can be drawn at any size.

**Anatomy.** Attractors are drawn uniformly inside the FOV disc, outside the optic disc and the
foveal avascular zone. The tree has two roots near the optic-disc centre, a superior and an inferior
trunk, grown straight up / down until they leave the disc (the two arcades), then colonisation
takes over.

**Calibre** follows Murray's law (C. D. Murray 1926, "The physiological principle of minimum work",
PNAS 12(3):207-214): leaves have radius ``tip_radius``; a parent's radius ``r`` satisfies
``r ** g = sum(r_child ** g)`` with ``g = murray_exponent`` (3 in Murray's derivation), capped at
``max_radius``. The radius is therefore constant along an unbranched run and never increases from
a root towards a leaf. Each node also carries its branching ``generation`` (0 on the trunks, +1
after every bifurcation).

**Two implementations, one result.** :func:`grow_vessel_tree` is vectorised (one
:class:`scipy.spatial.cKDTree` query for all attractors per iteration, per-node direction sums with
``np.bincount``, batch growth, kill by a tree query); :func:`grow_vessel_tree_reference` is the
straightforward per-attractor Python loop of the same algorithm. They return *identical* trees for
the same seed and parameters: the k-d tree only proposes candidates, and both implementations decide
with the same float64 formula (``dx * dx + dy * dy`` against a squared radius), break ties towards
the lower node index, sum unit vectors in ascending attractor order and add new nodes in ascending
parent order.

**Defaults** are our choice; the DGSSA paper gives none. They approximate a 45-degree,
macula-centred photograph (FOV about 13 mm across, optic disc about 1.8 mm across and about 4.5 mm
from the fovea) and the calibre range of DRIVE (thinnest vessels about 1-2 px, widest about 8-10 px
across on a FOV of about 540 px): see :class:`VesselTreeParams`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
from scipy.spatial import cKDTree

from medmodal.errors import ConfigError

__all__ = ["VesselTreeParams", "VesselTree", "VesselRaster", "grow_vessel_tree", "grow_vessel_tree_reference",
           "rasterise_tree"]

# A proposed node closer than this fraction of ``step`` to an existing node is not added: without it
# a node whose attractors stay nearest to it would grow the same child again every iteration.
_MIN_SEPARATION = 0.25
# Relative slack on the k-d tree's distance bound: it only proposes candidates, the exact test decides.
_SLACK = 1e-6
# Candidates per query (the exact nearest is among them unless more than this many nodes tie to
# within rounding, which space colonisation does not produce).
_K = 4


@dataclass(frozen=True)
class VesselTreeParams:
    """Parameters of the generator; lengths in FOV radii (the FOV radius is 1).

    Attributes (defaults are our choice, see the module docstring):
        n_attractors: attractors drawn in the FOV (2000: a tree of about 1000-1500 nodes).
        fov_margin: attractors lie within ``1 - fov_margin`` of the centre (0.03), so vessels stop
            just short of the FOV edge as in photographs.
        disc_center: optic-disc centre ``(x, y)`` ((0.55, 0.0): a right eye, disc to the right of a
            macula-centred view; mirror ``x`` for a left eye).
        disc_radius: optic-disc radius (0.14: 0.9 mm of a 6.5 mm FOV radius).
        fovea_center: centre of the foveal avascular zone ((-0.15, 0.0): 0.7 FOV radii, i.e.
            about 4.5 mm, from the disc).
        fovea_radius: radius of the avascular zone without attractors (0.05).
        influence_radius: an attractor farther than this from every node is ignored this iteration
            (0.25).
        kill_radius: an attractor closer than this to a node dies (0.03).
        step: distance between a node and its child (0.02: about 50 steps across the FOV radius).
        max_iterations: iteration cap (300).
        tip_radius: calibre (half width) of a leaf (0.0025: about 0.7 px on a 270 px FOV radius).
        max_radius: calibre cap near the disc (0.018: about 5 px on a 270 px FOV radius).
        murray_exponent: exponent of Murray's law (3.0).
    """

    n_attractors: int = 2000
    fov_margin: float = 0.03
    disc_center: tuple[float, float] = (0.55, 0.0)
    disc_radius: float = 0.14
    fovea_center: tuple[float, float] = (-0.15, 0.0)
    fovea_radius: float = 0.05
    influence_radius: float = 0.25
    kill_radius: float = 0.03
    step: float = 0.02
    max_iterations: int = 300
    tip_radius: float = 0.0025
    max_radius: float = 0.018
    murray_exponent: float = 3.0

    def __post_init__(self):
        def bad(name, why):
            raise ConfigError(f"vessel tree: {name}={getattr(self, name)!r} {why}")

        for name in ("n_attractors", "max_iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                bad(name, "must be an integer >= 1")
        for name in ("disc_center", "fovea_center"):
            value = getattr(self, name)
            try:
                ok = len(value) == 2 and all(math.isfinite(float(v)) for v in value)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                bad(name, "must be two finite numbers (x, y) in FOV radii")
            object.__setattr__(self, name, (float(value[0]), float(value[1])))
        for name in ("fov_margin", "fovea_radius"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value < 1:
                bad(name, "must be in [0, 1) (FOV radii)")
        for name in ("disc_radius", "influence_radius", "kill_radius", "step", "tip_radius", "max_radius",
                     "murray_exponent"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                bad(name, "must be a finite number > 0")
        if math.hypot(*self.disc_center) + self.disc_radius >= 1 - self.fov_margin:
            bad("disc_center", f"puts the optic disc (radius {self.disc_radius}) outside the FOV")
        if self.kill_radius >= self.influence_radius:
            bad("kill_radius", f"must be below influence_radius={self.influence_radius}")
        if self.step >= self.influence_radius:
            bad("step", f"must be below influence_radius={self.influence_radius}")
        if self.max_radius < self.tip_radius:
            bad("max_radius", f"must be >= tip_radius={self.tip_radius}")

    def with_overrides(self, **overrides) -> "VesselTreeParams":
        """A copy with some fields replaced; unknown names raise :class:`ConfigError`."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"vessel tree: unknown parameter(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        return replace(self, **overrides)


@dataclass
class VesselTree:
    """A grown tree; node ``i``'s parent always has a lower index, roots have parent ``-1``.

    Attributes:
        positions: ``(N, 2)`` float64, node ``(x, y)`` in FOV radii (centre ``(0, 0)``, ``y`` down).
        parent: ``(N,)`` int64, parent index or -1 (the two roots, nodes 0 and 1).
        radius: ``(N,)`` float64, calibre (half width) in FOV radii, Murray's law.
        generation: ``(N,)`` int32, bifurcations passed from the root (0 on the trunks).
        trunk: ``(N,)`` int8, 0 for the superior arcade, 1 for the inferior one.
        attractors: ``(A, 2)`` float64, the attractors drawn (for plots and tests).
        iterations: colonisation iterations run.
        params: the parameters used; seed: the seed.
    """

    positions: np.ndarray
    parent: np.ndarray
    radius: np.ndarray
    generation: np.ndarray
    trunk: np.ndarray
    attractors: np.ndarray
    iterations: int
    params: VesselTreeParams
    seed: int
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.parent)

    def segments(self) -> tuple[np.ndarray, np.ndarray]:
        """``(child, parent)`` index arrays of the ``N - 2`` segments, each ``(N - 2,)`` int64."""
        child = np.flatnonzero(self.parent >= 0)
        return child, self.parent[child]

    def same_as(self, other: "VesselTree") -> bool:
        """True when both trees have bit-identical node arrays."""
        return all(np.array_equal(getattr(self, n), getattr(other, n))
                   for n in ("positions", "parent", "radius", "generation", "trunk"))

    def summary(self) -> dict:
        return {"nodes": len(self), "iterations": self.iterations, "seed": self.seed,
                "max_generation": int(self.generation.max()), "params": asdict(self.params)}


def _params(params: VesselTreeParams | None, overrides: dict) -> VesselTreeParams:
    if params is None:
        params = VesselTreeParams()
    elif not isinstance(params, VesselTreeParams):
        raise ConfigError(f"vessel tree: params must be a VesselTreeParams, not {type(params).__name__}")
    return params.with_overrides(**overrides) if overrides else params


def _sample_attractors(rng: np.random.Generator, p: VesselTreeParams) -> np.ndarray:
    """``(n_attractors, 2)`` points uniform in the FOV disc minus the optic disc and the fovea."""
    r_max = 1.0 - p.fov_margin
    dx, dy = p.disc_center
    fx, fy = p.fovea_center
    clear = p.disc_radius + p.kill_radius
    out, have = [], 0
    for _ in range(1000):
        pts = rng.uniform(-r_max, r_max, size=(2 * p.n_attractors + 64, 2))
        x, y = pts[:, 0], pts[:, 1]
        keep = ((x * x + y * y < r_max * r_max) & ((x - dx) ** 2 + (y - dy) ** 2 > clear * clear)
                & ((x - fx) ** 2 + (y - fy) ** 2 > p.fovea_radius ** 2))
        out.append(pts[keep])
        have += int(keep.sum())
        if have >= p.n_attractors:
            break
    else:  # pragma: no cover - only with a disc and fovea covering the FOV, which validation prevents
        raise ConfigError("vessel tree: no room for attractors outside the optic disc and fovea")
    return np.concatenate(out)[: p.n_attractors]


def _trunks(p: VesselTreeParams) -> tuple[list[float], list[float], list[int], list[int]]:
    """Two roots near the disc centre, grown straight up (superior) and down (inferior) off the disc."""
    dx, dy = p.disc_center
    offset = 0.2 * p.disc_radius
    xs, ys, parent, trunk = [dx, dx], [dy - offset, dy + offset], [-1, -1], [0, 1]
    n_steps = int(math.ceil((p.disc_radius - offset) / p.step))
    for t, sign in ((0, -1.0), (1, 1.0)):
        prev = t
        for k in range(1, n_steps + 1):
            xs.append(dx)
            ys.append(dy + sign * (offset + k * p.step))
            parent.append(prev)
            trunk.append(t)
            prev = len(xs) - 1
    return xs, ys, parent, trunk


def _finish(xs, ys, parent, trunk, attractors, iterations, p, seed) -> VesselTree:
    """Generation and Murray calibre (shared by both implementations)."""
    parent = np.asarray(parent, dtype=np.int64)
    n = len(parent)
    has_parent = parent >= 0
    n_children = np.bincount(parent[has_parent], minlength=n)
    # Depth levels: a parent always has a lower index, so one forward pass gives depths.
    depth = np.zeros(n, dtype=np.int64)
    generation = np.zeros(n, dtype=np.int32)
    for i in np.flatnonzero(has_parent):
        j = parent[i]
        depth[i] = depth[j] + 1
        generation[i] = generation[j] + (1 if n_children[j] >= 2 else 0)
    g = p.murray_exponent
    power = np.zeros(n, dtype=np.float64)   # sum of children's radius ** g
    leaf = n_children == 0
    for d in range(int(depth.max()), -1, -1):
        level = np.flatnonzero(depth == d)
        lv_leaf = level[leaf[level]]
        power[lv_leaf] = p.tip_radius ** g
        lv = level[has_parent[level]]
        np.add.at(power, parent[lv], power[lv])
    radius = np.minimum(power ** (1.0 / g), p.max_radius)
    return VesselTree(positions=np.column_stack([np.asarray(xs, np.float64), np.asarray(ys, np.float64)]),
                      parent=parent, radius=radius, generation=generation,
                      trunk=np.asarray(trunk, dtype=np.int8), attractors=attractors, iterations=iterations,
                      params=p, seed=int(seed))


def _exact_nearest(qx, qy, nx, ny, cand, valid):
    """Among candidate columns, the exact nearest node (lowest index on ties) and its squared distance."""
    n = len(nx)
    c = np.where(valid, cand, 0)
    dx = qx[:, None] - nx[c]
    dy = qy[:, None] - ny[c]
    d2 = np.where(valid, dx * dx + dy * dy, np.inf)
    best = d2.min(axis=1)
    idx = np.where(valid & (d2 == best[:, None]), cand, n).min(axis=1)
    return idx, best


def _query(tree: cKDTree, pts: np.ndarray, n_points: int, bound: float):
    k = min(_K, n_points)
    dist, cand = tree.query(pts, k=k, distance_upper_bound=bound * (1 + _SLACK) + 1e-12)
    if k == 1:
        cand = cand[:, None]
    return cand, cand < n_points


def grow_vessel_tree(seed: int, params: VesselTreeParams | None = None, **overrides) -> VesselTree:
    """Grow one tree by space colonisation, vectorised over attractors with a k-d tree.

    Args:
        seed: seeds ``numpy.random.default_rng`` (attractor positions are the only randomness).
        params: a :class:`VesselTreeParams` (defaults when None); ``overrides`` replace single fields.

    Returns:
        a :class:`VesselTree`, identical to :func:`grow_vessel_tree_reference` for the same seed.

    Raises:
        medmodal.errors.ConfigError: a bad or unknown parameter.
    """
    p = _params(params, overrides)
    rng = np.random.default_rng(seed)
    attractors = _sample_attractors(rng, p)
    xs, ys, parent, trunk = _trunks(p)
    nx = np.asarray(xs, np.float64)
    ny = np.asarray(ys, np.float64)
    par = np.asarray(parent, np.int64)
    trk = np.asarray(trunk, np.int8)
    ax_all, ay_all = attractors[:, 0], attractors[:, 1]
    alive = np.arange(len(attractors))
    di2, dk2 = p.influence_radius ** 2, p.kill_radius ** 2
    sep2 = (_MIN_SEPARATION * p.step) ** 2
    r_lim2 = 1.0 - p.fov_margin
    r_lim2 *= r_lim2
    iterations = 0
    while len(alive) and iterations < p.max_iterations:
        iterations += 1
        n = len(nx)
        ax, ay = ax_all[alive], ay_all[alive]
        qpts = np.column_stack([ax, ay])
        tree = cKDTree(np.column_stack([nx, ny]))
        cand, valid = _query(tree, qpts, n, p.influence_radius)
        near, d2 = _exact_nearest(ax, ay, nx, ny, cand, valid)
        use = d2 < di2
        if not use.any():
            break
        near, d2 = near[use], d2[use]
        dx = ax[use] - nx[near]
        dy = ay[use] - ny[near]
        norm = np.sqrt(d2)
        sx = np.bincount(near, weights=dx / norm, minlength=n)
        sy = np.bincount(near, weights=dy / norm, minlength=n)
        grow = np.unique(near)                      # ascending parent order
        s = np.sqrt(sx[grow] * sx[grow] + sy[grow] * sy[grow])
        ok = s > 1e-12
        grow, s = grow[ok], s[ok]
        px = nx[grow] + p.step * (sx[grow] / s)
        py = ny[grow] + p.step * (sy[grow] / s)
        inside = px * px + py * py < r_lim2
        grow, px, py = grow[inside], px[inside], py[inside]
        if len(grow):
            cand, valid = _query(tree, np.column_stack([px, py]), n, _MIN_SEPARATION * p.step)
            _, dn2 = _exact_nearest(px, py, nx, ny, cand, valid)
            fresh = ~(dn2 < sep2)
            grow, px, py = grow[fresh], px[fresh], py[fresh]
        if not len(grow):
            break
        nx = np.concatenate([nx, px])
        ny = np.concatenate([ny, py])
        par = np.concatenate([par, grow])
        trk = np.concatenate([trk, trk[grow]])
        new_tree = cKDTree(np.column_stack([px, py]))
        cand, valid = _query(new_tree, qpts, len(px), p.kill_radius)
        _, dk = _exact_nearest(ax, ay, px, py, cand, valid)
        alive = alive[~(dk < dk2)]
    return _finish(nx, ny, par, trk, attractors, iterations, p, seed)


def grow_vessel_tree_reference(seed: int, params: VesselTreeParams | None = None, **overrides) -> VesselTree:
    """The same algorithm as :func:`grow_vessel_tree`, one attractor at a time in a Python loop.

    Kept as the readable definition the vectorised version is tested and benchmarked against; use
    :func:`grow_vessel_tree` for data generation. Same arguments, result and errors.
    """
    p = _params(params, overrides)
    rng = np.random.default_rng(seed)
    attractors = _sample_attractors(rng, p)
    xs, ys, parent, trunk = _trunks(p)
    alive = list(range(len(attractors)))
    di2, dk2 = p.influence_radius ** 2, p.kill_radius ** 2
    sep2 = (_MIN_SEPARATION * p.step) ** 2
    r_lim2 = 1.0 - p.fov_margin
    r_lim2 *= r_lim2
    iterations = 0
    while alive and iterations < p.max_iterations:
        iterations += 1
        nx = np.asarray(xs, np.float64)
        ny = np.asarray(ys, np.float64)
        n = len(nx)
        sx = np.zeros(n)
        sy = np.zeros(n)
        count = np.zeros(n, dtype=np.int64)
        for a in alive:                              # 1. nearest node of each attractor
            ax, ay = attractors[a, 0], attractors[a, 1]
            dx = ax - nx
            dy = ay - ny
            d2 = dx * dx + dy * dy
            j = int(np.argmin(d2))                   # first (lowest-index) minimum on ties
            if d2[j] < di2:
                norm = math.sqrt(d2[j])
                sx[j] += dx[j] / norm
                sy[j] += dy[j] / norm
                count[j] += 1
        if not count.any():
            break
        new_x, new_y = [], []
        for j in range(n):                           # 2. grow, in ascending parent order
            if count[j] == 0:
                continue
            s = math.sqrt(sx[j] * sx[j] + sy[j] * sy[j])
            if not s > 1e-12:
                continue
            px = nx[j] + p.step * (sx[j] / s)
            py = ny[j] + p.step * (sy[j] / s)
            if not px * px + py * py < r_lim2:
                continue
            dx = px - nx
            dy = py - ny
            if (dx * dx + dy * dy < sep2).any():
                continue
            new_x.append(px)
            new_y.append(py)
            parent.append(j)
            trunk.append(trunk[j])
        if not new_x:
            break
        xs.extend(new_x)
        ys.extend(new_y)
        new_x = np.asarray(new_x)
        new_y = np.asarray(new_y)
        survivors = []
        for a in alive:                              # 3. kill
            dx = attractors[a, 0] - new_x
            dy = attractors[a, 1] - new_y
            if not (dx * dx + dy * dy < dk2).any():
                survivors.append(a)
        alive = survivors
    return _finish(xs, ys, parent, trunk, attractors, iterations, p, seed)


@dataclass
class VesselRaster:
    """A rasterised tree.

    Attributes:
        mask: ``(H, W)`` uint8 label map, 1 on vessels, 0 elsewhere.
        fov: ``(H, W)`` bool, the FOV disc.
        soft: ``(H, W)`` float32 vessel coverage in [0, 1] (anti-aliased), or None.
    """

    mask: np.ndarray
    fov: np.ndarray
    soft: np.ndarray | None = None


def _draw_capsules(shape, cx, cy, radius, child, parent_idx, min_half_width) -> np.ndarray:
    """Fill tapered capsules (pixel centre within the interpolated radius of a segment)."""
    h, w = shape
    out = np.zeros(shape, dtype=bool)
    x0, y0, x1, y1 = cx[parent_idx], cy[parent_idx], cx[child], cy[child]
    r0 = np.maximum(radius[parent_idx], min_half_width)
    r1 = np.maximum(radius[child], min_half_width)
    rr = np.maximum(r0, r1)
    c_lo = np.clip(np.floor(np.minimum(x0, x1) - rr - 0.5), 0, w).astype(int)
    c_hi = np.clip(np.ceil(np.maximum(x0, x1) + rr + 0.5) + 1, 0, w).astype(int)
    r_lo = np.clip(np.floor(np.minimum(y0, y1) - rr - 0.5), 0, h).astype(int)
    r_hi = np.clip(np.ceil(np.maximum(y0, y1) + rr + 0.5) + 1, 0, h).astype(int)
    for s in range(len(child)):
        if c_lo[s] >= c_hi[s] or r_lo[s] >= r_hi[s]:
            continue
        # pixel (row i, col j) has centre (j + 0.5, i + 0.5) in these continuous coordinates
        qx = np.arange(c_lo[s], c_hi[s], dtype=np.float64)[None, :] + 0.5
        qy = np.arange(r_lo[s], r_hi[s], dtype=np.float64)[:, None] + 0.5
        ex, ey = x1[s] - x0[s], y1[s] - y0[s]
        ll = ex * ex + ey * ey
        t = np.clip(((qx - x0[s]) * ex + (qy - y0[s]) * ey) / ll, 0.0, 1.0) if ll > 0 else np.zeros((1, 1))
        dx = qx - (x0[s] + t * ex)
        dy = qy - (y0[s] + t * ey)
        rad = r0[s] + t * (r1[s] - r0[s])
        out[r_lo[s]:r_hi[s], c_lo[s]:c_hi[s]] |= dx * dx + dy * dy <= rad * rad
    return out


def rasterise_tree(tree: VesselTree, shape: tuple[int, int], *, fov_radius_px: float | None = None,
                   soft: bool = False, supersample: int = 4, min_width_px: float = 1.0) -> VesselRaster:
    """Draw a tree into an ``(H, W)`` label map, at any size.

    Each segment is a tapered capsule from its parent's radius to its child's (round ends join the
    segments). The FOV is centred in the image; a tree coordinate ``(x, y)`` lands at continuous
    position ``(W / 2 + x * R, H / 2 + y * R)``, pixel ``(i, j)`` covering ``[j, j + 1) x [i, i + 1)``,
    so the same tree drawn at two sizes gives masks that agree after resampling.

    Args:
        tree: a :class:`VesselTree`.
        shape: ``(H, W)`` in pixels.
        fov_radius_px: FOV radius ``R`` in pixels (default ``min(H, W) / 2``).
        soft: also return an anti-aliased coverage map (the binary drawing at ``supersample`` times
            the size, block-averaged; no minimum width).
        supersample: integer factor of the soft map (4).
        min_width_px: vessels narrower than this many pixels in the *binary* mask are drawn this wide
            (1.0: every vessel stays a connected line of pixels at any size).

    Raises:
        medmodal.errors.ConfigError: a bad shape, radius or factor.
    """
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ConfigError(f"rasterise_tree: shape must be (H, W), not {shape!r}") from None
    if h < 1 or w < 1:
        raise ConfigError(f"rasterise_tree: shape must be positive, not {shape!r}")
    radius_px = min(h, w) / 2.0 if fov_radius_px is None else fov_radius_px
    if not isinstance(radius_px, (int, float)) or not math.isfinite(radius_px) or radius_px <= 0:
        raise ConfigError(f"rasterise_tree: fov_radius_px must be a number > 0, not {fov_radius_px!r}")
    if isinstance(supersample, bool) or not isinstance(supersample, int) or supersample < 1:
        raise ConfigError(f"rasterise_tree: supersample must be an integer >= 1, not {supersample!r}")
    if not isinstance(min_width_px, (int, float)) or not min_width_px >= 0:
        raise ConfigError(f"rasterise_tree: min_width_px must be a number >= 0, not {min_width_px!r}")
    child, parent_idx = tree.segments()

    def draw(scale, min_half):
        cx = w * scale / 2.0 + tree.positions[:, 0] * radius_px * scale
        cy = h * scale / 2.0 + tree.positions[:, 1] * radius_px * scale
        return _draw_capsules((h * scale, w * scale), cx, cy, tree.radius * radius_px * scale, child, parent_idx,
                              min_half)

    mask = draw(1, min_width_px / 2.0).astype(np.uint8)
    qy = np.arange(h, dtype=np.float64)[:, None] + 0.5 - h / 2.0
    qx = np.arange(w, dtype=np.float64)[None, :] + 0.5 - w / 2.0
    fov = qx * qx + qy * qy <= radius_px * radius_px
    soft_map = None
    if soft:
        s = supersample
        big = draw(s, 0.0)
        soft_map = big.reshape(h, s, w, s).mean(axis=(1, 3)).astype(np.float32)
    return VesselRaster(mask=mask, fov=fov, soft=soft_map)
