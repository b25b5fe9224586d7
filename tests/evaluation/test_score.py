"""``medmodal score``: folders of predictions against references in the layouts users have."""

import json
import math
import shutil

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.evaluation.score import discover_references, score_folders, summary_markdown
from tests.conftest import BRATS_REAL, requires_real_data, save_nifti, tiny_volumes, write_brats2020_case

runner = CliRunner()
IDS = ["BraTS20_Training_000", "BraTS20_Training_001", "BraTS20_Training_002"]


@pytest.fixture
def folder_pair(tmp_path):
    """References: three BraTS 2020 case folders. Predictions: the first two cases (the first
    exact, the second with the tumour moved one voxel) and a stray case without a reference."""
    ref = tmp_path / "ref"
    for i, case_id in enumerate(IDS):
        write_brats2020_case(ref, case_id, seed=i)
    pred = tmp_path / "pred"
    _, label = tiny_volumes()
    save_nifti(pred / f"{IDS[0]}.nii.gz", label)
    save_nifti(pred / f"{IDS[1]}.nii.gz", np.roll(label, 1, axis=0))
    save_nifti(pred / "stray_case.nii.gz", label)
    (pred / f"{IDS[0]}.json").write_text("{}")  # what predict writes beside a prediction: not a case
    return pred, ref, label


def test_cli_scores_matched_cases_and_lists_the_others(folder_pair):
    pred, ref, label = folder_pair
    result = runner.invoke(app, ["seg", "score", "-p", str(pred), "-r", str(ref), "--protocol", "brats-challenge"])
    assert result.exit_code == 0, result.output
    out = pred / "score_brats-challenge"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"] == 2 and summary["protocol"]["name"] == "brats-challenge"
    assert (out / "summary.md").read_text().startswith("# Scores of 2 cases - protocol")
    one = summary_markdown({**summary, "cases": 1}, ["WT"], ["Dice"])
    assert one.startswith("# Scores of 1 case - protocol `brats-challenge`")
    assert summary["missing_predictions"] == [IDS[2]] and summary["missing_references"] == ["stray_case"]
    for text in (result.output, (out / "summary.md").read_text()):
        assert IDS[2] in text and "stray_case" in text  # listed, never silently skipped
    lines = (out / "per_case.csv").read_text().splitlines()
    assert lines[0].startswith("case_id,protocol,Dice_WT,Dice_TC,Dice_ET,HD95_WT")
    assert [row.split(",")[:2] for row in lines[1:]] == [[IDS[0], "brats-challenge"], [IDS[1], "brats-challenge"]]
    first, second = summary["metric_per_case"]
    assert first["metrics"]["WT"] == {"Dice": 1.0, "HD95": 0.0}
    moved = np.roll(label, 1, axis=0) > 0
    wt = label > 0
    assert second["metrics"]["WT"]["Dice"] == pytest.approx(2 * (moved & wt).sum() / (moved.sum() + wt.sum()))
    assert summary["mean"]["WT"]["Dice"] == pytest.approx((1.0 + second["metrics"]["WT"]["Dice"]) / 2)
    assert summary["median"]["WT"]["HD95"] == pytest.approx(second["metrics"]["WT"]["HD95"] / 2)
    assert summary["std"]["WT"]["Dice"] == pytest.approx(np.std([1.0, second["metrics"]["WT"]["Dice"]], ddof=1))
    assert summary["n"]["ET"]["Dice"] == 2


def test_default_protocol_is_the_datasets_and_writes_etpro(folder_pair, tmp_path):
    pred, ref, _ = folder_pair
    result = score_folders(pred, ref, out_dir=tmp_path / "out")
    assert result.protocol.name == "passion" and "Dice_ETPro" in result.rows[0]
    assert result.missing_predictions == [IDS[2]] and result.missing_references == ["stray_case"]
    assert "ETPro" in result.table.read_text() and not list((tmp_path / "out").glob(".tmp-*"))


def _label_only_layouts(ref, root, label):
    """The same references as a flat folder (labelsTr-like), BraTS 2023 label-only case folders and
    nnU-Net raw (its dataset.json declares the BraTS 2020 values); BraTS 2023 labels use ET = 3."""
    flat = root / "flat"
    brats2023 = root / "brats2023"
    nnunet = root / "nnunet"
    for case_id in IDS:
        seg = np.asarray(nib.load(str(ref / case_id / f"{case_id}_seg.nii.gz")).dataobj)
        save_nifti(flat / f"{case_id}.nii.gz", seg)
        save_nifti(brats2023 / case_id / f"{case_id}-seg.nii.gz", np.where(seg == 4, 3, seg).astype(np.uint8))
        save_nifti(nnunet / "labelsTr" / f"{case_id}.nii.gz", seg)
        save_nifti(nnunet / "imagesTr" / f"{case_id}_0000.nii.gz", seg.astype(np.float32))
    (nnunet / "dataset.json").write_text(json.dumps({"channel_names": {"0": "FLAIR"}, "file_ending": ".nii.gz",
                                                      "labels": {"background": 0, "necrosis": 1, "edema": 2,
                                                                 "enhancing tumor": 4}}))
    return {"flat": flat, "brats2023": brats2023, "nnunet": nnunet, "labelsTr": nnunet / "labelsTr"}


