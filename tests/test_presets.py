"""Every preset of the earlier flat ``configs/`` folder still resolves, to the very config it gave before.

The fingerprints were taken on the commit before the presets moved into ``configs/<family>/`` (a3d1149):
sha256 (first 16 hex digits) of the resolved config as sorted JSON. The only keys added since are
``optim.optimizer`` / ``optim.schedule`` where a family had none (their values are what that family always
did); they are dropped before hashing and checked separately.
"""

import hashlib
import json

import pytest

from medmodal.config import LEGACY_PRESETS, ExperimentConfig, config_to_dict, load_config, load_run_config, \
    packaged_config, preset_names
from medmodal.config.segmentation import SegmentationRunConfig
from medmodal.engine.endoscopy.config import MICSFinetuneRunConfig, MICSPretrainRunConfig
from medmodal.engine.endoscopy.config import load_finetune_config as mics_finetune
from medmodal.engine.endoscopy.config import load_pretrain_config as mics_pretrain
from medmodal.engine.finetune.config import (ClassificationRunConfig, DetectionRunConfig, SegmentationRunConfig as
                                             FinetuneSegmentationRunConfig, load_finetune_config)
from medmodal.engine.image_text.config import PretrainRunConfig, load_pretrain_config
from medmodal.errors import ConfigError

BEFORE = {
    "default:ClassificationConfig": "c850fe221a550f9a",
    "default:DetectionConfig": "d2ee7c7a0d0eab63",
    "default:ExperimentConfig": "a398e52736b028d9",
    "default:MICSFinetuneRunConfig": "5b7a93ca102a6fed",
    "default:MICSPretrainRunConfig": "b3e00d670e696038",
    "default:PretrainConfig": "fd81fb80c18f0851",
    "default:SegmentationConfig": "1cb0b64cce0c02f7",
    "demo_cpu": "514317dd6ec76ea6",
    "dmafnet_brats2020": "6806dd4d59da4d8e",
    "dmafnet_myops2020": "492781dff2eb1bdf",
    "finetune_chexpert_linear": "965cc33ff3ff2e5d",
    "finetune_covidx_linear": "f9105e14f931cdd9",
    "finetune_object_cxr_detection": "7bb64421f79196c2",
    "finetune_rsna_detection": "3c1bcfb1dcb2f6ec",
    "finetune_rsna_linear": "0448e8734ffe14a4",
    "finetune_rsna_segmentation": "a8d5fdd4cc7b430f",
    "finetune_siim_segmentation": "01b19eaed5cd13e5",
    "finetune_tiny_classification": "b86a0851511d7147",
    "finetune_tiny_detection": "ff82409305af2b93",
    "finetune_tiny_segmentation": "c4e80e6d476e800b",
    "mics_finetune_demo_cpu": "2d76521731447d31",
    "mics_finetune_kvasir": "58d37f1fbb5631c0",
    "mics_pretrain_demo_cpu": "bade9f891a097102",
    "mics_pretrain_kvasir": "e294ed24f9c67f56",
    "passion_brats2020": "7f08ba2c363f1f69",
    "pretrain_demo_cpu": "3da4fcedfc97a3a2",
    "pretrain_iu_xray": "5c149bcfa3c2d569",
    "pretrain_mimic_cxr": "9b435045652005e8",
    "tiny_myops2020": "3231027730014a8c",
}

#: keys added to a family's ``optim`` section (the value each family always used)
ADDED = {"cxr-finetune": {"optimizer": "adamw", "schedule": "cosine_annealing"},
         "cxr-pretrain": {"schedule": "staged"},
         "endoscopy": {"optimizer": "adamw", "schedule": "warmup_cosine"}, "seg": {}}
#: presets added since 0.1.0 (no flat name of an earlier release)
ADDED_PRESETS = {"seg/train_vessels_demo_cpu", "seg/train_dgssa_drive", "seg/train_2d_demo_cpu", "seg/train_mslau_acdc",
                  "seg/train_mslau_acdc_cpu", "seg/train_mslau_synapse", "seg/train_mslau_cvc", "seg/train_mt_acdc",
                  "seg/train_eranet_acdc", "seg/train_uamt_la", "seg/train_swdl_la", "seg/train_semi_la_cpu",
                  "seg/train_semi_demo_cpu", "seg/train_swdl_demo_cpu"}
#: top-level keys added to a family's configs (the value each config always meant)
ADDED_TOP = {"seg": {"task": "volumes"}}

DEFAULTS = {"ClassificationConfig": ClassificationRunConfig, "DetectionConfig": DetectionRunConfig,
            "SegmentationConfig": FinetuneSegmentationRunConfig, "ExperimentConfig": SegmentationRunConfig,
            "PretrainConfig": PretrainRunConfig, "MICSPretrainRunConfig": MICSPretrainRunConfig,
            "MICSFinetuneRunConfig": MICSFinetuneRunConfig}


def _load_old_way(name: str):
    """The config as the earlier loader of each family was called with the flat preset name."""
    if name.startswith("default:"):
        return DEFAULTS[name.split(":")[1]]()
    if name.startswith("mics_pretrain"):
        return mics_pretrain(preset=name)
    if name.startswith("mics_finetune"):
        return mics_finetune(preset=name)
    if name.startswith("pretrain_"):
        return load_pretrain_config(preset=name)
    if name.startswith("finetune_"):
        return load_finetune_config(preset=name)
    return load_config(packaged_config(name))


def _family(cfg) -> str:
    if isinstance(cfg, SegmentationRunConfig):
        return "seg"
    if isinstance(cfg, PretrainRunConfig):
        return "cxr-pretrain"
    if isinstance(cfg, (MICSPretrainRunConfig, MICSFinetuneRunConfig)):
        return "endoscopy"
    return "cxr-finetune"


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_old_preset_names_resolve_to_the_same_config(name):
    cfg = _load_old_way(name)
    data = json.loads(json.dumps(config_to_dict(cfg)))
    for key, value in ADDED[_family(cfg)].items():
        assert data["optim"].pop(key) == value
    for key, value in ADDED_TOP.get(_family(cfg), {}).items():
        assert data.pop(key) == value
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    assert digest == BEFORE[name]


def test_presets_live_in_family_folders():
    names = preset_names()
    assert {n.split("/")[0] for n in names} == {"seg", "cxr", "endoscopy"}
    # every preset of 0.1.0 has its earlier flat name; the presets added since have none
    assert sorted(set(names) - set(LEGACY_PRESETS.values())) == sorted(ADDED_PRESETS)
    for old, new in LEGACY_PRESETS.items():
        assert packaged_config(old) == packaged_config(new)
    # a bare name is looked up in the run config's family first
    cfg = load_run_config(MICSPretrainRunConfig, preset="pretrain_demo_cpu")
    assert cfg == mics_pretrain(preset="mics_pretrain_demo_cpu")
    assert load_run_config(PretrainRunConfig, preset="pretrain_demo_cpu") == load_pretrain_config(
        preset="cxr/pretrain_demo_cpu")


def test_load_run_config_errors_name_arguments_not_flags(tmp_path):
    with pytest.raises(ConfigError, match="path.*or a preset, not both") as err:
        load_run_config(ExperimentConfig, tmp_path / "x.yaml", "demo_cpu")
    assert "--" not in str(err.value)
    with pytest.raises(ConfigError, match=r"optim.schedule must be one of"):
        load_run_config(ExperimentConfig, preset="seg/train_demo_cpu", overrides=["optim.schedule=steps"])
