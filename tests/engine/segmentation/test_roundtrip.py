"""Tiny train -> evaluate -> predict round trip on synthetic data (CPU, seconds)."""

import json
import shutil
import warnings

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.config import load_config, packaged_config
from medmodal.data.volumes.synthetic_brats import synth_brats
from medmodal.engine.segmentation.train import run_training
from medmodal.evaluation.report import run_evaluation
from tests.conftest import BRATS_REAL, TCGA_MAPPING, requires_real_data

TINY_MODEL = {"widths": [4, 8, 16], "token_grid": 2, "num_heads": 2, "depth": 1}


def tiny_config(data, out, **extra):
    overrides = [
        f"data.root={data}", f"out_dir={out}", "data.crop_size=[16,16,16]", "data.batch_size=2",
        "data.samples_per_epoch=4", "data.num_workers=0", "data.split_fractions=[0.5,0.25,0.25]",
        "trainer.max_epochs=2", "trainer.val_every_n_epochs=1", "trainer.progress_bar=false",
        f"model.kwargs={TINY_MODEL}", "eval.roi_size=[16,16,16]", "eval.sw_batch_size=4", "eval.et_min_voxels=0",
        *[f"{k}={v}" for k, v in extra.items()],
    ]
    return load_config(packaged_config("demo_cpu"), overrides)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("roundtrip")
    data = base / "data"
    synth_brats(data, num_cases=4, size=24, seed=0)
    run_dir = run_training(tiny_config(data, base / "run"), resume="never").path
    return data, run_dir


def test_training_writes_the_run_folder(trained_run):
    _, run = trained_run
    for name in ("config.yaml", "splits.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt",
                 "model/model.safetensors", "model/model.json", "logs/metrics.csv"):
        assert (run / name).is_file(), name


def test_evaluate_all_subsets(trained_run):
    _, run = trained_run
    result = run_evaluation(run, split="test", progress=False)
    assert len(result.rows) == 15 * 1  # one test case x 15 subsets
    assert all(0.0 <= r["Dice_WT"] <= 1.0 and np.isfinite(r["HD95_WT"]) for r in result.rows)
    table = result.table.read_text()
    assert table.count("\n|") >= 17 and "Average" in table
    assert result.heatmap.stat().st_size > 1000


def test_evaluate_default_output_folder(trained_run, tmp_path):
    """A bundle inside a run folder writes into the run folder; another dataset (--data) gets its own
    folder named after it, so a second dataset does not overwrite the first one's report."""
    from medmodal.evaluation.report import default_output

    data, run = trained_run
    assert default_output(run, None, "test") == run / "eval_test"
    assert default_output(run / "model", None, "test") == run / "eval_test"
    assert default_output(run / "checkpoints" / "best.ckpt", None, "all") == run / "eval_all"
    assert default_output(run, data, "test") == run / "eval_test"  # the run's own data.root
    assert default_output(run / "model", tmp_path / "site b", "all") == run / "eval_site_b_all"
    other = tmp_path / "other_site"
    shutil.copytree(data, other)
    result = CliRunner().invoke(app, ["seg", "evaluate", str(run / "model"), "--data", str(other), "--split", "all",
                                      "--no-progress", "--no-hd95"])
    assert result.exit_code == 0, result.output
    assert (run / "eval_other_site_all" / "table.md").is_file() and not (run / "model" / "eval_all").exists()


