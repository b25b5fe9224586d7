"""medmodal.layers.masking: the three masked means, mask checks, old import paths."""

from __future__ import annotations

import pytest
import torch

from medmodal.layers.masking import check_modality_mask, mask_modalities, masked_mean, masked_pair_mean, present_mean


def test_masked_pair_mean_weights_and_empty():
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    mask = torch.tensor([[True, False], [True, True]])
    assert masked_pair_mean(v, mask).item() == pytest.approx((1 + 3 + 4) / 3)
    w = torch.tensor([2.0, 0.5])
    assert masked_pair_mean(v, mask, w).item() == pytest.approx((2 + 6 + 2) / 3)
    assert masked_pair_mean(v, torch.zeros(2, 2, dtype=torch.bool)).item() == 0.0
    v_nan = v.clone()
    v_nan[0, 1] = float("nan")
    assert masked_pair_mean(v_nan, mask).item() == pytest.approx((1 + 3 + 4) / 3)


def test_masked_mean_tokens_and_modalities():
    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
    out = masked_mean(x, mask)
    torch.testing.assert_close(out[0], x[0, :2].mean(0))
    assert (out[1] == 0).all()  # nothing present -> 0
    feats = torch.randn(2, 2, 5, 4, 4)  # [B, M, C, H, W]
    present = torch.tensor([[True, False], [True, True]])
    torch.testing.assert_close(masked_mean(feats, present)[0], feats[0, 0])
    torch.testing.assert_close(masked_mean(feats, present)[1], feats[1].mean(0))


def test_present_mean_is_nan_safe():
    feats = torch.randn(2, 3, 5, 4)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    torch.testing.assert_close(present_mean(feats, mask)[1], feats[1, 2])
    bad = feats.clone()
    bad[~mask] = float("nan")
    torch.testing.assert_close(present_mean(bad, mask), present_mean(feats, mask))
    assert (mask_modalities(bad, mask)[~mask] == 0).all()


def test_check_modality_mask():
    assert check_modality_mask([[1, 0], [0, 1]], 2, 2).dtype == torch.bool
    with pytest.raises(ValueError, match=r"\[1\]"):
        check_modality_mask(torch.tensor([[True, False], [False, False]]), 2, 2)
    with pytest.raises(ValueError, match="shape"):
        check_modality_mask(torch.ones(2, 3, dtype=torch.bool), 2, 2)


def test_old_import_paths():
    from medmodal.losses.segmentation import masked_mean as loss_mean
    from medmodal.models.endoscopy.blocks import masked_mean as endo_mean
    from medmodal.models.image_text.layers import masked_mean as text_mean
    from medmodal.models.segmentation.blocks import check_modality_mask as c, mask_modalities as m
    from medmodal.models.segmentation.blocks import masked_mean as seg_mean

    assert loss_mean is masked_pair_mean and seg_mean is present_mean
    assert endo_mean is masked_mean and text_mean is masked_mean
    assert c is check_modality_mask and m is mask_modalities
