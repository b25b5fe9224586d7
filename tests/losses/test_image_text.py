"""Image-report losses: InfoNCE, SimSiam, BML, online k-means and the cluster-guided local report loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medmodal.losses.image_text import (
    OnlineKMeans,
    bidirectional_margin_loss,
    cluster_guided_info_nce,
    gather_with_grad,
    info_nce_loss,
    reconstruction_l1,
    simsiam_loss,
)


def unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


# ------------------------------------------------------------------ global InfoNCE
def test_info_nce_matches_hand_computation():
    img, txt = unit(6, 8, seed=1), unit(6, 8, seed=2)
    scale = torch.tensor(10.0)
    sim = img @ txt.t() * 10.0
    by_hand = 0.0
    for i in range(6):
        by_hand += -torch.log_softmax(sim[i], 0)[i] - torch.log_softmax(sim[:, i], 0)[i]
    torch.testing.assert_close(info_nce_loss(img, txt, scale), by_hand / 12)


def test_info_nce_aligned_pairs_beat_shuffled_and_validates():
    img = unit(8, 16, seed=3)
    aligned = info_nce_loss(img, img, 1 / 0.1)
    shuffled = info_nce_loss(img, img.roll(1, 0), 1 / 0.1)
    assert aligned < 0.05 < shuffled
    with pytest.raises(ValueError, match=r"\[B, E\]"):
        info_nce_loss(img, img[:4], 10.0)


def test_gather_without_process_group_is_identity():
    x = torch.randn(3, 4)
    gathered, offset = gather_with_grad(x)
    assert gathered is x and offset == 0


# ------------------------------------------------------------------ SimSiam
def test_simsiam_value_and_stop_gradient():
    x = torch.randn(2, 5, 8, requires_grad=True)
    y = torch.randn(2, 5, 8, requires_grad=True)
    predictor = torch.nn.Linear(8, 8)
    loss = simsiam_loss(x, y, predictor)
    by_hand = -0.5 * (F.cosine_similarity(predictor(x), y.detach(), -1).mean()
                      + F.cosine_similarity(predictor(y), x.detach(), -1).mean())
    torch.testing.assert_close(loss, by_hand)
    # with the identity predictor and x == y the loss is -1 and no gradient flows through the targets
    z = torch.randn(3, 8, requires_grad=True)
    out = simsiam_loss(z, z, lambda t: t * 1.0)
    assert math.isclose(out.item(), -1.0, abs_tol=1e-6)
    out.backward()
    torch.testing.assert_close(z.grad, torch.zeros_like(z), atol=1e-6, rtol=0)


# ------------------------------------------------------------------ BML
def test_bidirectional_margin_loss_by_hand():
    cos = torch.tensor([[0.9, 0.8, 0.1], [0.2, 0.5, 0.0], [0.3, 0.3, 0.7]])
    mask = torch.tensor([[0, 1, 1], [0, 0, 0], [1, 0, 0]], dtype=torch.bool)
    # masked deltas: (0,1) -0.1 -> relu(0.1)=0.1 ; (0,2) -0.8 -> relu(-0.6)+relu(0.3)=0.3 ; (2,0) -0.4 -> 0 + 0
    expected = (0.1 + 0.3 + 0.0 + 6 * 0.2) / 9  # 6 unmasked entries give alpha each
    torch.testing.assert_close(bidirectional_margin_loss(cos, mask, 0.2, 0.5), torch.tensor(expected))


# ------------------------------------------------------------------ online k-means
def test_kmeans_farthest_point_seeding():
    points = unit(12, 6, seed=4)
    km = OnlineKMeans(4, 6)
    torch.manual_seed(7)
    first = int(torch.randint(12, (1,)))
    torch.manual_seed(7)
    km.initialize(points)
    cos = points @ points.t()
    chosen = [first]
    for _ in range(3):  # lowest cosine to the previously chosen point among the unchosen
        row = cos[chosen[-1]].clone()
        row[chosen] = float("inf")
        chosen.append(int(row.argmin()))
    torch.testing.assert_close(km.centroids, points[chosen])
    assert km.is_initialized and len(set(chosen)) == 4
    with pytest.raises(ValueError, match="at least K=4"):
        OnlineKMeans(4, 6).initialize(points[:3])


def test_kmeans_momentum_update_and_empty_cluster():
    km = OnlineKMeans(3, 2, momentum_lr=0.1)
    km.centroids.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    km.initialized.fill_(1)
    points = torch.tensor([[1.0, 0.1], [0.9, -0.1], [0.1, 1.0]])  # two to cluster 0, one to 1, none to 2
    km.update(points)
    expected = torch.tensor([[0.1 * 1.9 + 0.9, 0.0], [0.1 * 0.1, 0.1 * 1.0 + 0.9], [-1.0, 0.0]])
    torch.testing.assert_close(km.centroids, expected)
    assert km.counts.tolist() == [2, 1, 0] and int(km.num_updates) == 1


def test_kmeans_hard_negative_is_second_nearest_and_same_cluster_mask():
    km = OnlineKMeans(3, 2)
    km.centroids.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    points = torch.tensor([[1.0, 0.2], [0.9, 0.3], [-0.2, 1.0]])
    torch.testing.assert_close(km.hard_negatives(points), torch.tensor([[0.0, 1.0], [0.0, 1.0], [-1.0, 0.0]]))
    mask = km.same_cluster_mask(points)
    assert mask.tolist() == [[False, True, False], [True, False, False], [False, False, False]]


def test_kmeans_state_is_in_state_dict():
    km = OnlineKMeans(4, 6)
    km.initialize(unit(8, 6))
    clone = OnlineKMeans(4, 6)
    clone.load_state_dict(km.state_dict())
    assert clone.is_initialized and torch.equal(clone.centroids, km.centroids)


# ------------------------------------------------------------------ cluster-guided local report loss
def test_without_clusters_it_is_in_batch_info_nce():
    z1, z2 = unit(10, 8, seed=5), unit(10, 8, seed=6)
    out = cluster_guided_info_nce(z1, z2, None, update_clusters=True, temperature=0.5)
    torch.testing.assert_close(out.loss, F.cross_entropy(z1 @ z2.t() / 0.5, torch.arange(10)))
    assert not out.clusters_active and out.bml == 0


def test_activation_threshold_seeding_and_validation_never_seeds():
    z1, z2 = unit(10, 8, seed=5), unit(10, 8, seed=6)
    km = OnlineKMeans(4, 8)
    mean_cos = float((z1 @ z2.t()).mean())
    cluster_guided_info_nce(z1, z2, km, update_clusters=False, activation_cosine=1.0)
    assert not km.is_initialized  # validation (update_clusters=False) never seeds
    cluster_guided_info_nce(z1, z2, km, update_clusters=True, activation_cosine=mean_cos - 0.01)
    assert not km.is_initialized  # mean cosine above the threshold
    few = cluster_guided_info_nce(z1[:3], z2[:3], km, update_clusters=True, activation_cosine=1.0)
    assert not km.is_initialized and not few.clusters_active  # fewer sentences than clusters
    out = cluster_guided_info_nce(z1, z2, km, update_clusters=True, activation_cosine=mean_cos + 0.01)
    assert km.is_initialized and not out.clusters_active  # seeded; hard negatives from the next step on


def test_active_clusters_loss_by_hand_and_update_flag():
    z1, z2 = unit(10, 8, seed=7), unit(10, 8, seed=8)
    km = OnlineKMeans(4, 8, momentum_lr=0.5)
    km.initialize(z2)
    before = km.centroids.clone()
    out = cluster_guided_info_nce(z1, z2, km, update_clusters=False, hard_negative_weight=3.0, bml_weight=0.1)
    assert out.clusters_active and torch.equal(km.centroids, before)  # no update without update_clusters
    cos = z1 @ z2.t()
    hard = F.normalize(km.hard_negatives(z1), dim=-1)
    extra = torch.diag(3.0 * (z1 * hard).sum(-1))  # multiplicative weight: own hard negative x3, others 0
    ce = F.cross_entropy(torch.cat([cos, extra], 1), torch.arange(10))
    bml = bidirectional_margin_loss(cos, km.same_cluster_mask(z1))
    torch.testing.assert_close(out.info_nce, ce)
    torch.testing.assert_close(out.loss, ce + 0.1 * bml)
    cluster_guided_info_nce(z1, z2, km, update_clusters=True)
    assert not torch.equal(km.centroids, before) and int(km.num_updates) == 1


def test_reconstruction_l1_weight_and_resize():
    image = torch.rand(2, 3, 8, 8) * 2 - 1
    torch.testing.assert_close(reconstruction_l1(image + 0.5, image, weight=10.0), torch.tensor(5.0))
    small = F.interpolate(image, size=(4, 4), mode="bilinear", align_corners=True)
    assert reconstruction_l1(small, image, 1.0) < 1e-6


def test_gathered_info_nce_moved_to_layers_unchanged():
    """layers.contrastive is the home; the old paths re-export the same objects; values as before the move."""
    from medmodal.layers import contrastive
    from medmodal.losses import image_text
    from medmodal.models.image_text import objectives

    assert image_text.info_nce_loss is objectives.info_nce_loss is contrastive.info_nce_loss
    assert image_text.gather_with_grad is objectives.gather_with_grad is contrastive.gather_with_grad
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    b = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    # computed on the tree before the move (commit a3d1149)
    assert contrastive.info_nce_loss(a, b, 14.0).item() == 4.403466701507568
    assert contrastive.info_nce_loss(a, b, torch.tensor(3.0), weights=(0.75, 0.25)).item() == 1.8381372690200806


def test_image_text_objective_is_the_models_compute_losses():
    from medmodal.losses import StepContext, build_objective
    from tests.models.image_text.conftest import tiny_batch, tiny_model

    batch = tiny_batch()
    objective = build_objective("image_text")
    for update in (True, False):
        torch.manual_seed(0)
        want = tiny_model().compute_losses(batch, stage=2, update_clusters=update)
        torch.manual_seed(0)
        got = objective(batch, StepContext(model=tiny_model(), stage=2, update=update))
        assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
