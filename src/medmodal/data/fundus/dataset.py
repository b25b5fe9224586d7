"""Fundus vessel datasets: network-grid items for training and evaluation, and a real + synthetic mix.

:class:`FundusVesselDataset` turns :class:`~medmodal.data.fundus.layouts.FundusSample` records into
items ``{"image": float [3, H, W], "label": float [1, H, W] in {0, 1}, "fov": float [1, H, W] in
{0, 1}, "sample_id": str}`` (evaluation items add ``"grid"``, the :class:`~medmodal.data.fundus.geometry.Grid`
that :func:`~medmodal.data.fundus.geometry.to_native` needs to map a prediction back).

Per item:

1. **Network grid.** Image, first observer's label and FOV (the mask file, or derived) are brought
   to the geometry's common FOV diameter by :func:`~medmodal.data.fundus.geometry.to_network`. The
   result is cached **in memory, per process** (each DataLoader worker fills its own copy on first
   use; nothing is written to disk). At the reduced diameter (270 px) a DRIVE image is ~0.3 x 0.3
   Mpx, ~1.5 MB with its masks; 40 images are ~60 MB. The label is restricted to the FOV (the
   benchmarks score inside it; DRIVE / CHASE_DB1 manuals lie inside it anyway).
2. **Training** (``train=True``):

   * *crop*: a ``crop x crop`` window whose centre is a random FOV pixel (so no crop is all
     background), zero padded where the grid is smaller; ``crop=None`` keeps the whole grid.
   * *standard ERM augmentation* (``augment="standard"``), the SAME geometric op on image, label and
     FOV (torchvision ``transforms.v2.functional`` with parameters drawn here): horizontal flip
     (p 0.5), vertical flip (p 0.5), a rotation by ``k * 90`` degrees (``k`` uniform in 0-3; 0 / 2
     only on a non-square item, whose shape must not change), a small rotation uniform in
     +-:data:`SMALL_ROTATION` degrees with p 0.5 (bilinear for the image, nearest for label and FOV,
     zeros brought in at the corners); then colour jitter in a random order, as ``ColorJitter``
     does: brightness and contrast factors in ``[0.8, 1.2]``, saturation ``[0.8, 1.2]``, hue shift
     ``[-0.05, 0.05]`` (:data:`JITTER`). ``augment="none"``: no augmentation (crop only).
   * *PixMix* (optional, after the standard augmentation): :class:`medmodal.data.pixmix.PixMix` on
     the ``[0, 1]`` image; only pixels **inside the FOV** take the mixed values (the black
     surround stays black, as in every real photograph, so the network cannot read the mixing
     picture off the background). Label and FOV are never touched.
3. **Normalisation** (``normalize="fov"``, default): per image and channel, zero mean and unit
   standard deviation over the FOV pixels, 0 outside the FOV (the brightness and colour of a
   camera, which differ most between domains, are removed; the same rule at test time).
   ``normalize="none"``: the ``[0, 1]`` image as is.

**Randomness.** Every draw of item ``index`` comes from ``numpy.random.default_rng([seed, epoch,
index])`` (:meth:`FundusVesselDataset.set_epoch`), so an item depends neither on the worker that loads
it nor on the order; no global RNG is used.

**Evaluation** (``train=False``): the whole network grid, no augmentation, no PixMix, plus ``grid``.
Network grids of different images differ in size, so batch evaluation items with
:func:`collate_fundus` (``batch_size=1`` is the usual setting), which stacks equal-sized tensors and
keeps grids and ids as lists. Training with ``crop=None`` likewise needs equal-sized images.

:class:`SyntheticPairs` mixes real items with pairs from a callable (the structure pipeline renders
pseudo-fundus images from synthetic vessel trees), at an exact ratio per epoch; the synthetic pairs
go through the same crop, augmentation, PixMix and normalisation.

Splits: :func:`fundus_splits` (the protocol "validation drawn from the source's training images only").
"""

from __future__ import annotations

