"""COVIDx: the REAL label files and images, their irregular rows, the twin, and hand-made rows."""

import pytest

from medmodal.data.cxr.downstream import ClassificationDataset, check_no_leakage, read_downstream
from medmodal.data.cxr.downstream.covidx import read_covidx
from medmodal.data.cxr.records import CXRDataError
from tests.data.cxr.downstream.conftest import COVIDX_REAL, grey_picture, requires_covidx_real

pytestmark = pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")
LABELS = COVIDX_REAL / "labels"


def class_counts(samples, names):
    return {n: sum(s.class_index == k for s in samples) for k, n in enumerate(names)}


@requires_covidx_real
def test_real_label_files():
    result = read_covidx(COVIDX_REAL, train_file=LABELS / "train_COVIDx9A.txt", test_file=LABELS / "test_COVIDx9A.txt",
                         check_images=False)
    official_train = result.select("train") + result.select("val")
    assert len(official_train) == 30130 and len({s.patient_id for s in official_train}) == 16424
    assert class_counts(official_train, result.dataset.label_names) == {"normal": 8085, "pneumonia": 5555,
                                                                        "COVID-19": 16490}
    assert class_counts(result.select("test"), result.dataset.label_names) == {"normal": 100, "pneumonia": 100,
                                                                               "COVID-19": 200}
    assert any("199 row(s) have source 'rnsa', read as 'rsna'" in n for n in result.notes)
    assert sum(s.extra["source"] == "rsna" for s in official_train) == 13389 + 199
    val = len(result.select("val")) / len(official_train)
    assert 0.18 < val < 0.22  # 20 % of the patients
    check_no_leakage(result.samples)
    subset = COVIDX_REAL / "train_COVIDx9A_subset.txt"
    five = read_covidx(COVIDX_REAL, train_file=subset, test_file=LABELS / "test_COVIDx5.txt", check_images=False)
    test = five.select("test")
    assert len(test) == 300 and sum(s.extra["source"] == "" for s in test) == 197
    assert any("197 row(s) have 3 columns (no source)" in n for n in five.notes)
    assert class_counts(test, five.dataset.label_names) == {"normal": 100, "pneumonia": 100, "COVID-19": 100}
    with pytest.raises(CXRDataError, match=r"test_COVIDx9B\.txt: labels negative/positive but train_COVIDx9A_subset"):
        read_covidx(COVIDX_REAL, train_file=subset, test_file=LABELS / "test_COVIDx9B.txt", check_images=False)


@requires_covidx_real
def test_real_images_load():
    result = read_downstream("covidx", COVIDX_REAL)  # the two subset files beside train/ and test/
    assert (len(result.select("train")) + len(result.select("val")), len(result.select("test"))) == (16, 11)
    assert {s.extra["label"] for s in result.samples} == {"COVID-19"}
    data = ClassificationDataset(result.samples, result.dataset, train=False)
    items = [data[i] for i in range(len(data))]
    assert all(it["image"].shape == (3, 224, 224) and it["target"].item() == 2 for it in items)
    assert data.image_cache.decodes == 27


@requires_covidx_real
def test_real_rows_with_five_fields_read_from_the_right(tmp_path):
    """The real fig1 rows written with five fields as COVID-Net users met them (the id twice, the file
    name twice, an id with a space): read as the four-field rows, with the id so written; one note."""
    subset = (COVIDX_REAL / "train_COVIDx9A_subset.txt").read_text().splitlines()
    first, second, third = (line.split() for line in subset[:3])
    five = [" ".join([first[0]] + first), " ".join(second[:2] + second[1:]), " ".join(["COVID", "00012"] + third[1:])]
    assert [len(line.split()) for line in five] == [5, 5, 5]
    (tmp_path / "train.txt").write_text("\n".join(five + subset[3:]) + "\n")
    test = COVIDX_REAL / "test_COVIDx5_subset.txt"
    got = read_covidx(tmp_path, train_file=tmp_path / "train.txt", test_file=test, image_root=COVIDX_REAL)
    want = read_covidx(tmp_path, train_file=COVIDX_REAL / "train_COVIDx9A_subset.txt", test_file=test,
                       image_root=COVIDX_REAL)

    def rows(result):
        return [(s.sample_id, s.patient_id, s.image_path, s.class_index, s.extra) for s in result.samples]

    expected = [(sid, "COVID 00012" if sid == "train/COVID-00012.jpg" else pid, *rest) for sid, pid, *rest in rows(want)]
    assert rows(got) == expected and len(expected) == 27
    assert [s.patient_id for s in got.samples[:3]] == ["COVID-00004", "COVID-00011", "COVID 00012"]
    assert all(s.image_path.is_file() for s in got.samples)
    assert [n for n in got.notes if "more than 4 fields" in n] == [
        f"{tmp_path / 'train.txt'}: 3 row(s) have more than 4 fields, read from the right (filename label source = "
        f"the last three; the fields before them = the patient id, a repeated one dropped)"]