@pytest.mark.parametrize("protocol", ["passion", "brats-challenge", "monai-max-directed"])
def test_evaluate_under_every_protocol(trained_run, tmp_path, protocol):
    _, run = trained_run
    result = CliRunner().invoke(app, ["seg", "evaluate", str(run), "--protocol", protocol, "-o", str(tmp_path / "ev"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "ev" / "table.md").read_text()
    assert f"scored under `{protocol}`" in table.splitlines()[0]
    header = "| FLAIR | T1 | T1ce | T2 | WT | TC | ET | ETPro |" if protocol == "passion" else \
        "| FLAIR | T1 | T1ce | T2 | WT | TC | ET |"
    assert table.count(header) == 2  # Dice and HD95 tables
    csv_lines = (tmp_path / "ev" / "subset_metrics.csv").read_text().splitlines()
    assert "protocol" in csv_lines[0].split(",") and all(protocol in line for line in csv_lines[1:])


def test_evaluate_protocol_errors_and_old_bundles(trained_run, tmp_path):
    _, run = trained_run
    result = CliRunner().invoke(app, ["seg", "evaluate", str(run), "--protocol", "myops", "-o", str(tmp_path / "x")])
    assert result.exit_code == 1 and "choose another --protocol" in result.output
    assert run_evaluation(run, split="test", progress=False, out=tmp_path / "new").protocol == "passion"
    # a run folder written before protocols existed: its bundle has no eval.protocol -> the old scoring
    old = tmp_path / "old_run"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("eval_*", "checkpoints"))
    meta = json.loads((old / "model" / "model.json").read_text())
    del meta["eval"]["protocol"]
    (old / "model" / "model.json").write_text(json.dumps(meta))
    result = run_evaluation(old, split="test", progress=False)
    assert result.protocol == "monai-max-directed" and "records no protocol" in result.markdown


def test_score_reads_what_predict_writes(trained_run, tmp_path):
    data, run = trained_run
    result = CliRunner().invoke(app, ["seg", "predict", "-i", str(data), "-o", str(tmp_path / "pred"), "-m", str(run),
                                      "--disable-progress-bar"])
    assert result.exit_code == 0, result.output
    (tmp_path / "pred" / sorted((tmp_path / "pred").glob("*.nii.gz"))[0].name).unlink()  # one case not predicted
    result = CliRunner().invoke(app, ["seg", "score", "-p", str(tmp_path / "pred"), "-r", str(data), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "pred" / "score_passion" / "summary.json").read_text())
    assert summary["cases"] == 3 and len(summary["missing_predictions"]) == 1 and not summary["missing_references"]


def test_resume_auto_continues_from_last(trained_run, tmp_path):
    data, run = trained_run
    cfg = tiny_config(data, run, **{"trainer.max_epochs": 3})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_training(cfg, resume="auto")
    # a resume reuses the run folder on purpose: no "exists and is not empty" warnings about it
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]
    import torch

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    # 3 epochs x 2 steps in all: the resumed run added exactly the third epoch (last.ckpt is the
    # end of epoch 2 even when its validation Dice was not the best)
    assert ckpt["global_step"] == 6 and "dtm" in ckpt and "rng" in ckpt


def test_predict_cli_subset_of_sequences(trained_run, tmp_path):
    data, run = trained_run
    case = sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))[0]
    (case / f"{case.name}_t1ce.nii.gz").unlink()  # the new patient lacks T1ce
    (case / f"{case.name}_seg.nii.gz").unlink()
    out = tmp_path / "pred"
    result = CliRunner().invoke(app, ["seg", "predict", "-i", str(case), "-o", str(out), "-m", str(run),
                                      "--save-probabilities"])
    assert result.exit_code == 0, result.output
    assert f"1 case predicted, 0 skipped; predictions in {out}" in " ".join(result.output.split())
    written = nib.load(str(out / f"{case.name}.nii.gz"))
    ref = nib.load(str(case / f"{case.name}_flair.nii.gz"))
    assert written.shape == ref.shape and np.allclose(written.affine, ref.affine)
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2, 4}
    probs = np.load(out / f"{case.name}.npz")["probabilities"]
    assert probs.shape == (4, *ref.shape)
    # --continue skips what exists
    result = CliRunner().invoke(app, ["seg", "predict", "-i", str(case), "-o", str(out), "-m", str(run), "--continue"])
    text = " ".join(result.output.split())
    assert f"{case.name}: skipped (already predicted)" in text
    assert "0 cases predicted, 1 skipped (1 already predicted (--continue))" in text


