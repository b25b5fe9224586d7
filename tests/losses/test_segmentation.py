"""SegmentationLoss (= MONAI Dice+CE), masked per-sequence auxiliary loss, deep supervision."""

from __future__ import annotations

import pytest
import torch

from medmodal.losses.segmentation import (
    SegmentationLoss,
    deep_supervision_loss,
    masked_aux_loss,
    masked_mean,
    resize_labels,
)

K = 3


def _labels(b=2, size=(4, 4, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, K, (b, *size), generator=g)
    y[:, 0, 0, 0], y[:, 0, 0, 1], y[:, 0, 0, 2] = 0, 1, 2  # every class in every sample
    return y


def _perfect_logits(y, scale=30.0):
    return torch.nn.functional.one_hot(y, K).movedim(-1, 1).float() * scale


@pytest.mark.parametrize("include_background", [False, True])
@pytest.mark.parametrize("squared_pred", [False, True])
@pytest.mark.parametrize("batch", [False, True])
def test_segmentation_loss_equals_monai_dice_ce(include_background, squared_pred, batch):
    """Our compile-friendly Dice+CE is MONAI's DiceCELoss / DiceLoss, value and gradient bit for bit
    (a training run must not drift from one using MONAI's loss)."""
    from monai.losses import DiceCELoss, DiceLoss

    y = _labels(b=3, size=(5, 4, 6))
    y[2] = 0  # a sample without foreground (smoothing terms matter)
    kw = dict(include_background=include_background, squared_pred=squared_pred, batch=batch, to_onehot_y=True,
              softmax=True, lambda_dice=0.7, lambda_ce=1.3)
    ours = SegmentationLoss(include_background=include_background, squared_pred=squared_pred, batch=batch,
                            lambda_dice=0.7, lambda_ce=1.3)
    x = torch.randn(3, K, 5, 4, 6, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    got, want = ours(x, y), DiceCELoss(**kw)(x_ref, y[:, None])
    assert torch.equal(got, want)
    got.backward()
    want.backward()
    assert torch.equal(x.grad, x_ref.grad)
    if not batch:
        dice_kw = {k: v for k, v in kw.items() if not k.startswith("lambda")}
        dice = DiceLoss(**dice_kw, reduction="none")(x.detach(), y[:, None]).flatten(1).mean(1)
        ce = torch.nn.functional.cross_entropy(x.detach(), y, reduction="none").flatten(1).mean(1)
        torch.testing.assert_close(ours.per_sample(x.detach(), y), 0.7 * dice + 1.3 * ce, rtol=1e-6, atol=1e-6)


def test_segmentation_loss_near_zero_for_perfect_and_positive_for_random():
    y = _labels()
    loss = SegmentationLoss()
    perfect = loss(_perfect_logits(y), y)
    rand = loss(torch.randn(2, K, 4, 4, 4), y)
    assert torch.isfinite(perfect) and perfect.item() < 1e-3
    assert rand.item() > 0.5


def test_per_sample_matches_batch_and_is_independent_per_sample():
    y = _labels()
    x = torch.randn(2, K, 4, 4, 4)
    loss = SegmentationLoss()
    ps = loss.per_sample(x, y)
    assert ps.shape == (2,)
    assert torch.allclose(ps.mean(), loss(x, y), atol=1e-6)
    x2 = x.clone()
    x2[1] = _perfect_logits(y[1:])[0]
    ps2 = loss.per_sample(x2, y)
    assert torch.allclose(ps2[0], ps[0]) and ps2[1] < ps[1]
    assert torch.allclose(ps[0], loss(x[:1], y[:1]), atol=1e-6)


def test_segmentation_loss_shape_errors():
    with pytest.raises(ValueError):
        SegmentationLoss()(torch.randn(2, K, 4, 4, 4), torch.zeros(2, 4, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError):
        SegmentationLoss(batch=True).per_sample(torch.randn(1, K, 4, 4, 4), torch.zeros(1, 4, 4, 4, dtype=torch.long))


def test_masked_aux_loss_ignores_missing_pairs():
    torch.manual_seed(0)
    y = _labels()
    mask = torch.tensor([[True, False, True], [False, True, False]])
    aux = torch.randn(2, 3, K, 4, 4, 4, requires_grad=True)
    out = masked_aux_loss(aux, y, mask)
    assert out.shape == (2, 3)
    assert (out[~mask] == 0).all() and (out[mask] > 0).all()
    seg = SegmentationLoss()
    assert torch.allclose(out[0, 2], seg(aux[0, 2][None], y[0][None]), atol=1e-6)
    assert torch.allclose(out[1, 1], seg(aux[1, 1][None], y[1][None]), atol=1e-6)

    # changing the logits of missing pairs (even to NaN) changes nothing
    aux2 = aux.detach().clone()
    aux2[0, 1] = float("nan")
    aux2[1, 0] = 1e6
    aux2[1, 2] = torch.randn(K, 4, 4, 4)
    assert torch.equal(masked_aux_loss(aux2, y, mask), out.detach())

    # even NaN logits of a missing pair give no NaN gradient to anything
    aux_nan = aux2.requires_grad_()
    masked_aux_loss(aux_nan, y, mask, reduction="mean").backward()
    assert torch.isfinite(aux_nan.grad).all() and (aux_nan.grad[~mask] == 0).all()

    mean = masked_aux_loss(aux, y, mask, reduction="mean")
    assert torch.allclose(mean, out[mask].mean())
    mean.backward()
    g = aux.grad.flatten(2).abs().sum(-1)
    assert (g[~mask] == 0).all() and (g[mask] > 0).all()


def test_masked_mean_old_name_is_masked_pair_mean():
    from medmodal.layers.masking import masked_pair_mean

    assert masked_mean is masked_pair_mean


def test_resize_labels_nearest():
    y = torch.arange(16).reshape(1, 4, 4)
    small = resize_labels(y, (2, 2))
    assert small.dtype == torch.long and torch.equal(small, torch.tensor([[[0, 2], [8, 10]]]))
    assert resize_labels(y, (4, 4)) is y


def test_deep_supervision_weights_and_downsampling():
    y = _labels(size=(8, 8, 8))
    seg = SegmentationLoss()
    z_full = torch.randn(2, K, 8, 8, 8)
    z_half = torch.randn(2, K, 4, 4, 4)
    z_q = torch.randn(2, K, 2, 2, 2)
    got = deep_supervision_loss(seg, [z_full, z_half, z_q], y, weights=(0.5, 0.25))
    want = (0.5 * seg(z_full, y) + 0.25 * seg(z_half, resize_labels(y, (4, 4, 4)))
            + 0.125 * seg(z_q, resize_labels(y, (2, 2, 2))))
    assert torch.allclose(got, want, atol=1e-6)
    assert deep_supervision_loss(seg, [], y).item() == 0.0
