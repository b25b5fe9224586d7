"""CM-CGNS: cross-modal clustering-guided negative sampling for image-report pre-training.

Paper: L. Lan et al., "Cross-Modal Clustering-Guided Negative Sampling for Self-Supervised Joint
Learning from Medical Images and Reports", arXiv:2506.11674 (2025). Reference code:
github.com/violet-42/CM-CGNS (``cgns/models/cgns/cgns_module_update.py``; its local alignment,
pooling and decoder come from PRIOR, github.com/QtacierP/PRIOR; its k-means from ClusterNS,
github.com/djz233/ClusterNS). Every default below is the released one.

Data flow of one batch (``B`` studies, ``E = embed_dim``)::

    image [B,3,H,W] -> ImageEncoder -> global [B,Dg] -> Linear -> g_I [B,E] (L2)
                                     -> tokens [B,N,Dl] -> Linear -> P [B,N,E] (L2 per token)
    report tokens [B,L] -> TextEncoder [B,L,Dt] -> Linear -> L2 per token -> sentence means S [B,M,E]
                        -> attention pool over [mean; S] -> g_R [B,E] (L2)
    LocalCrossAttention(P, S):  text->image  T2I [B,N,E],  image->text  I2S [B,M,E]

    global_loss        = InfoNCE(g_I, g_R), learnable temperature (init 0.1), negatives from all GPUs
    local_image_loss   = SimSiam(P, T2I) with a prediction MLP and stop-gradient
    local_report_loss  = cluster-guided InfoNCE(anchors S, positives I2S) over all sentences of the
                         per-GPU batch + 1e-4 * BML on same-cluster false negatives
    reconstruction_loss (stage 2 only) = 10 * L1(decoder(mask(P), T2I), image)
    loss = global + local_image + local_report (+ reconstruction)

Fixes of defects of the released code (each also named where it is fixed):

* ResNet token scramble: tokens are ``flatten(2).transpose(1, 2)`` of the feature map, not a
  ``view`` that interleaves channels and positions (:class:`~.encoders.ImageEncoder`).
* ResNet "masking" was channel dropout; CM-MIR masks whole spatial tokens for every backbone
  (:func:`~.layers.spatial_token_mask`).
* ViT decoder: separate weights per layer and ``batch_first`` attention over patches instead of
  one shared layer attending across the batch (:class:`~.layers.ReconstructionDecoder`).
* Output range: the decoder output spans the image's own value range (``[-1, 1]`` for the
  mean-0.5 / std-0.5 contract) instead of ``[0, 1)`` from ``Tanh(ReLU(.))``.
* k-means updated in validation: :meth:`CMCGNS.compute_losses` takes an explicit
  ``update_clusters``; the engine passes ``True`` only for training steps.
* The k-means state is in buffers (checkpointed; the released ``initialized`` flag was not).
* No-op stage reload (the released stage switch called a classmethod ``load_from_checkpoint``
  and discarded its result): the engine continues stage II from the stage-I weights in memory.

Batch contract (:meth:`CMCGNS.compute_losses`)::

    {"image": [B, 3, H, W] float (mean 0.5 / std 0.5 normalised, i.e. in [-1, 1]),
     "input_ids": [B, L] long, "attention_mask": [B, L] long/bool,
     "sentence_index": [B, L] long (0-based sentence of each token, -1 for special / padding),
     "num_sentences": [B] long}

No Python loop over samples anywhere in this path; :mod:`.reference_loop` holds the
per-sample formulation of the released code, used by the equivalence test and the speed
benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medmodal.layers.contrastive import info_nce_loss
from medmodal.models.image_text.base import (
    BATCH_KEYS,
    ImageTextConfig,
    ImageTextModel,
    check_batch,
)
from medmodal.models.image_text.clustering import OnlineKMeans
from medmodal.models.image_text.layers import (
    LocalCrossAttention,
    ReconstructionDecoder,
    SentenceAttentionPool,
    pool_sentences,
    prediction_mlp,
    spatial_token_mask,
)
from medmodal.models.image_text.objectives import (
    cluster_guided_info_nce,
    reconstruction_l1,
    simsiam_loss,
)
from medmodal.models.registry import register_model

__all__ = ["ABLATIONS", "BATCH_KEYS", "CMCGNS", "CMCGNSConfig", "CMCGNSFeatures"]


@dataclass
class CMCGNSConfig(ImageTextConfig):
    """Every hyper-parameter of CM-CGNS, defaulting to the released code (violet-42/CM-CGNS).

    Encoders:
        image_encoder: timm name; ``"resnet50"`` (the paper's reported backbone; released argparse
            default ``resnet_50``) or ``"vit_base_patch16_224"``; ``"resnet18"`` /
            ``"vit_tiny_patch16_224"`` for CPU runs.
        image_size: input edge (released 224: resize the longer side to 256, pad, crop 224).
        image_pretrained_path: local timm / torchvision weight file (released: torchvision
            ImageNet-1k V2 for ResNet-50, DeiT-B for ViT); ``None`` = random init.
        image_pool_heads: heads of the ResNet attention pool (released 8).
        text_encoder_path: local Hugging Face folder; ``None`` = the shipped MiniLM-L6 (released:
            Bio_ClinicalBERT, all 12 layers).
        text_model_config: a BERT config dict for a randomly initialised text model instead of a
            folder (tests); mutually exclusive with ``text_encoder_path``.
        max_text_length: token budget per report (released 256).
        cache_text_features: freeze the text encoder and cache its token features per distinct
            report (:class:`~.encoders.TextEncoder` ``cache_features``); released False (trained).
    Embeddings and global loss:
        embed_dim: shared embedding size ``E`` (released 768).
        text_pool_heads: heads of the sentence attention pool (released 8).
        temperature: initial global temperature (released 0.1, learnable, never clamped).
        learnable_temperature: learn ``log(1/temperature)`` (released True).
        logit_scale_max: optional clamp of the learnable logit scale (open_clip uses 100);
            ``None`` = no clamp, as released.
    Local report loss (cluster-guided negative sampling; ClusterNS's RoBERTa-base defaults):
        local_report_temperature: 1.0 (raw cosines as logits).
        num_clusters: K = 128. A step needs >= K sentences per process to seed the clusters
            (released batch 64 per GPU x 5-7 sentences).
        kmeans_momentum_lr: 1e-3. kmeans_activation_cosine: seed when the mean anchor-positive
            cosine is <= 0.4. hard_negative_rank: 2 (second-nearest centroid).
        hard_negative_weight: 3, multiplicative on the own hard-negative logit (as released).
        bml_alpha / bml_beta / bml_weight: 0.2 / 0.5 / 1e-4.
    CM-MIR (stage II):
        mask_ratio: share of local image tokens masked (released 0.5).
        reconstruction_weight: 10 (``10 * L1``).
        reconstruction_fusion: ``"auto"`` (``"concat"`` for CNNs, ``"attention"`` for ViTs, as
            released), or either explicitly.
        decoder_channels: conv-head widths (released 512, 256, 128, 64).
        decoder_layers / decoder_heads / decoder_ff_dim / decoder_dropout: the ViT-path transformer
            decoder (released 6 / 8 / 2048 / 0.1).
        image_value_range: value range of the normalised image (the reconstruction target).
    Loss weights (released: all 1):
        global_weight, local_image_weight, local_report_weight.
    Ablations (all ``True`` = the full method; registered as ``cmcgns_no_cgns`` / ``cmcgns_no_mir`` /
    ``cmcgns_global``, see :data:`ABLATIONS`):
        use_cluster_negatives: ``False`` = the local report loss is plain in-batch InfoNCE over the
            sentences (no k-means, no hard negatives, no BML): "w/o CGNS".
        use_reconstruction: ``False`` = no CM-MIR decoder and no reconstruction loss; stage II then
            trains the stage-I objective: "w/o CM-MIR".
        use_local_losses: ``False`` = no local image (SimSiam) and no local report loss; the global
            loss remains, and CM-MIR (which needs the text-to-image cross-attention) stays as
            configured by ``use_reconstruction``: "w/o local alignment".
    Schedule and optimiser (used by the engine; released values):
        stage1_epochs 10, stage2_epochs 20, optimizer "adam", learning_rate 1e-5, weight_decay
        1e-6, warmup_epochs 1 (linear from warmup_start_lr 1e-7), then cosine to final_lr 0 within
        each stage, stepped per iteration; optimiser and schedule restart at stage II. Released
        batch: 64 per GPU on 2 GPUs (the global loss sees 128), fp16.
    """

    # encoders, embedding size and global loss: the fields of ImageTextConfig (same released defaults)
    text_pool_heads: int = 8
    # local report loss
    local_report_temperature: float = 1.0
    num_clusters: int = 128
    kmeans_momentum_lr: float = 1e-3
    kmeans_activation_cosine: float = 0.4
    hard_negative_rank: int = 2
    hard_negative_weight: float = 3.0
    bml_alpha: float = 0.2
    bml_beta: float = 0.5
    bml_weight: float = 1e-4
    # CM-MIR
    mask_ratio: float = 0.5
    reconstruction_weight: float = 10.0
    reconstruction_fusion: str = "auto"
    decoder_channels: tuple[int, ...] = (512, 256, 128, 64)
    decoder_layers: int = 6
    decoder_heads: int = 8
    decoder_ff_dim: int = 2048
    decoder_dropout: float = 0.1
    image_value_range: tuple[float, float] = (-1.0, 1.0)
    # loss weights
    global_weight: float = 1.0
    local_image_weight: float = 1.0
    local_report_weight: float = 1.0
    # ablations
    use_cluster_negatives: bool = True
    use_reconstruction: bool = True
    use_local_losses: bool = True
    # schedule / optimiser (engine)
    stage1_epochs: int = 10
    stage2_epochs: int = 20
    optimizer: str = "adam"
    learning_rate: float = 1e-5
    weight_decay: float = 1e-6
    warmup_epochs: int = 1
    warmup_start_lr: float = 1e-7
    final_lr: float = 0.0

    def normalize(self) -> None:
        self.decoder_channels = tuple(int(c) for c in self.decoder_channels)
        self.image_value_range = (float(self.image_value_range[0]), float(self.image_value_range[1]))

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.embed_dim % self.text_pool_heads == 0, "embed_dim must be divisible by text_pool_heads"),
            (self.embed_dim % self.decoder_heads == 0, "embed_dim must be divisible by decoder_heads"),
            (self.local_report_temperature > 0, "local_report_temperature must be > 0"),
            (self.num_clusters >= 2, "num_clusters must be >= 2"),
            (1 <= self.hard_negative_rank <= self.num_clusters, "hard_negative_rank must be in [1, num_clusters]"),
            (0.0 < self.kmeans_momentum_lr <= 1.0, "kmeans_momentum_lr must be in (0, 1]"),
            (0.0 <= self.mask_ratio < 1.0, "mask_ratio must be in [0, 1)"),
            (self.reconstruction_fusion in ("auto", "concat", "attention"),
             "reconstruction_fusion must be auto | concat | attention"),
            (self.image_value_range[0] < self.image_value_range[1], "image_value_range must be (low, high)"),
        ]


@dataclass
class CMCGNSFeatures:
    """Intermediate features of one batch (see the module docstring for the names).

    Attributes:
        local_image: ``P [B, N, E]`` L2-normalised per token. global_image: ``g_I [B, E]`` (L2).
        grid: ``(h, w)``. sentences: ``S [B, M, E]`` (means of normalised tokens, not re-normalised).
        sentence_mask: ``[B, M]`` bool. global_text: ``g_R [B, E]`` (L2).
    """

    local_image: torch.Tensor
    global_image: torch.Tensor
    grid: tuple[int, int]
    sentences: torch.Tensor
    sentence_mask: torch.Tensor
    global_text: torch.Tensor


_TINY = {"num_clusters": 4, "decoder_channels": (16, 8), "decoder_layers": 2, "decoder_heads": 4,
         "decoder_ff_dim": 32, "decoder_dropout": 0.0, "text_pool_heads": 4}  # contract check (CPU-cheap)


@register_model("cmcgns", task="image_text", tiny=_TINY)
class CMCGNS(ImageTextModel):
    """CM-CGNS image-report model: encoders, alignment heads, CM-MIR decoder and k-means state.

    Args:
        config: a :class:`CMCGNSConfig` or dict; ``**overrides``: its fields
            (``create_model("cmcgns", image_encoder="resnet18", image_size=128)``).

    Attributes:
        image_encoder / text_encoder: :class:`~.encoders.ImageEncoder` / :class:`~.encoders.TextEncoder`.
        global_image_projection, local_image_projection, local_text_projection: ``Linear -> E``.
        text_pool: :class:`~.layers.SentenceAttentionPool`. cross_attention: :class:`~.layers.LocalCrossAttention`
            (absent when neither local losses nor CM-MIR are used).
        predictor: SimSiam MLP (absent without local losses). decoder: :class:`~.layers.ReconstructionDecoder`
            (used in stage II; absent without CM-MIR). kmeans: :class:`~.clustering.OnlineKMeans` (buffers;
            absent without cluster-guided negatives). logit_scale: ``log(1/temperature)``.

    Stage I leaves the decoder without gradient: a DDP engine needs ``find_unused_parameters`` or
    to freeze the decoder during stage I.
    """

    config_class = CMCGNSConfig

    def __init__(self, config: CMCGNSConfig | Mapping[str, Any] | None = None, **overrides):
        super().__init__(config, **overrides)
        cfg = self.config
        e = cfg.embed_dim
        self.global_image_projection = nn.Linear(self.image_encoder.global_dim, e)
        self.local_image_projection = nn.Linear(self.image_encoder.local_dim, e)
        self.local_text_projection = nn.Linear(self.text_encoder.hidden_size, e)
        for layer in (self.global_image_projection, self.local_image_projection, self.local_text_projection):
            nn.init.normal_(layer.weight, std=layer.in_features ** -0.5)  # released inititalize_parameters
        self.text_pool = SentenceAttentionPool(e, cfg.text_pool_heads)
        if cfg.use_local_losses or cfg.use_reconstruction:
            self.cross_attention = LocalCrossAttention(e)
        if cfg.use_local_losses:
            self.predictor = prediction_mlp(e)
        if cfg.use_reconstruction:
            fusion = cfg.reconstruction_fusion
            if fusion == "auto":
                fusion = "attention" if self.image_encoder.kind == "vit" else "concat"
            self.decoder = ReconstructionDecoder(
                e, fusion=fusion, channels=cfg.decoder_channels, num_layers=cfg.decoder_layers,
                num_heads=cfg.decoder_heads, ff_dim=cfg.decoder_ff_dim, dropout=cfg.decoder_dropout,
                grid=self.image_encoder.grid, image_size=(cfg.image_size, cfg.image_size),
                value_range=cfg.image_value_range)
        if cfg.use_local_losses and cfg.use_cluster_negatives:
            self.kmeans = OnlineKMeans(cfg.num_clusters, e, cfg.kmeans_momentum_lr)

    # ------------------------------------------------------------------ encoding
    def image_parts(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """``images [B, 3, H, W]`` -> ``(P [B, N, E], g_I [B, E], grid)``, both L2-normalised."""
        feats = self.image_encoder(images)
        local = F.normalize(self.local_image_projection(feats.local_features), dim=-1)
        global_ = F.normalize(self.global_image_projection(feats.global_features), dim=-1)
        return local, global_, feats.grid

    def text_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Projected, per-token L2-normalised text features ``[B, L, E]``."""
        return F.normalize(self.local_text_projection(self.text_encoder(input_ids, attention_mask)), dim=-1)

    def text_parts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, sentence_index: torch.Tensor,
                   num_sentences: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> ``(S [B, M, E], mask [B, M], g_R [B, E] L2-normalised)`` (batched pooling)."""
        tokens = self.text_tokens(input_ids, attention_mask)
        sentences, mask = pool_sentences(tokens, sentence_index, num_sentences)
        return sentences, mask, F.normalize(self.text_pool(sentences, mask), dim=-1)

    def encode_batch(self, batch: Mapping[str, torch.Tensor]) -> CMCGNSFeatures:
        """All features of a batch (the contract of the module docstring)."""
        check_batch(batch, "CM-CGNS")
        local, global_image, grid = self.image_parts(batch["image"])
        sentences, mask, global_text = self.text_parts(batch["input_ids"], batch["attention_mask"],
                                                       batch["sentence_index"], batch["num_sentences"])
        return CMCGNSFeatures(local, global_image, grid, sentences, mask, global_text)

    def image_embedding(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_parts(images)[1]

    def text_embedding(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, sentence_index: torch.Tensor,
                       num_sentences: torch.Tensor) -> torch.Tensor:
        return self.text_parts(input_ids, attention_mask, sentence_index, num_sentences)[2]

    # ------------------------------------------------------------------ losses
    def compute_losses(self, batch: Mapping[str, torch.Tensor], *, stage: int,
                       update_clusters: bool) -> dict[str, torch.Tensor]:
        """The CM-CGNS objective of one batch.

        Args:
            batch: the batch contract (module docstring).
            stage: 1 (alignment) or 2 (alignment + CM-MIR reconstruction).
            update_clusters: seed / move the k-means centroids with this batch (training steps
                only; validation and evaluation pass ``False``).

        Returns:
            ``{"loss": total, "global_loss", "local_image_loss", "local_report_loss",
            "reconstruction_loss" (stage 2)}`` (differentiable scalars; ``loss`` is the weighted
            sum of the others; an ablation leaves out the terms it removes) plus detached
            diagnostics ``"bml_loss"`` (the unweighted false-negative term inside
            ``local_report_loss``), ``"clusters_active"`` (1.0 when hard negatives were used),
            ``"temperature"``.

        Raises:
            ValueError: ``stage`` not 1/2, a missing batch key or inconsistent shapes.
        """
        return super().compute_losses(batch, stage=stage, update_clusters=update_clusters)

    def losses(self, batch: Mapping[str, torch.Tensor], *, stage: int,
               update_clusters: bool) -> dict[str, torch.Tensor]:
        return self.losses_from_features(self.encode_batch(batch), batch["image"], stage=stage,
                                         update_clusters=update_clusters)

    def losses_from_features(self, feats: CMCGNSFeatures, images: torch.Tensor, *, stage: int,
                             update_clusters: bool) -> dict[str, torch.Tensor]:
        """The losses of :meth:`compute_losses` from already computed :class:`CMCGNSFeatures`."""
        cfg = self.config
        global_loss = info_nce_loss(feats.global_image, feats.global_text, self._logit_scale().exp())
        out = {"global_loss": global_loss}
        total = cfg.global_weight * global_loss
        text_to_image = None
        if cfg.use_local_losses or cfg.use_reconstruction:
            text_to_image, image_to_text = self.cross_attention(feats.local_image, feats.sentences,
                                                                feats.sentence_mask)
        bml, active = global_loss.new_zeros(()), False
        if cfg.use_local_losses:
            local_image_loss = simsiam_loss(feats.local_image, text_to_image, self.predictor)
            report = cluster_guided_info_nce(
                feats.sentences[feats.sentence_mask], image_to_text[feats.sentence_mask],
                self.kmeans if cfg.use_cluster_negatives else None,
                update_clusters=update_clusters, temperature=cfg.local_report_temperature,
                activation_cosine=cfg.kmeans_activation_cosine, hard_negative_rank=cfg.hard_negative_rank,
                hard_negative_weight=cfg.hard_negative_weight, bml_alpha=cfg.bml_alpha, bml_beta=cfg.bml_beta,
                bml_weight=cfg.bml_weight)
            out["local_image_loss"], out["local_report_loss"] = local_image_loss, report.loss
            total = total + cfg.local_image_weight * local_image_loss + cfg.local_report_weight * report.loss
            bml, active = report.bml, report.clusters_active
        if stage == 2 and cfg.use_reconstruction:
            out["reconstruction_loss"] = self.reconstruction_loss(feats.local_image, text_to_image, feats.grid, images)
            total = total + out["reconstruction_loss"]
        out["loss"] = total
        out["bml_loss"] = bml.detach()
        out["clusters_active"] = torch.tensor(float(active), device=total.device)
        out["temperature"] = self.temperature
        return out

    def reconstruct(self, local_image: torch.Tensor, text_to_image: torch.Tensor, grid: tuple[int, int],
                    output_size: tuple[int, int]) -> torch.Tensor:
        """CM-MIR: mask whole tokens of ``P`` (ratio ``mask_ratio``, global RNG), fuse with the
        text-to-image features and decode to ``[B, 3, H, W]`` in ``image_value_range``.

        Raises:
            ValueError: the model was built without CM-MIR (``use_reconstruction=False``).
        """
        if not self.config.use_reconstruction:
            raise ValueError("this CM-CGNS model was built without CM-MIR (use_reconstruction=False)")
        keep = spatial_token_mask(local_image.shape[0], local_image.shape[1], self.config.mask_ratio,
                                  device=local_image.device)
        return self.decoder(local_image * keep[..., None].to(local_image.dtype), text_to_image, grid, output_size)

    def reconstruction_loss(self, local_image: torch.Tensor, text_to_image: torch.Tensor, grid: tuple[int, int],
                            images: torch.Tensor) -> torch.Tensor:
        """``reconstruction_weight * L1(reconstruct(...), image)``."""
        recon = self.reconstruct(local_image, text_to_image, grid, tuple(images.shape[-2:]))
        return reconstruction_l1(recon, images, self.config.reconstruction_weight)


#: CM-CGNS ablations: registered name -> the config flags it switches off (one component each)
ABLATIONS: dict[str, dict[str, bool]] = {
    "cmcgns_no_cgns": {"use_cluster_negatives": False},
    "cmcgns_no_mir": {"use_reconstruction": False},
    "cmcgns_global": {"use_local_losses": False},
}


def _ablation_factory(name: str, flags: dict[str, bool]):
    def factory(config: CMCGNSConfig | Mapping[str, Any] | None = None, **overrides) -> CMCGNS:
        merged = {**(vars(config) if isinstance(config, CMCGNSConfig) else dict(config or {})), **overrides}
        clash = {k: merged[k] for k in flags if k in merged and merged[k] != flags[k]}
        if clash:
            raise ValueError(f"{name} fixes {flags}; got conflicting {clash} (use 'cmcgns' with your flags)")
        return CMCGNS({**merged, **flags})

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"CM-CGNS ablation ``{name}``: :class:`CMCGNS` with {flags} (other fields as given)."
    return factory


for _name, _flags in ABLATIONS.items():
    register_model(_name, task="image_text", tiny=_TINY)(_ablation_factory(_name, _flags))
