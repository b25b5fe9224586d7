"""IU X-ray readers: R2Gen annotation.json, flat NLMCXR names, the real files in the shared data."""

import json

import pytest

from medmodal.data.cxr.iu import read_iu_annotation
from medmodal.data.cxr.records import CXRDataError
from tests.data.cxr.conftest import IU_REAL, REPORTS, REPORTS_REAL, requires_iu_real, write_png, write_r2gen

pytestmark = pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")


def test_r2gen_layout(r2gen_root):
    result = read_iu_annotation(r2gen_root / "annotation.json")
    assert len(result.studies) == 4 and result.excluded == {"view not frontal": 4} and not result.dropped
    first = result.studies[0]
    assert first.image_paths == [r2gen_root / "images" / "CXR100_IM-0000" / "0.png"]
    assert first.patient_id == first.study_id == "CXR100_IM-0000" and first.split == "train"
    assert first.sentences[0] == "the heart is normal in size" and first.findings == REPORTS[0]
    assert any("image 0 of each study is taken as the frontal view" in n for n in result.notes)
    both = read_iu_annotation(r2gen_root / "annotation.json", views="all")
    assert len(both.studies) == 8
    grouped = read_iu_annotation(r2gen_root / "annotation.json", views="all", rows="study")
    assert [len(s.image_paths) for s in grouped.studies] == [2] * 4
    assert any("no patient ids: patient_id is the study id" in n for n in result.notes)


def test_excluded_images_are_counted_for_kept_studies_only(r2gen_root):
    (r2gen_root / "images" / "CXR100_IM-0000" / "0.png").unlink()  # study skipped as bad input
    result = read_iu_annotation(r2gen_root / "annotation.json", skip_bad=True)
    assert len(result.skipped) == 1 and len(result.studies) == 3
    assert result.excluded == {"view not frontal": 3}  # not the lateral of the skipped study


def test_blank_test_key_is_tolerated_and_said(tmp_path):
    path = write_r2gen(tmp_path, blank_test_key=True)
    result = read_iu_annotation(path)
    assert [s.split for s in result.studies].count("test") == 1
    assert any("'    ' (4 spaces)" in n for n in result.notes)
    data = json.loads(path.read_text())
    for entry in data["    "]:
        del entry["split"]
    path.write_text(json.dumps(data))
    with pytest.raises(CXRDataError, match="blank key"):
        read_iu_annotation(path)
    data["    "] = []
    path.write_text(json.dumps(data))
    empty = read_iu_annotation(path)
    assert len(empty.studies) == 3 and not any("field ()" in n for n in empty.notes)
    assert any("blank key '    ' (4 spaces) is empty" in n for n in empty.notes)


def test_bad_entries_raise_or_are_skipped(tmp_path):
    reports = [REPORTS[0], "XXXX XXXX.", "", "Clear.", REPORTS[1]]
    path = write_r2gen(tmp_path, reports=reports, images_per_study=1)
    (tmp_path / "images" / "CXR104_IM-0004" / "0.png").unlink()
    with pytest.raises(CXRDataError, match="entry CXR101_IM-0001: report is only de-identification"):
        read_iu_annotation(path)
    result = read_iu_annotation(path, skip_bad=True)
    assert [s.study_id for s in result.studies] == ["CXR100_IM-0000"]
    problems = " | ".join(p for _, p in result.skipped)
    assert "CXR102_IM-0002: report is empty" in problems and "0.png not found" in problems
    assert result.dropped["report has fewer than 3 tokens"] == 1
    assert len(read_iu_annotation(path, check_images=False, skip_bad=True).studies) == 2