import math
import re
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from medmodal.data.fundus.arrays import load_fov, load_image, load_label
from medmodal.data.fundus.geometry import FundusGeometry, Grid, to_network
from medmodal.data.fundus.layouts import FundusSample
from medmodal.data.pixmix import PixMix
from medmodal.data.splits import SPLIT_NAMES, make_splits
from medmodal.errors import ConfigError, DataError

__all__ = ["FundusVesselDataset", "SyntheticPairs", "collate_fundus", "fundus_splits", "patient_of",
           "AUGMENTS", "NORMALIZATIONS", "SMALL_ROTATION", "JITTER", "DEFAULT_VAL_FRACTION",
           "DEFAULT_TEST_FRACTION"]

AUGMENTS = ("standard", "none")
NORMALIZATIONS = ("fov", "none")
#: Largest small rotation (degrees) of the standard augmentation.
SMALL_ROTATION = 15.0
#: Colour-jitter ranges of the standard augmentation (factors for brightness / contrast / saturation, shift for hue).
JITTER = {"brightness": (0.8, 1.2), "contrast": (0.8, 1.2), "saturation": (0.8, 1.2), "hue": (-0.05, 0.05)}

Pair = tuple[np.ndarray, np.ndarray, np.ndarray]


def _tensor_image(image: np.ndarray) -> torch.Tensor:
    """``[H, W, 3]`` (0-255, uint8 or float) or ``[3, H, W]`` float in ``[0, 1]`` -> float ``[3, H, W]`` in ``[0, 1]``."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).clamp(0, 1)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise DataError(f"expected an RGB image [H, W, 3] or [3, H, W], got shape {array.shape}")
    return (torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(2, 0, 1) / 255.0).clamp(0, 1)


def _tensor_mask(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(mask) > 0, dtype=np.float32))[None]


class FundusVesselDataset(torch.utils.data.Dataset):
    """Fundus photographs with their first observer's vessel label and FOV on the network grid (module docstring).

    Args:
        samples: the records (e.g. ``read_fundus(root).samples``, or one split of them); every one
            must carry a label.
        geometry: the network grid (default :class:`FundusGeometry()`, 540 px FOV diameter).
        train: training items (crop, augmentation, PixMix) or evaluation items (whole grid + ``grid``).
        crop: training crop side (pixels of the network grid), ``None``: the whole grid.
        augment: ``"standard"`` or ``"none"``.
        pixmix: applied after the standard augmentation in training, inside the FOV; ``None``: off.
        seed: the dataset's seed (items are functions of ``(seed, epoch, index)``).
        normalize: ``"fov"`` (per-image z-score inside the FOV) or ``"none"`` (``[0, 1]``).
    """

    def __init__(self, samples: Sequence[FundusSample], geometry: FundusGeometry | None = None, train: bool = True,
                 crop: int | None = None, augment: str = "standard", pixmix: PixMix | None = None, seed: int = 0,
                 normalize: str = "fov"):
        if augment not in AUGMENTS:
            raise ConfigError(f"unknown fundus augmentation {augment!r}; choose one of {', '.join(AUGMENTS)}")
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"unknown fundus normalisation {normalize!r}; choose one of {', '.join(NORMALIZATIONS)}")
        if crop is not None and (isinstance(crop, bool) or not isinstance(crop, (int, np.integer)) or crop < 8):
            raise ConfigError(f"fundus crop must be an integer >= 8 or None, got {crop!r}")
        self.samples = list(samples)
        unlabelled = [s.image for s in self.samples if not s.labels]
        if unlabelled:
            raise DataError(f"{unlabelled[0]}: no vessel label (a vessel dataset needs labelled images; "
                            f"{len(unlabelled)} unlabelled)")
        self.geometry = geometry or FundusGeometry()
        self.train, self.crop, self.augment, self.pixmix = bool(train), crop, augment, pixmix
        self.seed, self.normalize, self.epoch = int(seed), normalize, 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, Grid]] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def network_arrays(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Grid]:
        """``(image float32 [h, w, 3] 0-255, label bool, fov bool, grid)`` of sample ``index`` on the
        network grid, cached in memory (per process) after the first call."""
        if index not in self._cache:
            sample = self.samples[index]
            image = load_image(sample)
            fov = load_fov(sample, image)
            label = load_label(sample, 0, image.shape[:2])
            (net_image, net_fov, net_label), grid = to_network(image, fov, label, geometry=self.geometry,
                                                               name=str(sample.image))
            self._cache[index] = (net_image, net_label & net_fov, net_fov, grid)
        return self._cache[index]

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def prepare(self, image: np.ndarray, label: np.ndarray, fov: np.ndarray, rng: np.random.Generator | None,
                train: bool | None = None) -> dict:
        """Crop, augment, PixMix and normalise one network-grid triple (``rng`` may be ``None`` for eval).

        ``image``: ``[h, w, 3]`` 0-255 or ``[3, h, w]`` in ``[0, 1]``; ``label``, ``fov``: ``[h, w]`` 0 / 1.
        Returns ``{"image", "label", "fov"}`` tensors.
        """
        x, y, m = _tensor_image(image), _tensor_mask(label), _tensor_mask(fov)
        if tuple(y.shape[-2:]) != tuple(x.shape[-2:]) or tuple(m.shape[-2:]) != tuple(x.shape[-2:]):
            raise DataError(f"label / FOV size {tuple(y.shape[-2:])} / {tuple(m.shape[-2:])} differs from the "
                            f"image's {tuple(x.shape[-2:])}")
        y = y * m
        train = self.train if train is None else train
        if train:
            if rng is None:
                raise ValueError("training items need a random generator")
            if self.crop is not None:
                x, y, m = _random_crop((x, y, m), self.crop, rng)
            if self.augment == "standard":
                x, y, m = _geometric(x, y, m, rng)
                x = _colour_jitter(x, rng)
            if self.pixmix is not None:
                mixed = self.pixmix(x, rng)
                x = torch.where(m > 0, mixed, x)
        return {"image": self._normalise(x, m), "label": y, "fov": m}

    def _normalise(self, x: torch.Tensor, fov: torch.Tensor) -> torch.Tensor:
        if self.normalize == "none":
            return x.contiguous()
        inside = fov[0] > 0
        if int(inside.sum()) < 2:
            return torch.zeros_like(x)
        values = x[:, inside]
        mean, std = values.mean(1), values.std(1).clamp_min(1e-6)
        return ((x - mean[:, None, None]) / std[:, None, None] * fov).contiguous()

    def __getitem__(self, index: int) -> dict:
        image, label, fov, grid = self.network_arrays(index)
        item = self.prepare(image, label, fov, self.rng(index) if self.train else None)
        item["sample_id"] = self.samples[index].id
        if not self.train:
            item["grid"] = grid
        return item


def _random_crop(tensors: tuple[torch.Tensor, ...], size: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """A ``size x size`` window centred on a random FOV pixel (the last tensor is the FOV), zero padded."""
    h, w = tensors[0].shape[-2:]
    fov = tensors[-1][0].numpy() > 0
    rows, cols = np.nonzero(fov)
    if len(rows):
        pick = int(rng.integers(len(rows)))
        cy, cx = int(rows[pick]), int(cols[pick])
    else:
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, x0 = cy - size // 2, cx - size // 2
    if h >= size:
        y0 = min(max(y0, 0), h - size)
    if w >= size:
        x0 = min(max(x0, 0), w - size)
    out = []
    for t in tensors:
        window = torch.zeros(t.shape[0], size, size, dtype=t.dtype)
        sy0, sy1, sx0, sx1 = max(y0, 0), min(y0 + size, h), max(x0, 0), min(x0 + size, w)
        window[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = t[:, sy0:sy1, sx0:sx1]
        out.append(window)
    return tuple(out)


def _geometric(x: torch.Tensor, y: torch.Tensor, m: torch.Tensor, rng: np.random.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same flips, 90-degree rotation and small rotation on image, label and FOV."""
    hflip, vflip = rng.random() < 0.5, rng.random() < 0.5
    square = x.shape[-1] == x.shape[-2]
    k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
    rotate = rng.random() < 0.5
    angle = float(rng.uniform(-SMALL_ROTATION, SMALL_ROTATION))
    out = []
    for t, mode in ((x, InterpolationMode.BILINEAR), (y, InterpolationMode.NEAREST), (m, InterpolationMode.NEAREST)):
        if hflip:
            t = TF.horizontal_flip(t)
        if vflip:
            t = TF.vertical_flip(t)
        if k:
            t = torch.rot90(t, k, dims=(-2, -1))
        if rotate:
            t = TF.rotate(t, angle, interpolation=mode, fill=0.0)
        out.append(t.contiguous())
    return out[0], out[1], out[2]


