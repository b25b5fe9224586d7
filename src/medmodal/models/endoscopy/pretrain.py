"""MICS synergistic pre-training on unlabelled WLI / NBI pairs.

Three objectives (MICS; authors' code LQH89757/MICS, an ALBEF adaptation with the NBI image in the
text stream; ``shared/notes/mics.md``):

* **contrastive** (consistency): pooled tokens of each encoder -> linear projection (256-d) ->
  L2 norm; InfoNCE WLI->NBI and NBI->WLI against the momentum encoders' keys of the batch plus a
  feature queue, temperature 0.07, momentum 0.995 (ALBEF ITC, Li et al., NeurIPS 2021, without its
  momentum distillation). **Fix:** the queue also stores each key's sample id (``sample_ids``
  of :class:`~medmodal.losses.paired.MICSObjective`), and a query's logits against older keys of its *own*
  pair are masked out: with a queue of the order of the dataset (a small unlabelled set) these
  stale positives would otherwise sit among the negatives (false negatives; ALBEF's retrieval
  fine-tuning keeps an id queue for the same reason). Without ids nothing is masked (MoCo / ALBEF
  pre-training, where the queue is far smaller than the dataset).
* **reconstruction**: MAE (He et al., CVPR 2022): 75 % of the patches of one modality are
  masked (a ViT drops them before the transformer; a CNN sees them zeroed, SimMIM-style), a
  transformer decoder (authors: 8 blocks, width 512) fills them in while cross-attending to the
  *other* modality's full token sequence, pixel MSE on the masked patches (per-patch normalised
  targets, MAE ``norm_pix_loss``). Both directions by default.
* **adversarial alignment**: a token-level discriminator predicts the modality (WLI 0 / NBI 1) of
  every encoder token; its input passes a gradient-reversal layer, so one backward pass trains
  the discriminator to tell the modalities apart and the **encoders to make them
  indistinguishable**. The released code computes its adversarial term on detached tensors
  (no gradient reaches the encoders) and compares tensors from different spaces (reconstructed
  pixels vs encoder features); here both inputs are encoder tokens of the same space and the
  encoders do receive the (reversed) gradient. The discriminator has its own optimiser settings
  (authors: Adam lr 2e-3, betas 0.5 / 0.999), set by the engine as a parameter group.
  ``adversarial_objective="non_saturating"`` replaces the reversal by the GAN generator loss
  (Goodfellow et al., NeurIPS 2014; inverted labels as in ADDA, Tzeng et al., CVPR 2017): the
  discriminator is trained on detached tokens, the encoders on the *flipped* labels through the
  discriminator with its parameters detached. Gradient reversal sends the encoders
  ``-(sigmoid(logit) - y)``, which vanishes once the discriminator wins (on the CPU preset it reaches
  modality accuracy 1.0 within two epochs); the flipped-label loss does not.

Total: ``recon_weight * L_rec + contrastive_weight * L_itc + adversarial_weight * L_adv`` with the
authors' 10 / 1 / 0.1. A term with weight 0 is not computed (ablations).

This module holds the networks (:class:`MICSPretrainer`: encoders, projections, momentum copies, the
id-aware queue, decoders, discriminator); the three terms are computed by the objective
:class:`medmodal.losses.paired.MICSObjective` (``loss.name: mics``); the EMA and the queue are
:mod:`medmodal.layers.momentum`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from medmodal.layers.momentum import ema_update_, momentum_copy, register_id_queue
from medmodal.models.endoscopy.blocks import CrossAttentionBlock, TokenEncoder
from medmodal.models.registry import model_config, register_model

__all__ = ["MICSPretrainConfig", "MICSPretrainer", "MaskedDecoder", "MODALITIES", "sample_id_keys"]

MODALITIES = ("wli", "nbi")
ADVERSARIAL_OBJECTIVES = ("grl", "non_saturating")


@dataclass
class MICSPretrainConfig:
    """Pre-training model settings; defaults = the authors' released configuration.

    Attributes:
        arch / image_size / encoder_kwargs: the encoders (:class:`TokenEncoder`); one per modality.
        embed_dim: contrastive projection width (256). temperature: InfoNCE temperature (0.07).
        momentum: EMA of the momentum encoders (0.995). queue_size: keys kept per modality
            (ALBEF 65536; keep it well below the number of training pairs, so most queued keys are of
            other samples: the CPU preset uses 64 for 252 pairs).
        mask_ratio: masked patch fraction (0.75). decoder_dim / decoder_depth / decoder_heads:
            reconstruction decoder (512 / 8 / 16). norm_pix_loss: per-patch normalised targets.
        reconstruct: modalities that are masked and reconstructed (with the other one as context).
        recon_weight / contrastive_weight / adversarial_weight: loss weights (10 / 1 / 0.1).
        grl_lambda: gradient-reversal scale (``non_saturating``: weight of the encoders' flipped-label loss).
        discriminator_hidden: discriminator MLP width.
        adversarial_objective: ``grl`` (gradient reversal, one backward pass) | ``non_saturating`` (GAN
            generator loss with flipped labels; see the module docstring).
    """

    arch: str = "vit_base_patch16_384"
    image_size: int = 384
    encoder_kwargs: dict = field(default_factory=dict)
    embed_dim: int = 256
    temperature: float = 0.07
    momentum: float = 0.995
    queue_size: int = 65536
    mask_ratio: float = 0.75
    decoder_dim: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 16
    norm_pix_loss: bool = True
    reconstruct: tuple = ("wli", "nbi")
    recon_weight: float = 10.0
    contrastive_weight: float = 1.0
    adversarial_weight: float = 0.1
    grl_lambda: float = 1.0
    discriminator_hidden: int = 256
    adversarial_objective: str = "grl"


class MaskedDecoder(nn.Module):
    """MAE decoder with cross-attention to a context sequence.

    ``forward(tokens, visible, context) -> pixels [B, N, p*p*3]``: ``tokens [B, V, E]`` of the
    visible patches (indices ``visible [B, V]``) or ``[B, N, E]`` for all patches (``visible=None``,
    CNN encoders); masked positions get a learned mask token; ``context [B, M, E]`` is the other
    modality's tokens.
    """

    def __init__(self, enc_dim: int, dim: int, depth: int, heads: int, num_tokens: int, patch_pixels: int):
        super().__init__()
        self.embed, self.context = nn.Linear(enc_dim, dim), nn.Linear(enc_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, num_tokens, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        self.blocks = nn.ModuleList(CrossAttentionBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, patch_pixels)

    def forward(self, tokens: torch.Tensor, visible: torch.Tensor | None, context: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        if visible is not None:
            full = self.mask_token.expand(x.shape[0], self.pos.shape[1], -1).clone()
            full.scatter_(1, visible[..., None].expand(-1, -1, x.shape[-1]), x)
            x = full
        x = x + self.pos
        ctx = self.context(context)
        for block in self.blocks:
            x = block(x, ctx)
        return self.head(self.norm(x))


def sample_id_keys(sample_ids: Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
    """Stable int64 ids ``[B]`` (>= 0) for sample-id strings (first 15 hex digits of SHA-1), the same in every
    process and run; what :class:`~medmodal.losses.paired.MICSObjective` takes as ``context.sample_ids``."""
    keys = [int(hashlib.sha1(str(s).encode()).hexdigest()[:15], 16) for s in sample_ids]
    return torch.tensor(keys, dtype=torch.long, device=device)


@register_model("mics_pretrain", task="paired_views",
                tiny={"embed_dim": 16, "queue_size": 8, "decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2})
class MICSPretrainer(nn.Module):
    """WLI / NBI encoders and the parts the three MICS pre-training terms use (module docstring).

    Built as ``create_model("mics_pretrain", **fields of MICSPretrainConfig)`` or
    ``MICSPretrainer(config: MICSPretrainConfig | dict | None = None, **overrides)`` (``config``: the resolved
    settings; ``cfg`` its old name, one release). The losses of a batch
    of pairs: ``MICSObjective()({"wli": wli, "nbi": nbi}, StepContext(model=self, ...))``
    (:mod:`medmodal.losses.paired`; until this release ``compute_losses(wli, nbi, update, sample_ids)``
    here). ``encoders`` (``ModuleDict`` wli / nbi of :class:`TokenEncoder`) is what the
    fine-tuning model loads (:meth:`encoder_state_dict`).
    """

    def __init__(self, config: MICSPretrainConfig | Mapping[str, Any] | None = None, **overrides):
        super().__init__()
        cfg = model_config(MICSPretrainConfig, config, **overrides)
        cfg.reconstruct = tuple(cfg.reconstruct)
        bad = [m for m in cfg.reconstruct if m not in MODALITIES]
        if bad:
            raise ValueError(f"reconstruct: unknown modalities {bad}; choose from {MODALITIES}")
        if cfg.adversarial_objective not in ADVERSARIAL_OBJECTIVES:
            raise ValueError(f"adversarial_objective must be one of {ADVERSARIAL_OBJECTIVES}, "
                             f"got {cfg.adversarial_objective!r}")
        if not 0 < cfg.mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {cfg.mask_ratio}")
        weights = (cfg.recon_weight, cfg.contrastive_weight, cfg.adversarial_weight)
        if min(weights) < 0 or not any(weights):
            raise ValueError(f"loss weights must be >= 0 with at least one > 0, got {weights}")
        self.config = cfg
        self.encoders = nn.ModuleDict({m: TokenEncoder(cfg.arch, cfg.image_size, cfg.encoder_kwargs)
                                       for m in MODALITIES})
        enc = self.encoders["wli"]
        dim = enc.dim
        self.projections = nn.ModuleDict({m: nn.Linear(dim, cfg.embed_dim) for m in MODALITIES})
        self.momentum_encoders = momentum_copy(self.encoders)
        self.momentum_projections = momentum_copy(self.projections)
        # queue_wli / queue_nbi [Q, E], queue_ptr, queue_ids [Q] (-1: empty slot / unknown id)
        register_id_queue(self, MODALITIES, cfg.queue_size, cfg.embed_dim)
        self.decoders = nn.ModuleDict({m: MaskedDecoder(dim, cfg.decoder_dim, cfg.decoder_depth, cfg.decoder_heads,
                                                        enc.num_tokens, enc.patch ** 2 * 3)
                                       for m in cfg.reconstruct})
        self.discriminator = nn.Sequential(nn.Linear(dim, cfg.discriminator_hidden), nn.LeakyReLU(0.2),
                                           nn.Linear(cfg.discriminator_hidden, 1))

    # ------------------------------------------------------------------ pieces
    @property
    def cfg(self) -> MICSPretrainConfig:
        """Old name of :attr:`config` (kept for one release)."""
        return self.config

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """``{"wli.<timm key>": ..., "nbi.<timm key>": ...}`` (CPU copies) for the fine-tuning model."""
        return {k: v.detach().cpu().clone() for k, v in self.encoders.state_dict().items()}

    @torch.no_grad()
    def momentum_update(self) -> None:
        """One EMA step of the momentum encoders and projections (:func:`~medmodal.layers.momentum.ema_update_`)."""
        m = self.config.momentum
        for online, target in ((self.encoders, self.momentum_encoders), (self.projections, self.momentum_projections)):
            ema_update_(online, target, m)
