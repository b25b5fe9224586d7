"""ConVIRT / GLoRIA-style / MGCA-style baselines and the CM-CGNS ablations: the shared interface
(shapes, finite losses, gradients into both encoders) and each loss against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medmodal.losses.image_text import (
    info_nce_loss,
    prototype_swap_loss,
    sinkhorn_knopp,
    token_alignment_loss,
    word_region_attention_loss,
)
from medmodal.models import create_model, list_models
from tests.models.image_text.conftest import TINY, TINY_TEXT

BASE = {"image_encoder": "test_resnet", "image_size": 64, "text_model_config": TINY_TEXT, "embed_dim": 32}
TINY_BY_MODEL = {
    "convirt": dict(BASE, projection_hidden_dim=16),
    "gloria": dict(BASE),
    "mgca": dict(BASE, projection_hidden_dim=16, num_prototypes=8),
    "cmcgns": dict(TINY, image_encoder="test_resnet"),
    "cmcgns_no_cgns": dict(TINY, image_encoder="test_resnet"),
    "cmcgns_no_mir": dict(TINY, image_encoder="test_resnet"),
    "cmcgns_global": dict(TINY, image_encoder="test_resnet"),
}
WEIGHTS = {"global_loss": "global_weight", "local_loss": "local_weight", "prototype_loss": "prototype_weight",
           "local_image_loss": "local_image_weight", "local_report_loss": "local_report_weight"}


def build(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return create_model(name, **{**TINY_BY_MODEL[name], **overrides})


def test_every_image_text_model_has_a_tiny_config():
    assert sorted(TINY_BY_MODEL) == list_models(task="image_text")


@pytest.mark.parametrize("name", sorted(TINY_BY_MODEL))
def test_interface_shapes_finite_losses_and_gradients(name, batch):
    model = build(name).train()
    out = model.compute_losses(batch, stage=2, update_clusters=True)
    assert all(torch.isfinite(v).all() for v in out.values()), out
    terms = {k: v for k, v in out.items() if k.endswith("_loss") and k != "bml_loss"}
    assert terms and "global_loss" in terms
    expected = sum(getattr(model.config, WEIGHTS.get(k, "global_weight"), 1.0) * v for k, v in terms.items())
    torch.testing.assert_close(out["loss"], expected)
    out["loss"].backward()
    for encoder in (model.image_encoder.backbone, model.text_encoder.model):
        grads = [p.grad for p in encoder.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{name}: no gradient in {type(encoder)}"
    model.eval()
    with torch.no_grad():
        img = model.encode_image(batch["image"])
        txt = model.encode_text(batch["input_ids"], batch["attention_mask"], batch["sentence_index"],
                                batch["num_sentences"])
    assert img.shape == txt.shape == (5, model.config.embed_dim)
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(5))
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(5))
    assert set(model.backbone_state_dict()) == set(model.image_encoder.backbone.state_dict())
    with pytest.raises(ValueError, match="missing"):
        model.compute_losses({k: v for k, v in batch.items() if k != "image"}, stage=1, update_clusters=False)
    with pytest.raises(ValueError, match="stage"):
        model.compute_losses(batch, stage=0, update_clusters=False)


def test_reference_defaults():
    convirt, gloria, mgca = (type(create_model(n, **BASE)).config_class() for n in ("convirt", "gloria", "mgca"))
    assert (convirt.embed_dim, convirt.temperature, convirt.image_to_text_weight, convirt.learning_rate) == (
        512, 0.1, 0.75, 1e-4)
    assert (gloria.temp_attention, gloria.temp_word, gloria.local_logit_scale, gloria.learning_rate) == (4, 5, 10, 5e-5)
    assert (mgca.embed_dim, mgca.temperature, mgca.local_temperature, mgca.num_prototypes, mgca.local_weight,
            mgca.prototype_weight, mgca.sinkhorn_epsilon, mgca.proto_temperature) == (
        128, 0.07, 0.1, 500, 0.7, 0.5, 0.05, 0.2)
    with pytest.raises(TypeError, match="bogus"):
        create_model("convirt", bogus=1)
    with pytest.raises(ValueError, match="image_to_text_weight"):
        create_model("convirt", **BASE, image_to_text_weight=2.0)


# ----------------------------------------------------------------------------- hand computations
def _ce(logits_row: list[float], target: int) -> float:
    return -logits_row[target] + math.log(sum(math.exp(x) for x in logits_row))


def test_convirt_weighted_info_nce_by_hand():
    v = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), dim=-1)
    u = F.normalize(torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.9]]), dim=-1)
    tau, lam = 0.1, 0.75
    sim = (v @ u.t()).tolist()
    i2t = sum(_ce([s / tau for s in sim[i]], i) for i in range(3)) / 3
    t2i = sum(_ce([sim[j][i] / tau for j in range(3)], i) for i in range(3)) / 3
    got = info_nce_loss(v, u, 1.0 / tau, weights=(lam, 1 - lam))
    assert float(got) == pytest.approx(lam * i2t + (1 - lam) * t2i, rel=1e-5)
    assert float(info_nce_loss(v, u, 1.0 / tau)) == pytest.approx(0.5 * (i2t + t2i), rel=1e-5)


def test_convirt_model_loss_is_its_embeddings_contrast(batch):
    model = build("convirt").eval()
    with torch.no_grad():
        out = model.compute_losses(batch, stage=1, update_clusters=False)
        v = model.encode_image(batch["image"])
        u = model.encode_text(batch["input_ids"], batch["attention_mask"], batch["sentence_index"],
                              batch["num_sentences"])
    sim = (v @ u.t()).tolist()
    n = len(sim)
    i2t = sum(_ce([s / 0.1 for s in sim[i]], i) for i in range(n)) / n
    t2i = sum(_ce([sim[j][i] / 0.1 for j in range(n)], i) for i in range(n)) / n
    assert float(out["loss"]) == pytest.approx(0.75 * i2t + 0.25 * t2i, rel=1e-4)


def _gloria_loop(words, valid, regions, t1, t2, t3):
    """GLoRIA's local loss written as the reference: per report, per image, two softmaxes."""
    b = words.shape[0]
    sims = torch.zeros(b, b)  # [image j, report i]
    for i in range(b):
        w = words[i][valid[i]]  # [n_words, E]
        for j in range(b):
            attn = regions[j] @ w.t()  # [N, n_words]
            attn = torch.softmax(attn, dim=1)  # over words
            attn = torch.softmax(t1 * attn.t(), dim=1)  # [n_words, N], over regions
            context = attn @ regions[j]  # [n_words, E]
            cos = F.cosine_similarity(w, context, dim=1)
            sims[j, i] = torch.log(torch.exp(t2 * cos).sum())
    sims = t3 * sims
    labels = torch.arange(b)
    return F.cross_entropy(sims, labels) + F.cross_entropy(sims.t(), labels)


