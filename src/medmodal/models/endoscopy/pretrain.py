"""MICS synergistic pre-training on unlabelled WLI / NBI pairs.

Three objectives (MICS; authors' code LQH89757/MICS, an ALBEF adaptation with the NBI image in the
text stream; ``shared/notes/mics.md``):

* **contrastive** (consistency): pooled tokens of each encoder -> linear projection (256-d) ->
  L2 norm; InfoNCE WLI->NBI and NBI->WLI against the momentum encoders' keys of the batch plus a
  feature queue, temperature 0.07, momentum 0.995 (ALBEF ITC, Li et al., NeurIPS 2021, without its
  momentum distillation). **Fix:** the queue also stores each key's sample id (``sample_ids``
  of :meth:`MICSPretrainer.compute_losses`), and a query's logits against older keys of its *own*
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
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from medmodal.models.endoscopy.blocks import (
    CrossAttentionBlock,
    TokenEncoder,
    grad_reverse,
    patchify,
    random_patch_mask,
)
from medmodal.models.registry import register_model

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
    process and run; what :meth:`MICSPretrainer.compute_losses` takes as ``sample_ids``."""
    keys = [int(hashlib.sha1(str(s).encode()).hexdigest()[:15], 16) for s in sample_ids]
    return torch.tensor(keys, dtype=torch.long, device=device)


