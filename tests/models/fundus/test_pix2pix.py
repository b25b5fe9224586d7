"""Pix2pix generator / PatchGAN shapes and the pix2pix objective on hand-made logits."""

import math

import pytest
import torch

from medmodal.losses import StepContext, get_objective_class
from medmodal.losses.pix2pix import Pix2PixObjective, discriminator_loss, generator_loss
from medmodal.models.fundus import PatchDiscriminator, Pix2PixGenerator


@pytest.mark.parametrize("depth,side", [(4, 64), (5, 96)])
def test_generator_shape_and_range(depth, side):
    torch.manual_seed(0)
    g = Pix2PixGenerator(base_width=8, depth=depth)
    y = g(torch.rand(2, 2, side, side).round())
    assert y.shape == (2, 3, side, side) and y.min() >= -1 and y.max() <= 1


def test_generator_refuses_bad_input():
    g = Pix2PixGenerator(base_width=8, depth=4)
    with pytest.raises(ValueError, match="divisible by 16"):
        g(torch.zeros(1, 2, 40, 40))
    with pytest.raises(ValueError, match="expects"):
        g(torch.zeros(1, 1, 64, 64))


def test_discriminator_patches_and_receptive_field():
    d = PatchDiscriminator(base_width=8)
    assert d.receptive_field() == 70  # the paper's 70 x 70 PatchGAN
    out = d(torch.zeros(2, 2, 64, 64), torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 1, 6, 6)
    assert PatchDiscriminator(base_width=8, n_layers=2).receptive_field() == 34


def test_objective_values_on_hand_made_logits():
    obj = get_objective_class("pix2pix")()
    assert isinstance(obj, Pix2PixObjective) and obj.lambda_l1 == 100.0
    zero, big = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 50.0)
    out = obj({"real_logits": zero, "fake_logits": zero}, StepContext(stage="discriminator"))
    assert out["loss"].item() == pytest.approx(math.log(2))  # 0.5 * (log 2 + log 2)
    out = obj({"real_logits": big, "fake_logits": -big}, StepContext(stage="discriminator"))
    assert out["loss"].item() == pytest.approx(0.0, abs=1e-6)
    fake, target = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    out = obj({"fake_logits": zero, "fake": fake, "target": target}, StepContext(stage="generator"))
    assert out["g_gan"].item() == pytest.approx(math.log(2))
    assert out["g_l1"].item() == pytest.approx(0.5)
    assert out["loss"].item() == pytest.approx(math.log(2) + 50.0)
    # non-saturating: a fooled discriminator (fake logits high) gives a small generator GAN term
    total, gan, l1 = generator_loss(big, target, target, lambda_l1=10.0)
    assert gan.item() == pytest.approx(0.0, abs=1e-6) and l1.item() == 0.0 and total.item() == pytest.approx(0.0, abs=1e-6)
    assert discriminator_loss(zero, zero).item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="stage"):
        obj({}, StepContext(stage=1))


def test_objective_gradients_reach_the_generator_output():
    fake = torch.zeros(1, 3, 4, 4, requires_grad=True)
    out = Pix2PixObjective(lambda_l1=1.0)({"fake_logits": fake.mean().view(1, 1, 1, 1), "fake": fake,
                                            "target": torch.ones(1, 3, 4, 4)}, StepContext(stage="generator"))
    out["loss"].backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_resize_generator_with_input_skip():
    torch.manual_seed(0)
    g = Pix2PixGenerator(base_width=8, depth=4, upsample="resize", input_skip=True)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules())
    x = torch.rand(2, 2, 64, 64).round()
    y = g(x)
    assert y.shape == (2, 3, 64, 64) and y.min() >= -1 and y.max() <= 1
    x.requires_grad_(True)
    g.eval()(x)[0, 0, 10, 10].backward()  # the condition reaches an output pixel through the full-resolution skip
    assert x.grad[0, :, 9:12, 9:12].abs().sum() > 0
    with pytest.raises(ValueError, match="upsample"):
        Pix2PixGenerator(upsample="bicubic")


def test_weighted_l1_counts_weighted_pixels_more():
    fake, target = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    target[..., 0, 0] = 1.0
    weight = torch.ones(1, 1, 2, 2)
    logits = torch.zeros(1, 1, 1, 1)
    assert generator_loss(logits, fake, target, 1.0, weight)[2] == pytest.approx(0.25)
    weight[..., 0, 0] = 5.0
    assert generator_loss(logits, fake, target, 1.0, weight)[2] == pytest.approx(5 / 8)
