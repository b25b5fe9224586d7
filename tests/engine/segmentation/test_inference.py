"""Shared-encoder subset inference equals K separate passes (the speed path must not change results)."""

import pytest
import torch

from medmodal.data.missing import all_subsets
from medmodal.inference.segmentation import predict_probabilities, predict_probabilities_all_subsets
from medmodal.models import create_model

TINY = {"widths": (4, 8, 16), "token_grid": 2, "num_heads": 2, "depth": 1}


@pytest.mark.parametrize("fusion", ["dmaf", "mean"])
def test_shared_encoder_equals_separate_passes(fusion):
    torch.manual_seed(0)
    model = create_model("dmafnet", modalities=["flair", "t1", "t1ce", "t2"], num_classes=4, fusion=fusion, **TINY)
    model.eval()
    image = torch.randn(1, 4, 26, 22, 19)  # not a multiple of the window: padding + overlap paths
    subsets = torch.tensor(all_subsets(4))
    naive = torch.cat([predict_probabilities(model, image, s, (16, 16, 16), 0.5, 3) for s in subsets])
    shared = predict_probabilities_all_subsets(model, image, subsets, (16, 16, 16), 0.5, 3)
    assert shared.shape == (15, 4, 26, 22, 19)
    torch.testing.assert_close(shared, naive, rtol=0, atol=1e-6)
    assert torch.equal(shared.argmax(1), naive.argmax(1))


def test_probabilities_ignore_absent_sequence_voxels():
    torch.manual_seed(1)
    model = create_model("dmafnet", modalities=["flair", "t1", "t1ce", "t2"], num_classes=4, **TINY).eval()
    image = torch.randn(1, 4, 16, 16, 16)
    mask = torch.tensor([True, False, True, False])
    noisy = image.clone()
    noisy[:, ~mask] = torch.randn_like(noisy[:, ~mask]) * 1000
    a = predict_probabilities(model, image, mask, (16, 16, 16))
    b = predict_probabilities(model, noisy, mask, (16, 16, 16))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="at least one sequence"):
        predict_probabilities(model, image, torch.zeros(4, dtype=torch.bool), (16, 16, 16))


def test_2d_model_on_a_volume_is_slice_wise():
    torch.manual_seed(2)
    model = create_model("dmafnet", modalities=["c0", "de", "t2"], num_classes=6, spatial_dims=2, **TINY).eval()
    image = torch.randn(1, 3, 26, 22, 3)  # [1, M, X, Y, Z]: 3 short-axis slices
    mask = torch.tensor([True, False, True])
    probs = predict_probabilities(model, image, mask, (16, 16), 0.5, 3)
    assert probs.shape == (1, 6, 26, 22, 3)
    for z in range(3):  # each slice alone, as a 2-D image, gives the same probabilities
        alone = predict_probabilities(model, image[..., z], mask, (16, 16), 0.5, 3)
        torch.testing.assert_close(probs[..., z], alone, rtol=0, atol=1e-6)
    subsets = torch.tensor(all_subsets(3))
    shared = predict_probabilities_all_subsets(model, image, subsets, (16, 16), 0.5, 3)
    naive = torch.cat([predict_probabilities(model, image, s, (16, 16), 0.5, 3) for s in subsets])
    assert shared.shape == (7, 6, 26, 22, 3)
    torch.testing.assert_close(shared, naive, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="does not fit an image"):
        predict_probabilities(model, image, mask, (16,))


def test_old_import_path_reexports_the_inference_module():
    """``medmodal.engine.segmentation.inference`` (the old path, kept one release) re-exports :mod:`medmodal.inference.segmentation`."""
    import medmodal.engine.segmentation.inference as old
    import medmodal.inference.segmentation as new

    assert old.predict_probabilities is new.predict_probabilities and old.resolve_device is new.resolve_device
