"""Robustness of the user-facing commands: every bad input gives exit code 1 and one clear line
naming the file and the problem (no traceback), and never leaves a (partial) output file.

Covers the BraTS (3-D) and MyoPS (2-D) paths of ``medmodal predict`` and ``medmodal data
preprocess``; the loader-level messages are tested in ``tests/data/volumes/test_loading.py``, checkpoint
safety (crafted malicious pickle) in ``tests/engine/test_checkpoint.py``.
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.config import load_config, packaged_config
from medmodal.data.volumes.synthetic_myops import synth_myops
from medmodal.models.bundles import save_bundle
from medmodal.engine.segmentation.module import SegmentationModule, bundle_meta
from tests.conftest import save_nifti, tiny_volumes, write_brats2020_case

runner = CliRunner()
TINY_3D = {"widths": [4, 8, 16], "token_grid": 2, "num_heads": 2, "depth": 1}


def make_bundle(folder, preset, overrides):
    """An untrained model bundle (what ``train`` exports), built without training."""
    cfg = load_config(packaged_config(preset), overrides)
    module = SegmentationModule.from_experiment(cfg)
    return save_bundle(folder, module.model, bundle_meta(cfg))


@pytest.fixture(scope="module")
def brats_bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("brats_model") / "model"
    return make_bundle(folder, "demo_cpu", [f"model.kwargs={TINY_3D}", "eval.roi_size=[16,16,16]"])


@pytest.fixture(scope="module")
def myops_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("myops_model") / "model", "tiny_myops2020", [])


def outputs(folder):
    """Every file in the output folder, hidden temporary files included."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def assert_clear_failure(result, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def predict(case, out, model):
    return runner.invoke(app, ["seg", "predict", "-i", str(case), "-o", str(out), "-m", str(model),
                               "--disable-progress-bar"])


# ----------------------------------------------------------------- BraTS: bad image files
def _truncate(case):
    path = case / f"{case.name}_t1.nii.gz"
    path.write_bytes(path.read_bytes()[:200])
    return f"{case.name}_t1.nii.gz", "cannot read NIfTI"


def _shape(case):
    save_nifti(case / f"{case.name}_t2.nii.gz", np.ones((16, 16, 12), np.int16))
    return f"{case.name}_t2.nii.gz", "differs from"


def _affine(case):
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    save_nifti(case / f"{case.name}_t1ce.nii.gz", tiny_volumes()[0]["t1ce"], shifted)
    return f"{case.name}_t1ce.nii.gz", "affine"


def _nan(case):
    arr = tiny_volumes()[0]["flair"].astype(np.float32)
    arr[2, 2, 2] = np.nan
    save_nifti(case / f"{case.name}_flair.nii.gz", arr)
    return f"{case.name}_flair.nii.gz", "NaN or Inf"


def _empty(case):
    save_nifti(case / f"{case.name}_t2.nii.gz", np.zeros((16, 16, 16), np.int16))
    return f"{case.name}_t2.nii.gz", "sequence is empty"


def _no_sequence(case):
    for name in ("flair", "t1", "t1ce", "t2"):
        (case / f"{case.name}_{name}.nii.gz").unlink()
    return case.name, "cannot recognise the layout"  # an empty case folder


@pytest.mark.parametrize("corrupt", [_truncate, _shape, _affine, _nan, _empty, _no_sequence],
                         ids=["truncated", "shape", "affine", "nan", "empty-sequence", "no-sequence"])
def test_predict_bad_brats_case(tmp_path, brats_bundle, corrupt):
    case = write_brats2020_case(tmp_path / "in", "BraTS20_Training_007", label=False)
    where, problem = corrupt(case)
    out = tmp_path / "out"
    assert_clear_failure(predict(case, out, brats_bundle), where, problem)
    assert outputs(out) == []


def test_bad_case_after_good_one_keeps_only_complete_outputs(tmp_path, brats_bundle):
    root = tmp_path / "in"
    write_brats2020_case(root, "BraTS20_Training_001", label=False)
    _nan(write_brats2020_case(root, "BraTS20_Training_002", label=False))
    out = tmp_path / "out"
    assert_clear_failure(predict(root, out, brats_bundle), "BraTS20_Training_002_flair.nii.gz")
    # no temporary or partial file: the finished case's prediction and its record only
    assert outputs(out) == ["BraTS20_Training_001.json", "BraTS20_Training_001.nii.gz"]
    nib.load(str(out / "BraTS20_Training_001.nii.gz")).get_fdata()  # complete and readable