def test_gloria_local_loss_matches_the_per_pair_reference():
    g = torch.Generator().manual_seed(0)
    words, regions = torch.randn(3, 5, 4, generator=g), torch.randn(3, 6, 4, generator=g)
    valid = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 0, 0]]).bool()
    got = word_region_attention_loss(words, valid, regions, 4.0, 5.0, 10.0)
    torch.testing.assert_close(got, _gloria_loop(words, valid, regions, 4.0, 5.0, 10.0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="valid word"):
        word_region_attention_loss(words, torch.zeros_like(valid), regions)


def _token_loop(q, weight, k, key_valid, t):
    total = 0.0
    for b in range(q.shape[0]):
        keep = weight[b] > 0
        qb, wb = q[b][keep], weight[b][keep] / weight[b][keep].sum()
        kb = k[b][key_valid[b]]
        attended = F.normalize(torch.softmax(qb @ kb.t() / t, dim=1) @ kb, dim=1)
        s = qb @ attended.t() / t
        labels = torch.arange(len(qb))
        rows = F.cross_entropy(s, labels, reduction="none")
        cols = F.cross_entropy(s.t(), labels, reduction="none")
        total = total + (0.5 * (rows + cols) * wb).sum()
    return total / q.shape[0]


def test_mgca_token_alignment_matches_the_per_sample_reference():
    g = torch.Generator().manual_seed(1)
    q = F.normalize(torch.randn(2, 4, 8, generator=g), dim=-1)
    k = F.normalize(torch.randn(2, 5, 8, generator=g), dim=-1)
    weight = torch.tensor([[1.0, 1.0, 0.0, 1.0], [0.5, 0.2, 0.2, 0.1]])
    key_valid = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool()
    got = token_alignment_loss(q, weight, k, key_valid, 0.1)
    torch.testing.assert_close(got, _token_loop(q, weight, k, key_valid, 0.1), rtol=1e-5, atol=1e-5)


def test_sinkhorn_equipartition_and_prototype_loss_by_hand():
    g = torch.Generator().manual_seed(2)
    scores = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
    codes = sinkhorn_knopp(scores, epsilon=0.05, iterations=50)
    torch.testing.assert_close(codes.sum(1), torch.ones(6))
    torch.testing.assert_close(codes.sum(0), torch.full((4,), 6 / 4), rtol=1e-3, atol=1e-3)
    # 3 iterations as MGCA's sinkhorn in plain (non-log) arithmetic
    q = torch.exp(scores / 0.05).t()
    q = q / q.sum()
    for _ in range(3):
        q = q * ((1 / 4) / q.sum(1)).unsqueeze(1)
        q = q * ((1 / 6) / q.sum(0)).unsqueeze(0)
    torch.testing.assert_close(sinkhorn_knopp(scores, 0.05, 3), (q / q.sum(0, keepdim=True)).t())
    other = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
    qi, qt = sinkhorn_knopp(scores, 0.05, 3), sinkhorn_knopp(other, 0.05, 3)
    pi, pt = torch.softmax(scores / 0.2, 1), torch.softmax(other / 0.2, 1)
    want = 0.5 * (-(qi * pt.log()).sum(1).mean() - (qt * pi.log()).sum(1).mean())
    torch.testing.assert_close(prototype_swap_loss(scores, other, 0.05, 3, 0.2), want)


def test_mgca_prototypes_normalised_in_training_and_frozen_in_first_epoch(batch):
    model = build("mgca").train()
    model.compute_losses(batch, stage=1, update_clusters=True)["loss"].backward()
    torch.testing.assert_close(model.prototypes.weight.norm(dim=1), torch.ones(8))
    assert model.prototypes.weight.grad is not None  # no epoch given: trained from the start
    model.zero_grad()
    model.set_epoch(0)
    assert model.prototypes_frozen
    model.compute_losses(batch, stage=1, update_clusters=True)["loss"].backward()
    assert model.prototypes.weight.grad is None
    model.set_epoch(1)
    model.compute_losses(batch, stage=1, update_clusters=True)["loss"].backward()
    assert model.prototypes.weight.grad is not None


# ----------------------------------------------------------------------------- CM-CGNS ablations
def test_ablations_drop_exactly_their_component(batch):
    full = build("cmcgns", kmeans_activation_cosine=1.0)
    assert {"kmeans", "decoder", "predictor", "cross_attention"} <= set(dict(full.named_children()))
    no_cgns = build("cmcgns_no_cgns", kmeans_activation_cosine=1.0)
    assert not hasattr(no_cgns, "kmeans") and no_cgns.config.use_cluster_negatives is False
    for _ in range(2):
        out = no_cgns.compute_losses(batch, stage=1, update_clusters=True)
    assert float(out["clusters_active"]) == 0.0 and float(out["bml_loss"]) == 0.0
    for _ in range(2):
        out = full.compute_losses(batch, stage=1, update_clusters=True)
    assert float(out["clusters_active"]) == 1.0

    no_mir = build("cmcgns_no_mir")
    assert not hasattr(no_mir, "decoder")
    assert set(no_mir.compute_losses(batch, stage=2, update_clusters=False)) >= {"local_image_loss",
                                                                                  "local_report_loss"}
    assert "reconstruction_loss" not in no_mir.compute_losses(batch, stage=2, update_clusters=False)
    with pytest.raises(ValueError, match="CM-MIR"):
        no_mir.reconstruct(torch.zeros(1, 4, 32), torch.zeros(1, 4, 32), (2, 2), (64, 64))

    glob = build("cmcgns_global")
    assert not hasattr(glob, "predictor") and not hasattr(glob, "kmeans")
    one = glob.compute_losses(batch, stage=1, update_clusters=True)
    assert {k for k in one if k.endswith("_loss")} == {"global_loss", "bml_loss"}
    torch.testing.assert_close(one["loss"], one["global_loss"])
    assert "reconstruction_loss" in glob.compute_losses(batch, stage=2, update_clusters=True)
    with pytest.raises(ValueError, match="conflicting"):
        create_model("cmcgns_no_mir", **TINY_BY_MODEL["cmcgns_no_mir"], use_reconstruction=True)