def test_reference_layouts_give_the_same_scores(folder_pair, tmp_path):
    pred, ref, label = folder_pair
    expected = score_folders(pred, ref, "brats-challenge", tmp_path / "o0").rows
    for name, root in _label_only_layouts(ref, tmp_path, label).items():
        assert [c.case_id for c in discover_references(root)] == IDS, name
        rows = score_folders(pred, root, "brats-challenge", tmp_path / f"o_{name}",
                             pred_labels="brats2020" if name == "brats2023" else None).rows
        keys = [k for k in rows[0] if k.startswith(("Dice", "HD95"))]
        assert [[r[k] for k in keys] for r in rows] == [[r[k] for k in keys] for r in expected], name


def test_prediction_label_convention(folder_pair, tmp_path):
    pred, ref, label = folder_pair
    pred23 = tmp_path / "pred23"
    for path in pred.glob("*.nii.gz"):
        seg = np.asarray(nib.load(str(path)).dataobj)
        save_nifti(pred23 / path.name, np.where(seg == 4, 3, seg).astype(np.uint8))
    result = runner.invoke(app, ["seg", "score", "-p", str(pred23), "-r", str(ref), "--quiet"])
    message = " ".join(result.output.split())
    assert result.exit_code == 1 and "label values [3]" in message and "--pred-labels" in message
    ok = score_folders(pred23, ref, "passion", tmp_path / "o", pred_labels="brats2023")
    assert ok.rows[0]["Dice_ET"] == 1.0 and ok.rows[0]["Dice_WT"] == 1.0


@pytest.mark.parametrize("what", ["shape", "affine"])
def test_grid_mismatch_names_both_files(folder_pair, what):
    pred, ref, label = folder_pair
    target = pred / f"{IDS[1]}.nii.gz"
    if what == "shape":
        save_nifti(target, np.pad(label, ((0, 1), (0, 0), (0, 0))))
    else:
        affine = np.diag([1.0, 1.0, 1.5, 1.0])  # another slice thickness
        save_nifti(target, label, affine)
    result = runner.invoke(app, ["seg", "score", "-p", str(pred), "-r", str(ref)])
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert str(target) in message and f"{IDS[1]}_seg.nii.gz" in message and "Traceback" not in result.output
    assert not (pred / "score_passion").exists()  # nothing half-written


def test_nothing_in_common_is_an_error(folder_pair, tmp_path):
    _, ref, label = folder_pair
    save_nifti(tmp_path / "other" / "x.nii.gz", label)
    result = runner.invoke(app, ["seg", "score", "-p", str(tmp_path / "other"), "-r", str(ref)])
    assert result.exit_code == 1 and "no case id is in both" in result.output


def test_myops_references(tmp_path):
    """MyoPS label folder (official *_gd names) and predictions: the MyoPS-Net protocol by default."""
    gd, pred = tmp_path / "train25_myops_gd", tmp_path / "pred"
    label = np.zeros((16, 16, 4), np.uint16)
    label[4:12, 4:12, :] = 200  # myocardium
    label[6:10, 6:10, :] = 500  # LV blood pool
    label[4:6, 4:12, 1:3] = 1220  # edema
    without_scar = label.copy()
    label[4:6, 4:8, 1:3] = 2221  # scar
    save_nifti(gd / "myops_training_101_gd.nii.gz", label)
    save_nifti(gd / "myops_training_102_gd.nii.gz", without_scar)
    save_nifti(pred / "myops_training_101.nii.gz", label)
    save_nifti(pred / "myops_training_102.nii.gz", label)  # predicts a scar the reference lacks
    result = score_folders(pred, gd)
    assert result.protocol.name == "myops" and result.summary["dataset"] == "myops2020"
    first, second = result.rows
    assert first["Dice_Scar"] == 1.0 and first["Dice_Edema+Scar"] == 1.0 and first["HD_Scar"] == 0.0
    assert math.isnan(second["Dice_Scar"]) and second["HD_Scar"] == 0.0  # MyoPS-Net: no Dice, HD 0
    assert result.summary["n"]["Scar"]["Dice"] == 1 and result.summary["mean"]["Scar"]["Dice"] == 1.0
    assert result.summary["metric_per_case"][1]["metrics"]["Scar"]["Dice"] is None  # JSON null, not NaN


