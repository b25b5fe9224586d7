"""CheXpert: the twin through the real reader, label policies, splits, and hand-made irregular rows."""

import csv
import math

import pytest

from medmodal.data.cxr.downstream import ClassificationDataset, check_no_leakage, read_downstream
from medmodal.data.cxr.downstream.chexpert import (CHEXPERT_FINDINGS, COLUMNS, COMPETITION, MIXED_UNCERTAIN,
                                                   five_x_200, read_chexpert)
from medmodal.data.cxr.records import CXRDataError
from tests.data.cxr.downstream.conftest import grey_picture

pytestmark = pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")


def table(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def expected_label(raw: str, name: str, uncertain: str, blank: str) -> float:
    if raw == "":
        return 0.0 if blank == "zeros" else math.nan
    value = float(raw)
    if value == -1:
        return {"mixed": MIXED_UNCERTAIN[name], "ones": 1.0, "zeros": 0.0, "ignore": math.nan}[uncertain]
    return value


@pytest.mark.parametrize("uncertain, blank", [("mixed", "zeros"), ("ones", "ignore"), ("zeros", "zeros"),
                                              ("ignore", "ignore")])
def test_twin_labels_follow_the_policy(twins, uncertain, blank):
    root = twins["chexpert"]
    result = read_chexpert(root.parent, uncertain=uncertain, blank=blank)  # the parent folder is found too
    rows = {r["Path"]: r for r in table(root / "train.csv") + table(root / "valid.csv")}
    assert result.samples
    for s in result.samples:
        want = [expected_label(rows[s.sample_id][n], n, uncertain, blank) for n in COMPETITION]
        assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(s.labels, want)), s.sample_id
    uncertain_seen = sum(-1 in s.extra["raw"] for s in result.samples)
    assert uncertain_seen > 0  # the twin exercises the policy


def test_twin_splits_views_and_images(twins):
    root = twins["chexpert"]
    train_rows, valid_rows = table(root / "train.csv"), table(root / "valid.csv")
    result = read_downstream("chexpert", root, val_size=0.2)
    excluded = set(result.extra["chexpert_5x200"])
    frontal = [r for r in train_rows if r["Frontal/Lateral"] == "Frontal"]
    assert result.dropped["lateral view (frontal only)"] == len(train_rows) - len(frontal) > 0
    assert len(result.select("train")) + len(result.select("val")) == len(frontal) - len(excluded)
    assert [s.sample_id for s in result.select("test")] == [r["Path"] for r in valid_rows]
    check_no_leakage(result.samples)
    assert {s.patient_id for s in result.select("test")}.isdisjoint(s.patient_id for s in result.select("train"))
    assert all(s.image_path.is_file() and s.patient_id.startswith("patient") for s in result.samples)
    lateral = read_chexpert(root, views="all", exclude_5x200=False, val_size=0.2)
    assert len(lateral.samples) == len(train_rows) + len(valid_rows)
    data = ClassificationDataset(result.select("train")[:3], result.dataset)
    item = data[0]
    assert data.augment == "moco2" and item["image"].shape == (3, 224, 224) and item["target"].shape == (5,)
    all14 = read_chexpert(root, findings="all", val_size=0.2)
    assert len(all14.dataset.label_names) == 14 and set(all14.dataset.label_names) == set(CHEXPERT_FINDINGS)


def write_chexpert(root, rows, valid=None, images=True):
    """A tiny CheXpert-v1.0-small folder; rows: (path, frontal_or_lateral, {finding: value})."""
    folder = root / "CheXpert-v1.0-small"
    folder.mkdir(parents=True, exist_ok=True)
    valid = valid if valid is not None else [("CheXpert-v1.0-small/valid/patient00900/study1/view1_frontal.jpg",
                                               "Frontal", {n: "0.0" for n in CHEXPERT_FINDINGS})]
    for name, entries in (("train.csv", rows), ("valid.csv", valid)):
        with open(folder / name, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            for path, view, values in entries:
                labels = [values.get(n, "") for n in CHEXPERT_FINDINGS]
                writer.writerow([path, "Male", 50, view, "PA" if view == "Frontal" else "", *labels])
                if images:
                    grey_picture(folder / path.split("/", 1)[1], 40, 32)
    return folder


def row(patient, study=1, view="Frontal", **values):
    name = "view1_frontal.jpg" if view == "Frontal" else "view2_lateral.jpg"
    return (f"CheXpert-v1.0-small/train/patient{patient:05d}/study{study}/{name}", view,
            {k.replace("_", " "): v for k, v in values.items()})


def test_five_x_200_is_the_reference_rule(tmp_path):
    rows = [row(1, Edema="1.0"),                              # only Edema, others blank: a candidate
            row(2, Edema="1.0", Atelectasis="-1.0"),          # an uncertain other finding: not
            row(3, Edema="1.0", Pneumothorax="1.0"),          # another positive finding: not
            row(4, view="Lateral", Edema="1.0"),              # lateral: not
            row(5, Cardiomegaly="1.0", No_Finding="0.0", Fracture="0.0")]  # No Finding is not compared
    folder = write_chexpert(tmp_path, rows)
    assert five_x_200(folder / "train.csv") == [rows[4][0], rows[0][0]]  # grouped by competition finding
    result = read_chexpert(folder, val_size=0.5)
    assert result.dropped["in CheXpert-5x200 (kept for zero-shot)"] == 2
    assert {s.sample_id for s in result.samples} == {rows[1][0], rows[2][0], valid_path(folder)}


def valid_path(folder):
    return table(folder / "valid.csv")[0]["Path"]


def test_bad_rows_name_the_file_and_line(tmp_path):
    rows = [row(1, Edema="1.0"), row(2, Edema="2.0"), row(3, Atelectasis="1.0")]
    folder = write_chexpert(tmp_path, rows)
    with pytest.raises(CXRDataError, match=r"train\.csv:3: Edema: label value '2\.0' is not 1, 0, -1 or blank"):
        read_chexpert(folder, exclude_5x200=False)
    result = read_chexpert(folder, exclude_5x200=False, skip_bad=True, val_size=0.5)
    assert len(result.skipped) == 1 and len(result.samples) == 3
    (folder / rows[2][0].split("/", 1)[1]).unlink()
    with pytest.raises(CXRDataError, match=r"train\.csv:4: image .*patient00003/study1/view1_frontal\.jpg not found"):
        read_chexpert(folder, exclude_5x200=False, skip_bad=False, findings=("Atelectasis",))
    (folder / "valid.csv").unlink()
    with pytest.raises(CXRDataError, match=r"valid\.csv: not found"):
        read_chexpert(folder)


def test_path_without_patient_and_unknown_policy(tmp_path):
    folder = write_chexpert(tmp_path, [("CheXpert-v1.0-small/train/somewhere/view1_frontal.jpg", "Frontal", {})])
    with pytest.raises(CXRDataError, match=r"train\.csv:2: Path .* has no patientNNNNN folder"):
        read_chexpert(folder)
    with pytest.raises(ValueError, match="uncertain policy must be one of mixed, ones, zeros, ignore"):
        read_chexpert(folder, uncertain="u-ones")
    with pytest.raises(ValueError, match="supports classification, not 'detection'"):
        read_downstream("chexpert", folder, task="detection")
