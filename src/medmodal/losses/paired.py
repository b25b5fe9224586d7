"""Paired-view objectives: the three MICS pre-training terms (WLI / NBI endoscopy).

:class:`MICSObjective` (``loss.name: mics``, the default of the endoscopy pre-training engine)::

    out = MICSObjective()({"wli": wli, "nbi": nbi}, StepContext(model=pretrainer, update=..., sample_ids=...))
    # {"loss", "reconstruction", "contrastive", "adversarial", "discriminator_accuracy"}

Total: ``recon_weight * L_rec + contrastive_weight * L_itc + adversarial_weight * L_adv`` with the
weights, temperature, mask ratio and adversarial variant of the model's
:class:`~medmodal.models.endoscopy.pretrain.MICSPretrainConfig` (authors' 10 / 1 / 0.1); a term
with weight 0 is not computed (ablations). The terms (see :mod:`medmodal.models.endoscopy.pretrain`
for the method and its deviations from the released code):

* :func:`contrastive_term`: symmetric InfoNCE of each view's pooled, projected tokens against the
  momentum keys of the batch plus the id-aware queue (:mod:`medmodal.layers.momentum`);
* :func:`reconstruction_term`: MAE-style masked patch reconstruction with the other view as context;
* :func:`adversarial_term`: token-level modality discriminator (gradient reversal or the
  non-saturating flipped-label variant).

Moved from ``MICSPretrainer.compute_losses`` / ``contrastive_loss`` / ``reconstruction_loss`` /
``adversarial_loss`` unchanged: same operations, same order, same random draws (the patch masks are
drawn in ``cfg.reconstruct`` order before the contrastive term).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from medmodal.layers.momentum import enqueue_, own_key_mask
from medmodal.losses.base import Objective, StepContext, register_objective
from medmodal.models.endoscopy.blocks import grad_reverse, patchify, random_patch_mask
from medmodal.models.endoscopy.pretrain import MODALITIES, MICSPretrainer

__all__ = ["MICSObjective", "contrastive_term", "reconstruction_term", "adversarial_term"]


def contrastive_term(model: MICSPretrainer, tokens: Mapping[str, torch.Tensor], images: Mapping[str, torch.Tensor],
                     update: bool = True, sample_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE against momentum keys + queue (``update``: EMA step and enqueue).

    ``sample_ids [B]`` (int64, >= 0): queued keys with a query's own id are left out of its
    negatives (their logits are set to ``-inf``); ``None``: nothing is masked and the keys are
    queued with id -1.
    """
    cfg = model.config
    z = {m: F.normalize(model.projections[m](tokens[m].mean(1)), dim=-1) for m in MODALITIES}
    with torch.no_grad():
        if update:
            model.momentum_update()
        k = {m: F.normalize(model.momentum_projections[m](model.momentum_encoders[m](images[m]).mean(1)), dim=-1)
             for m in MODALITIES}
    n = z["wli"].shape[0]
    target = torch.arange(n, device=z["wli"].device)
    if sample_ids is None:
        sample_ids = torch.full((n,), -1, dtype=torch.long, device=target.device)
    sample_ids = sample_ids.to(device=target.device, dtype=torch.long)
    own = own_key_mask(model.queue_ids, sample_ids)  # [B, Q]
    in_batch = torch.zeros(n, n, dtype=torch.bool, device=target.device)
    exclude = torch.cat([in_batch, own], 1)
    loss = 0.0
    for a, b in (("wli", "nbi"), ("nbi", "wli")):
        keys = torch.cat([k[b], getattr(model, f"queue_{b}").clone().detach()])
        logits = (z[a] @ keys.t() / cfg.temperature).float().masked_fill(exclude, float("-inf"))
        loss = loss + F.cross_entropy(logits, target) / 2
    if update:
        enqueue_(model, k, sample_ids)
    return loss