def _all_gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` over DDP processes (no gradient); ``x`` itself without DDP."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return x
    parts = [torch.empty_like(x) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts)


@register_model("mics_pretrain", task="paired_views",
                tiny={"embed_dim": 16, "queue_size": 8, "decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2})
class MICSPretrainer(nn.Module):
    """WLI / NBI encoders with the three MICS pre-training objectives (module docstring).

    Built as ``create_model("mics_pretrain", **fields of MICSPretrainConfig)``.
    :meth:`compute_losses` takes ``wli, nbi [B, 3, S, S]`` (paired samples only) and returns the
    named losses. ``encoders`` (``ModuleDict`` wli / nbi of :class:`TokenEncoder`) is what the
    fine-tuning model loads (:meth:`encoder_state_dict`).
    """

    def __init__(self, **kwargs):
        super().__init__()
        cfg = MICSPretrainConfig(**kwargs)
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
        self.cfg = cfg
        self.encoders = nn.ModuleDict({m: TokenEncoder(cfg.arch, cfg.image_size, cfg.encoder_kwargs)
                                       for m in MODALITIES})
        enc = self.encoders["wli"]
        dim = enc.dim
        self.projections = nn.ModuleDict({m: nn.Linear(dim, cfg.embed_dim) for m in MODALITIES})
        self.momentum_encoders = copy.deepcopy(self.encoders)
        self.momentum_projections = copy.deepcopy(self.projections)
        for p in list(self.momentum_encoders.parameters()) + list(self.momentum_projections.parameters()):
            p.requires_grad_(False)
        for m in MODALITIES:
            self.register_buffer(f"queue_{m}", F.normalize(torch.randn(cfg.queue_size, cfg.embed_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        # sample id of every queued key (-1: empty slot / unknown); a query never meets its own older key
        self.register_buffer("queue_ids", torch.full((cfg.queue_size,), -1, dtype=torch.long))
        self.decoders = nn.ModuleDict({m: MaskedDecoder(dim, cfg.decoder_dim, cfg.decoder_depth, cfg.decoder_heads,
                                                        enc.num_tokens, enc.patch ** 2 * 3)
                                       for m in cfg.reconstruct})
        self.discriminator = nn.Sequential(nn.Linear(dim, cfg.discriminator_hidden), nn.LeakyReLU(0.2),
                                           nn.Linear(cfg.discriminator_hidden, 1))

    # ------------------------------------------------------------------ pieces
    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """``{"wli.<timm key>": ..., "nbi.<timm key>": ...}`` (CPU copies) for the fine-tuning model."""
        return {k: v.detach().cpu().clone() for k, v in self.encoders.state_dict().items()}

    @torch.no_grad()
    def _momentum_update(self) -> None:
        m = self.cfg.momentum
        pairs = [(self.encoders, self.momentum_encoders), (self.projections, self.momentum_projections)]
        for online, target in pairs:
            for p, q in zip(online.parameters(), target.parameters()):
                q.mul_(m).add_(p.detach(), alpha=1 - m)

    @torch.no_grad()
    def _enqueue(self, keys: dict[str, torch.Tensor], ids: torch.Tensor) -> None:
        keys = {m: _all_gather(k) for m, k in keys.items()}
        ids = _all_gather(ids)
        n = ids.shape[0]
        size = self.cfg.queue_size
        if n > size:
            keys, ids, n = {m: k[-size:] for m, k in keys.items()}, ids[-size:], size
        idx = (int(self.queue_ptr) + torch.arange(n, device=self.queue_ptr.device)) % size
        for m, k in keys.items():
            getattr(self, f"queue_{m}")[idx] = k
        self.queue_ids[idx] = ids
        self.queue_ptr.fill_((int(self.queue_ptr) + n) % size)

    def contrastive_loss(self, tokens: dict[str, torch.Tensor], images: dict[str, torch.Tensor],
                         update: bool = True, sample_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Symmetric InfoNCE against momentum keys + queue (``update``: EMA step and enqueue).

        ``sample_ids [B]`` (int64, >= 0): queued keys with a query's own id are left out of its
        negatives (their logits are set to ``-inf``); ``None``: nothing is masked and the keys are
        queued with id -1.
        """
        z = {m: F.normalize(self.projections[m](tokens[m].mean(1)), dim=-1) for m in MODALITIES}
        with torch.no_grad():
            if update:
                self._momentum_update()
            k = {m: F.normalize(self.momentum_projections[m](self.momentum_encoders[m](images[m]).mean(1)), dim=-1)
                 for m in MODALITIES}
        n = z["wli"].shape[0]
        target = torch.arange(n, device=z["wli"].device)
        if sample_ids is None:
            sample_ids = torch.full((n,), -1, dtype=torch.long, device=target.device)
        sample_ids = sample_ids.to(device=target.device, dtype=torch.long)
        own = (self.queue_ids[None, :] == sample_ids[:, None]) & (sample_ids[:, None] >= 0)  # [B, Q]
        in_batch = torch.zeros(n, n, dtype=torch.bool, device=target.device)
        exclude = torch.cat([in_batch, own], 1)
        loss = 0.0
        for a, b in (("wli", "nbi"), ("nbi", "wli")):
            keys = torch.cat([k[b], getattr(self, f"queue_{b}").clone().detach()])
            logits = (z[a] @ keys.t() / self.cfg.temperature).float().masked_fill(exclude, float("-inf"))
            loss = loss + F.cross_entropy(logits, target) / 2
        if update:
            self._enqueue(k, sample_ids)
        return loss

    def reconstruction_loss(self, target: str, images: dict[str, torch.Tensor],
                            context: torch.Tensor) -> torch.Tensor:
        """Mask 75 % of ``target``'s patches, reconstruct them with ``context`` (other modality's tokens)."""
        enc = self.encoders[target]
        x = images[target]
        visible, masked = random_patch_mask(x.shape[0], enc.num_tokens, self.cfg.mask_ratio, device=x.device)
        if enc.kind == "vit":
            tokens = enc(x, visible)
        else:
            pixel_mask = masked.view(-1, 1, *enc.grid).to(x.dtype)
            pixel_mask = pixel_mask.repeat_interleave(enc.patch, 2).repeat_interleave(enc.patch, 3)
            tokens, visible = enc(x * (1 - pixel_mask)), None
        pred = self.decoders[target](tokens, visible, context)
        goal = patchify(x, enc.patch)
        if self.cfg.norm_pix_loss:
            goal = (goal - goal.mean(-1, keepdim=True)) / (goal.var(-1, keepdim=True) + 1e-6).sqrt()
        per_patch = ((pred.float() - goal.float()) ** 2).mean(-1)
        return (per_patch * masked).sum() / masked.sum()

    def adversarial_loss(self, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Modality discriminator on encoder tokens: ``(loss, discriminator accuracy)``.

        ``grl``: BCE of the discriminator on reversed-gradient tokens. ``non_saturating``: discriminator
        BCE on detached tokens + ``grl_lambda`` x BCE with flipped labels for the encoders (discriminator
        parameters detached in that term).
        """
        flip = self.cfg.adversarial_objective == "non_saturating"
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()} if flip else None
        logits, labels, fooled = [], [], []
        for value, m in enumerate(MODALITIES):
            x = tokens[m].detach() if flip else grad_reverse(tokens[m], self.cfg.grl_lambda)
            logits.append(self.discriminator(x).squeeze(-1).flatten())
            labels.append(torch.full_like(logits[-1], float(value)))
            if flip:
                fooled.append(torch.func.functional_call(self.discriminator, frozen, (tokens[m],))
                              .squeeze(-1).flatten())
        logits, labels = torch.cat(logits), torch.cat(labels)
        accuracy = ((logits > 0).float() == labels).float().mean().detach()
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels)
        if flip:
            fool = F.binary_cross_entropy_with_logits(torch.cat(fooled).float(), 1 - labels)  # flipped labels
            loss = loss + self.cfg.grl_lambda * fool
        return loss, accuracy

    # ------------------------------------------------------------------ API
    def compute_losses(self, wli: torch.Tensor, nbi: torch.Tensor, update: bool | None = None,
                       sample_ids: torch.Tensor | None = None) -> dict:
        """Losses of one batch of pairs.

        Args:
            wli, nbi: ``[B, 3, S, S]`` normalised images of the same sites.
            update: EMA step + enqueue (default: ``self.training``).
            sample_ids: ``[B]`` int64 >= 0, a stable id per pair (:func:`sample_id_keys`), so the contrastive
                term never uses a pair's own older momentum key as a negative; ``None``: no masking.

        Returns:
            ``{"loss", "reconstruction", "contrastive", "adversarial", "discriminator_accuracy"}``
            (scalars; a term with weight 0 is reported as 0).
        """
        if wli.shape != nbi.shape:
            raise ValueError(f"WLI {tuple(wli.shape)} and NBI {tuple(nbi.shape)} batches differ in shape")
        cfg = self.cfg
        update = self.training if update is None else update
        images = {"wli": wli, "nbi": nbi}
        tokens = {m: self.encoders[m](images[m]) for m in MODALITIES}
        zero = wli.new_zeros(())
        out = {"reconstruction": zero, "contrastive": zero, "adversarial": zero, "discriminator_accuracy": zero}
        if cfg.recon_weight:
            out["reconstruction"] = sum(self.reconstruction_loss(m, images, tokens["nbi" if m == "wli" else "wli"])
                                        for m in cfg.reconstruct) / len(cfg.reconstruct)
        if cfg.contrastive_weight:
            out["contrastive"] = self.contrastive_loss(tokens, images, update, sample_ids)
        if cfg.adversarial_weight:
            out["adversarial"], out["discriminator_accuracy"] = self.adversarial_loss(tokens)
        out["loss"] = (cfg.recon_weight * out["reconstruction"] + cfg.contrastive_weight * out["contrastive"]
                       + cfg.adversarial_weight * out["adversarial"])
        return out
