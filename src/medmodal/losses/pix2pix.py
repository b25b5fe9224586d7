"""The pix2pix objective (Isola et al., CVPR 2017): conditional GAN + lambda * L1.

A GAN alternates two updates, so the objective has two *stages* (``StepContext.stage``):

* ``"discriminator"``: ``0.5 * (BCE(D(x, y), 1) + BCE(D(x, G(x)), 0))`` (the paper halves D's loss
  to slow D down relative to G); inputs ``real_logits`` and ``fake_logits`` (G's output detached
  by the caller).
* ``"generator"``: the non-saturating GAN term ``BCE(D(x, G(x)), 1)`` plus ``lambda_l1 * |G(x) - y|_1``
  (mean absolute error over pixels and channels; ``lambda_l1 = 100`` as the paper); inputs
  ``fake_logits`` (with gradients to G), ``fake`` and ``target``; optionally ``l1_weight``, a per-pixel
  weight of the L1 term (:func:`generator_loss`).

BCE is ``binary_cross_entropy_with_logits`` averaged over the PatchGAN's patches. The plain functions
(:func:`discriminator_loss`, :func:`generator_loss`) are the same terms without the contract.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from medmodal.losses.base import Objective, StepContext, register_objective

__all__ = ["Pix2PixObjective", "discriminator_loss", "generator_loss", "STAGES"]

STAGES = ("generator", "discriminator")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``0.5 * (BCE(real_logits, 1) + BCE(fake_logits, 0))``, each averaged over patches."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return 0.5 * (real + fake)


def generator_loss(fake_logits: torch.Tensor, fake: torch.Tensor, target: torch.Tensor, lambda_l1: float = 100.0,
                   weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, gan, l1)``: ``gan = BCE(fake_logits, 1)`` (non-saturating), ``l1 = mean |fake - target|``,
    ``total = gan + lambda_l1 * l1``.

    ``weight`` (``[B, 1, H, W]``, >= 0; optional): a per-pixel weight of the L1 term, normalised by its mean
    (``l1 = mean(weight * |fake - target|) / mean(weight)``), e.g. more weight on thin structures that
    cover few pixels (not in the paper; see :mod:`medmodal.engine.fundus.pix2pix`)."""
    gan = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if weight is None:
        l1 = F.l1_loss(fake, target)
    else:
        l1 = (weight * (fake - target).abs()).mean() / weight.mean().clamp_min(1e-12)
    return gan + lambda_l1 * l1, gan, l1


@register_objective("pix2pix")
class Pix2PixObjective(Objective):
    """``objective(inputs, StepContext(stage=...))`` (module docstring).

    Returns for ``stage="discriminator"``: ``{"loss", "d_real", "d_fake"}`` (the two BCE halves,
    detached); for ``stage="generator"``: ``{"loss", "g_gan", "g_l1"}``.
    """

    def __init__(self, lambda_l1: float = 100.0):
        super().__init__()
        self.lambda_l1 = float(lambda_l1)

    def forward(self, inputs: dict[str, Any], context: StepContext) -> dict[str, torch.Tensor]:
        stage = context.stage
        if stage == "discriminator":
            real, fake = inputs["real_logits"], inputs["fake_logits"]
            d_real = F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            d_fake = F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
            return {"loss": 0.5 * (d_real + d_fake), "d_real": d_real.detach(), "d_fake": d_fake.detach()}
        if stage == "generator":
            total, gan, l1 = generator_loss(inputs["fake_logits"], inputs["fake"], inputs["target"], self.lambda_l1,
                                            inputs.get("l1_weight"))
            return {"loss": total, "g_gan": gan.detach(), "g_l1": l1.detach()}
        raise ValueError(f"Pix2PixObjective: stage must be one of {STAGES}, got {stage!r}")