def test_twin(twins):
    result = read_downstream("covidx", twins["covidx"])
    check_no_leakage(result.samples)
    lines = (twins["covidx"] / "train_COVIDx9A.txt").read_text().splitlines()
    assert len(result.select("train")) + len(result.select("val")) == len(lines)
    assert set(class_counts(result.samples, result.dataset.label_names).values()) != {0}
    assert all(s.image_path.is_file() for s in result.samples)
    assert sum(len(line.split()) == 3 for line in (twins["covidx"] / "test_COVIDx9A.txt").read_text().splitlines()) \
        == sum(s.extra["source"] == "" for s in result.select("test")) > 0
    data = ClassificationDataset(result.select("test")[:2], result.dataset, train=False)
    assert data[0]["target"].dtype.is_floating_point is False and data.augment == "crop"


def write_covidx(root, train_lines, test_lines=("t1 t1.png normal rsna",)):
    root.mkdir(parents=True, exist_ok=True)
    (root / "train_COVIDx9A.txt").write_text("\n".join(train_lines) + "\n")
    (root / "test_COVIDx9A.txt").write_text("\n".join(test_lines) + "\n")
    for split, lines in (("train", train_lines), ("test", test_lines)):
        for line in lines:
            if len(line.split()) > 1:
                grey_picture(root / split / line.split()[1], 30, 20)
    return root


def test_hand_made_irregular_rows(tmp_path):
    root = write_covidx(tmp_path / "covidx", ["p1 a.png normal rnsa", "p2 b.png COVID19 cohen", "p3 c.png pneumonia",
                                              "p4 d.jpg Covid-19 sirm", "p5 e.png normal rsna"])
    result = read_covidx(root, val_fraction=0.2)
    by_file = {s.sample_id: s for s in result.samples}
    assert by_file["train/a.png"].extra["source"] == "rsna" and by_file["train/c.png"].extra["source"] == ""
    assert by_file["train/b.png"].class_index == 2 and by_file["train/d.jpg"].class_index == 2
    notes = " | ".join(result.notes)
    assert "1 row(s) have source 'rnsa'" in notes and "1 row(s) have 3 columns" in notes
    assert "label(s) spelt COVID19 -> COVID-19" in notes and "Covid-19 -> COVID-19" in notes


@pytest.mark.parametrize("line, message", [
    ("p9 z.png normal rsna extra", r":2: 5 fields, expected 'patient_id filename label source'"),
    ("p9 x.png z.png normal rsna", r":2: 5 fields, expected"),          # two file names: which is the image?
    ("p9 z.png normal COVID-19 rsna", r":2: 5 fields, expected"),       # two labels
    ("p9 z.png", r":2: 2 fields"),
    ("p9 z.png viral rsna", r":2: unknown label 'viral'"),
    ("p9 a.png normal rsna", r":2: a\.png is already listed on line 1"),
    ("p9 missing.png normal rsna", r":2: image .*train/missing\.png not found"),
])
def test_hand_made_bad_rows(tmp_path, line, message):
    root = write_covidx(tmp_path / "covidx", ["p1 a.png normal rsna"])
    (root / "train_COVIDx9A.txt").write_text("p1 a.png normal rsna\n" + line + "\n")
    with pytest.raises(CXRDataError, match=r"train_COVIDx9A\.txt" + message):
        read_covidx(root)
    assert len(read_covidx(root, skip_bad=True).skipped) == 1


def test_finding_the_label_files(tmp_path):
    root = write_covidx(tmp_path / "covidx", ["p1 a.png normal rsna"])
    (root / "train_COVIDx8A.txt").write_text("p1 a.png normal rsna\n")
    with pytest.raises(CXRDataError, match=r"several COVIDx train files \(train_COVIDx8A\.txt, train_COVIDx9A\.txt\); "
                                           r"give --train-file"):
        read_covidx(root)
    assert len(read_covidx(root, train_file=root / "train_COVIDx8A.txt").samples) == 2
    with pytest.raises(CXRDataError, match=r"covidx/train: no COVIDx train\*\.txt label file"):
        read_covidx(tmp_path / "covidx" / "train")


