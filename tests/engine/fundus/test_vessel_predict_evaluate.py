"""A 1-epoch vessel run writes its model bundle; ``seg predict`` maps fundus photographs with it (native-size
PNGs + JSON) and ``seg evaluate`` scores the run on its source's test split and on a CHASE_DB1 twin."""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.data.fundus.synthetic import write_synthetic
from medmodal.engine.fundus import VesselRunConfig, run_vessels
from medmodal.models.bundles import load_model, model_geometry
from medmodal.data.fundus.geometry import FundusGeometry

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("vessels")
    drive = write_synthetic(root / "DRIVE", "drive", n=4, size=64, seed=1)
    chase = write_synthetic(root / "CHASEDB1", "chase_db1", n=2, size=80, seed=2)
    cfg = VesselRunConfig(out_dir=str(root / "run"))
    cfg.data.root = str(drive)
    cfg.data.diameter, cfg.data.crop, cfg.data.batch_size, cfg.data.val_fraction = 48, 32, 2, 0.25
    cfg.model.name = "unet_mobilenetv2"
    cfg.model.kwargs = {"decoder_channels": [16, 8, 8, 8, 8], "weights_path": None}
    cfg.trainer.max_epochs, cfg.trainer.samples_per_epoch = 1, 4
    cfg.trainer.accelerator, cfg.trainer.log_every_n_steps = "cpu", 1
    result = run_vessels(cfg)
    return root, drive, chase, root / "run", result


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_run_writes_a_fundus_bundle(trained):
    _, _, _, run, result = trained
    assert result.artefacts["model"] == str(run / "model")
    meta = json.loads((run / "model" / "model.json").read_text())
    assert meta["format"] == "seg/model" and meta["image_kind"] == "fundus"
    assert meta["modalities"] == ["red", "green", "blue"] and meta["num_classes"] == 1
    assert "weights_path" not in meta["model_kwargs"] and meta["threshold"] == 0.5
    assert meta["geometry"]["kind"] == "fundus" and meta["geometry"]["target_diameter"] == 48
    assert meta["normalisation"] == "fov" and meta["trained_on"] == {"root": "DRIVE", "layout": "drive"}
    _, loaded = load_model(run)
    assert model_geometry(loaded) == FundusGeometry(target_diameter=48)


def test_predict_plain_folder_writes_native_pngs_and_json(trained, tmp_path):
    _, drive, _, run, _ = trained
    images = tmp_path / "photos"
    shutil.copytree(drive / "test" / "images", images)
    out = tmp_path / "out"
    result = invoke("seg", "predict", "-i", images, "-o", out, "-m", run, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("4 images predicted, 0 skipped")
    for n in range(1, 5):
        stem = f"{n:02d}_test"
        native = Image.open(images / f"{stem}.tif").size
        for kind in ("vessel_prob", "vessels", "overlay"):
            png = Image.open(out / f"{stem}_{kind}.png")
            assert png.size == native, kind
        assert Image.open(out / f"{stem}_overlay.png").mode == "RGB"
        mask = np.asarray(Image.open(out / f"{stem}_vessels.png"))
        assert set(np.unique(mask)) <= {0, 255}
        record = json.loads((out / f"{stem}.json").read_text())
        assert record["fov"]["source"] == "derived" and "derived" in record["fov"]["note"]
        assert record["geometry"]["native_size"] == {"width": native[0], "height": native[1]}
        assert record["geometry"]["target_diameter"] == 48 and record["threshold"] == 0.5
        assert record["geometry"]["scale"] == pytest.approx(48 / record["geometry"]["fov_diameter"])
    again = invoke("seg", "predict", "-i", images, "-o", out, "-m", run, "--device", "cpu", "--continue",
                   "--threshold", "0.3")
    assert again.exit_code == 0, again.output
    assert "0 images predicted, 4 skipped (4 already predicted (--continue))" in again.output


def test_predict_dataset_root_uses_official_fov_and_threshold(trained, tmp_path):
    _, drive, _, run, _ = trained
    out = tmp_path / "out"
    result = invoke("seg", "predict", "-i", drive, "-o", out, "-m", run / "model", "--threshold", "0.2")
    assert result.exit_code == 0, result.output
    records = sorted(out.glob("*.json"))
    assert len(records) == 8
    record = json.loads(records[0].read_text())
    assert record["fov"]["source"] == "official" and record["threshold"] == 0.2


def test_bad_image_is_one_line_or_skipped(trained, tmp_path):
    _, drive, _, run, _ = trained
    images = tmp_path / "photos"
    shutil.copytree(drive / "test" / "images", images)
    (images / "broken.png").write_bytes(b"not a png")
    result = invoke("seg", "predict", "-i", images, "-o", tmp_path / "out", "-m", run)
    assert result.exit_code == 1
    errors = [ln for ln in result.output.strip().splitlines() if "error" in ln or "Traceback" in ln]
    assert len(errors) == 1 and errors[0].startswith("error:") and "broken.png" in errors[0]
    assert result.output.strip().splitlines()[-1] == errors[0]  # stops there: one line naming the file
    assert "(--skip-invalid names and skips such images; the 4 written so far are kept" in errors[0]
    skipped = invoke("seg", "predict", "-i", images, "-o", tmp_path / "out2", "-m", run, "--skip-invalid")
    assert skipped.exit_code == 0, skipped.output
    assert "broken.png: skipped" in skipped.output
    assert "4 images predicted, 1 skipped (1 unreadable (--skip-invalid))" in skipped.output
    same = invoke("seg", "predict", "-i", images, "-o", images, "-m", run)
    assert same.exit_code == 1 and "input folder" in same.output
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "broken.png").write_bytes(b"not a png")
    first = invoke("seg", "predict", "-i", only_bad, "-o", tmp_path / "out3", "-m", run)
    assert first.exit_code == 1 and not (tmp_path / "out3").exists()  # nothing written: no empty -o left behind


