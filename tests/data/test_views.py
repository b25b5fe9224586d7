"""medmodal.data.views: the generic two-view wrapper and the per-item deterministic Cutout."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from medmodal.data.views import Cutout, TwoViewDataset


class _Items(Dataset):
    def __init__(self, scale: float):
        self.scale, self.epoch = scale, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int) -> dict:
        return {"a": torch.full((1, 8, 8), self.scale * (i + 1)), "b": torch.ones(1, 8, 8)}


def test_two_views_with_cutout_are_deterministic_per_item_and_epoch():
    views = TwoViewDataset(_Items(1.0), _Items(2.0), Cutout(0.25, ("a", "b"), seed=5))
    item = views[1]
    assert torch.equal(item["weak"]["a"], torch.full((1, 8, 8), 2.0))
    strong = item["strong"]
    assert int((strong["a"] == 0).sum()) == 16 and int((strong["b"] == 0).sum()) == 16  # 4x4 of 8x8
    assert torch.equal(views[1]["strong"]["a"], strong["a"])
    views.set_epoch(1)
    assert views.weak.epoch == views.strong.epoch == 1
    assert any(not torch.equal(views[i]["strong"]["a"] == 0, views.strong_hook(
        _Items(2.0)[i], i, 0)["a"] == 0) for i in range(3))


def test_no_cutout_and_length_check():
    views = TwoViewDataset(_Items(1.0), _Items(2.0), Cutout(0.0, ("a",)))
    assert len(views) == 3 and torch.equal(views[0]["strong"]["a"], torch.full((1, 8, 8), 2.0))

    class _Short(_Items):
        def __len__(self):
            return 2

    with pytest.raises(ValueError, match="same length"):
        TwoViewDataset(_Items(1.0), _Short(1.0))
