"""CM-CGNS model: registry, config, loss dictionary, stages, k-means handling, checkpoint round-trip."""

from __future__ import annotations

import copy

import pytest
import torch

from medmodal.models import CMCGNSConfig, create_model, get_model_task, list_models
from tests.models.image_text.conftest import NUM_SENTENCES, tiny_batch, tiny_model


def test_registered_as_image_text_and_not_in_segmentation_suite():
    assert "cmcgns" in list_models(task="image_text")
    assert "cmcgns" not in list_models(task="segmentation") and "dmafnet" in list_models(task="segmentation")
    assert get_model_task("cmcgns") == "image_text"
    with pytest.raises(ValueError, match="no modalities"):
        create_model("cmcgns", modalities=("a",), num_classes=2)
    with pytest.raises(ValueError, match="unknown task"):
        list_models(task="detection")


def test_config_holds_the_released_defaults_and_validates():
    cfg = CMCGNSConfig()
    released = dict(image_encoder="resnet50", embed_dim=768, temperature=0.1, learnable_temperature=True,
                    local_report_temperature=1.0, num_clusters=128, kmeans_momentum_lr=1e-3,
                    kmeans_activation_cosine=0.4, hard_negative_rank=2, hard_negative_weight=3.0, bml_alpha=0.2,
                    bml_beta=0.5, bml_weight=1e-4, mask_ratio=0.5, reconstruction_weight=10.0, stage1_epochs=10,
                    stage2_epochs=20, optimizer="adam", learning_rate=1e-5, weight_decay=1e-6, warmup_epochs=1)
    assert {k: getattr(cfg, k) for k in released} == released
    with pytest.raises(TypeError, match="no_such_option"):
        CMCGNSConfig.from_kwargs(no_such_option=1)
    with pytest.raises(ValueError, match="mask_ratio"):
        CMCGNSConfig.from_kwargs(mask_ratio=1.0)


def test_loss_dict_per_stage_and_bad_arguments(batch):
    model = tiny_model()
    one = model.compute_losses(batch, stage=1, update_clusters=False)
    assert {"loss", "global_loss", "local_image_loss", "local_report_loss"} <= set(one)
    assert "reconstruction_loss" not in one
    two = model.compute_losses(batch, stage=2, update_clusters=False)
    parts = two["global_loss"] + two["local_image_loss"] + two["local_report_loss"] + two["reconstruction_loss"]
    torch.testing.assert_close(two["loss"], parts)
    assert all(torch.isfinite(v) for v in two.values())
    assert float(two["temperature"]) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="stage"):
        model.compute_losses(batch, stage=3, update_clusters=False)
    with pytest.raises(ValueError, match="missing"):
        model.compute_losses({k: v for k, v in batch.items() if k != "sentence_index"}, stage=1, update_clusters=False)


def test_every_trained_part_gets_gradient_in_stage_2(batch):
    model = tiny_model().train()
    model.compute_losses(batch, stage=2, update_clusters=True)["loss"].backward()
    parts = ["image_encoder", "text_encoder", "global_image_projection", "local_image_projection",
             "local_text_projection", "text_pool", "cross_attention", "predictor", "decoder"]
    for name in parts:
        grads = [p.grad for p in getattr(model, name).parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), name
    assert model.logit_scale.grad is not None


def test_clusters_update_only_when_asked(batch):
    model = tiny_model(kmeans_activation_cosine=1.0)
    for _ in range(2):
        out = model.compute_losses(batch, stage=1, update_clusters=False)
    assert not model.kmeans.is_initialized and float(out["clusters_active"]) == 0.0
    model.compute_losses(batch, stage=1, update_clusters=True)  # seeds (>= K=4 sentences)
    assert model.kmeans.is_initialized
    frozen = model.kmeans.centroids.clone()
    out = model.compute_losses(batch, stage=1, update_clusters=False)  # validation: uses, never moves
    assert float(out["clusters_active"]) == 1.0 and torch.equal(model.kmeans.centroids, frozen)
    model.compute_losses(batch, stage=1, update_clusters=True)
    assert not torch.equal(model.kmeans.centroids, frozen)


def test_encode_image_and_text_are_normalised(batch):
    model = tiny_model().eval()
    with torch.no_grad():
        img = model.encode_image(batch["image"])
        txt = model.encode_text(batch["input_ids"], batch["attention_mask"], batch["sentence_index"],
                                batch["num_sentences"])
    assert img.shape == txt.shape == (5, 32)
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(5))
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(5))


def test_vit_backbone_trains(batch):
    model = tiny_model("test_vit")
    assert model.decoder.fusion == "attention"
    out = model.compute_losses(batch, stage=2, update_clusters=True)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and model.image_encoder.backbone.pos_embed.grad is not None


def _train(model, opt, batches, stage=2):
    losses = []
    for b in batches:
        opt.zero_grad()
        out = model.compute_losses(b, stage=stage, update_clusters=True)
        out["loss"].backward()
        opt.step()
        losses.append({k: v.detach().clone() for k, v in out.items()})
    return losses


def test_state_dict_round_trip_mid_training_is_bit_identical():
    """Save after 3 steps (clusters seeded and moving), reload into a fresh model: the next steps
    give bit-identical losses; a fresh model without the checkpoint does not."""
    batches = [tiny_batch(seed=s) for s in range(5)]
    model = tiny_model(kmeans_activation_cosine=1.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    _train(model, opt, batches[:3])
    assert model.kmeans.is_initialized and int(model.kmeans.num_updates) >= 1
    checkpoint = {"model": copy.deepcopy(model.state_dict()), "opt": copy.deepcopy(opt.state_dict()),
                  "rng": torch.get_rng_state()}
    expected = _train(model, opt, batches[3:])

    resumed = tiny_model(kmeans_activation_cosine=1.0, seed=123)
    resumed.load_state_dict(checkpoint["model"])
    assert "kmeans.centroids" in checkpoint["model"] and resumed.kmeans.is_initialized
    ropt = torch.optim.Adam(resumed.parameters(), lr=1e-3)
    ropt.load_state_dict(checkpoint["opt"])
    torch.set_rng_state(checkpoint["rng"])
    got = _train(resumed, ropt, batches[3:])
    for want, have in zip(expected, got):
        for key in want:
            assert torch.equal(want[key], have[key]), key
    torch.set_rng_state(checkpoint["rng"])
    fresh = tiny_model(kmeans_activation_cosine=1.0, seed=123)
    fresh.load_state_dict({k: v for k, v in checkpoint["model"].items() if not k.startswith("kmeans.")},
                          strict=False)
    first = _train(fresh, torch.optim.Adam(fresh.parameters(), lr=1e-3), batches[3:4])[0]
    assert not torch.equal(first["local_report_loss"], expected[0]["local_report_loss"])


def test_cached_text_features_freeze_the_text_encoder_and_keep_the_losses(batch):
    trained, cached = tiny_model(), tiny_model(cache_text_features=True)
    trained.text_encoder.model.eval()  # the same features as the cache: no dropout (TINY has none anyway)
    reference = trained.compute_losses(batch, stage=1, update_clusters=False)
    losses = cached.compute_losses(batch, stage=1, update_clusters=False)
    torch.testing.assert_close(losses["global_loss"], reference["global_loss"], atol=1e-5, rtol=1e-5)
    losses["loss"].backward()
    assert all(p.grad is None for p in cached.text_encoder.parameters())
    assert cached.local_text_projection.weight.grad is not None and len(cached.text_encoder.cache) == len(NUM_SENTENCES)