def test_missing_input_folder(tmp_path, brats_bundle):
    assert_clear_failure(predict(tmp_path / "nowhere", tmp_path / "out", brats_bundle), "nowhere")
    assert outputs(tmp_path / "out") == []


def test_unknown_label_values(tmp_path):
    case = write_brats2020_case(tmp_path / "data", "BraTS20_Training_003")
    _, seg = tiny_volumes()
    seg[0, 0, 0] = 7
    save_nifti(case / f"{case.name}_seg.nii.gz", seg)
    result = runner.invoke(app, ["seg", "preprocess", str(tmp_path / "data"), "--cache", str(tmp_path / "cache")])
    assert_clear_failure(result, f"{case.name}_seg.nii.gz", "label values [7]")


# ----------------------------------------------------------------- outputs and checkpoints
def test_output_folder_not_writable(tmp_path, brats_bundle):
    case = write_brats2020_case(tmp_path / "in", "BraTS20_Training_004", label=False)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert_clear_failure(predict(case, blocker / "out", brats_bundle), "cannot create output folder")
    assert_clear_failure(predict(case, blocker, brats_bundle), "exists and is not a folder")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_output_folder(tmp_path, brats_bundle):
    case = write_brats2020_case(tmp_path / "in", "BraTS20_Training_005", label=False)
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert_clear_failure(predict(case, out, brats_bundle), "not writable")
    finally:
        out.chmod(0o700)
    assert outputs(out) == []


def test_model_that_is_not_a_checkpoint(tmp_path):
    case = write_brats2020_case(tmp_path / "in", "BraTS20_Training_006", label=False)
    fake = tmp_path / "model.ckpt"
    fake.write_bytes(b"definitely not a checkpoint" * 10)
    assert_clear_failure(predict(case, tmp_path / "out", fake), "model.ckpt")
    assert outputs(tmp_path / "out") == []


def test_checkpoint_for_other_sequences(tmp_path, myops_bundle):
    """A MyoPS model (C0/DE/T2) given a BraTS case: refused, naming the case and the sequences."""
    case = write_brats2020_case(tmp_path / "in", "BraTS20_Training_008", label=False)
    assert_clear_failure(predict(case, tmp_path / "out", myops_bundle), "case BraTS20_Training_008",
                         "do not match the model's sequences ['c0', 'de', 't2']")
    assert outputs(tmp_path / "out") == []


# ----------------------------------------------------------------- MyoPS path
@pytest.fixture
def myops_root(tmp_path):
    root = tmp_path / "myops"
    synth_myops(root, num_cases=1, size=32, slices=3, seed=0)
    return root


def _myops_file(root, suffix):
    return next((root / "train25").glob(f"*_{suffix}.nii.gz"))


def test_myops_truncated_sequence(myops_root, tmp_path, myops_bundle):
    path = _myops_file(myops_root, "DE")
    path.write_bytes(path.read_bytes()[:150])
    out = tmp_path / "out"
    assert_clear_failure(predict(myops_root / "train25", out, myops_bundle), path.name, "cannot read NIfTI")
    assert outputs(out) == []


def test_myops_shape_mismatch(myops_root, tmp_path, myops_bundle):
    path = _myops_file(myops_root, "T2")
    save_nifti(path, np.ones((32, 30, 3), np.float32))
    out = tmp_path / "out"
    assert_clear_failure(predict(myops_root / "train25", out, myops_bundle), path.name, "differs from")
    assert outputs(out) == []


def test_myops_unknown_label_values(myops_root, tmp_path):
    gd = next((myops_root / "train25_myops_gd").glob("*_gd.nii.gz"))
    img = nib.load(str(gd))
    labels = np.asarray(img.dataobj).copy()
    labels[0, 0, 0] = 999
    nib.save(nib.Nifti1Image(labels, img.affine), str(gd))
    result = runner.invoke(app, ["seg", "preprocess", str(myops_root), "--dataset", "myops2020",
                                 "--cache", str(tmp_path / "cache")])
    assert_clear_failure(result, gd.name, "999")