def test_predict_final_line_counts_folders_not_read_as_cases(tmp_path):
    from medmodal.cli.predict import predicted_line

    folders = [tmp_path / "TCGA-DU-7294"]
    assert predicted_line(1, 0, folders) == ("1 case predicted, 1 skipped (1 folder not read as a case: "
                                             "TCGA-DU-7294; see the warnings above)")
    assert predicted_line(2, 1, []) == "2 cases predicted, 1 skipped (1 already predicted (--continue))"


@requires_real_data
def test_predict_real_brats2023_case_with_sequences_removed(trained_run, tmp_path):
    _, run = trained_run
    src = BRATS_REAL / "BraTS-GLI-00001-000"
    case = tmp_path / src.name
    case.mkdir()
    for f in src.iterdir():
        if "-t1n" not in f.name and "-t2w" not in f.name:  # only FLAIR (t2f) and T1ce (t1c)
            (case / f.name).symlink_to(f)
    out = tmp_path / "pred"
    result = CliRunner().invoke(app, ["seg", "predict", "-i", str(case), "-o", str(out), "-m", str(run)])
    assert result.exit_code == 0, result.output
    written = nib.load(str(out / f"{src.name}.nii.gz"))
    ref = nib.load(str(src / f"{src.name}-t2f.nii.gz"))
    assert written.shape == (240, 240, 155) and np.allclose(written.affine, ref.affine)
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2, 3}  # BraTS 2023 convention: ET = 3


@requires_real_data
def test_predict_real_case_via_mapping_without_t1(trained_run, tmp_path):
    _, run = trained_run
    src = BRATS_REAL / "TCGA-DU-7294"
    case = tmp_path / src.name
    case.mkdir()
    for f in src.glob("*.nii.gz"):
        if "_t1_bet" not in f.name and "_seg" not in f.name:
            (case / f.name).symlink_to(f)
    out = tmp_path / "pred"
    result = CliRunner().invoke(app, ["seg", "predict", "-i", str(case), "-o", str(out), "-m", str(run),
                                      "--map", TCGA_MAPPING, "--output-labels", "brats2020"])
    assert result.exit_code == 0, result.output
    written = nib.load(str(out / f"{src.name}.nii.gz"))
    ref = nib.load(str(src / f"{src.name}_fla_bet.nii.gz"))
    assert written.shape == ref.shape and np.allclose(written.affine, ref.affine)
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2, 4}


def test_bundle_and_checkpoints_record_the_training_geometry(trained_run):
    """Issue 14: the bundle records orientation and median spacing of the training cases (synthetic:
    RAS, 240 mm / 24 voxels = 10 mm), in model.json and in the checkpoints."""
    import json

    import torch

    from medmodal.models.bundles import load_model

    _, run = trained_run
    expected = {"orientation": "RAS", "spacing": [10.0, 10.0, 10.0], "spatial_dims": 3}
    assert json.loads((run / "model" / "model.json").read_text())["geometry"] == expected
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["hyper_parameters"]["config"]["bundle"]["geometry"] == expected
    _, meta = load_model(run / "checkpoints" / "best.ckpt")
    assert meta["geometry"] == expected


def test_predict_from_a_ckpt_equals_the_bundle(trained_run, tmp_path):
    """``-m run/checkpoints/best.ckpt`` is read (hyper_parameters.config.bundle) and predicts as the bundle."""
    data, run = trained_run
    case = sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))[1]
    outputs = {}
    for name, model in (("bundle", run / "model" / "model.safetensors"), ("ckpt", run / "checkpoints" / "best.ckpt")):
        result = CliRunner().invoke(app, ["seg", "predict", "-i", str(case), "-o", str(tmp_path / name), "-m", str(model)])
        assert result.exit_code == 0, result.output
        outputs[name] = np.asarray(nib.load(str(tmp_path / name / f"{case.name}.nii.gz")).dataobj)
    np.testing.assert_array_equal(outputs["ckpt"], outputs["bundle"])
