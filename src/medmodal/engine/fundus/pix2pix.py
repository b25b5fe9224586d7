"""Train the pix2pix pair on a source domain's (image, vessel label, FOV) pairs (DGSSA's structure augmentation).

A plain, seeded PyTorch loop rather than a Lightning module on the run spine: the GAN's alternating
two-optimiser step would need manual optimisation in Lightning, and the trainer's product is an
in-memory generator that renders augmentation images, not a run folder with a bundle. The loop is
the paper's: per step one discriminator update on ``D(x, y)`` vs ``D(x, G(x).detach())``, then one
generator update on the non-saturating GAN term + ``lambda_l1 * L1`` (:mod:`medmodal.losses.pix2pix`);
Adam ``lr=2e-4``, ``betas=(0.5, 0.999)`` for both networks. Random horizontal / vertical flips of
the whole pair are the only augmentation (the paper's random jitter, a resize-and-crop, is left out).

Pairs come from :func:`fundus_pairs`: the source domain's *training* images brought to the network
grid (:func:`medmodal.data.fundus.geometry.to_network`) at a reduced FOV diameter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from medmodal.data.fundus.arrays import load_fov, load_image, load_label
from medmodal.data.fundus.geometry import FundusGeometry, to_network
from medmodal.errors import ConfigError
from medmodal.inference.pix2pix import condition_tensor
from medmodal.losses.base import StepContext
from medmodal.losses.pix2pix import Pix2PixObjective
from medmodal.models.fundus.pix2pix import UPSAMPLES, PatchDiscriminator, Pix2PixGenerator

__all__ = ["Pix2PixPair", "Pix2PixSettings", "fundus_pairs", "pairs_from_arrays", "train_pix2pix"]


@dataclass
class Pix2PixPair:
    """One training pair on the network grid: ``image`` float32 ``[H, W, 3]`` in [0, 1], ``vessel`` and
    ``fov`` bool ``[H, W]``; ``name`` for messages."""

    image: np.ndarray
    vessel: np.ndarray
    fov: np.ndarray
    name: str = ""


@dataclass
class Pix2PixSettings:
    """Training settings (defaults: the paper's optimiser and lambda, CPU-sized networks).

    Attributes:
        steps: generator updates (each preceded by one discriminator update).
        batch_size: pairs per step (drawn without replacement, reshuffled each pass).
        lr, betas: Adam, both networks. lambda_l1: weight of the L1 term.
        base_width, depth: generator width and depth (sides must be divisible by ``2 ** depth``).
        disc_width, disc_layers: discriminator width and stride-2 layers (3: 70 x 70 patches).
        crop: train on random ``crop x crop`` windows of the pairs (one per pair and step, uniform over
            the grid; a multiple of ``2 ** depth``), ``None``: whole grids. Fully convolutional, the
            generator then renders whole grids; crops cut the cost of a step by the area ratio.
        vessel_weight: weight of vessel pixels in the L1 term relative to the rest (1: the paper's plain L1).
            Vessels cover ~12 % of a fundus FOV, thin ones a pixel or two; with plain L1 a short CPU
            training renders the mean background and faint vessels.
        upsample, input_skip: the generator's decoder (:class:`~medmodal.models.fundus.pix2pix.Pix2PixGeneratorConfig`).
        flips: random horizontal / vertical flips of the pair.
        seed: seeds the weights, the batch order, the flips and dropout.
        threads: torch CPU threads while training (``None``: leave as is).
        log_every: history entry every this many steps (the last step is always logged).
    """

    steps: int = 200
    batch_size: int = 4
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lambda_l1: float = 100.0
    base_width: int = 32
    depth: int = 5
    disc_width: int = 32
    disc_layers: int = 3
    crop: int | None = None
    vessel_weight: float = 1.0
    upsample: str = "transpose"
    input_skip: bool = False
    flips: bool = True
    seed: int = 0
    threads: int | None = None
    log_every: int = 10
    extra: dict = field(default_factory=dict)

    def validate(self) -> "Pix2PixSettings":
        for name in ("steps", "batch_size", "base_width", "depth", "disc_width", "disc_layers", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"pix2pix {name} must be an integer >= 1, got {value!r}")
        if self.crop is not None and (isinstance(self.crop, bool) or not isinstance(self.crop, int)
                                      or self.crop < 2 ** self.depth or self.crop % 2 ** self.depth):
            raise ConfigError(f"pix2pix crop must be a multiple of 2**depth = {2 ** self.depth}, got {self.crop!r}")
        if self.upsample not in UPSAMPLES:
            raise ConfigError(f"pix2pix upsample must be one of {', '.join(UPSAMPLES)}, got {self.upsample!r}")
        if not self.vessel_weight > 0:
            raise ConfigError(f"pix2pix vessel_weight must be > 0, got {self.vessel_weight!r}")
        if not self.lr > 0 or not self.lambda_l1 >= 0:
            raise ConfigError(f"pix2pix lr must be > 0 and lambda_l1 >= 0, got {self.lr!r}, {self.lambda_l1!r}")
        return self


def pairs_from_arrays(items: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
                      geometry: FundusGeometry | None = None, names: Sequence[str] | None = None) -> list[Pix2PixPair]:
    """``(image uint8 [H, W, 3], vessel bool, fov bool)`` triples on their native grids -> pairs on the
    network grid of ``geometry`` (image scaled to [0, 1], 0 outside the FOV)."""
    pairs = []
    for i, (image, vessel, fov) in enumerate(items):
        name = names[i] if names is not None else f"pair {i}"
        (img, net_fov, net_vessel), _ = to_network(image, fov, vessel, geometry=geometry, name=name)
        img = np.clip(img / 255.0, 0, 1).astype(np.float32) * net_fov[..., None]
        pairs.append(Pix2PixPair(img, net_vessel & net_fov, net_fov, name))
    return pairs


def fundus_pairs(samples: Iterable, geometry: FundusGeometry | None = None, observer: int = 0) -> list[Pix2PixPair]:
    """Pairs of fundus samples (:class:`~medmodal.data.fundus.layouts.FundusSample`, e.g. a
    ``read_fundus(root).split("training")``): the image, the ``observer``'s label and the FOV (the
    sample's mask or derived) on the network grid. Pass the source domain's *training* split only."""
    triples, names = [], []
    for sample in samples:
        image = load_image(sample)
        triples.append((image, load_label(sample, observer, image.shape[:2]), load_fov(sample, image)))
        names.append(str(sample.image))
    return pairs_from_arrays(triples, geometry, names)


def _pad(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Zero padding at the bottom / right up to ``shape`` (grids differ where a camera cuts the FOV off)."""
    pad = [(0, shape[0] - array.shape[0]), (0, shape[1] - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, pad)


def _batches(pairs: Sequence[Pix2PixPair], crop: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    shapes = {p.image.shape[:2] for p in pairs}
    if len(shapes) != 1 and crop is None:
        raise ConfigError(f"pix2pix pairs must share one network grid, got sizes {sorted(shapes)} (or train on crops)")
    shape = (max(s[0] for s in shapes), max(s[1] for s in shapes))
    cond = condition_tensor(np.stack([_pad(p.vessel, shape) for p in pairs]),
                            np.stack([_pad(p.fov, shape) for p in pairs]))
    image = torch.from_numpy(np.stack([_pad(p.image, shape) for p in pairs]).astype(np.float32)).permute(0, 3, 1, 2)
    return cond, image * 2 - 1  # the generator's tanh range


def train_pix2pix(pairs: Sequence[Pix2PixPair], cfg: Pix2PixSettings | None = None, *,
                  history: list[dict] | None = None, callback: Callable[[dict], None] | None = None,
                  device: str | torch.device = "cpu") -> Pix2PixGenerator:
    """Train a generator / discriminator pair on ``pairs`` and return the generator (in eval mode).

    ``history`` (a list) receives ``{"step", "seconds", "d_loss", "d_real", "d_fake", "g_gan", "g_l1"}``
    every ``cfg.log_every`` steps (means over those steps); ``callback`` is called with each entry.
    The same pairs, settings and seed give the same generator (on the CPU).
    """
    cfg = (cfg or Pix2PixSettings()).validate()
    if not pairs:
        raise ConfigError("pix2pix: no training pairs")
    cond_all, target_all = _batches(pairs, cfg.crop)
    side = 2 ** cfg.depth
    if cfg.crop is not None and min(cond_all.shape[-2:]) < cfg.crop:
        raise ConfigError(f"pix2pix: crop {cfg.crop} is larger than the grid {tuple(cond_all.shape[-2:])}")
    if cfg.crop is None and (cond_all.shape[-2] % side or cond_all.shape[-1] % side):
        raise ConfigError(f"pix2pix: grid {tuple(cond_all.shape[-2:])} is not divisible by 2**depth = {side}; "
                          "use a geometry divisor that is")
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            gen = Pix2PixGenerator(in_channels=cond_all.shape[1], out_channels=3, base_width=cfg.base_width,
                                   depth=cfg.depth, upsample=cfg.upsample, input_skip=cfg.input_skip).to(device)
            disc = PatchDiscriminator(in_channels=cond_all.shape[1] + 3, base_width=cfg.disc_width,
                                      n_layers=cfg.disc_layers).to(device)
            _fit(gen, disc, cond_all, target_all, cfg, history, callback, device)
    finally:
        torch.set_num_threads(threads)
    return gen.eval()


def _crops(cond: torch.Tensor, target: torch.Tensor, size: int, rng: torch.Generator
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """One random ``size x size`` window per pair (uniform top-left corner over the grid)."""
    h, w = cond.shape[-2:]
    ys = torch.randint(0, h - size + 1, (len(cond),), generator=rng).tolist()
    xs = torch.randint(0, w - size + 1, (len(cond),), generator=rng).tolist()
    return (torch.stack([c[:, y:y + size, x:x + size] for c, y, x in zip(cond, ys, xs)]),
            torch.stack([t[:, y:y + size, x:x + size] for t, y, x in zip(target, ys, xs)]))


def _fit(gen, disc, cond_all, target_all, cfg: Pix2PixSettings, history, callback, device) -> None:
    objective = Pix2PixObjective(cfg.lambda_l1)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    rng = torch.Generator().manual_seed(cfg.seed)
    n, batch = len(cond_all), min(cfg.batch_size, len(cond_all))
    order, pos = torch.randperm(n, generator=rng), 0
    sums: dict[str, float] = {}
    count, start = 0, time.perf_counter()
    gen.train()
    disc.train()
    for step in range(1, cfg.steps + 1):
        if pos + batch > n:
            order, pos = torch.randperm(n, generator=rng), 0
        idx = order[pos:pos + batch]
        pos += batch
        cond, target = cond_all[idx], target_all[idx]
        if cfg.crop is not None:
            cond, target = _crops(cond, target, cfg.crop, rng)
        if cfg.flips:
            if torch.rand((), generator=rng) < 0.5:
                cond, target = cond.flip(-1), target.flip(-1)
            if torch.rand((), generator=rng) < 0.5:
                cond, target = cond.flip(-2), target.flip(-2)
        cond, target = cond.to(device), target.to(device)

        fake = gen(cond)
        d_out = objective({"real_logits": disc(cond, target), "fake_logits": disc(cond, fake.detach())},
                          StepContext(stage="discriminator"))
        opt_d.zero_grad(set_to_none=True)
        d_out["loss"].backward()
        opt_d.step()

        for p in disc.parameters():
            p.requires_grad_(False)
        inputs = {"fake_logits": disc(cond, fake), "fake": fake, "target": target}
        if cfg.vessel_weight != 1.0:
            inputs["l1_weight"] = 1.0 + (cfg.vessel_weight - 1.0) * cond[:, :1]
        g_out = objective(inputs, StepContext(stage="generator"))
        opt_g.zero_grad(set_to_none=True)
        g_out["loss"].backward()
        opt_g.step()
        for p in disc.parameters():
            p.requires_grad_(True)

        terms = {"d_loss": d_out["loss"].item(), "d_real": d_out["d_real"].item(), "d_fake": d_out["d_fake"].item(),
                 "g_gan": g_out["g_gan"].item(), "g_l1": g_out["g_l1"].item()}
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v
        count += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            entry = {"step": step, "seconds": round(time.perf_counter() - start, 2),
                     **{k: v / count for k, v in sums.items()}}
            sums, count = {}, 0
            if history is not None:
                history.append(entry)
            if callback is not None:
                callback(entry)
