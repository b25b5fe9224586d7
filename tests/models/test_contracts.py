"""The registry sweep: every registered model of every contract passes its contract's check.

Each model is built tiny (its contract's ``tiny`` kwargs merged with the model's own
``register_model(..., tiny=...)``), so the sweep stays CPU-cheap. A model registered under a contract
without a check fails here.
"""

from __future__ import annotations

import pytest
from torch import nn

from medmodal.errors import ConfigError
from medmodal.models import create_model, list_models, register_model
from medmodal.models import registry
from medmodal.models.registry import (ModelContract, UnknownModelError, get_contract, get_model_task,
                                      get_tiny_kwargs, list_contracts, register_contract)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_passes_its_contract(name):
    contract = get_contract(get_model_task(name))
    assert contract.check is not None, f"model {name!r} is registered under contract {contract.name!r} without a check"
    contract.check(name, get_tiny_kwargs(name))


def test_every_contract_has_a_check_and_a_model():
    for task in list_contracts():
        assert get_contract(task).check is not None, task
        assert list_models(task=task), f"contract {task!r} has no model"
    assert {"segmentation", "image_text", "paired_views"} <= set(list_contracts())


def test_old_task_names_still_work():
    assert list_models(task="endoscopy") == list_models(task="paired_views")
    assert {"mics", "mics_pretrain"} <= set(list_models(task="endoscopy"))
    assert set(registry.TASKS) >= {"segmentation", "image_text", "endoscopy"}
    assert get_contract("endoscopy").name == "paired_views"


def test_a_new_contract_registers_without_touching_the_registry():
    contract = register_contract(ModelContract(name="_test_toy", check=None))
    try:
        @register_model("_test_toy_net", task="_test_toy")
        class Toy(nn.Module):
            def __init__(self, width: int = 2):
                super().__init__()
                self.width = width

        assert create_model("_test_toy_net", width=3).width == 3
        assert list_models(task="_test_toy") == ["_test_toy_net"]
        with pytest.raises(AssertionError, match="without a check"):
            test_every_registered_model_passes_its_contract("_test_toy_net")
    finally:
        for table in (registry._REGISTRY, registry._TASKS):
            table.pop("_test_toy_net", None)
        registry._CONTRACTS.pop(contract.name)


def test_unknown_model_is_an_input_error_and_a_keyerror():
    with pytest.raises(UnknownModelError, match="known models: .*dmafnet") as info:
        create_model("no-such-net")
    assert isinstance(info.value, ConfigError) and isinstance(info.value, KeyError)
    assert str(info.value).startswith("unknown model 'no-such-net'")


def test_a_variant_entry_point_joins_the_sweep():
    """docs/extending.md, "A model for an existing contract": a timm-style variant of ZeroUNet."""
    from medmodal.models.registry import unregister_model
    from medmodal.models.segmentation.zero_unet import ZeroUNet

    @register_model("zero_unet_small", tiny={"widths": (4, 8, 16)})
    def zero_unet_small(modalities, num_classes, config=None, **overrides):
        """ZeroUNet with half the widths."""
        return ZeroUNet(modalities, num_classes, config, **{"widths": (16, 32, 64, 128), **overrides})

    try:
        assert get_model_task("zero_unet_small") == "segmentation" and "zero_unet_small" in list_models("segmentation")
        test_every_registered_model_passes_its_contract("zero_unet_small")
        model = create_model("zero_unet_small", modalities=("t1", "t2"), num_classes=2)
        assert model.config.widths == (16, 32, 64, 128)
    finally:
        unregister_model("zero_unet_small")
    assert "zero_unet_small" not in list_models()
