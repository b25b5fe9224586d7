"""DGSSA's structure augmentation for a vessel run: calibrated vessel trees rendered by a pix2pix generator.

Steps (:func:`prepare_structure`, called by :func:`medmodal.engine.fundus.run_vessels` before
segmentation training when ``structure.source`` is ``pix2pix``):

1. **Pairs.** The source's *training* images (never validation or test) on the run's network grid
   (:func:`~medmodal.engine.fundus.pix2pix.fundus_pairs`).
2. **Tree density** (:func:`calibrate_tree_density`): the mean vessel fraction inside the FOV of those
   training labels on the grid is the target (DRIVE at diameter 270: 11.7 %); ``n_attractors`` of
   :class:`~medmodal.data.fundus.vessel_tree.VesselTreeParams` is chosen by bisection (on its
   logarithm) so that trees rasterised on the same grid (:func:`rasterise_tree`, FOV radius
   ``diameter / 2``, vessels at least one pixel wide) cover the same fraction. More attractors give
   more, and longer, branches; the calibres (Murray's law) are left as they are.
3. **Generator.** :func:`~medmodal.engine.fundus.pix2pix.train_pix2pix` with :data:`RENDERER` settings
   (random crops, resize-convolution decoder, the condition at full resolution, vessel-weighted L1;
   all departures from the paper's pix2pix, each for a 2-minute single-thread CPU budget, see
   :data:`RENDERER`), saved as a ``fundus/pix2pix`` bundle (:data:`PIX2PIX_FORMAT`)
   ``<run>/structure/generator.safetensors`` + ``generator.json``; a resumed run, or
   ``structure.generator``, loads a saved one instead (:func:`load_generator`).
4. **Pairs for training** (:class:`StructurePairs`): each synthetic item grows a new tree (seeded by
   the item's generator), rasterises it on the grid and renders it; the image, the tree's mask and its
   FOV disc go to :class:`~medmodal.data.fundus.dataset.SyntheticPairs` and through the same crop,
   augmentation, PixMix and normalisation as real images. The trees all have the optic disc on the
   right (a right eye); the standard augmentation's flips give left eyes.
5. **Record**: ``<run>/structure/examples.png`` (4 held-out trees above their renderings) and, in
   ``metrics.json`` under ``structure``, the seconds, the calibration and the mean green-channel
   contrast (:func:`green_contrast`) of renderings of held-out trees vs the real training images.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from medmodal.bundle import read_bundle, register_format, save_bundle
from medmodal.data.fundus.geometry import FundusGeometry
from medmodal.data.fundus.vessel_tree import VesselTreeParams, grow_vessel_tree, rasterise_tree
from medmodal.engine.fundus.pix2pix import Pix2PixPair, Pix2PixSettings, fundus_pairs, train_pix2pix
from medmodal.errors import CheckpointError, ConfigError
from medmodal.inference.pix2pix import render_pseudo_fundus
from medmodal.io import atomic_path, ensure_writable_dir
from medmodal.models.fundus.pix2pix import Pix2PixGenerator, Pix2PixGeneratorConfig

__all__ = ["PIX2PIX_FORMAT", "RENDERER", "TreeCalibration", "StructurePairs", "label_fraction", "tree_fraction",
           "calibrate_tree_density", "green_contrast", "grid_shape", "save_generator", "load_generator",
           "prepare_structure", "write_examples", "STRUCTURE_DIR"]

#: the generator bundle: ``generator.safetensors`` + ``generator.json``
PIX2PIX_FORMAT = register_format("fundus/pix2pix", "generator.safetensors", "generator.json")
#: the run sub-folder of the structure step
STRUCTURE_DIR = "structure"

#: Renderer settings (fixed; ``structure.steps`` / ``crop`` / ``batch_size`` / ``base_width`` set the rest).
#: Departures from the paper's pix2pix, for a <= 2 min single-thread CPU budget (measured on DRIVE at
#: diameter 270: the paper's generator, 240 whole-grid steps, rendered orange discs without vessels):
#: ``upsample="resize"`` (nearest x2 + 3x3 convolution instead of transposed convolutions: no
#: checkerboards), ``input_skip`` (the vessel mask reaches the output layer at full resolution, so
#: one-pixel vessels need not survive a stride-2 encoder step), ``vessel_weight=10`` (vessel pixels
#: weigh 10x in the L1 term: with plain L1 a few hundred steps learn the background and faint vessels)
#: and ``depth=5`` (a 128 px crop's bottleneck is 4 x 4).
RENDERER = {"depth": 5, "upsample": "resize", "input_skip": True, "vessel_weight": 10.0}

# trees used to calibrate the density / measure the renderer (seeds, disjoint)
_CALIBRATION_SEEDS = (9001, 9002, 9003)
_HELD_OUT_SEEDS = (7001, 7002, 7003, 7004)


@dataclass
class TreeCalibration:
    """The tree density a run used.

    Attributes:
        target_fraction: mean vessel fraction inside the FOV of the source's training labels on the grid
            (``None``: not calibrated).
        fraction: the same fraction of the calibration trees with ``params`` (mean over 3 trees).
        params: the :class:`VesselTreeParams` fields that differ from the defaults (overrides + calibration).
    """

    target_fraction: float | None
    fraction: float
    params: dict = field(default_factory=dict)

    def tree_params(self) -> VesselTreeParams:
        return VesselTreeParams().with_overrides(**self.params)

    def to_dict(self) -> dict:
        return {"target_fraction": self.target_fraction, "fraction": self.fraction, "params": dict(self.params)}


def grid_shape(geometry: FundusGeometry) -> tuple[int, int]:
    """The square network grid of a circular FOV: ``diameter + 2 * margin`` padded to the divisor."""
    side = geometry.target_diameter + 2 * geometry.margin
    side = int(math.ceil(side / geometry.divisor) * geometry.divisor)
    return side, side


def label_fraction(pairs: Sequence[Pix2PixPair]) -> float:
    """Mean over pairs of the vessel fraction inside the FOV (0-1)."""
    return float(np.mean([p.vessel[p.fov].mean() if p.fov.any() else 0.0 for p in pairs]))


def _raster(params: VesselTreeParams, seed: int, shape: tuple[int, int], radius: float):
    return rasterise_tree(grow_vessel_tree(int(seed), params), shape, fov_radius_px=radius)


def tree_fraction(params: VesselTreeParams, shape: tuple[int, int], fov_radius_px: float,
                  seeds: Sequence[int] = _CALIBRATION_SEEDS) -> float:
    """Mean vessel fraction inside the FOV disc of trees grown with ``params`` and rasterised on ``shape``."""
    values = []
    for seed in seeds:
        r = _raster(params, seed, shape, fov_radius_px)
        values.append(float(r.mask[r.fov].mean()))
    return float(np.mean(values))


def calibrate_tree_density(target: float, shape: tuple[int, int], fov_radius_px: float,
                           base: VesselTreeParams | None = None, iterations: int = 6,
                           bounds: tuple[int, int] = (200, 12000)) -> tuple[VesselTreeParams, float]:
    """``(params, fraction)``: ``base`` with the ``n_attractors`` (bisection on its log within ``bounds``,
    ``iterations`` steps, 3 trees each: about 0.3 s a step at diameter 270) whose trees' vessel fraction
    inside the FOV is closest to ``target`` (0-1)."""
    if not 0.0 < target < 1.0:
        raise ConfigError(f"tree density: target vessel fraction must be in (0, 1), got {target!r}")
    base = base or VesselTreeParams()
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    best = (math.inf, base.n_attractors, math.nan)
    for _ in range(iterations):
        n = int(round(math.exp((lo + hi) / 2)))
        fraction = tree_fraction(base.with_overrides(n_attractors=n), shape, fov_radius_px)
        if abs(fraction - target) < best[0]:
            best = (abs(fraction - target), n, fraction)
        if fraction < target:
            lo = math.log(n)
        else:
            hi = math.log(n)
    return base.with_overrides(n_attractors=best[1]), best[2]


def green_contrast(images: Sequence[np.ndarray], vessels: Sequence[np.ndarray], fovs: Sequence[np.ndarray]) -> float:
    """Mean over images of (mean green inside the FOV off the vessels) - (mean green on the vessels), on 0-255.

    ``images``: ``[H, W, 3]`` in [0, 1] (float) or 0-255 (uint8); ``vessels`` / ``fovs``: ``[H, W]`` 0 / 1."""
    values = []
    for image, vessel, fov in zip(images, vessels, fovs):
        image = np.asarray(image)
        green = image[..., 1].astype(np.float64) * (1.0 if image.dtype == np.uint8 else 255.0)
        fov, vessel = np.asarray(fov) > 0, np.asarray(vessel) > 0
        background, on = fov & ~vessel, fov & vessel
        if background.any() and on.any():
            values.append(green[background].mean() - green[on].mean())
    return float(np.mean(values)) if values else math.nan


def save_generator(folder: str | Path, generator: Pix2PixGenerator, meta: dict[str, Any]) -> Path:
    """Write ``generator`` as a :data:`PIX2PIX_FORMAT` bundle (``generator.safetensors`` + ``generator.json``,
    the JSON holding ``{"generator": its config, **meta}``)."""
    return save_bundle(folder, generator, {"generator": asdict(generator.config), **meta}, format=PIX2PIX_FORMAT)


def load_generator(folder: str | Path) -> tuple[Pix2PixGenerator, dict]:
    """``(generator in eval mode, meta)`` of a :data:`PIX2PIX_FORMAT` bundle (safetensors: no code runs).

    Raises:
        CheckpointError: missing / damaged files, another kind of bundle, or weights that do not fit the
            described generator (one line naming the folder).
    """
    folder = Path(folder)
    state, meta = read_bundle(folder, PIX2PIX_FORMAT)
    config = meta.get("generator")
    if not isinstance(config, dict):
        raise CheckpointError(f"{folder / 'generator.json'}: no generator description ('generator' mapping)")
    try:
        generator = Pix2PixGenerator(Pix2PixGeneratorConfig(**config))
        generator.load_state_dict(state, strict=True)
    except (TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{folder}: the generator weights do not fit its description ({first})") from None
    return generator.eval(), meta


class StructurePairs:
    """``make_pair(rng)`` for :class:`~medmodal.data.fundus.dataset.SyntheticPairs`: a new tree (seed drawn from
    ``rng``) rasterised on the grid and rendered by ``generator``.

    Returns ``(image uint8 [H, W, 3] 0-255, label uint8 [H, W] 0 / 1, fov bool [H, W])`` (the FOV disc,
    radius ``diameter / 2``, centred). About 0.1 s to grow and 0.1-0.2 s to render at diameter 270 on a
    CPU core.
    """

    def __init__(self, generator: Pix2PixGenerator, params: VesselTreeParams, geometry: FundusGeometry):
        self.generator, self.params, self.geometry = generator.eval(), params, geometry
        self.shape, self.radius = grid_shape(geometry), geometry.target_diameter / 2.0

    def raster(self, seed: int):
        return _raster(self.params, seed, self.shape, self.radius)

    def render(self, rasters: Sequence) -> np.ndarray:
        """float32 ``[N, H, W, 3]`` in [0, 1] of rasterised trees."""
        return render_pseudo_fundus(self.generator, list(rasters))

    def __call__(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = self.raster(int(rng.integers(2 ** 31)))
        image = self.render([r])[0]
        return np.round(image * 255).astype(np.uint8), (r.mask > 0) & r.fov, r.fov


def write_examples(path: str | Path, rasters: Sequence, images: np.ndarray) -> Path:
    """A PNG sheet: the trees (white on black) in the top row, their renderings below."""
    from PIL import Image

    top = [np.repeat(((np.asarray(r.mask) > 0) * 255).astype(np.uint8)[..., None], 3, axis=2) for r in rasters]
    bottom = [np.round(np.clip(im, 0, 1) * 255).astype(np.uint8) for im in images]
    sheet = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG")
    return path


def _settings(structure, seed: int) -> Pix2PixSettings:
    return Pix2PixSettings(steps=structure.steps, batch_size=structure.batch_size, crop=structure.crop,
                           base_width=structure.base_width, disc_width=structure.base_width, seed=seed, threads=None,
                           log_every=max(1, structure.steps // 10), **RENDERER)


def prepare_structure(structure, train_samples: Sequence, geometry: FundusGeometry, run_dir: str | Path | None,
                      seed: int = 0, reuse: bool = True, write: bool = True) -> tuple[StructurePairs, dict]:
    """Calibrate the trees, train (or load) the generator, write ``<run>/structure/`` (module docstring).

    Args:
        structure: a :class:`~medmodal.engine.fundus.config.VesselStructureSettings`.
        train_samples: the source's training samples (validation and test excluded by the caller).
        geometry: the run's network grid.
        run_dir: the run folder (``None``: write nothing, train anew).
        seed: seeds the generator's training.
        reuse: load ``<run>/structure`` when it holds a generator trained with the same settings, ids and
            grid (a resumed run), else train anew.
        write: write the bundle and the example sheet (rank 0).
    Returns:
        ``(make_pair, record)``: the pair maker and the record for ``metrics.json``.
    """
    pairs = fundus_pairs(train_samples, geometry)
    shape, radius = grid_shape(geometry), geometry.target_diameter / 2.0
    target = label_fraction(pairs)
    base = VesselTreeParams().with_overrides(**dict(structure.tree))
    if structure.calibrate:
        params, fraction = calibrate_tree_density(target, shape, radius, base)
    else:
        params, fraction = base, tree_fraction(base, shape, radius)
    defaults = asdict(VesselTreeParams())
    changed = {k: v for k, v in asdict(params).items() if v != defaults[k]}
    calibration = TreeCalibration(target if structure.calibrate else None, fraction, changed)

    settings = _settings(structure, seed)
    identity = json.loads(json.dumps({"geometry": geometry.to_dict(), "grid": list(pairs[0].image.shape[:2]),
                                      "train_ids": [str(s.id) for s in train_samples],
                                      "settings": asdict(settings)}))  # as the JSON file holds it
    folder = Path(run_dir) / STRUCTURE_DIR if run_dir is not None else None
    generator, meta, reused, source = None, {}, False, None
    if structure.generator:
        generator, meta = load_generator(structure.generator)
        if meta.get("geometry") != geometry.to_dict():
            raise ConfigError(f"structure.generator {structure.generator}: trained on grid {meta.get('geometry')}, "
                              f"the run's is {geometry.to_dict()}")
        reused, source = True, str(structure.generator)
    elif reuse and folder is not None and (folder / "generator.json").is_file():
        try:
            generator, meta = load_generator(folder)
        except CheckpointError:
            generator = None
        if generator is not None and all(meta.get(k) == v for k, v in identity.items()):
            reused, source = True, str(folder)
        else:
            generator, meta = None, {}
    if generator is None:
        history: list[dict] = []
        start = time.perf_counter()
        generator = train_pix2pix(pairs, settings, history=history)
        seconds = time.perf_counter() - start
        meta = {**identity, "seconds": round(seconds, 2), "threads": torch.get_num_threads(),
                "last_losses": history[-1] if history else None}
    make_pair = StructurePairs(generator, params, geometry)

    rasters = [make_pair.raster(s) for s in _HELD_OUT_SEEDS]
    rendered = make_pair.render(rasters)
    contrast = {"rendered": green_contrast(rendered, [r.mask for r in rasters], [r.fov for r in rasters]),
                "real": green_contrast([p.image for p in pairs], [p.vessel for p in pairs], [p.fov for p in pairs])}
    if write and folder is not None:
        ensure_writable_dir(folder)
        if source != str(folder):
            save_generator(folder, generator, {k: v for k, v in meta.items() if k not in ("generator", "format")})
        write_examples(folder / "examples.png", rasters, rendered)
    record = {"source": "pix2pix", "ratio": structure.ratio, "pix2pix_seconds": meta.get("seconds"),
              "pix2pix_threads": meta.get("threads"), "pix2pix_steps": meta.get("settings", {}).get("steps"),
              "generator": str(folder) if folder is not None else source, "reused": reused,
              "reused_from": source, "tree": calibration.to_dict(), "green_contrast": contrast,
              "examples": str(folder / "examples.png") if folder is not None else None}
    return make_pair, record