def test_predict_refuses_confusable_folders(trained, tmp_path):
    """-i a file, -i a prediction folder, -o a fundus data set: one line each; outputs never look like FOV masks."""
    _, drive, chase, run, _ = trained
    out = tmp_path / "out"
    assert invoke("seg", "predict", "-i", chase, "-o", out, "-m", run).exit_code == 0
    assert not list(out.glob("*_mask.*")) and not list(out.glob("*_fov.*"))
    again = invoke("seg", "predict", "-i", out, "-o", tmp_path / "out2", "-m", run)
    assert again.exit_code == 1 and "a folder of vessel predictions" in again.output
    assert again.output.strip().count("\n") == 0 and not (tmp_path / "out2").exists()
    photo = drive / "test" / "images" / "01_test.tif"
    single = invoke("seg", "predict", "-i", photo, "-o", tmp_path / "out3", "-m", run)
    assert single.exit_code == 1 and "not a folder" in single.output
    into = tmp_path / "CHASE_copy"
    shutil.copytree(chase, into)
    onto = invoke("seg", "predict", "-i", drive, "-o", into, "-m", run)
    assert onto.exit_code == 1 and "is a fundus data set (chase_db1 layout" in onto.output
    assert not list(into.glob("*.json"))
    inside = invoke("seg", "predict", "-i", drive, "-o", drive / "test" / "images", "-m", run)
    assert inside.exit_code == 1 and "inside the input folder" in inside.output
    below = invoke("seg", "predict", "-i", drive / "test" / "images", "-o", into / "predictions", "-m", run)
    assert below.exit_code == 1 and f"is inside {into}, which is a fundus data set" in below.output
    assert not (into / "predictions").exists()


def test_predict_refuses_volume_options_for_a_vessel_model(trained, tmp_path):
    _, drive, _, run, _ = trained
    result = invoke("seg", "predict", "-i", drive, "-o", tmp_path / "o", "-m", run, "--save-probabilities",
                    "--map", "t1=x", "--affine-tolerance", "0.01", "--precision", "fp32")
    assert result.exit_code == 1 and not (tmp_path / "o").exists()
    assert "--save-probabilities, --map, --affine-tolerance: volume (MRI) options" in result.output


