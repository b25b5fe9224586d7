"""One bundle writer / reader: new bundles carry their format tag, old untagged ones are recognised."""

import json

import pytest
import torch
from safetensors.torch import save_file

from medmodal import bundle
from medmodal.errors import CheckpointError


def test_tagged_bundle_roundtrip(tmp_path):
    folder = bundle.save_bundle(tmp_path / "b", torch.nn.Linear(2, 3), {"classes": ["a"]},
                                format=bundle.ENDOSCOPY_CLASSIFIER)
    state, meta = bundle.read_bundle(folder, bundle.ENDOSCOPY_CLASSIFIER)
    assert set(state) == {"weight", "bias"} and meta == {"classes": ["a"], "format": "endoscopy/classifier"}
    assert bundle.bundle_format(folder) == bundle.ENDOSCOPY_CLASSIFIER
    with pytest.raises(CheckpointError, match="the bundle there is endoscopy/classifier, not seg/model"):
        bundle.read_bundle(folder, bundle.SEG_MODEL)


@pytest.mark.parametrize("files,meta,expected", [
    (("model.safetensors",), {"model_name": "dmafnet", "modalities": ["t1"]}, bundle.SEG_MODEL),
    # what `medmodal train` wrote before the family tags: a version string under the same key
    (("model.safetensors",), {"format": "medmodal-bundle/1", "model_name": "dmafnet"}, bundle.SEG_MODEL),
    (("model.safetensors",), {"model": "mics", "config": {}, "classes": ["a"]}, bundle.ENDOSCOPY_CLASSIFIER),
    (("encoders.safetensors",), {"arch": "vit", "image_size": 64}, bundle.ENDOSCOPY_ENCODERS),
    ((), {"image_encoder": "x", "architecture": "resnet50"}, bundle.CXR_EXPORT),
])
def test_untagged_bundles_of_earlier_releases_are_recognised(tmp_path, files, meta, expected):
    for name in files:
        save_file({"w": torch.zeros(2)}, str(tmp_path / name))
    description = bundle.FORMATS[expected][1]
    (tmp_path / description).write_text(json.dumps(meta))
    assert bundle.bundle_format(tmp_path) == expected
    if expected != bundle.CXR_EXPORT:
        state, read = bundle.read_bundle(tmp_path, expected)
        assert read == meta and set(state) == {"w"}


def test_missing_files_name_the_folder(tmp_path):
    with pytest.raises(CheckpointError, match="not a model bundle .needs model.json and model.safetensors"):
        bundle.read_bundle(tmp_path, bundle.SEG_MODEL)
    assert bundle.bundle_format(tmp_path) is None