@requires_real_data
def test_real_algorithm_segmentations(tmp_path):
    """The five BraTS algorithms as prediction files, the fusion label as a flat reference folder."""
    case = BRATS_REAL / "TCGA-DU-7294"
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir()
    shutil.copy(case / "TCGA-DU-7294_seg_fusion.nii.gz", ref / "TCGA-DU-7294.nii.gz")
    pred.mkdir()
    shutil.copy(case / "algorithm-segmentations" / "isen-20.nii.gz", pred / "TCGA-DU-7294.nii.gz")
    result = score_folders(pred, ref, "passion")
    # medpy 0.5.2 (see test_protocols.py): dc 0.9775968263910638, hd95 1.0 (WT); dc 0.9555278695628623 (TC)
    row = result.rows[0]
    assert row["Dice_WT"] == pytest.approx(0.9775968263910638, abs=1e-6) and row["HD95_WT"] == pytest.approx(1.0)
    assert row["Dice_TC"] == pytest.approx(0.9555278695628623, abs=1e-6)


def test_unrecognised_reference_case_folder_warns_about_no_guessed_layout(folder_pair, tmp_path):
    """A case folder with non-standard names (as TCGA-DU-7294's ``*_fla_bet``): the MyoPS layout is
    only tried, so no ``layout 'myops2020'`` warning per file; one error line names the folder."""
    pred, _, label = folder_pair
    case = tmp_path / "TCGA-XX-0001"
    save_nifti(case / "TCGA-XX-0001_fla_bet.nii.gz", label.astype(np.float32))
    save_nifti(case / "TCGA-XX-0001_seg_fusion.nii.gz", label)
    result = runner.invoke(app, ["seg", "score", "-p", str(pred), "-r", str(case)])
    assert result.exit_code == 1 and "no case id is in both" in result.output
    assert "myops2020" not in result.output and "Traceback" not in result.output


def test_non_integer_prediction_is_named_without_a_label_convention_hint(folder_pair):
    """Probabilities saved as a prediction: one line saying so, not "set --pred-labels" (no convention helps)."""
    pred, ref, label = folder_pair
    target = pred / f"{IDS[1]}.nii.gz"
    save_nifti(target, label.astype(np.float32) / 2)
    result = runner.invoke(app, ["seg", "score", "-p", str(pred), "-r", str(ref), "--quiet"])
    message = " ".join(result.output.split())
    assert result.exit_code == 1 and str(target) in message and "non-integer values" in message
    assert "--pred-labels" not in message and "Traceback" not in result.output


def test_printed_table_is_not_wrapped_when_piped(folder_pair, tmp_path):
    """Piped / redirected output (no terminal, 80 columns): the summary table rows print whole, as in summary.md."""
    pred, ref, _ = folder_pair
    result = runner.invoke(app, ["seg", "score", "-p", str(pred), "-r", str(ref), "-o", str(tmp_path / "o"), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = [line for line in (tmp_path / "o" / "summary.md").read_text().splitlines() if line.startswith("| ")]
    assert rows and max(len(r) for r in rows) > 80
    printed = result.stdout.splitlines()
    assert all(row in printed for row in rows)


def test_same_folder_for_predictions_and_references_is_refused(folder_pair, tmp_path):
    pred, _, _ = folder_pair
    result = runner.invoke(app, ["seg", "score", "-p", str(pred), "-r", str(pred / "." ), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "same folder" in result.output and not (tmp_path / "o").exists()


def test_case_folder_read_as_flat_references_gets_a_map_hint(folder_pair, tmp_path):
    """A case folder with non-standard names given as -r: read as a flat folder of labels, so no id
    matches; the error says how it was read and gives the --map that reads the case folder."""
    _, _, label = folder_pair
    case = tmp_path / "TCGA-XX-0001"
    save_nifti(case / "TCGA-XX-0001_fla_bet.nii.gz", label.astype(np.float32))
    save_nifti(case / "TCGA-XX-0001_seg_fusion.nii.gz", label)
    pred = tmp_path / "p"
    save_nifti(pred / "TCGA-XX-0001.nii.gz", label)
    result = runner.invoke(app, ["seg", "score", "-p", str(pred), "-r", str(case)])
    message = " ".join(result.output.split())
    assert result.exit_code == 1 and "read as a flat folder of label files" in message
    assert "--map 'seg=*seg*.nii.gz'" in message
    ok = runner.invoke(app, ["seg", "score", "-p", str(pred), "-r", str(case), "--map", "seg=*seg*.nii.gz",
                             "-o", str(tmp_path / "o"), "--quiet"])
    assert ok.exit_code == 0, ok.output
    # the image file is not needed by score: one line counting it, not a "matches no sequence" warning per file
    assert "matches no sequence" not in ok.output
    assert "1 NIfTI file under" in " ".join(ok.output.split()) and "TCGA-XX-0001_fla_bet.nii.gz" in ok.output
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["cases"] == 1


def test_et_threshold_override_is_stated_in_the_summary(folder_pair, tmp_path):
    pred, ref, _ = folder_pair
    result = score_folders(pred, ref, "passion", tmp_path / "o", et_min_voxels=20)
    for text in (result.markdown, result.summary["protocol"]["summary"]):
        assert "under the threshold (500 voxels by default; 20 in this run) removed" in text
    assert result.summary["protocol"]["et_min_voxels"] == 20
