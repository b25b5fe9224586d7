"""The exported image-encoder format: export -> load is bit-identical; torchvision / wrapped state
dicts load; bad inputs give one line naming the file."""

from __future__ import annotations

import json

import pytest
import torch

from medmodal.models.encoder_export import (ENCODER_FORMAT, EncoderLoadError, load_image_encoder, save_image_encoder,
                                            state_fingerprint)


def _random_timm(arch: str, seed: int = 0):
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, num_classes=0)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so they are checked too
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_()
    return model


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])]
    assert not different, different[:5]


@pytest.mark.parametrize("arch", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_export_then_load_is_bit_identical_from_every_folder_form(tmp_path, arch):
    model = _random_timm(arch)
    run = tmp_path / "pretrain-run"
    folder = save_image_encoder(run / "export" / "image_encoder", model, arch, source="test export", image_size=224)
    config = json.loads((folder / "config.json").read_text())
    assert config == {"format": ENCODER_FORMAT, "architecture": arch, "source": "test export", "image_size": 224,
                      "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    for spec in (run, run / "export", folder):
        loaded, info = load_image_encoder(spec)
        _assert_identical(model.state_dict(), loaded.state_dict())
        assert (info.kind, info.architecture, info.source) == ("export", arch, "test export")
        assert info.fingerprint == state_fingerprint(model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))


def test_torchvision_state_dicts_load_with_or_without_wrappers(tmp_path):
    import torchvision

    torch.manual_seed(1)
    tv = torchvision.models.resnet18()
    plain = tmp_path / "resnet18_torchvision.pth"
    torch.save(tv.state_dict(), plain)  # with fc.*: dropped
    wrapped = tmp_path / "lightning.ckpt.pt"
    whole = {f"module.image_encoder.model.{k}": v for k, v in tv.state_dict().items()}
    whole["module.text_encoder.embeddings.weight"] = torch.zeros(4, 2)  # the rest of a pre-training module
    torch.save({"state_dict": whole, "epoch": 3}, wrapped)
    expected = {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    for spec in (plain, wrapped, f"imagenet:{plain}"):
        loaded, info = load_image_encoder(spec, arch="resnet18")
        _assert_identical(expected, loaded.state_dict())
    assert info.kind == "imagenet"
    from safetensors.torch import save_file

    st = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in expected.items()}, str(st))
    _assert_identical(expected, load_image_encoder(st, arch="resnet18")[0].state_dict())


def test_random_init_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, info = load_image_encoder("random", arch="resnet18", seed=5)
    assert torch.equal(state, torch.get_rng_state())
    b, _ = load_image_encoder("random", arch="resnet18", seed=5)
    c, _ = load_image_encoder("random", arch="resnet18", seed=6)
    _assert_identical(a.state_dict(), b.state_dict())
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
    assert info.kind == "random" and info.architecture == "resnet18"


def test_bad_encoders_fail_with_one_line_naming_the_file(tmp_path):
    import torchvision

    weights = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    with pytest.raises(EncoderLoadError, match=r"r18\.pth: weights do not fit a resnet50 backbone: .*missing") as err:
        load_image_encoder(weights, arch="resnet50")
    assert "\n" not in str(err.value)
    pickled = tmp_path / "code.pt"
    torch.save({"weights": torch.zeros(1), "obj": torch.nn.ReLU()}, pickled)
    with pytest.raises(EncoderLoadError, match="code.pt: refused: .*pickled code is never run"):
        load_image_encoder(pickled)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_image_encoder(tmp_path / "nowhere.pth")
    empty = tmp_path / "empty-run"
    empty.mkdir()
    with pytest.raises(EncoderLoadError, match="empty-run: no image_encoder/config.json"):
        load_image_encoder(empty)
    folder = save_image_encoder(tmp_path / "run" / "export" / "image_encoder", _random_timm("resnet18"), "resnet18",
                                source="x")
    with pytest.raises(EncoderLoadError, match="the export is a resnet18, not resnet50"):
        load_image_encoder(folder, arch="resnet50")
    (folder / "config.json").write_text(json.dumps({"format": "something-else", "architecture": "resnet18"}))
    with pytest.raises(EncoderLoadError, match="config.json: not a medmodal-image-encoder/1 export"):
        load_image_encoder(folder)
    with pytest.raises(EncoderLoadError, match="not a timm model name"):
        load_image_encoder("random", arch="no_such_net")
    with pytest.raises(EncoderLoadError, match="do not fit a resnet50"):
        save_image_encoder(tmp_path / "bad", _random_timm("resnet18"), "resnet50", source="wrong arch")