def reconstruction_term(model: MICSPretrainer, target: str, images: Mapping[str, torch.Tensor],
                        context: torch.Tensor) -> torch.Tensor:
    """Mask ``mask_ratio`` (75 %) of ``target``'s patches, reconstruct them with ``context`` (the other
    view's tokens); pixel MSE on the masked patches (per-patch normalised targets with ``norm_pix_loss``)."""
    cfg = model.config
    enc = model.encoders[target]
    x = images[target]
    visible, masked = random_patch_mask(x.shape[0], enc.num_tokens, cfg.mask_ratio, device=x.device)
    if enc.kind == "vit":
        tokens = enc(x, visible)
    else:
        pixel_mask = masked.view(-1, 1, *enc.grid).to(x.dtype)
        pixel_mask = pixel_mask.repeat_interleave(enc.patch, 2).repeat_interleave(enc.patch, 3)
        tokens, visible = enc(x * (1 - pixel_mask)), None
    pred = model.decoders[target](tokens, visible, context)
    goal = patchify(x, enc.patch)
    if cfg.norm_pix_loss:
        goal = (goal - goal.mean(-1, keepdim=True)) / (goal.var(-1, keepdim=True) + 1e-6).sqrt()
    per_patch = ((pred.float() - goal.float()) ** 2).mean(-1)
    return (per_patch * masked).sum() / masked.sum()


def adversarial_term(model: MICSPretrainer, tokens: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Modality discriminator on encoder tokens: ``(loss, discriminator accuracy)``.

    ``grl``: BCE of the discriminator on reversed-gradient tokens. ``non_saturating``: discriminator
    BCE on detached tokens + ``grl_lambda`` x BCE with flipped labels for the encoders (discriminator
    parameters detached in that term).
    """
    cfg = model.config
    flip = cfg.adversarial_objective == "non_saturating"
    frozen = {k: v.detach() for k, v in model.discriminator.named_parameters()} if flip else None
    logits, labels, fooled = [], [], []
    for value, m in enumerate(MODALITIES):
        x = tokens[m].detach() if flip else grad_reverse(tokens[m], cfg.grl_lambda)
        logits.append(model.discriminator(x).squeeze(-1).flatten())
        labels.append(torch.full_like(logits[-1], float(value)))
        if flip:
            fooled.append(torch.func.functional_call(model.discriminator, frozen, (tokens[m],))
                          .squeeze(-1).flatten())
    logits, labels = torch.cat(logits), torch.cat(labels)
    accuracy = ((logits > 0).float() == labels).float().mean().detach()
    loss = F.binary_cross_entropy_with_logits(logits.float(), labels)
    if flip:
        fool = F.binary_cross_entropy_with_logits(torch.cat(fooled).float(), 1 - labels)  # flipped labels
        loss = loss + cfg.grl_lambda * fool
    return loss, accuracy


@register_objective("mics")
class MICSObjective(Objective):
    """The MICS pre-training objective (module docstring); no parameters of its own.

    ``forward(views, context)``: ``views = {"wli": [B, 3, S, S], "nbi": [B, 3, S, S]}`` (normalised
    images of the same sites), ``context.model`` the :class:`MICSPretrainer`, ``context.update`` EMA
    step + enqueue (``None``: ``model.training``), ``context.sample_ids`` ``[B]`` int64 >= 0 or ``None``.

    Returns ``{"loss", "reconstruction", "contrastive", "adversarial", "discriminator_accuracy"}``
    (scalars; a term with weight 0 is reported as 0).

    Raises:
        ValueError: the two views differ in shape, or ``context.model`` is missing.
    """

    def forward(self, views: Mapping[str, torch.Tensor], context: StepContext) -> dict[str, torch.Tensor]:
        model = context.model
        if model is None:
            raise ValueError("the MICS objective needs context.model (the MICSPretrainer)")
        wli, nbi = views["wli"], views["nbi"]
        if wli.shape != nbi.shape:
            raise ValueError(f"WLI {tuple(wli.shape)} and NBI {tuple(nbi.shape)} batches differ in shape")
        cfg = model.config
        update = model.training if context.update is None else context.update
        images = {"wli": wli, "nbi": nbi}
        tokens = {m: model.encoders[m](images[m]) for m in MODALITIES}
        zero = wli.new_zeros(())
        out = {"reconstruction": zero, "contrastive": zero, "adversarial": zero, "discriminator_accuracy": zero}
        if cfg.recon_weight:
            out["reconstruction"] = sum(reconstruction_term(model, m, images, tokens["nbi" if m == "wli" else "wli"])
                                        for m in cfg.reconstruct) / len(cfg.reconstruct)
        if cfg.contrastive_weight:
            out["contrastive"] = contrastive_term(model, tokens, images, update, context.sample_ids)
        if cfg.adversarial_weight:
            out["adversarial"], out["discriminator_accuracy"] = adversarial_term(model, tokens)
        out["loss"] = (cfg.recon_weight * out["reconstruction"] + cfg.contrastive_weight * out["contrastive"]
                       + cfg.adversarial_weight * out["adversarial"])
        return out
