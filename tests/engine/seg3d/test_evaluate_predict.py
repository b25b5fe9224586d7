"""A 3-D run's model used like any segmentation model: ``seg evaluate`` (its own test split reproduces
metrics.json; another folder) and ``seg predict`` (an LA HDF5 volume, BHSD NIfTI volumes) on tiny synthetic twins,
and the one-line refusals of bad input."""

import csv
import json

import h5py
import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.config import load_run_config
from medmodal.data.seg3d import read_seg3d, write_synthetic
from medmodal.engine.seg3d.config import Seg3DRunConfig
from medmodal.engine.seg3d.evaluate import evaluate_seg3d_run, is_seg3d_run
from medmodal.engine.seg3d.train import run_seg3d
from medmodal.evaluation.seg3d import volume_metrics

TINY = ["data.batch_size=2", "trainer.max_epochs=1", "trainer.samples_per_epoch=2", "trainer.progress_bar=false",
        "trainer.accelerator=cpu", "trainer.precision=32-true", "model.kwargs={n_filters: 4}"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs: V-Net on an LA2018 twin (HDF5, scale 1) and on a BHSD twin (NIfTI, scale 0.5)."""
    base = tmp_path_factory.mktemp("seg3d_eval")
    la = write_synthetic(base / "LA", "la2018", n=6, size=(32, 32, 16), seed=0)
    bhsd = write_synthetic(base / "BHSD", "bhsd", n=4, size=(32, 32, 16), seed=1)
    for root, out, extra in ((la, base / "run_la", ["data.patch=[16, 16, 16]"]),
                             (bhsd, base / "run_bhsd", ["data.patch=[16, 16, 16]", "data.scale=0.5"])):
        run_seg3d(load_run_config(Seg3DRunConfig, overrides=[*TINY, *extra, f"data.root={root}", f"out_dir={out}"]))
    return {"base": base, "la": la, "bhsd": bhsd, "run_la": base / "run_la", "run_bhsd": base / "run_bhsd"}


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_evaluate_own_test_split_reproduces_metrics_json(runs):
    for name in ("run_la", "run_bhsd"):
        run = runs[name]
        assert is_seg3d_run(run) and is_seg3d_run(run / "model" / "model.json")
        result = evaluate_seg3d_run(run, device="cpu")
        expected = json.loads((run / "metrics.json").read_text())["splits"]["test"]
        assert result.folder == run / f"eval_{'LA' if name == 'run_la' else 'BHSD'}_test"
        assert result.record["cases"] == expected["cases"] > 0
        assert set(result.record["scores"]) == set(expected["scores"])
        for key, value in expected["scores"].items():
            assert result.record["scores"][key]["mean"] == pytest.approx(value["mean"], abs=1e-9), key
        assert result.record["distance_unit"] == ("mm" if name == "run_bhsd" else "voxels (LA2018 stores no spacing)")
        with open(result.csv, newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert [r["case"] for r in rows] == json.loads((run / "splits.json").read_text())["test"]
        assert "| vnet |" in result.table.read_text() and result.summary.is_file()


def test_cli_evaluate_another_folder_and_refusals(runs, tmp_path):
    runner = CliRunner()
    other = write_synthetic(tmp_path / "LA_other", "la2018", n=3, size=(24, 32, 16), seed=7)
    out = runner.invoke(app, ["seg", "evaluate", str(runs["run_la"]), "--data", str(other), "--device", "cpu"])
    assert out.exit_code == 0, out.output
    summary = json.loads((runs["run_la"] / "eval_LA_other_test" / "summary.json").read_text())
    assert summary["cases"] == len(read_seg3d(other).split("test")) and summary["layout"] == "la2018"
    assert "Dice (%)" in out.output and "per-case CSV" in out.output
    out = runner.invoke(app, ["seg", "evaluate", str(runs["run_la"]), "--data", str(other), "--split", "all",
                              "--no-hd95", "--out", str(tmp_path / "all")])
    assert out.exit_code == 0, out.output
    summary = json.loads((tmp_path / "all" / "summary.json").read_text())
    assert summary["cases"] == 3 and "HD95" not in summary["scores"]
    for args, message in ((["--data", str(other), "--split", "val"], "exists only for the run's own data set"),
                          (["--data", str(runs["bhsd"])], "are not the model's"),
                          (["--protocol", "transunet"], "is a 3-D run")):
        out = runner.invoke(app, ["seg", "evaluate", str(runs["run_la"]), *args])
        assert out.exit_code == 1 and len(_error_lines(out.output)) == 1 and message in out.output, out.output


def test_predict_la_h5_writes_the_scored_label_map(runs, tmp_path):
    runner = CliRunner()
    dataset = read_seg3d(runs["la"])
    case = dataset.split("test")[0]
    out = runner.invoke(app, ["seg", "predict", "-i", str(case.image), "-o", str(tmp_path / "pred"),
                              "-m", str(runs["run_la"]), "--device", "cpu"])
    assert out.exit_code == 0, out.output
    with h5py.File(case.image, "r") as fh:
        image, label = fh["image"][()], fh["label"][()]
    seg = nib.load(tmp_path / "pred" / f"{case.id}_seg.nii.gz")      # named by the case folder, not mri_norm2
    assert seg.shape == image.shape and np.array_equal(seg.affine, np.eye(4))
    pred = np.asanyarray(seg.dataobj)
    assert pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 1}
    record = json.loads((tmp_path / "pred" / f"{case.id}.json").read_text())
    assert record["kind"] == "h5" and sum(record["voxels_per_class"].values()) == pred.size
    assert any("identity affine" in n for n in record["notes"])
    with open(runs["run_la"] / "per_case.csv", newline="") as fh:     # the same prediction the run scored
        scored = next(r for r in csv.DictReader(fh) if r["split"] == "test" and r["case"] == case.id)
    dice = volume_metrics(pred, label, dataset.classes, surface=False)["Dice_left atrium"]
    assert dice == pytest.approx(float(scored["Dice_left atrium"]), abs=1e-9)


def test_predict_bhsd_nifti_keeps_shape_and_affine_and_continues(runs, tmp_path):
    runner = CliRunner()
    images = runs["bhsd"] / "images"
    args = ["seg", "predict", "-i", str(images), "-o", str(tmp_path / "pred"), "-m", str(runs["run_bhsd"] / "model"),
            "--device", "cpu"]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    sources = sorted(images.glob("*.nii.gz"))
    assert sources and f"{len(sources)} volumes predicted" in out.output
    for source in sources:
        stem = source.name[: -len(".nii.gz")]
        seg, img = nib.load(tmp_path / "pred" / f"{stem}_seg.nii.gz"), nib.load(source)
        assert seg.shape == img.shape and np.allclose(seg.affine, img.affine)
        assert set(np.unique(np.asanyarray(seg.dataobj))) <= {0, 1}
        record = json.loads((tmp_path / "pred" / f"{stem}.json").read_text())
        assert record["network_grid"] == [16, 16, 8] and record["intensity"].startswith("brain window")
    again = runner.invoke(app, [*args, "--continue"])
    assert again.exit_code == 0 and "skipped (already predicted)" in again.output
    refused = runner.invoke(app, [*args[:5], str(tmp_path / "p2"), *args[6:], "--threshold", "0.3"])
    assert refused.exit_code == 1 and "not options of a 3-D model" in refused.output


def test_bad_inputs_are_one_line_errors_without_output(runs, tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad"
    for sub in ("garbage", "flat", "empty", "noimage", "mixed"):
        (bad / sub).mkdir(parents=True)
    (bad / "garbage" / "x.nii.gz").write_bytes(b"not a nifti")
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.float32), np.eye(4)), bad / "flat" / "s.nii.gz")
    (bad / "empty" / "notes.txt").write_text("no volume here")
    with h5py.File(bad / "noimage" / "a.h5", "w") as fh:
        fh["label"] = np.zeros((4, 4, 4), np.uint8)
    good = sorted((runs["bhsd"] / "images").glob("*.nii.gz"))[0]
    (bad / "mixed" / "a_good.nii.gz").write_bytes(good.read_bytes())
    (bad / "mixed" / "b_bad.nii.gz").write_bytes(b"broken")
    cases = ((bad / "garbage" / "x.nii.gz", "not a readable NIfTI file"),
             (bad / "flat", "expected a 3-D volume"),
             (bad / "empty", "no NIfTI (.nii / .nii.gz) or HDF5 (.h5) volume"),
             (bad / "empty" / "notes.txt", "nothing to segment"),
             (bad / "noimage", "no 'image' dataset"))
    for i, (source, message) in enumerate(cases):
        target = tmp_path / f"out{i}"
        out = runner.invoke(app, ["seg", "predict", "-i", str(source), "-o", str(target), "-m",
                                  str(runs["run_bhsd"]), "--device", "cpu"])
        lines = _error_lines(out.output)
        assert out.exit_code == 1 and len(lines) == 1 and message in lines[0], out.output
        assert str(source) in lines[0]                        # names the file (or the folder's file)
        assert not target.exists()                            # nothing half-written, no empty folder left
    out = runner.invoke(app, ["seg", "predict", "-i", str(bad / "mixed"), "-o", str(tmp_path / "mixed"), "-m",
                              str(runs["run_bhsd"]), "--device", "cpu"])
    lines = _error_lines(out.output)
    assert out.exit_code == 1 and len(lines) == 1 and "b_bad.nii.gz" in lines[0] and "--continue" in lines[0]
    assert sorted(p.name for p in (tmp_path / "mixed").iterdir()) == ["a_good.json", "a_good_seg.nii.gz"]
    out = runner.invoke(app, ["seg", "predict", "-i", str(bad / "mixed"), "-o", str(tmp_path / "mixed"), "-m",
                              str(runs["run_bhsd"]), "--device", "cpu", "--continue", "--skip-invalid"])
    assert out.exit_code == 0 and "b_bad.nii.gz: skipped (" in out.output and "1 already predicted" in out.output
