"""``synth-cxr``: the IU R2Gen layout with real reports, findings that are really drawn, determinism."""

import csv
import hashlib
import json

import numpy as np
import pytest

from scipy import ndimage

from medmodal.data.cxr.findings import EXTRA_FINDINGS, LABEL_NAMES, Finding
from medmodal.data.cxr.iu import read_iu_annotation
from medmodal.data.cxr.synthetic import TEMPLATE_REPORTS, load_report_pool, render_radiograph, synth_cxr
from tests.data.cxr.conftest import REPORTS_REAL, requires_reports_real

pytestmark = pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")

ROWS = [  # uid, MeSH, findings, impression (Open-i columns)
    ("1", "normal", "The heart is normal in size. No pleural effusion or pneumothorax.", "Normal chest."),
    ("2", "Pleural Effusion/left/moderate", "Moderate left pleural effusion. No pneumothorax.", "Left effusion."),
    ("3", "Pneumothorax/apex/right/moderate", "Moderate right apical pneumothorax.", "Pneumothorax."),
    ("4", "No Indexing", "Small bilateral pleural effusions. The lungs are otherwise clear.", "Effusions."),
    ("5", "No Indexing", "No pneumothorax. No focal consolidation or effusion.", "No acute disease."),
    ("6", "Opacity/lung/upper lobe/right;Nodule/lung/lower lobe/left", "Right upper lobe opacity. Left nodule.",
     "Opacity and nodule."),
]


def write_reports(path, rows=ROWS):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"])
        for uid, mesh, findings, impression in rows:
            writer.writerow([uid, mesh, "", "", "", "", findings, impression])
    return path


def read_png(path):
    from PIL import Image

    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = synth_cxr(out, num_studies=18, seed=5, size=128, reports=write_reports(out.parent / "reports.csv"))
    return out, summary


def test_layout_is_read_by_the_iu_reader(synth):
    out, summary = synth
    result = read_iu_annotation(out / "annotation.json")
    assert len(result.studies) == 18 and summary["splits"] == {"train": 12, "val": 2, "test": 4}
    study = result.studies[0]
    assert study.labels is not None and list(study.labels) == list(LABEL_NAMES)
    assert read_png(study.image_path).shape == (128, 128)
    report_of = {r[0]: f"{r[2]} {r[3]}" for r in ROWS}
    for s in result.studies:  # each study carries the real report it was drawn from
        assert s.findings == report_of[s.study_id[3:].split("_")[0]]


def test_masks_exactly_when_the_report_says_so(synth):
    out, _ = synth
    meta = json.loads((out / "synth_meta.json").read_text())["studies"]
    labels = {r["image_path"]: r for r in csv.DictReader(open(out / "labels.csv"))}
    for study_id, info in meta.items():
        uid = info["source_uid"]
        effusion = read_png(out / "masks" / study_id / "0_pleural_effusion.png")
        pneumothorax = read_png(out / "masks" / study_id / "0_pneumothorax.png")
        assert (effusion.max() > 0) == (uid in ("2", "4")), (study_id, uid)  # "no ... effusion" draws none
        assert (pneumothorax.max() > 0) == (uid == "3"), (study_id, uid)
        row = labels[f"{study_id}/0.png"]
        assert row["Pleural Effusion"] == str(int(uid in ("2", "4")))
        assert row["Lung Opacity"] == row["Nodule"] == str(int(uid == "6"))
    boxes = list(csv.DictReader(open(out / "boxes.csv")))
    assert boxes and {b["label"] for b in boxes} == {"Lung Opacity", "Nodule"}
    for b in boxes:
        x0, y0, x1, y1 = (int(b[k]) for k in ("x0", "y0", "x1", "y1"))
        assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128
        assert meta[b["image_path"].split("/")[0]]["source_uid"] == "6"


def test_effusion_side_and_opacity_zone_are_where_the_report_says():
    left = render_radiograph([Finding("Pleural Effusion", "left", severity="moderate")], 128, np.random.default_rng(0))
    ys, xs = np.nonzero(left.masks["Pleural Effusion"])
    assert xs.min() > 64 and ys.mean() > 0.55 * 128  # patient's left = image right, at the base
    upper = render_radiograph([Finding("Lung Opacity", "right", "upper")], 128, np.random.default_rng(1))
    (_, x0, y0, x1, y1), = upper.boxes
    assert x1 <= 66 and y1 < 0.55 * 128


