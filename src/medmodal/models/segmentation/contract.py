"""The ``"segmentation"`` model contract (incomplete multi-sequence inputs).

Built as ``factory(modalities=..., num_classes=..., **kwargs)``; the model has ``modalities`` (tuple of
sequence names, the channel order of its input) and ``num_classes``, and
``forward(images [B, M, *spatial] float, modality_mask [B, M] bool) -> logits [B, num_classes, *spatial]``
where a sample may have any non-empty subset of sequences and a batch may mix subsets; a sample with
no sequence raises :class:`ValueError`.

:func:`check_segmentation_model` (the sweep test's check): every non-empty subset of 4 sequences in one
mixed batch (16^3 volumes; 32^2 images for a 2-D model, ``spatial_dims=2`` in its ``tiny``) equals the subsets run one by one (``rtol 1e-4``, ``atol 1e-5``), the voxels of absent
sequences never change the prediction (bit-identical), and an all-missing sample raises.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from medmodal.data.missing import all_subsets
from medmodal.models.registry import ModelContract, create_model, register_contract

__all__ = ["build_segmentation_model", "check_segmentation_model", "SEGMENTATION"]

#: sequences, classes and volume edge of the contract check (BraTS-like, 16^3 voxels)
CHECK_MODALITIES = ("flair", "t1", "t1ce", "t2")
CHECK_NUM_CLASSES = 4
CHECK_SIZE = (16, 16, 16)
#: image edge for 2-D models (``tiny`` has ``spatial_dims=2``): divisible by 32 for 5-stage 2-D encoders
CHECK_SIZE_2D = (32, 32)


def build_segmentation_model(factory, name: str, modalities: Sequence[str] | None, num_classes: int | None,
                             **kwargs) -> nn.Module:
    """``factory(modalities=tuple, num_classes=int, **kwargs)`` after validating both.

    Raises:
        ValueError: ``modalities`` / ``num_classes`` missing, ``modalities`` empty or with duplicates,
            ``num_classes < 1``.
    """
    if modalities is None or num_classes is None:
        raise ValueError(f"segmentation model {name!r} needs modalities=... and num_classes=...")
    modalities = tuple(str(m) for m in modalities)
    if not modalities:
        raise ValueError("a model needs at least one input sequence (modalities is empty)")
    if len(set(modalities)) != len(modalities):
        raise ValueError(f"duplicate sequence names in modalities: {list(modalities)}")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return factory(modalities=modalities, num_classes=int(num_classes), **kwargs)


def check_segmentation_model(name: str, tiny: Mapping[str, Any]) -> None:
    """Assert the segmentation contract for the registered model ``name`` (module docstring)."""
    torch.manual_seed(0)
    model = create_model(name, modalities=CHECK_MODALITIES, num_classes=CHECK_NUM_CLASSES, **tiny).eval()
    assert isinstance(model, nn.Module)
    assert tuple(model.modalities) == CHECK_MODALITIES and model.num_classes == CHECK_NUM_CLASSES
    subsets = torch.tensor(all_subsets(len(CHECK_MODALITIES)))  # [15, 4] bool
    size = CHECK_SIZE_2D if tiny.get("spatial_dims") == 2 else CHECK_SIZE
    x = torch.randn(len(subsets), len(CHECK_MODALITIES), *size, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(7)) * 1000
    x_corrupt = torch.where(subsets.reshape(*subsets.shape, *[1] * len(size)), x, noise)
    with torch.no_grad():
        mixed = model(x, subsets)
        assert mixed.shape == (len(subsets), CHECK_NUM_CLASSES, *size)
        assert torch.isfinite(mixed).all()
        for i, subset in enumerate(subsets):
            single = model(x[i:i + 1], subset[None])
            torch.testing.assert_close(single, mixed[i:i + 1], rtol=1e-4, atol=1e-5)
        corrupt = model(x_corrupt, subsets)
    for i in range(len(subsets)):
        assert torch.equal(mixed[i], corrupt[i]), f"{name}: subset {subsets[i].tolist()} leaks absent inputs"
    none = torch.tensor([[True, False, False, False], [False, False, False, False]])
    try:
        model(x[:2], none)
    except ValueError as exc:
        assert "no sequence" in str(exc), exc
    else:
        raise AssertionError(f"{name}: a sample with no sequence did not raise")


SEGMENTATION = register_contract(ModelContract(
    name="segmentation", build=build_segmentation_model, check=check_segmentation_model,
    tiny={"widths": (4, 8, 16)},
    doc="Incomplete multi-sequence segmentation: forward(images [B, M, *S], modality_mask [B, M]) -> "
        "logits [B, K, *S] for any non-empty subset of sequences; absent inputs never leak."))
