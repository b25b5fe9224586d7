"""Two-view wrappers for consistency / semi-supervised training (FixMatch, mean teacher, ...).

:class:`TwoViewDataset` pairs two datasets over the *same* items (each built with its own
transform, e.g. a weak and a strong augmentation) and returns both views of item ``i``;
an optional ``strong_hook`` post-processes the strong view (e.g. :class:`Cutout`). Nothing here
knows the modality or the item layout: the item is whatever the wrapped datasets return.

Determinism: the wrapper draws no random number itself; the wrapped datasets draw theirs from
(seed, epoch, index) and :class:`Cutout` seeds its own generator from (seed, epoch, index), so a
worker's item does not depend on which worker loads it or in which order.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

__all__ = ["TwoViewDataset", "Cutout"]


class Cutout:
    """Cutout (DeVries & Taylor 2017, as in FixMatch's strong view), deterministic per item.

    ``cutout(item, index, epoch)`` sets, in place and for each key in ``keys``, one random square
    covering ``fraction`` of the image area (edge ``max(1, round(S * sqrt(fraction)))``, ``S`` the
    last dimension of the first key's image) to 0 (the normalised mean) and returns the item.
    The squares are drawn, one ``(y, x)`` per key in ``keys`` order, from a generator seeded with
    ``hash((seed, epoch, index, 17)) & 0xFFFFFFFF``. ``fraction`` 0: the item is returned unchanged.

    Args:
        fraction: area fraction in ``[0, 1)`` (FixMatch: 0.25 here, see ``FixMatchSettings.cutout``).
        keys: the item's image keys, ``[C, S, S]`` tensors (MICS: ``("wli", "nbi")``).
        seed: base seed (MICS: the strong view dataset's augmentation seed).
    """

    def __init__(self, fraction: float, keys: Sequence[str], seed: int = 0):
        self.fraction, self.keys, self.seed = float(fraction), tuple(keys), int(seed)

    def __call__(self, item: dict, index: int, epoch: int) -> dict:
        if self.fraction <= 0:
            return item
        key = hash((self.seed, epoch, index, 17)) & 0xFFFF_FFFF
        g = torch.Generator().manual_seed(key)
        s = item[self.keys[0]].shape[-1]
        edge = max(1, int(round(s * self.fraction ** 0.5)))
        for m in self.keys:
            y, x = (int(v) for v in torch.randint(0, s - edge + 1, (2,), generator=g))
            item[m][:, y:y + edge, x:x + edge] = 0
        return item


class TwoViewDataset(Dataset):
    """``{"weak": weak[i], "strong": strong_hook(strong[i], i, epoch)}`` of one item.

    Args:
        weak / strong: two datasets of the same length over the same items (same order), built
            with the weak and the strong transform.
        strong_hook: optional ``(item, index, epoch) -> item`` applied to the strong view
            (e.g. :class:`Cutout`).

    ``set_epoch(epoch)`` is forwarded to both datasets (when they have it) and passed to the hook.
    The strong view is loaded before the weak one.
    """

    def __init__(self, weak: Dataset, strong: Dataset,
                 strong_hook: Callable[[dict, int, int], dict] | None = None):
        if len(weak) != len(strong):
            raise ValueError(f"weak and strong views must have the same length, got {len(weak)} and {len(strong)}")
        self.weak, self.strong, self.strong_hook = weak, strong, strong_hook
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for view in (self.weak, self.strong):
            if hasattr(view, "set_epoch"):
                view.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.weak)

    def __getitem__(self, index: int) -> dict:
        strong = self.strong[index]
        if self.strong_hook is not None:
            strong = self.strong_hook(strong, index, self.epoch)
        return {"weak": self.weak[index], "strong": strong}
