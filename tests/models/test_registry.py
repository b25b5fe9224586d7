"""Registry-driven tests: every registered segmentation model x every subset of sequences (gradients,
2-D inputs; the contract check itself, mixed subsets and absent-input invariance, runs in
``tests/models/test_contracts.py``).

Each model is built tiny (``get_tiny_kwargs(name)``: its contract's and its own ``tiny`` kwargs
merged) so that the whole folder runs in well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medmodal.data.missing import all_subsets
from medmodal.models import create_model, list_models, register_model
from medmodal.models.registry import get_model_factory, get_tiny_kwargs, list_contracts

MODALITIES = ("flair", "t1", "t1ce", "t2")
NUM_CLASSES = 4
SIZE = (16, 16, 16)


def tiny_model(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, modalities=MODALITIES, num_classes=NUM_CLASSES, **get_tiny_kwargs(name))


def images(batch: int, seed: int = 1, size: tuple[int, ...] = SIZE) -> torch.Tensor:
    return torch.randn(batch, len(MODALITIES), *size, generator=torch.Generator().manual_seed(seed))


def model_size(name: str) -> tuple[int, ...]:
    """16^3 volumes; 64 x 64 images for a 2-D-only model (``spatial_dims=2`` in its ``tiny``, e.g. the
    smp vessel segmenters, whose encoders need edges divisible by 32 and more than one value per
    channel for BatchNorm in training at the 1/32 stage)."""
    return (64, 64) if get_tiny_kwargs(name).get("spatial_dims") == 2 else SIZE


@pytest.fixture(scope="module", params=list_models(task="segmentation"))
def model_name(request) -> str:
    return request.param


# ------------------------------------------------------------------ registry itself
def test_dmafnet_is_registered():
    assert "dmafnet" in list_models()
    assert list_models() == sorted(list_models())
    assert set().union(*(list_models(task=t) for t in list_contracts())) == set(list_models())


def test_task_tags():
    from medmodal.models import get_model_task

    assert get_model_task("dmafnet") == "segmentation"
    with pytest.raises(ValueError, match="unknown task"):
        register_model("_test_bad_task", task="no-such-task")
    with pytest.raises(ValueError, match="needs modalities"):
        create_model("dmafnet", num_classes=NUM_CLASSES)


def test_unknown_name_raises_keyerror_listing_known():
    with pytest.raises(KeyError, match="dmafnet"):
        create_model("no-such-net", modalities=MODALITIES, num_classes=NUM_CLASSES)


def test_register_same_name_twice_is_rejected():
    @register_model("_test_dummy_net")
    class Dummy(nn.Module):
        def __init__(self, modalities, num_classes):
            super().__init__()
            self.modalities, self.num_classes = tuple(modalities), num_classes

    assert get_model_factory("_TEST_DUMMY_NET") is Dummy
    with pytest.raises(ValueError, match="already registered"):
        register_model("_test_dummy_net")(lambda **kw: None)
    from medmodal.models import registry

    registry._REGISTRY.pop("_test_dummy_net")  # keep the registry-driven tests to real models
    registry._TASKS.pop("_test_dummy_net")


def test_create_model_validates_arguments():
    with pytest.raises(ValueError):
        create_model("dmafnet", modalities=(), num_classes=NUM_CLASSES)
    with pytest.raises(ValueError):
        create_model("dmafnet", modalities=("t1", "t1"), num_classes=NUM_CLASSES)


# ------------------------------------------------------------------ every model
def test_attributes(model_name):
    model = tiny_model(model_name)
    assert isinstance(model, nn.Module)
    assert model.modalities == MODALITIES
    assert model.num_classes == NUM_CLASSES


@pytest.mark.parametrize("subset", [tuple(s) for s in all_subsets(len(MODALITIES))],
                         ids=lambda s: "".join("1" if p else "0" for p in s))
def test_gradients_reach_present_sequences_only(model_name, subset):
    model = tiny_model(model_name).train()
    mask = torch.tensor([subset, subset])  # batch 2: DeepLabV3+'s image-pooling BatchNorm refuses a batch of 1 in training
    x = images(2, size=model_size(model_name)).requires_grad_(True)
    model(x, mask).square().mean().backward()
    for i, present in enumerate(subset):
        g = x.grad[:, i]
        assert (g.abs().sum() > 0) == present, f"input grad of sequence {i} (present={present})"
    encoders = getattr(model, "encoders", None)
    if encoders is not None and len(encoders) == len(MODALITIES):
        for i, present in enumerate(subset):
            grads = [p.grad for p in encoders[i].parameters()]
            total = sum(float(g.abs().sum()) for g in grads if g is not None)
            if present:
                assert total > 0, f"encoder {i} of a present sequence got no gradient"
            else:
                assert total == 0, f"encoder {i} of an absent sequence got gradient {total}"


def test_2d_three_sequences_every_subset(model_name):
    """MyoPS-like: 2-D slices, 3 sequences (the count is a dataset property), 7 subsets; absent
    sequences never leak."""
    torch.manual_seed(0)
    kwargs = {**get_tiny_kwargs(model_name), "spatial_dims": 2}
    model = create_model(model_name, modalities=("c0", "de", "t2"), num_classes=6, **kwargs).eval()
    subsets = torch.tensor(all_subsets(3))
    size = model_size(model_name) if get_tiny_kwargs(model_name).get("spatial_dims") == 2 else (16, 16)
    x = torch.randn(len(subsets), 3, *size, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2)) * 1000
    with torch.no_grad():
        clean = model(x, subsets)
        corrupt = model(torch.where(subsets[:, :, None, None], x, noise), subsets)
    assert clean.shape == (len(subsets), 6, *size) and torch.isfinite(clean).all()
    assert torch.equal(clean, corrupt)


def test_a_bad_model_or_loss_option_is_an_input_error():
    """``model.kwargs`` / ``loss`` come from the user's config: one ``error:`` line on the command line, never a
    traceback (ConfigError), while the unknown-key error stays a TypeError for Python callers."""
    from medmodal.errors import ConfigError, UnknownOptionError
    from medmodal.losses.dmafnet_loss import DMAFNetLoss
    from medmodal.models.registry import model_config
    from medmodal.models.segmentation.dmafnet import DMAFNetConfig

    with pytest.raises(UnknownOptionError, match="unknown DMAFNetConfig option.*'widht'") as info:
        model_config(DMAFNetConfig, {"widht": (8, 16)})
    assert isinstance(info.value, TypeError) and isinstance(info.value, ConfigError)
    with pytest.raises(ConfigError, match="DMAFNetLossConfig: gap_source must be one of"):
        DMAFNetLoss.from_options({"gap_source": "bogus"}, feature_channels=8, num_modalities=4)
