"""A fundus vessel bundle round trip: ``load_model`` builds it with ``create_model`` and ``model_geometry``
dispatches on the geometry's ``kind`` (fundus -> FundusGeometry, MRI -> volume Geometry)."""

import pytest
import torch

from medmodal.data.fundus.geometry import FundusGeometry
from medmodal.data.volumes.geometry import Geometry
from medmodal.errors import CheckpointError
from medmodal.models import create_model
from medmodal.models.bundles import load_model, model_geometry, save_bundle

KWARGS = {"decoder_channels": [16, 8, 8, 8, 8]}


def _fundus_meta(geometry: FundusGeometry) -> dict:
    return {"model_name": "unet_mobilenetv2", "modalities": ["red", "green", "blue"], "num_classes": 1,
            "model_kwargs": KWARGS, "image_kind": "fundus", "geometry": geometry.to_dict(), "threshold": 0.5,
            "normalisation": "fov", "trained_on": {"root": "DRIVE", "layout": "drive"}}


def test_fundus_bundle_round_trip_and_geometry_kind(tmp_path):
    torch.manual_seed(0)
    net = create_model("unet_mobilenetv2", modalities=("red", "green", "blue"), num_classes=1, **KWARGS).eval()
    geometry = FundusGeometry(target_diameter=48)
    save_bundle(tmp_path / "run" / "model", net, _fundus_meta(geometry))
    model, meta = load_model(tmp_path / "run")
    assert meta["image_kind"] == "fundus" and meta["format"] == "seg/model"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), net(x))
    found = model_geometry(meta)
    assert isinstance(found, FundusGeometry) and found == geometry


def test_mri_geometry_still_a_volume_geometry():
    geometry = model_geometry({"geometry": {"orientation": "RAS", "spacing": [1.0, 1.0, 1.0], "spatial_dims": 3}})
    assert isinstance(geometry, Geometry)


def test_unknown_geometry_kind_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="unknown geometry kind"):
        model_geometry({"source": "x", "geometry": {"kind": "hologram", "target_diameter": 48}})