def _colour_jitter(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and hue (:data:`JITTER`) in a random order, as ``ColorJitter``."""
    ops = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
           "saturation": TF.adjust_saturation, "hue": TF.adjust_hue}
    names = list(ops)
    values = {name: float(rng.uniform(*JITTER[name])) for name in names}
    for i in rng.permutation(len(names)):
        name = names[int(i)]
        x = ops[name](x, values[name])
    return x.clamp(0, 1)


def collate_fundus(batch: list[dict]) -> dict:
    """Stack the tensors of equal-sized items; ids, grids and any other value become lists."""
    out: dict = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        if isinstance(values[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise DataError(f"fundus items of different sizes {sorted(shapes)} in one batch: use batch_size=1 "
                                "for whole-image items, or a crop")
            out[key] = torch.stack(values)
        else:
            out[key] = values
    return out


class SyntheticPairs(torch.utils.data.Dataset):
    """Real items of ``dataset`` mixed with synthetic ``(image, label, fov)`` pairs from ``make_pair``.

    Exactly ``round(ratio * len)`` of the ``len = ceil(len(dataset) / (1 - ratio))`` indices are synthetic
    (every ``1 / ratio``-th, spread evenly; shuffle with the sampler), and every real item appears
    once per epoch. ``make_pair(rng)`` takes a ``numpy.random.Generator`` (seeded from ``(seed,
    epoch, index)``) and returns a pair already on the network grid: image ``[h, w, 3]`` 0-255 (or
    ``[3, h, w]`` in ``[0, 1]``), label and FOV ``[h, w]`` 0 / 1. Synthetic pairs go through the base
    dataset's crop, augmentation, PixMix and normalisation (:meth:`FundusVesselDataset.prepare`).
    Every item gets ``"synthetic"`` (bool tensor); synthetic ids are ``synthetic/<epoch>/<index>``.
    """

    def __init__(self, dataset: FundusVesselDataset, make_pair: Callable[[np.random.Generator], Pair],
                 ratio: float, seed: int = 0):
        if not 0.0 <= float(ratio) < 1.0:
            raise ConfigError(f"synthetic ratio must be in [0, 1), got {ratio!r}")
        if not dataset.train:
            raise ValueError("synthetic pairs mix into a training dataset only")
        self.dataset, self.make_pair, self.ratio, self.seed = dataset, make_pair, float(ratio), int(seed)
        self.length = math.ceil(len(dataset) / (1.0 - self.ratio)) if len(dataset) else 0
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return self.length

    def _synthetic_before(self, index: int) -> int:
        """How many of the indices ``0 .. index - 1`` are synthetic (an even spread at ``ratio``)."""
        return math.floor(index * self.ratio + 1e-9)

    def is_synthetic(self, index: int) -> bool:
        real_before = index - self._synthetic_before(index)
        if real_before >= len(self.dataset):
            return True
        return self._synthetic_before(index + 1) > self._synthetic_before(index)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        if not self.is_synthetic(index):
            item = self.dataset[index - self._synthetic_before(index)]
            item["synthetic"] = torch.tensor(False)
            return item
        rng = np.random.default_rng([self.seed, self.epoch, int(index), 7919])
        image, label, fov = self.make_pair(rng)
        item = self.dataset.prepare(image, label, fov, rng, train=True)
        item["sample_id"] = f"synthetic/{self.epoch}/{index}"
        item["synthetic"] = torch.tensor(True)
        return item


# --------------------------------------------------------------------------- splits

#: Share of the training images held out for validation.
DEFAULT_VAL_FRACTION = 0.2
#: Share of the patients put into test where a data set has no official split (CHASE_DB1: 4 of 14
#: children, the literature's 20 / 8 images).
DEFAULT_TEST_FRACTION = 0.3

_CHASE = re.compile(r"image_(\d+)[lr]", re.IGNORECASE)


def patient_of(sample: FundusSample) -> str:
    """The patient a sample belongs to, where the layout encodes it.

    CHASE_DB1 ``Image_<nn>L`` / ``Image_<nn>R`` are the two eyes of child ``nn``: one patient. DRIVE,
    HRF (15 healthy, 15 diabetic-retinopathy, 15 glaucoma subjects, one image each), STARE and generic
    layouts name no patient: each image is its own.
    """
    if sample.layout == "chase_db1":
        m = _CHASE.fullmatch(sample.id)
        if m:
            return f"{sample.layout}:{int(m.group(1)):02d}"
    return f"{sample.layout}:{sample.id}"


def _cut_validation(ids: Iterable[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    ids = sorted(ids)
    if val_fraction <= 0 or len(ids) < 2:
        return ids, []
    parts = make_splits(ids, (1.0 - val_fraction, val_fraction, 0.0), seed)
    return parts["train"], parts["val"]


def fundus_splits(samples: Sequence[FundusSample], val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0, *,
                  test_fraction: float = DEFAULT_TEST_FRACTION, target: bool = False) -> dict[str, list[str]]:
    """``{"train", "val", "test"}`` lists of sample ids, validation drawn from training images only.

    * ``target=True`` (a domain used only for testing): every image is test.
    * DRIVE (samples with ``split`` ``training`` / ``test``): the official split; ``val_fraction`` of
      the training images (seeded) become validation; test is the official test set.
    * Layouts without an official split (CHASE_DB1, HRF, STARE, generic): patients
      (:func:`patient_of`; both eyes of a CHASE_DB1 child stay in one split) sorted by id, the last
      ``round(test_fraction * patients)`` are test (deterministic, no seed: CHASE_DB1 children 11-14,
      the literature's last 8 images); validation is ``val_fraction`` of the remaining patients (seeded).

    Samples of several layouts are split layout by layout and joined.

    Raises:
        ConfigError: a fraction outside ``[0, 1)``. DataError: duplicate sample ids.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= float(value) < 1.0:
            raise ConfigError(f"fundus split {name} must be in [0, 1), got {value!r}")
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise DataError("fundus sample ids are not unique; split one data set at a time")
    out: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    if target:
        out["test"] = sorted(ids)
        return out
    by_layout: dict[str, list[FundusSample]] = {}
    for s in samples:
        by_layout.setdefault(s.layout, []).append(s)
    for layout in sorted(by_layout):
        group = by_layout[layout]
        if any(s.split in ("training", "test") for s in group):
            train, val = _cut_validation([s.id for s in group if s.split != "test"], val_fraction, seed)
            test = [s.id for s in group if s.split == "test"]
        else:
            patients: dict[str, list[str]] = {}
            for s in group:
                patients.setdefault(patient_of(s), []).append(s.id)
            order = sorted(patients)
            n_test = int(round(test_fraction * len(order)))
            if test_fraction > 0 and n_test == 0 and len(order) > 1:
                n_test = 1
            train_p, val_p = _cut_validation(order[:len(order) - n_test], val_fraction, seed)
            train = [i for p in train_p for i in patients[p]]
            val = [i for p in val_p for i in patients[p]]
            test = [i for p in order[len(order) - n_test:] for i in patients[p]]
        out["train"] += sorted(train)
        out["val"] += sorted(val)
        out["test"] += sorted(test)
    return out
