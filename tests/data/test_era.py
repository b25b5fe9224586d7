"""ERANet's edge replacement augmentation (medmodal.data.era)."""

import numpy as np
import pytest
import torch

from medmodal.data.era import edge_replacement, edge_replacement_batch


def _slice():
    label = np.zeros((16, 32), dtype=np.int64)
    label[6:9, 4:14] = 1           # a horizontal bar (a meniscus-like structure)
    label[6:9, 18:28] = 1          # a second one
    label[12:14, 2:30] = 2         # another class (cartilage-like), never cut
    image = np.full((1, 16, 32), 0.05, dtype=np.float32)
    image[0][label == 1] = 0.9
    return image, label


def test_ends_are_cut_and_filled_and_other_classes_untouched():
    image, label = _slice()
    img, lab = edge_replacement(image, label, [1], np.random.default_rng(0), max_cut=0.3)
    removed = (label == 1) & (lab == 0)
    assert removed.any()
    assert ((lab == 1) <= (label == 1)).all()              # only removals
    assert (lab[label == 2] == 2).all()                    # class 2 kept
    assert ((img[0][removed] >= 100 / 255) & (img[0][removed] <= 200 / 255)).all()
    assert np.array_equal(img[0][~removed], image[0][~removed])
    # the cut is at the ends: every kept column of a bar lies inside the original extent, the middle survives
    for cols in ((4, 14), (18, 28)):
        mid = (cols[0] + cols[1]) // 2
        assert (lab[6:9, mid] == 1).all()
        cut = np.nonzero((lab[6:9, cols[0]:cols[1]] == 1).any(0))[0]
        assert len(cut) >= int(np.ceil(10 * 0.4)) - 1      # at most 30 % off each end


def test_no_structure_no_change_and_bad_arguments():
    image, label = _slice()
    img, lab = edge_replacement(image, label, [3], np.random.default_rng(0))
    assert np.array_equal(img, image) and np.array_equal(lab, label)
    with pytest.raises(ValueError, match="max_cut"):
        edge_replacement(image, label, [1], np.random.default_rng(0), max_cut=0.6)
    with pytest.raises(ValueError, match="must match"):
        edge_replacement(image, label[:8], [1], np.random.default_rng(0))


def test_batch_version_keeps_dtypes_and_is_seeded():
    image, label = _slice()
    x = torch.from_numpy(np.stack([image, image]))
    y = torch.from_numpy(np.stack([label, label]))
    a = edge_replacement_batch(x, y, [1], np.random.default_rng(3))
    b = edge_replacement_batch(x, y, [1], np.random.default_rng(3))
    assert a[0].dtype == x.dtype and a[1].dtype == y.dtype
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1][0], a[1][1])              # each slice draws its own cuts