def test_evaluate_source_test_split_and_a_chase_twin(trained):
    _, _, chase, run, _ = trained
    result = invoke("seg", "evaluate", run, "--device", "cpu")
    assert result.exit_code == 0, result.output
    own = run / "eval_DRIVE_test"
    rows = list(csv.DictReader((own / "per_image.csv").open()))
    splits = json.loads((run / "splits.json").read_text())
    assert sorted(r["name"] for r in rows) == sorted(splits["source"]["test"])

    result = invoke("seg", "evaluate", run, "--data", chase)
    assert result.exit_code == 0, result.output
    folder = run / "eval_CHASEDB1_test"
    rows = list(csv.DictReader((folder / "per_image.csv").open()))
    assert len(rows) == 2 and set(rows[0]) == {"name", "dice", "sensitivity", "specificity", "accuracy",
                                                "auc_roc", "auc_pr", "dice_whole"}
    table = (folder / "table.md").read_text()
    assert "| data set | n | Dice (FOV)" in table and "CHASEDB1" in table and " ± " in table
    mean_dice = 100 * np.mean([float(r["dice"]) for r in rows])  # the CSV in fractions, the table in %
    assert f"| {mean_dice:.2f} ± " in table and "Scores in %" in table
    assert "AUC-ROC" in result.output
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["role"] == "target" and summary["images"] == 2

    bad = invoke("seg", "evaluate", run, "--data", chase, "--split", "train")
    assert bad.exit_code == 1 and "own source" in bad.output


def test_extra_photo_beside_a_flat_layout_and_given_fov_masks(trained, tmp_path):
    _, drive, chase, run, _ = trained
    photos = tmp_path / "photos"
    shutil.copytree(chase, photos)
    Image.open(drive / "test" / "images" / "01_test.tif").save(photos / "extra.png")
    masks = tmp_path / "fov"
    masks.mkdir()
    shutil.copy(drive / "test" / "mask" / "01_test_mask.gif", masks / "extra_mask.gif")
    out = tmp_path / "out"
    empty = tmp_path / "no_masks"
    empty.mkdir()
    (empty / "other_mask.png").write_bytes(b"")
    none = invoke("seg", "predict", "-i", photos, "-o", out, "-m", run, "--fov-masks", empty)
    assert none.exit_code == 1 and "no FOV mask named like the photographs" in none.output and not out.exists()
    result = invoke("seg", "predict", "-i", photos, "-o", out, "-m", run, "--fov-masks", masks)
    assert result.exit_code == 0, result.output
    assert "3 images predicted" in result.output  # the CHASE_DB1 pair and the extra photograph
    assert not list(out.glob("*1stHO*"))  # labels are not photographs
    assert json.loads((out / "extra.json").read_text())["fov"]["source"] == "given"
    assert json.loads((out / "Image_01L.json").read_text())["fov"]["source"] == "derived"


def test_chase_masks_beside_the_images_are_called_unofficial(tmp_path):
    from medmodal.data.fundus.synthetic import write_synthetic
    from medmodal.engine.fundus.predict import find_fundus_images

    chase = write_synthetic(tmp_path / "CHASEDB1", "chase_db1", n=2, size=64, seed=3, unofficial_masks=True)
    items, _ = find_fundus_images(chase)
    assert {i.fov_source for i in items} == {"unofficial"} and all(i.fov is not None for i in items)
    drive = write_synthetic(tmp_path / "DRIVE", "drive", n=1, size=64, seed=3)
    items, _ = find_fundus_images(drive / "test")
    assert {i.fov_source for i in items} == {"official"}


def test_volume_options_are_refused_for_a_vessel_run(trained):
    run = trained[3]
    result = invoke("seg", "evaluate", run, "--hd95", "--protocol", "passion")
    assert result.exit_code == 1
    assert "--hd95/--no-hd95, --protocol: volume (MRI) options" in result.output and "\n" not in result.output.strip()


def test_a_vessel_checkpoint_predicts_and_evaluates_like_the_bundle(trained, tmp_path):
    """Every checkpoint carries the bundle's description (hyper_parameters.config.bundle): -m best.ckpt works."""
    _, drive, chase, run, _ = trained
    ckpt = sorted((run / "checkpoints").glob("*.ckpt"))[0]
    _, meta = load_model(ckpt)
    assert meta["image_kind"] == "fundus" and model_geometry(meta) == FundusGeometry(target_diameter=48)
    via_ckpt, via_bundle = tmp_path / "ckpt", tmp_path / "bundle"
    for model, out in ((ckpt, via_ckpt), (run / "model", via_bundle)):
        result = invoke("seg", "predict", "-i", chase, "-o", out, "-m", model)
        assert result.exit_code == 0, result.output
    if ckpt.name == "best.ckpt":  # the bundle holds the best checkpoint's weights
        for png in sorted(via_bundle.glob("*_vessel_prob.png")):
            assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(via_ckpt / png.name)))
    result = invoke("seg", "evaluate", ckpt, "--data", chase, "--out", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ev" / "per_image.csv").is_file()
