"""3-D runs (task: 3d) on a tiny synthetic LA2018 twin: supervised, Mean Teacher, UA-MT, SWDL-Net and its
ablation; the data pieces; the config's refusals."""

import json

import numpy as np
import pytest
import torch

from medmodal.config import load_run_config
from medmodal.data.seg3d import read_seg3d, write_synthetic
from medmodal.engine.seg3d.config import Seg3DRunConfig
from medmodal.engine.seg3d.data import PatchTrainingSet, load_scaled
from medmodal.engine.seg3d.train import run_seg3d
from medmodal.errors import ConfigError

TINY = ["data.patch=[32, 32, 16]", "data.batch_size=4", "trainer.max_epochs=1", "trainer.samples_per_epoch=4",
        "trainer.progress_bar=false", "trainer.accelerator=cpu", "trainer.precision=32-true",
        "model.kwargs={n_filters: 4}", "semi.uncertainty_passes=2"]


@pytest.fixture(scope="module")
def la(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("la") / "LA", "la2018", n=10, size=(40, 40, 24), seed=0)


def _cfg(root, out, *extra):
    return load_run_config(Seg3DRunConfig, overrides=[*TINY, f"data.root={root}", f"out_dir={out}", *extra])


@pytest.mark.parametrize("model,method", [("vnet", "none"), ("vnet", "ua_mt"), ("swdl_net", "swdl_no_feedback")])
def test_each_method_trains_and_scores(la, tmp_path, model, method):
    extra = [f"model.name={model}", f"semi.method={method}", "semi.labelled_patients=2"]
    run = run_seg3d(_cfg(la, tmp_path / method, *extra))
    m = run.metrics
    assert m["semi"] == {"method": method, "labelled_patients": 2} and m["labelled_volumes"] == 2
    assert m["train_volumes"] == (2 if method == "none" else 7)            # 10 = 8 train (1 val) + 2 test
    for key in ("Dice", "Jaccard", "HD95", "ASD"):
        assert key in m["splits"]["test"]["scores"]
    splits = json.loads((tmp_path / method / "splits.json").read_text())
    assert len(splits["labelled"]) == 2 and not set(splits["val"]) & set(splits["train"])
    assert (tmp_path / method / "model" / "model.json").is_file()
    rows = (tmp_path / method / "per_case.csv").read_text().splitlines()
    assert rows[0].startswith("split,case,Dice_") and len(rows) == 1 + len(splits["val"]) + len(splits["test"])


def test_swdl_makes_one_update_per_inner_pass(la, tmp_path):
    cfg = _cfg(la, tmp_path / "s", "model.name=swdl_net", "semi.method=swdl", "semi.labelled_patients=2",
               "semi.swdl_passes=3")
    run_seg3d(cfg)
    state = torch.load(tmp_path / "s" / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 3 * 1          # one batch of 4, three inner passes


def test_patches_are_seeded_padded_and_unlabelled_is_minus_one(la):
    dataset = read_seg3d(la)
    cases = dataset.split("train")[:2]
    half = load_scaled(dataset, cases[0], 0.5)
    assert half["image"].shape[1] == 20 and half["spacing"] == (2.0, 2.0, 2.0)
    assert PatchTrainingSet([half], [32, 32, 16], 1)[0]["image"].shape == (1, 32, 32, 16)      # zero-padded
    vols = [load_scaled(dataset, cases[0], 1.0), load_scaled(dataset, cases[1], 1.0, labelled=False)]
    assert vols[0]["image"].shape[1:] == vols[0]["label"].shape and vols[1]["label"] is None
    patches = PatchTrainingSet(vols, [16, 16, 16], samples_per_epoch=4, seed=3)
    a, b = patches[0], patches[0]
    assert a["image"].shape == (1, 16, 16, 16) and torch.equal(a["image"], b["image"])
    assert (patches[1]["label"] == -1).all() and set(np.unique(a["label"].numpy())) <= {0, 1}
    patches.set_epoch(1)
    assert not torch.equal(patches[0]["image"], a["image"])


def test_config_refusals(la, tmp_path):
    with pytest.raises(ConfigError, match="data.patch"):
        _cfg(la, tmp_path, "data.patch=[30, 32, 16]")
    with pytest.raises(ConfigError, match="model.name must be swdl_net"):
        _cfg(la, tmp_path, "semi.method=swdl", "semi.labelled_patients=2")
    with pytest.raises(ConfigError, match="2-D only"):
        _cfg(la, tmp_path, "semi.method=eranet", "semi.era_classes=[1]", "semi.labelled_patients=2")
    with pytest.raises(ConfigError, match="needs unlabelled training cases"):
        run_seg3d(_cfg(la, tmp_path / "r", "semi.method=mean_teacher"))


def test_the_labelled_budget_is_the_first_of_the_training_list_and_never_validation(la, tmp_path):
    from medmodal.engine.seg2d.train import semi_partition
    dataset = read_seg3d(la)
    first = dataset.train_order[:3]
    for seed in range(6):      # whatever validation cases the split seed draws
        cfg = _cfg(la, tmp_path / "p", "semi.method=mean_teacher", "semi.labelled_patients=3",
                   "data.val_fraction=0.3", f"data.split_seed={seed}")
        parts = semi_partition(cfg, dataset, unit="volumes")
        assert set(parts.splits["labelled"]) == set(first) and not set(first) & set(parts.splits["val"])


def test_bhsd_types_kept_with_binary_false_and_the_benchmark_reads_the_layout(tmp_path):
    from medmodal.experiments.seg.semi import SEMI3D_METHODS, SEMI3D_PROFILES, budget_methods, run_config_3d
    bhsd = write_synthetic(tmp_path / "BHSD", "bhsd", n=6, size=(32, 32, 16), seed=0)
    assert read_seg3d(bhsd, binary=False).classes[1:] != ("haemorrhage",)
    table, _ = budget_methods(["swdl"], [2], SEMI3D_METHODS)
    cfg = run_config_3d("swdl_l2", 0, SEMI3D_PROFILES["smoke"], bhsd, tmp_path, None, table)
    assert cfg.data.layout == "bhsd" and cfg.model.name == "swdl_net"
    with pytest.raises(ConfigError, match="3-D only"):
        from medmodal.engine.seg2d.config import Seg2DRunConfig
        load_run_config(Seg2DRunConfig, preset="train_2d_demo_cpu", overrides=["semi.method=swdl",
                                                                               "semi.labelled_patients=2"])


def test_a_nifti_folder_keeps_its_classes_by_default(tmp_path):
    root = write_synthetic(tmp_path / "NF", "nifti_folder", n=6, size=(32, 32, 16), seed=0)
    cfg = load_run_config(Seg3DRunConfig, overrides=[*TINY, f"data.root={root}", f"out_dir={tmp_path / 'r'}",
                                                      "data.layout=nifti_folder", "eval.surface=false"])
    run = run_seg3d(cfg)
    assert len(run.metrics["classes"]) == len(read_seg3d(root, "nifti_folder").classes) > 2
