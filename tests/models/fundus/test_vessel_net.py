"""Vessel segmenters (issue 27): shapes, DSU train/eval, local encoder weights, no download.

Parameters (measured, 3 input channels, 1 output logit, smp 0.6.0): deeplabv3plus_mobilenetv2
4,378,513 (encoder 2,223,872); unet_mobilenetv2 6,628,945.
"""

from __future__ import annotations

import socket
import urllib.request

import pytest
import torch

from medmodal.errors import EncoderLoadError, InputError
from medmodal.models import create_model, get_model_task
from medmodal.models.fundus.vessel_net import VesselNet

RGB = ("red", "green", "blue")
NAMES = ("deeplabv3plus_mobilenetv2", "unet_mobilenetv2")
SMALL = {"deeplabv3plus_mobilenetv2": {"decoder_channels": 16},
         "unet_mobilenetv2": {"decoder_channels": (16, 8, 8, 8, 8)}}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [64, 96])
def test_output_shape(name, size):
    torch.manual_seed(0)
    model = create_model(name, modalities=RGB, num_classes=1, **SMALL[name]).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 1, size, size) and torch.isfinite(out).all()
    assert get_model_task(name) == "segmentation"


def test_full_size_defaults_and_two_classes():
    model = create_model("deeplabv3plus_mobilenetv2", modalities=RGB, num_classes=2).eval()
    assert sum(p.numel() for p in model.parameters()) == 4_378_513 + 257  # one more logit: 256 weights + 1 bias
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)


@pytest.mark.parametrize("name", NAMES)
def test_dsu_active_in_train_identity_in_eval(name):
    torch.manual_seed(0)
    plain = create_model(name, modalities=RGB, num_classes=1, **SMALL[name])
    dsu = create_model(name, modalities=RGB, num_classes=1, dsu_p=1.0, dsu_stages=(1, 3), **SMALL[name])
    assert sorted(dsu.dsu) == ["1", "3"] and len(plain.dsu) == 0
    dsu.load_state_dict(plain.state_dict())  # same keys: DSU adds no parameters or buffers
    x = torch.randn(4, 3, 64, 64)
    plain.eval(), dsu.eval()
    with torch.no_grad():
        assert torch.equal(plain(x), dsu(x))
    plain.train(), dsu.train()
    torch.manual_seed(1)
    a = plain(x)
    torch.manual_seed(1)
    b = dsu(x)
    assert not torch.allclose(a, b)
    b.mean().backward()  # differentiable through the hooks


def test_dsu_reuses_the_shared_layer():
    from medmodal.layers.domain import FeatureStatisticsShift
    model = create_model("deeplabv3plus_mobilenetv2", modalities=RGB, num_classes=1, dsu_p=0.5, dsu_stages=(2,))
    layer = model.dsu["2"]
    assert isinstance(layer, FeatureStatisticsShift) and layer.p == 0.5 and layer.dims == (2, 3)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_local_encoder_weights_round_trip(tmp_path, suffix):
    torch.manual_seed(0)
    source = create_model("deeplabv3plus_mobilenetv2", modalities=RGB, num_classes=1, **SMALL["deeplabv3plus_mobilenetv2"])
    state = {k: v.contiguous() for k, v in source.net.encoder.state_dict().items()}
    state["classifier.1.weight"] = torch.zeros(1000, 1280)  # a torchvision ImageNet file has a classifier
    path = tmp_path / f"mobilenet_v2_imagenet{suffix}"
    if suffix == ".pt":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file
        save_file(state, str(path))
    torch.manual_seed(1)
    for name in NAMES:
        loaded = create_model(name, modalities=RGB, num_classes=1, weights_path=str(path), **SMALL[name])
        for key, value in source.net.encoder.state_dict().items():
            assert torch.equal(loaded.net.encoder.state_dict()[key], value), key


def test_bad_weight_file_is_one_line_error_naming_it(tmp_path):
    path = tmp_path / "resnet18.pt"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(EncoderLoadError) as err:
        create_model("unet_mobilenetv2", modalities=RGB, num_classes=1, weights_path=str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    wrong_channels = tmp_path / "four_channels.pt"
    four = create_model("unet_mobilenetv2", modalities=RGB + ("nir",), num_classes=1)
    torch.save(four.net.encoder.state_dict(), wrong_channels)
    with pytest.raises(EncoderLoadError, match="another shape"):
        create_model("unet_mobilenetv2", modalities=RGB, num_classes=1, weights_path=str(wrong_channels))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a file")
    with pytest.raises(InputError, match="garbage.safetensors"):
        create_model("unet_mobilenetv2", modalities=RGB, num_classes=1, weights_path=str(garbage))


def test_no_download_is_attempted(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    try:
        import huggingface_hub
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    except ImportError:
        pass
    for name in NAMES:
        model = create_model(name, modalities=RGB, num_classes=1)
        assert isinstance(model, VesselNet)


def test_mask_zero_fills_and_bad_options_are_config_errors():
    from medmodal.errors import ConfigError
    model = create_model("unet_mobilenetv2", modalities=RGB, num_classes=1, **SMALL["unet_mobilenetv2"]).eval()
    x = torch.randn(2, 3, 32, 32)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    with torch.no_grad():
        noisy = x.clone()
        noisy[0, 2] = 1e6
        assert torch.equal(model(x, mask), model(noisy, mask))
        assert torch.equal(model(x), model(x, torch.ones(2, 3, dtype=torch.bool)))
    with pytest.raises(ConfigError, match="2-D"):
        create_model("unet_mobilenetv2", modalities=RGB, num_classes=1, spatial_dims=3)
    with pytest.raises(ConfigError, match="dsu_stages"):
        create_model("unet_mobilenetv2", modalities=RGB, num_classes=1, dsu_p=0.5, dsu_stages=(6,))
