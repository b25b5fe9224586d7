"""MICS models: registry, shapes, masking of an absent modality, the three pre-training terms."""

from __future__ import annotations

import pytest
import torch

from medmodal.models import create_model, list_models
from medmodal.models.endoscopy.blocks import patchify, random_patch_mask

TINY = {"arch": "vit_tiny_patch16_224", "image_size": 32,
        "encoder_kwargs": {"patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}}
PRE = {**TINY, "embed_dim": 16, "queue_size": 8, "decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2}


def test_registered_under_endoscopy():
    assert {"mics", "mics_pretrain"} <= set(list_models(task="endoscopy"))


@pytest.mark.parametrize("fusion", ["cross_attention", "late"])
@pytest.mark.parametrize("modalities", [("wli", "nbi"), ("wli",), ("nbi",)])
def test_classifier_shapes_and_gradients(fusion, modalities):
    torch.manual_seed(0)
    model = create_model("mics", num_classes=4, modalities=modalities, fusion=fusion, fusion_depth=1, **TINY)
    x = torch.randn(3, len(modalities), 3, 32, 32)
    mask = torch.ones(3, len(modalities), dtype=torch.bool)
    logits = model(x, mask)
    assert logits.shape == (3, 4) and torch.isfinite(logits).all()
    logits.sum().backward()
    grads = [p.grad for p in model.encoders[modalities[0]].parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("fusion", ["cross_attention", "late"])
def test_absent_modality_is_masked(fusion):
    """A WLI-only sample's prediction does not depend on what sits in the NBI slot."""
    torch.manual_seed(0)
    model = create_model("mics", num_classes=3, fusion=fusion, fusion_depth=2, **TINY).eval()
    x = torch.randn(4, 2, 3, 32, 32)
    mask = torch.tensor([[True, False], [True, False], [True, True], [False, True]])
    other = x.clone()
    other[:2, 1] = torch.randn(2, 3, 32, 32) * 5
    a, b = model(x, mask), model(other, mask)
    assert torch.allclose(a[:2], b[:2], atol=1e-5)
    assert not torch.allclose(model(x, torch.ones(4, 2, dtype=torch.bool))[:2], a[:2], atol=1e-4)


def test_classifier_rejects_bad_input():
    model = create_model("mics", num_classes=3, fusion_depth=1, **TINY)
    with pytest.raises(ValueError, match="no modality"):
        model(torch.randn(2, 2, 3, 32, 32), torch.tensor([[True, True], [False, False]]))
    with pytest.raises(ValueError, match="images must be"):
        model(torch.randn(2, 3, 32, 32), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="modalities"):
        create_model("mics", num_classes=3, modalities=("nbi", "wli"), **TINY)
    with pytest.raises(ValueError, match="fusion"):
        create_model("mics", num_classes=3, fusion="sum", **TINY)


def test_pretrainer_losses_and_encoder_transfer():
    torch.manual_seed(0)
    pre = create_model("mics_pretrain", **PRE)
    w, n = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    out = pre.compute_losses(w, n)
    assert set(out) == {"loss", "reconstruction", "contrastive", "adversarial", "discriminator_accuracy"}
    assert all(torch.isfinite(v) for v in out.values())
    expected = 10 * out["reconstruction"] + out["contrastive"] + 0.1 * out["adversarial"]
    assert torch.allclose(out["loss"], expected)
    out["loss"].backward()
    assert int(pre.queue_ptr) == 4  # keys enqueued
    clf = create_model("mics", num_classes=3, fusion_depth=1, **TINY)
    assert clf.load_encoders(pre.encoder_state_dict()) == ["wli", "nbi"]
    for m in ("wli", "nbi"):
        for a, b in zip(clf.encoders[m].parameters(), pre.encoders[m].parameters()):
            assert torch.equal(a, b)
    other = create_model("mics", num_classes=3, fusion_depth=1, **{**TINY, "encoder_kwargs": {
        "patch_size": 8, "depth": 1, "embed_dim": 64, "num_heads": 2}})
    with pytest.raises(ValueError, match="does not fit"):
        other.load_encoders(pre.encoder_state_dict())


def test_queue_never_holds_a_pairs_own_key_as_negative():
    """A pair's older momentum key in the queue is masked out of its negatives (false negative otherwise)."""
    from medmodal.models.endoscopy.pretrain import sample_id_keys

    torch.manual_seed(0)
    pre = create_model("mics_pretrain", **{**PRE, "recon_weight": 0, "adversarial_weight": 0, "queue_size": 4})
    w, n = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    ids = sample_id_keys(["case_a", "case_b"])
    assert ids.dtype == torch.long and (ids >= 0).all() and torch.equal(ids, sample_id_keys(["case_a", "case_b"]))
    pre.compute_losses(w, n, sample_ids=ids)  # enqueue the pair keys with their ids
    assert torch.equal(pre.queue_ids[:2], ids) and (pre.queue_ids[2:] == -1).all()
    tokens = {m: pre.encoders[m](x) for m, x in (("wli", w), ("nbi", n))}
    images = {"wli": w, "nbi": n}
    masked = pre.contrastive_loss(tokens, images, update=False, sample_ids=ids)
    # by hand: per query, InfoNCE over the batch keys and the queued keys of *other* pairs only
    z = {m: torch.nn.functional.normalize(pre.projections[m](tokens[m].mean(1)), dim=-1) for m in images}
    k = {m: torch.nn.functional.normalize(pre.momentum_projections[m](pre.momentum_encoders[m](images[m]).mean(1)),
                                          dim=-1) for m in images}
    expected = 0.0
    for a, b in (("wli", "nbi"), ("nbi", "wli")):
        queue = getattr(pre, f"queue_{b}")
        for i in range(2):
            keys = torch.cat([k[b], queue[pre.queue_ids != ids[i]]])
            expected = expected + torch.nn.functional.cross_entropy(z[a][i:i + 1] @ keys.t() / 0.07,
                                                                    torch.tensor([i])) / 4
    assert torch.allclose(masked, expected, atol=1e-5)
    unmasked = pre.contrastive_loss(tokens, images, update=False)  # without ids nothing is masked
    assert not torch.allclose(unmasked, masked, atol=1e-4)
    other = pre.contrastive_loss(tokens, images, update=False, sample_ids=sample_id_keys(["case_c", "case_d"]))
    assert torch.allclose(other, unmasked, atol=1e-6)


def test_adversarial_term_trains_the_encoders_with_reversed_gradient():
    """The released code's adversarial term sends no gradient to the encoders; here it must, reversed."""
    torch.manual_seed(0)
    pre = create_model("mics_pretrain", **{**PRE, "recon_weight": 0, "contrastive_weight": 0,
                                           "adversarial_weight": 1.0, "grl_lambda": 1.0})
    w, n = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    pre.compute_losses(w, n)["loss"].backward()
    param = pre.encoders["wli"].backbone.patch_embed.proj.weight
    reversed_grad = param.grad.clone()
    assert reversed_grad.abs().sum() > 0
    pre.zero_grad()
    # the same loss without reversal: the encoder gradient must be the exact negative
    pre.cfg.grl_lambda = -1.0
    pre.compute_losses(w, n)["loss"].backward()
    assert torch.allclose(param.grad, -reversed_grad, atol=1e-6)
    # the discriminator itself is trained normally (same gradient either way)
    assert pre.discriminator[0].weight.grad.abs().sum() > 0


def test_non_saturating_adversarial_objective_keeps_encoder_gradient_when_discriminator_wins():
    """GRL sends the encoders -(p - y), ~0 once the discriminator is sure; the flipped-label loss does not vanish."""
    torch.manual_seed(0)
    kw = {**PRE, "recon_weight": 0, "contrastive_weight": 0, "adversarial_weight": 1.0}
    grads = {}
    for objective in ("grl", "non_saturating"):
        pre = create_model("mics_pretrain", **{**kw, "adversarial_objective": objective})
        torch.manual_seed(1)
        w, n = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32) + 3.0
        with torch.no_grad():  # a discriminator that already wins: the last layer says "NBI" iff feature 0 is large
            tokens = {m: pre.encoders[m](x) for m, x in (("wli", w), ("nbi", n))}
            pre.discriminator[0].weight.zero_()
            pre.discriminator[0].bias.zero_()
            diff = tokens["nbi"].mean((0, 1)) - tokens["wli"].mean((0, 1))
            pre.discriminator[0].weight[0] = diff / diff.norm()
            centre = (tokens["nbi"].mean((0, 1)) + tokens["wli"].mean((0, 1))) / 2 @ pre.discriminator[0].weight[0]
            pre.discriminator[0].bias[0] = -centre
            pre.discriminator[2].weight.zero_()
            pre.discriminator[2].weight[0, 0] = 200.0
        out = pre.compute_losses(w, n)
        assert float(out["discriminator_accuracy"]) > 0.95
        out["loss"].backward()
        grads[objective] = pre.encoders["wli"].backbone.patch_embed.proj.weight.grad.norm()
        assert pre.discriminator[0].weight.grad.abs().sum() > 0  # the discriminator is trained either way
    assert grads["non_saturating"] > 100 * grads["grl"]
    with pytest.raises(ValueError, match="adversarial_objective"):
        create_model("mics_pretrain", **{**PRE, "adversarial_objective": "wgan"})


def test_zero_weight_terms_are_skipped_and_all_zero_refused():
    pre = create_model("mics_pretrain", **{**PRE, "recon_weight": 0, "adversarial_weight": 0})
    out = pre.compute_losses(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32))
    values = {k: float(v.detach()) for k, v in out.items()}
    assert values["reconstruction"] == 0 and values["adversarial"] == 0 and values["contrastive"] > 0
    with pytest.raises(ValueError, match="loss weights"):
        create_model("mics_pretrain", **{**PRE, "recon_weight": 0, "adversarial_weight": 0, "contrastive_weight": 0})


def test_cnn_encoder_pretraining_masks_pixels():
    pre = create_model("mics_pretrain", arch="resnet18", image_size=64, embed_dim=16, queue_size=8, decoder_dim=16,
                       decoder_depth=1, decoder_heads=2)
    out = pre.compute_losses(torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64))
    assert torch.isfinite(out["loss"])


def test_mae_helpers():
    visible, masked = random_patch_mask(3, 16, 0.75)
    assert visible.shape == (3, 4) and masked.sum(1).tolist() == [12, 12, 12]
    assert not masked.gather(1, visible).any()
    img = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    p = patchify(img, 2)
    assert p.shape == (2, 4, 12) and p[0, 0, :3].tolist() == [0.0, 16.0, 32.0]