def test_non_utf8_and_broken_json(tmp_path):
    path = write_r2gen(tmp_path, images_per_study=1)
    raw = path.read_bytes().replace(b"Mild cardiomegaly", b"Mild cardiom\xe9galy")
    path.write_bytes(raw)
    with pytest.raises(CXRDataError, match="CXR101_IM-0001: not UTF-8"):
        read_iu_annotation(path)
    assert len(read_iu_annotation(path, skip_bad=True).studies) == 3
    path.write_text('{"train": [')
    with pytest.raises(CXRDataError, match="annotation.json: not valid JSON"):
        read_iu_annotation(path)


def test_flat_names_with_projections(tmp_path):
    entries = {"train": [{"id": "12", "report": REPORTS[0], "image_path": ["CXR12_IM-0001-1001.png",
                                                                            "CXR12_IM-0001-2001.png"]}]}
    (tmp_path / "annotation.json").write_text(json.dumps(entries))
    for name in entries["train"][0]["image_path"]:
        write_png(tmp_path / "images" / name)
    unknown = read_iu_annotation(tmp_path / "annotation.json")
    assert len(unknown.studies) == 2 and any("view positions unknown" in n for n in unknown.notes)
    (tmp_path / "indiana_projections.csv").write_text(
        "uid,filename,projection\n12,12_IM-0001-1001.dcm.png,Lateral\n12,12_IM-0001-2001.dcm.png,Frontal\n")
    frontal = read_iu_annotation(tmp_path / "annotation.json")
    assert [s.image_path.name for s in frontal.studies] == ["CXR12_IM-0001-2001.png"]
    assert frontal.studies[0].view_positions == ["Frontal"] and frontal.excluded == {"view not frontal": 1}


@requires_iu_real
def test_real_annotation_files_load():
    r2gen = read_iu_annotation(IU_REAL / "annotation_r2gen_layout.json", check_images=False)
    assert r2gen.summary()["splits"] == {"test": 590, "train": 2069, "val": 296}
    assert any("'    '" in n for n in r2gen.notes)
    flat = read_iu_annotation(IU_REAL / "annotation_flat_names.json", check_images=False,
                              projections=REPORTS_REAL / "indiana_projections.csv", views="all")
    assert flat.summary()["studies"] == 3826 and flat.summary()["rows"] == 7430
    views = [v for s in flat.studies for v in s.view_positions]
    assert (views.count("Frontal"), views.count("Lateral"), views.count("")) == (3793, 3631, 6)
    frontal = read_iu_annotation(IU_REAL / "annotation_flat_names.json", check_images=False,
                                 projections=REPORTS_REAL / "indiana_projections.csv")
    assert frontal.summary()["rows"] == 3793 and frontal.summary()["studies"] == 3665
    # kept studies only: 3631 laterals and 6 unknown views in all, 170 and 2 of them in the 161 dropped studies
    assert frontal.excluded == {"view not frontal": 3461, "view unknown": 4}
    assert frontal.dropped == {"every image excluded": 161}  # 3826 studies - 3665 kept


@requires_iu_real
def test_real_pairs_load_end_to_end(tmp_path):
    from medmodal.data.cxr.dataset import ImageReportCollator, ImageReportDataset

    result = read_iu_annotation(IU_REAL / "pairs_annotation.json", projections=REPORTS_REAL / "indiana_projections.csv")
    assert sorted(s.image_path.name for s in result.studies) == [
        "CXR1900_IM-0584-1001.png", "CXR3_IM-1384-1001.png", "CXR7_IM-2263-1001.png"]
    assert {s.split for s in result.studies} == {"train", "val", "test"}  # from 'split_in_MRG_RL'
    assert any("'split_in_MRG_RL'" in n for n in result.notes)
    every = read_iu_annotation(IU_REAL / "pairs_annotation.json", views="all",
                               projections=REPORTS_REAL / "indiana_projections.csv")
    assert len(every.studies) == 5
    ds = ImageReportDataset(every.studies, tmp_path / "cache", train=False)
    batch = ImageReportCollator()([ds[i] for i in range(len(ds))])
    assert batch["image"].shape == (5, 3, 224, 224) and batch["image"].std() > 0.2
    assert batch["num_sentences"].tolist() == [len(s.sentences) for s in every.studies]


