"""The batched CM-CGNS objective equals the per-sample (released-style) formulation: losses to 1e-5
and gradients, stage I and II, clusters forced active and kept inactive, ResNet and ViT paths."""

from __future__ import annotations

import copy

import pytest
import torch

from medmodal.models.image_text.reference_loop import reference_compute_losses
from tests.models.image_text.conftest import tiny_batch, tiny_model


@pytest.mark.parametrize("backbone", ["test_resnet", "test_vit"])
@pytest.mark.parametrize("clusters", ["active", "inactive"])
def test_batched_equals_per_sample(backbone, clusters):
    # activation threshold 1.0: seeded at the first step (>= K=4 sentences), used from the second on
    model = tiny_model(backbone, kmeans_activation_cosine=1.0 if clusters == "active" else -1.0).train()
    reference = copy.deepcopy(model)
    batches = [tiny_batch(seed=s) for s in range(3)]
    seen_active = []
    for step, (stage, batch) in enumerate(zip((1, 1, 2), batches)):
        torch.manual_seed(100 + step)
        got = model.compute_losses(batch, stage=stage, update_clusters=True)
        torch.manual_seed(100 + step)
        want = reference_compute_losses(reference, batch, stage=stage, update_clusters=True)
        assert set(got) == set(want)
        for key in want:
            torch.testing.assert_close(got[key], want[key], atol=1e-5, rtol=1e-5, msg=f"step {step}: {key}")
        model.zero_grad()
        reference.zero_grad()
        got["loss"].backward()
        want["loss"].backward()
        for (name, p), q in zip(model.named_parameters(), reference.parameters()):
            if p.grad is None:
                assert q.grad is None, name
                continue
            torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=f"step {step}: grad of {name}")
        torch.testing.assert_close(model.kmeans.centroids, reference.kmeans.centroids, atol=1e-6, rtol=1e-5)
        seen_active.append(bool(got["clusters_active"]))
    assert seen_active == ([False, True, True] if clusters == "active" else [False, False, False])
    assert bool(model.kmeans.is_initialized) == (clusters == "active")
