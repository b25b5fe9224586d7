"""MyoPS 2020 round trip: synthetic MyoPS layout -> 2-D DMAF-Net training -> all-subset evaluation ->
``medmodal predict`` of a case without its LGE (CPU, seconds)."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.config import load_config, packaged_config
from medmodal.models.bundles import load_model
from medmodal.engine.segmentation.datamodule import SegmentationDataModule
from medmodal.engine.segmentation.train import run_training
from medmodal.evaluation.report import run_evaluation

MYOPS_LABELS = {0, 200, 500, 600, 1220, 2221}
REGIONS = ("Scar", "Edema+Scar", "LV", "Myo", "RV")
runner = CliRunner()


def tiny_myops_config(data, out, *overrides):
    return load_config(packaged_config("tiny_myops2020"), [f"data.root={data}", f"out_dir={out}", *overrides])


@pytest.fixture(scope="module")
def trained_myops(tmp_path_factory):
    base = tmp_path_factory.mktemp("myops_roundtrip")
    data = base / "data"
    result = runner.invoke(app, ["seg", "synth", "--dataset", "myops2020", str(data), "-n", "4", "-s", "32",
                                 "--slices", "3"])
    assert result.exit_code == 0, result.output
    run_dir = run_training(tiny_myops_config(data, base / "run"), resume="never").path
    return data, run_dir


def test_cli_data_commands_detect_myops(trained_myops, tmp_path):
    data, _ = trained_myops
    assert {"train25", "train25_myops_gd"} <= {p.name for p in data.iterdir()}
    result = runner.invoke(app, ["seg", "summary", str(data)])
    assert result.exit_code == 0, result.output
    assert "myops2020" in result.output and "c0 4/4" in result.output and "de 4/4" in result.output
    result = runner.invoke(app, ["seg", "preprocess", str(data), "--dataset", "myops2020", "--cache",
                                 str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert "4 cases cached" in result.output
    result = runner.invoke(app, ["seg", "missing-rates", str(data), "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.csv").read_text().splitlines()[0].endswith("c0,de,t2")


def test_training_writes_a_2d_bundle(trained_myops):
    _, run = trained_myops
    meta = json.loads((run / "model" / "model.json").read_text())
    assert meta["spec"] == "myops2020" and meta["modalities"] == ["c0", "de", "t2"] and meta["num_classes"] == 6
    assert meta["model_kwargs"]["spatial_dims"] == 2
    model, _ = load_model(run)
    assert model.spatial_dims == 2 and all(p.dim() <= 4 for p in model.parameters())


def test_evaluate_all_subsets(trained_myops):
    _, run = trained_myops
    result = run_evaluation(run, split="test", progress=False, hd95=True)  # the preset's protocol: MyoPS-Net's
    assert result.protocol == "myops" and len(result.rows) == 7  # one test case x 7 subsets of 3 sequences
    assert len({r["subset"] for r in result.rows}) == 7
    for row in result.rows:
        for region in ("Scar", "Edema+Scar"):  # NaN Dice: the reference region is empty (left out of means)
            assert np.isnan(row[f"Dice_{region}"]) or 0.0 <= row[f"Dice_{region}"] <= 1.0
            assert np.isfinite(row[f"HD_{region}"])
    table = result.table.read_text()
    assert "| C0 | DE | T2 | Scar | Edema+Scar |" in table and "Average" in table and "## HD (voxels)" in table
    # every region under a BraTS-style protocol
    result = run_evaluation(run, split="test", progress=False, protocol="brats-challenge", out=run / "eval_all",
                            hd95=True)
    for row in result.rows:
        for region in REGIONS:
            assert 0.0 <= row[f"Dice_{region}"] <= 1.0 and np.isfinite(row[f"HD95_{region}"])
    assert "| C0 | DE | T2 | Scar | Edema+Scar | LV | Myo | RV |" in result.table.read_text()


def test_evaluate_follows_the_runs_hd95_setting(trained_myops, tmp_path):
    _, run = trained_myops  # the tiny preset sets eval.hd95: false; --hd95 / --no-hd95 override it
    rows = run_evaluation(run, split="test", progress=False, out=tmp_path / "default").rows
    assert not any(k.startswith("HD") for k in rows[0]), sorted(rows[0])
    result = runner.invoke(app, ["seg", "evaluate", str(run), "--no-progress", "--hd95", "-o", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert "## HD" in (tmp_path / "cli" / "table.md").read_text()


def test_predict_cli_without_lge(trained_myops, tmp_path):
    data, run = trained_myops
    case_id = "myops_training_101"
    case = tmp_path / case_id  # a new patient: one folder, bSSFP and T2 only, no label
    case.mkdir()
    for key in ("C0", "T2"):
        shutil.copy(data / "train25" / f"{case_id}_{key}.nii.gz", case)
    out = tmp_path / "pred"
    result = runner.invoke(app, ["seg", "predict", "-i", str(case), "-o", str(out), "-m", str(run), "--save-probabilities",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "c0+t2" in result.output
    written = nib.load(str(out / f"{case_id}.nii.gz"))
    ref = nib.load(str(case / f"{case_id}_C0.nii.gz"))
    assert written.shape == ref.shape and np.allclose(written.affine, ref.affine)
    assert set(np.unique(np.asarray(written.dataobj)).tolist()) <= MYOPS_LABELS
    probs = np.load(out / f"{case_id}.npz")["probabilities"]
    assert probs.shape == (6, *ref.shape)
    result = runner.invoke(app, ["seg", "predict", "-i", str(case), "-o", str(out), "-m", str(run),
                                 "--output-labels", "brats2020"])
    assert result.exit_code == 1 and "do not fit the model's classes" in result.output


def test_crop_size_must_match_the_dataset(tmp_path):
    cfg = tiny_myops_config(tmp_path, tmp_path / "run", "data.crop_size=[32,32,32]")
    with pytest.raises(ValueError, match=r"crop_size \[32, 32, 32\] has 3 values.*2-D slices"):
        SegmentationDataModule(cfg.data, tmp_path / "run")