def write_openi(root, rows, projections):
    import csv

    root.mkdir(parents=True, exist_ok=True)
    with open(root / "indiana_reports.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"])
        for row in rows:
            writer.writerow(row)
    with open(root / "indiana_projections.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["uid", "filename", "projection"])
        for uid, name, view in projections:
            writer.writerow([uid, name, view])
            write_png(root / "images" / "images_normalized" / name)
    return root


def test_openi_csv_pair(tmp_path):
    from medmodal.data.cxr.iu import read_openi_csv

    rows = [("1", "normal", "", "", "", "", "The heart is normal. The lungs are clear.", "Normal chest."),
            ("2", "Cardiomegaly/mild;Pleural Effusion/left", "", "", "", "", "Mild cardiomegaly.",
             "Left effusion seen."),
            ("3", "No Indexing", "", "", "", "", "", ""),
            ("4", "normal", "", "", "", "", "XXXX XXXX.", "XXXX.")]
    projections = [("1", "1_IM-0001-4001.dcm.png", "Frontal"), ("1", "1_IM-0001-3001.dcm.png", "Lateral"),
                   ("2", "2_IM-0652-1001.dcm.png", "Frontal"), ("4", "4_IM-2050-1001.dcm.png", "Frontal")]
    root = write_openi(tmp_path / "openi", rows, projections)
    with pytest.raises(CXRDataError, match=r"line 5 \(uid 4\): report is only de-identification"):
        read_openi_csv(root)
    result = read_openi_csv(root / "indiana_reports.csv", skip_bad=True)
    assert [s.study_id for s in result.studies] == ["1", "2"] and len(result.skipped) == 1
    assert result.dropped == {"no FINDINGS or IMPRESSION": 1} and result.excluded == {"view not frontal": 1}
    second = result.studies[1]
    assert second.impression == "Left effusion seen." and second.sentences[0] == "left effusion seen"
    assert second.labels["Cardiomegaly"] == 1 and second.labels["Pleural Effusion"] == 1
    assert second.labels["Edema"] == 0 and second.split is None
    (root / "images" / "images_normalized" / "2_IM-0652-1001.dcm.png").unlink()
    with pytest.raises(CXRDataError, match=r"uid 2\): image .*2_IM-0652-1001.dcm.png not found"):
        read_openi_csv(root)
    assert [s.study_id for s in read_openi_csv(root, check_images=False, skip_bad=True).studies] == ["1", "2"]


@requires_iu_real
def test_real_openi_pair_loads():
    from medmodal.data.cxr.iu import read_openi_csv

    result = read_openi_csv(REPORTS_REAL / "indiana_reports.csv", check_images=False)
    assert result.summary()["studies"] == 3666 and result.summary()["rows"] == 3794
    assert result.excluded == {"view not frontal": 3462}  # of kept studies (3632 in all)
    assert result.dropped == {"no FINDINGS or IMPRESSION": 25, "every image excluded": 160}  # 3851 - 3666
    positives = sum(s.labels["Cardiomegaly"] == 1 for s in result.studies)
    assert 300 < positives < 400


def test_r2gen_views_from_projections_found_beside(r2gen_root):
    """Issue 25 item 6: the R2Gen layout reads the views from indiana_projections.csv (<k>.png = the k-th
    file of the study in name order); unmatched studies keep image 0 and are counted."""
    (r2gen_root / "indiana_projections.csv").write_text(
        "uid,filename,projection\n"
        "100,100_IM-0000-1001.dcm.png,Frontal\n100,100_IM-0000-2001.dcm.png,Lateral\n"
        "101,101_IM-0001-2001.dcm.png,Frontal\n101,101_IM-0001-1001.dcm.png,Lateral\n"  # lateral first by name
        "102,102_IM-0002-1001.dcm.png,Frontal\n102,102_IM-0002-2001.dcm.png,Lateral\n"
        "102,102_IM-0002-3001.dcm.png,Lateral\n")  # 3 files for 2 images: cannot be matched; 103 absent
    result = read_iu_annotation(r2gen_root / "annotation.json")
    picked = {s.study_id: s.image_paths[0].name for s in result.studies}
    assert picked == {"CXR100_IM-0000": "0.png", "CXR101_IM-0001": "1.png", "CXR102_IM-0002": "0.png",
                      "CXR103_IM-0003": "0.png"}
    assert all(s.view_positions == ["Frontal"] for s in result.studies)
    assert result.excluded == {"view not frontal": 4}
    assert any("2 of 4 studies checked, 1 of them list a lateral image first" in n for n in result.notes)
    assert any("the views of 2 of 4 R2Gen studies cannot be checked" in n for n in result.notes)
    both = read_iu_annotation(r2gen_root / "annotation.json", views="all")
    views = {(s.study_id, s.image_paths[0].name): s.view_positions[0] for s in both.studies}
    assert views[("CXR101_IM-0001", "0.png")] == "Lateral" and views[("CXR101_IM-0001", "1.png")] == "Frontal"


def test_r2gen_without_projections_counts_unchecked_studies(r2gen_root):
    result = read_iu_annotation(r2gen_root / "annotation.json")
    assert any("no indiana_projections.csv was given or found" in n and "the views of 4 of 4 studies cannot be "
               "checked" in n for n in result.notes)


def _real_r2gen_expected():
    """Independently of the reader: R2Gen id -> views of its files in name order (None: count differs)."""
    import csv
    import re

    files: dict[str, list[tuple[str, str]]] = {}
    for row in csv.DictReader((REPORTS_REAL / "indiana_projections.csv").open()):
        match = re.fullmatch(r"(.+)-\d+\.dcm\.png", row["filename"])
        files.setdefault("CXR" + match.group(1), []).append((row["filename"], row["projection"]))
    data = json.loads((IU_REAL / "annotation_r2gen_layout.json").read_text())
    out = {}
    for entry in (e for entries in data.values() for e in entries):
        views = [v for _, v in sorted(files.get(entry["id"], []))]
        out[entry["id"]] = views if len(views) == len(entry["image_path"]) else None
    return out


@requires_iu_real
@pytest.mark.skipif(not (REPORTS_REAL / "indiana_projections.csv").is_file(), reason="real projections absent")
def test_real_r2gen_layout_picks_the_frontal_image():
    expected = _real_r2gen_expected()
    lateral_first = {i for i, v in expected.items() if v and v[0] != "Frontal"}
    assert len(expected) == 2955 and sum(v is None for v in expected.values()) == 155
    assert len(lateral_first) == 296  # 286 lateral then frontal, 10 two laterals
    result = read_iu_annotation(IU_REAL / "annotation_r2gen_layout.json", check_images=False,
                                projections=REPORTS_REAL / "indiana_projections.csv")
    kept = {}
    for s in result.studies:
        kept.setdefault(s.study_id, []).append(s.image_paths[0].name)
    for study in lateral_first:
        views = expected[study]
        want = [f"{k}.png" for k, v in enumerate(views) if v == "Frontal"]
        assert kept.get(study, []) == want, study  # the frontal image, or the study dropped (two laterals)
    assert sum(1 for s in lateral_first if s not in kept) == 10
    assert result.dropped == {"every image excluded": 10}
    assert all(kept[s] == ["0.png"] for s, v in expected.items() if v is None)
    assert any("2800 of 2955 studies checked, 296 of them list a lateral image first" in n for n in result.notes)
    assert any("the views of 155 of 2955 R2Gen studies cannot be checked" in n for n in result.notes)
    plain = read_iu_annotation(IU_REAL / "annotation_r2gen_layout.json", check_images=False)
    assert any("the views of 2955 of 2955 studies cannot be checked" in n for n in plain.notes)
