"""The 2-D engine end to end on synthetic twins (read by the real readers): train, resume, evaluate, predict."""

import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.config import load_run_config
from medmodal.data.seg2d import write_synthetic
from medmodal.engine.segmentation.config import load_train_config
from medmodal.engine.seg2d.config import Seg2DRunConfig
from medmodal.engine.seg2d.train import case_splits, run_seg2d
from medmodal.errors import ConfigError

TINY = ["model.kwargs={widths: [8, 16, 32, 32], depths: [1, 1, 1, 1], head_dim: 8, decoder_channels: 8}",
        "data.size=32", "data.batch_size=4", "trainer.max_epochs=2", "trainer.samples_per_epoch=8",
        "trainer.progress_bar=false", "trainer.accelerator=cpu", "trainer.precision=32-true",
        "optim.optimizer=adamw", "optim.lr=0.003", "optim.schedule=cosine"]


@pytest.fixture(scope="module")
def acdc(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("acdc") / "ACDC", "acdc_h5", n=10, size=32, seed=0)


def _cfg(root, out, *extra):
    return load_run_config(Seg2DRunConfig, preset="train_mslau_acdc",
                           overrides=[*TINY, f"data.root={root}", f"out_dir={out}", *extra])


def test_train_writes_a_finished_run_and_resume_returns_it(acdc, tmp_path):
    result = run_seg2d(_cfg(acdc, tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["protocol"] == "transunet" and metrics["classes"] == ["background", "RV", "Myo", "LV"]
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    patients = {k: {c.split("_frame")[0] for c in v} for k, v in splits.items()}
    assert not (patients["train"] & patients["val"]) and not (patients["train"] & patients["test"])
    test = metrics["splits"]["test"]
    assert test["cases"] == len(splits["test"]) > 0
    assert {"Dice_RV", "Dice_Myo", "Dice_LV", "HD95_LV", "Dice"} <= set(test["scores"])
    assert metrics["checkpoint"].endswith("best.ckpt") and metrics["best_val_dice"] is not None
    assert (tmp_path / "run" / "model" / "model.json").is_file()
    again = run_seg2d(_cfg(acdc, tmp_path / "run"))
    assert again.skipped and again.metrics["splits"]["test"] == result.metrics["splits"]["test"]


def test_cli_train_evaluate_predict_on_nifti_keeps_the_geometry(acdc, tmp_path):
    runner = CliRunner()
    args = ["seg", "train", "--preset", "train_mslau_acdc", "--data", str(acdc), "--out", str(tmp_path / "run")]
    for item in TINY:
        args += ["--set", item]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "test (" in out.output and "Dice RV" in out.output
    out = runner.invoke(app, ["seg", "evaluate", str(tmp_path / "run"), "--split", "val"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "run" / "eval_ACDC_val" / "per_case.csv").is_file()
    raw = write_synthetic(tmp_path / "nifti", "acdc", n=2, size=32, seed=3)
    patient = next(p for p in sorted(raw.rglob("patient*")) if p.is_dir())
    out = runner.invoke(app, ["seg", "predict", "-i", str(patient), "-o", str(tmp_path / "pred"),
                              "-m", str(tmp_path / "run")])
    assert out.exit_code == 0, out.output
    assert "_gt.nii.gz: ignored" in out.output
    frames = sorted(p for p in patient.glob("*_frame??.nii.gz"))
    assert frames
    for frame in frames:
        stem = frame.name[:-len(".nii.gz")]
        pred = nib.load(tmp_path / "pred" / f"{stem}_seg.nii.gz")
        source = nib.load(frame)
        np.testing.assert_array_equal(pred.affine, source.affine)
        assert pred.shape == source.shape
        assert set(np.unique(np.asanyarray(pred.dataobj))) <= {0, 1, 2, 3}
    again = runner.invoke(app, ["seg", "predict", "-i", str(patient), "-o", str(tmp_path / "pred"),
                                "-m", str(tmp_path / "run"), "--continue"])
    assert again.exit_code == 0 and "skipped (already predicted)" in again.output
    refused = runner.invoke(app, ["seg", "predict", "-i", str(patient), "-o", str(tmp_path / "pred2"),
                                  "-m", str(tmp_path / "run"), "--threshold", "0.3"])
    assert refused.exit_code == 1 and "not options of a 2-D model" in refused.output


def test_layout_without_validation_split_holds_patients_out():
    from medmodal.data.seg2d import Seg2DCase, Seg2DSet

    cases = [Seg2DCase(f"case{i:04d}", "train", "slices", (), (), True) for i in range(10)] + \
        [Seg2DCase(f"case{i:04d}", "test", "volume", (), (), True) for i in range(10, 14)]
    dataset = Seg2DSet("synapse", ".", "synapse", cases, ("background", "A"), ("ct",), [])
    splits, notes = case_splits(dataset, 0.2, 0.2, seed=0)
    assert len(splits["val"]) == 2 and len(splits["train"]) == 8 and len(splits["test"]) == 4
    assert "no validation split" in notes[0]


def test_config_errors_are_one_line(acdc, tmp_path):
    with pytest.raises(ConfigError, match="data.size must be a multiple of 32"):
        _cfg(acdc, tmp_path / "r", "data.size=100")
    with pytest.raises(ConfigError, match="model.name"):
        _cfg(acdc, tmp_path / "r", "model.name=resnet")
    with pytest.raises(ConfigError, match="loss.ce_weight"):
        _cfg(acdc, tmp_path / "r", "loss.ce_weight=0", "loss.dice_weight=0")
    assert isinstance(load_train_config(preset="train_mslau_cvc"), Seg2DRunConfig)


def test_run_folder_inside_the_data_is_refused(acdc):
    with pytest.raises(ConfigError, match="inside the data set"):
        run_seg2d(_cfg(acdc, acdc / "run"))


def test_own_class_names_and_a_label_past_them(acdc, tmp_path):
    from medmodal.errors import DataError

    result = run_seg2d(_cfg(acdc, tmp_path / "own", "data.classes=[background, cavity, wall, chamber]",
                            "trainer.max_epochs=1", "eval.hd95=false"))
    assert result.metrics["classes"] == ["background", "cavity", "wall", "chamber"]
    assert "Dice_wall" in result.metrics["splits"]["test"]["scores"]
    assert any("classes from data.classes" in n for n in result.notes)
    with pytest.raises(DataError, match=r"\.h5"):
        run_seg2d(_cfg(acdc, tmp_path / "few", "data.classes=[background, a, b]", "trainer.max_epochs=1"))
    with pytest.raises(ConfigError, match="data.classes must be a list"):
        _cfg(acdc, tmp_path / "bad", "data.classes=[background]")


def test_3d_models_are_not_offered_for_2d_runs(acdc, tmp_path):
    from medmodal.engine.seg2d.config import planar_models

    assert {"mslau_net", "unet2d", "transunet", "swin_unet"} <= set(planar_models())
    assert not {"dmafnet", "rfnet", "zero_unet", "mmformer"} & set(planar_models())
    with pytest.raises(ConfigError, match="model.name"):
        _cfg(acdc, tmp_path / "r", "model.name=dmafnet")


def test_predict_skip_invalid_names_a_damaged_h5(acdc, tmp_path):
    import shutil

    run = run_seg2d(_cfg(acdc, tmp_path / "run", "trainer.max_epochs=1", "eval.hd95=false"))
    folder = tmp_path / "in"
    folder.mkdir()
    volume = next((acdc / "data").glob("patient*_frame??.h5"))
    shutil.copy(volume, folder / volume.name)
    (folder / "broken.h5").write_bytes(volume.read_bytes()[:500])
    runner = CliRunner()
    args = ["seg", "predict", "-i", str(folder), "-m", str(run.artefacts["model"])]
    out = runner.invoke(app, [*args, "-o", str(tmp_path / "p1")])
    assert out.exit_code == 1 and "broken.h5" in out.output and "--skip-invalid" in out.output
    out = runner.invoke(app, [*args, "-o", str(tmp_path / "p2"), "--skip-invalid"])
    assert out.exit_code == 0, out.output
    assert "broken.h5: skipped" in out.output and "1 input predicted, 1 skipped" in out.output


def test_own_organs_in_the_hdf5_form_under_any_case_name(tmp_path):
    """The how-to's recipe: <case>.h5 volumes with image / label, the three list files, data.classes."""
    import h5py

    from medmodal.data.seg2d import read_seg2d

    root = tmp_path / "LIVER"
    (root / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"liverct_{i:02d}" for i in range(6)]
    for name in names:
        label = np.zeros((3, 32, 32), np.uint8)
        label[:, 8:24, 8:24] = 1
        label[:, 12:16, 12:16] = 2
        with h5py.File(root / "data" / f"{name}.h5", "w") as fh:
            fh["image"] = (label / 2 + rng.random(label.shape) * 0.2).clip(0, 1).astype(np.float32)
            fh["label"] = label
    for split, chosen in (("train", names[:4]), ("val", names[4:5]), ("test", names[5:])):
        (root / f"{split}.list").write_text("\n".join(chosen) + "\n")
    found = read_seg2d(root)
    assert found.layout == "acdc_h5" and [c.split for c in found.cases].count("train") == 4
    result = run_seg2d(_cfg(root, tmp_path / "run", "data.layout=auto", "data.classes=[background, liver, tumour]",
                            "trainer.max_epochs=1"))
    assert "Dice_tumour" in result.metrics["splits"]["test"]["scores"]
    # forgetting data.classes: ACDC's names, and LV (label 3) is in no labelled slice: said, not silent
    plain = run_seg2d(_cfg(root, tmp_path / "plain", "data.layout=auto", "trainer.max_epochs=1", "eval.hd95=false"))
    assert any("class(es) LV appear in no labelled training slice" in n for n in plain.notes)