def test_the_label_files_read_are_named_and_the_other_one_is_of_the_same_version(tmp_path):
    """The real layout: a subset pair at the top (train 9A, test 5) and COVID-Net's labels/ folder."""
    root = write_covidx(tmp_path / "covidx", ["p1 a.png normal rsna"])
    (root / "train_COVIDx9A.txt").rename(root / "train_COVIDx9A_subset.txt")
    (root / "test_COVIDx9A.txt").rename(root / "test_COVIDx5_subset.txt")
    labels = root / "labels"
    labels.mkdir()
    for name in ("train_COVIDx9A.txt", "test_COVIDx5.txt", "test_COVIDx9A.txt", "test_COVIDx9B.txt"):
        (labels / name).write_text("q1 a.png normal rsna\n" if name.startswith("train") else "q2 t1.png normal rsna\n")
    result = read_covidx(root)
    assert any(n.startswith(f"COVIDx label files: train {root / 'train_COVIDx9A_subset.txt'}, test "
                            f"{root / 'test_COVIDx5_subset.txt'} (of different versions); not read: ") and
               str(labels / "test_COVIDx9A.txt") in n for n in result.notes), result.notes
    given = read_covidx(root, train_file=labels / "train_COVIDx9A.txt")  # not the top-level test_COVIDx5_subset
    assert any(n.startswith(f"COVIDx label files: train {labels / 'train_COVIDx9A.txt'}, test "
                            f"{labels / 'test_COVIDx9A.txt'};") for n in given.notes), given.notes
    assert {s.source.split(":")[0] for s in given.samples if s.split == "test"} == {str(labels / "test_COVIDx9A.txt")}
    (labels / "test_COVIDx9A.txt").unlink()
    with pytest.raises(CXRDataError, match=r"labels: several COVIDx test files \(test_COVIDx5\.txt, "
                                           r"test_COVIDx9B\.txt\) and none of the version of train_COVIDx9A\.txt; "
                                           r"give --test-file"):
        read_covidx(root, train_file=labels / "train_COVIDx9A.txt")
    both = read_covidx(root, train_file=labels / "train_COVIDx9A.txt", test_file=labels / "test_COVIDx5.txt")
    assert f"COVIDx label files: train {labels / 'train_COVIDx9A.txt'}, test {labels / 'test_COVIDx5.txt'} " \
           f"(of different versions)" in both.notes
    with pytest.raises(CXRDataError, match=r"nothere\.txt: COVIDx test label file not found \(--test-file\)"):
        read_covidx(root, test_file=root / "nothere.txt")
    (root / "train_COVIDx9A_subset.txt").unlink()
    (root / "test_COVIDx5_subset.txt").unlink()
    with pytest.raises(CXRDataError, match=r"labels: several COVIDx test files \(test_COVIDx5\.txt, "
                                           r"test_COVIDx9B\.txt\); give --test-file"):
        read_covidx(root)


def test_binary_release_reads_as_two_classes(tmp_path):
    root = write_covidx(tmp_path / "covidx", ["p1 a.png positive ricord", "p2 b.png negative rsna"],
                        ["p3 c.png negative rsna"])
    result = read_covidx(root, val_fraction=0.5)
    assert result.dataset.label_names == ("negative", "positive")
    assert {s.sample_id: s.class_index for s in result.samples}["train/a.png"] == 1
    mixed = write_covidx(tmp_path / "mixed", ["p1 a.png positive ricord", "p2 b.png normal rsna"])
    with pytest.raises(CXRDataError, match="mixes 3-class .* and binary"):
        read_covidx(mixed)


def test_downstream_reading_finds_truncated_images(tmp_path):
    root = write_covidx(tmp_path / "covidx", ["p1 a.png normal rsna", "p2 b.jpg COVID-19 cohen"])
    bad = root / "train" / "b.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(CXRDataError, match=rf"train_COVIDx9A\.txt:2: image {bad}: unreadable or truncated image"):
        read_downstream("covidx", root)
    result = read_downstream("covidx", root, skip_bad=True)
    assert [s.sample_id for s in result.samples] == ["train/a.png", "test/t1.png"] and len(result.skipped) == 1
    assert result.image_check == "verify" and result.images_checked == 3
    assert len(read_downstream("covidx", root, check_images="exists").samples) == 3