def test_cardiomegaly_widens_the_heart_shadow():
    def heart_width(image, size=128):
        profile = image[int(0.55 * size):int(0.68 * size)].astype(float).mean(0)
        lung = np.percentile(profile[int(0.1 * size):int(0.9 * size)], 5)
        bright = profile > (lung + profile[int(0.45 * size):int(0.6 * size)].max()) / 2
        left = right = size // 2 + 4
        while left > 0 and bright[left - 1]:
            left -= 1
        while right < size - 1 and bright[right + 1]:
            right += 1
        return (right - left + 1) / size

    normal = [heart_width(render_radiograph([], 128, np.random.default_rng([1, i])).image) for i in range(6)]
    large = [heart_width(render_radiograph([Finding("Cardiomegaly")], 128, np.random.default_rng([2, i])).image)
             for i in range(6)]
    assert min(large) > max(normal)


#: Where each extra finding (the patient's right, upper zone, lymph nodes) must change the image:
#: normalised (x0, x1, y0, y1); the patient's right is the image's left.
EXTRA_PLACES = {
    "Hyperinflation": (0.1, 0.9, 0.65, 0.92), "Low Lung Volumes": (0.1, 0.9, 0.6, 0.88),
    "Aortic Calcification": (0.5, 0.7, 0.18, 0.36), "Tortuous Aorta": (0.5, 0.72, 0.18, 0.7),
    "Degenerative Spine": (0.35, 0.65, 0.25, 0.78), "Scoliosis": (0.35, 0.65, 0.15, 0.85),
    "Vertebral Deformity": (0.4, 0.6, 0.25, 0.78), "Scarring": (0.05, 0.5, 0.05, 0.5),
    "Elevated Hemidiaphragm": (0.05, 0.5, 0.55, 0.9), "Hiatal Hernia": (0.4, 0.7, 0.45, 0.8),
    "Rib Fracture": (0.02, 0.45, 0.1, 0.8), "Widened Mediastinum": (0.3, 0.7, 0.1, 0.6),
    "Increased Markings": (0.1, 0.9, 0.15, 0.8), "Calcification": (0.25, 0.5, 0.15, 0.55),
}


@pytest.mark.parametrize("name", EXTRA_FINDINGS)
def test_each_extra_finding_changes_the_image_where_it_is(name):
    size = 128
    x0, x1, y0, y1 = (int(v * size) for v in EXTRA_PLACES[name])
    place = np.zeros((size, size), bool)
    place[y0:y1, x0:x1] = True
    finding = Finding(name, "right", "upper" if name == "Scarring" else "", kind="nodes" if name == "Calcification"
                      else "")
    for seed in range(3):
        normal = render_radiograph([], size, np.random.default_rng([7, seed])).image.astype(float)
        drawn = render_radiograph([finding], size, np.random.default_rng([7, seed]))
        assert [f.name for f in drawn.findings] == [name]
        change = ndimage.gaussian_filter(np.abs(drawn.image.astype(float) - normal), 1.0)
        peak = change[place].max() / change[~place].max()
        mean = change[place].mean() / change[~place].mean()
        assert max(peak, mean) > 1.3, (name, seed, peak, mean)


def test_deterministic_per_seed_whatever_the_workers(tmp_path):
    reports = write_reports(tmp_path / "r.csv")

    def digest(folder):
        return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    synth_cxr(tmp_path / "a", 6, seed=1, size=96, reports=reports)
    synth_cxr(tmp_path / "b", 6, seed=1, size=96, reports=reports, workers=2)
    synth_cxr(tmp_path / "c", 6, seed=2, size=96, reports=reports)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_template_fallback(tmp_path, monkeypatch):
    import medmodal.data.cxr.synthetic as synthetic

    monkeypatch.setattr(synthetic, "default_reports_path", lambda: None)  # no indiana_reports.csv anywhere
    pool, source = load_report_pool()
    assert source == "templates" and len(pool) == len(TEMPLATE_REPORTS)
    summary = synth_cxr(tmp_path / "t", 4, size=96)
    assert summary["source"] == "templates"


def test_reports_env_variable_naming_no_file_is_an_error(tmp_path, monkeypatch):
    """An explicit $MEDMODAL_IU_REPORTS is never silently replaced by the templates."""
    monkeypatch.setenv("MEDMODAL_IU_REPORTS", str(tmp_path / "absent.csv"))
    with pytest.raises(FileNotFoundError, match="MEDMODAL_IU_REPORTS=.*absent.csv"):
        load_report_pool()


@requires_reports_real
def test_real_report_pool():
    pool, source = load_report_pool(REPORTS_REAL / "indiana_reports.csv")
    assert len(pool) == 3851 - 25  # studies with neither findings nor impression are left out
