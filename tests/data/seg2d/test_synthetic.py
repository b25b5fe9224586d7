"""medmodal.data.seg2d.synthetic: every twin reads back with its real reader (counts, splits, classes, shapes,
value ranges), the content is learnable and deterministic, and two layouts never share content."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medmodal.data.seg2d import (ACDC_CLASSES, POLYP_CLASSES, SYNAPSE_CLASSES, case_shape, load_case, read_seg2d,
                                 write_synthetic)
from medmodal.data.seg2d.acdc import patient_of
from medmodal.data.seg2d.synthetic import LIMITS, SYNTH_LAYOUTS, split_counts
from medmodal.errors import ConfigError

SIZE = 32
# layout, n, cases per split (None: no split), patients per split, dataset, classes, channels
EXPECTED = [
    ("synapse", 5, {"train": 3, "test": 2}, None, "synapse", SYNAPSE_CLASSES, 1),
    ("synapse_raw", 5, {"train": 3, "test": 2}, None, "synapse", SYNAPSE_CLASSES, 1),
    ("acdc_h5", 10, {"train": 14, "val": 2, "test": 4}, {"train": 7, "val": 1, "test": 2}, "acdc", ACDC_CLASSES, 1),
    ("acdc", 10, {"train": 14, "val": 2, "test": 4}, {"train": 7, "val": 1, "test": 2}, "acdc", ACDC_CLASSES, 1),
    ("cvc_clinicdb", 3, {None: 3}, None, "polyp", POLYP_CLASSES, 3),
    ("kvasir_seg", 3, {None: 3}, None, "polyp", POLYP_CLASSES, 3),
]
KINDS = {"synapse": {"train": "slices", "test": "volume"}, "synapse_raw": {"train": "volume", "test": "volume"},
         "acdc_h5": {"train": "slices", "val": "volume", "test": "volume"},
         "acdc": {"train": "volume", "val": "volume", "test": "volume"}}


@pytest.mark.parametrize("layout,n,cases,patients,dataset,classes,channels", EXPECTED)
def test_every_twin_reads_back(tmp_path, layout, n, cases, patients, dataset, classes, channels):
    root = write_synthetic(tmp_path / layout, layout, n=n, size=SIZE, seed=1)
    found = read_seg2d(root)
    assert found.layout == layout and found.dataset == dataset and found.classes == classes
    assert len(found.channels) == channels
    assert {s: len([c for c in found if c.split == s]) for s in cases} == cases and len(found) == sum(cases.values())
    assert found.has_splits == (None not in cases)
    if patients:
        assert {s: len({patient_of(c.id) for c in found.split(s)}) for s in patients} == patients
    seen = set()
    for case in found:
        assert case.has_label
        if layout in KINDS:
            assert case.kind == KINDS[layout][case.split]
            assert 4 <= case_shape(found, case)[0] <= 8
        else:
            assert case.kind == "image"
        arrays = load_case(found, case)
        depth = arrays.image.shape[0]
        assert arrays.image.shape == (depth, channels, SIZE, SIZE) and arrays.image.dtype == np.float32
        assert case_shape(found, case) == (depth, SIZE, SIZE)
        assert 0.0 <= arrays.image.min() and arrays.image.max() <= 1.0 and arrays.image.std() > 0.05
        assert arrays.label.shape == (depth, SIZE, SIZE) and arrays.label.dtype == np.int64
        assert arrays.label.min() >= 0 and arrays.label.max() < len(classes)
        assert (arrays.spacing is not None) == (layout in ("synapse_raw", "acdc"))
        seen |= set(np.unique(arrays.label).tolist())
    assert seen == set(range(len(classes)))  # every class is drawn


def test_twins_keep_the_files_of_their_layout(tmp_path):
    synapse = write_synthetic(tmp_path / "s", "synapse", n=2, size=SIZE)
    assert (synapse / "lists" / "lists_Synapse" / "test_vol.txt").read_text() == "case0001\n"
    assert (synapse / "test_vol_h5" / "case0001.npy.h5").is_file()
    acdc = write_synthetic(tmp_path / "a", "acdc", n=3, size=SIZE)
    info = (acdc / "training" / "patient003" / "Info.cfg").read_text()
    assert info.startswith("ED: 1\nES: ") and (acdc / "training" / "patient003" / "patient003_4d.nii.gz").is_file()
    es = int(info.split("ES: ")[1].split()[0])
    assert (acdc / "training" / "patient003" / f"patient003_frame{es:02d}_gt.nii.gz").is_file()
    h5 = write_synthetic(tmp_path / "h", "acdc_h5", n=3, size=SIZE)
    assert {p.name for p in h5.glob("*.list")} == {"train_slices.list", "train.list", "val.list", "test.list"}
    assert (h5 / "data" / "slices" / "patient003_frame01_slice_1.h5").is_file()
    cvc = write_synthetic(tmp_path / "c", "cvc_clinicdb", n=1, size=SIZE)
    assert (cvc / "Original" / "1.tif").is_file() and (cvc / "Ground Truth" / "1.tif").is_file()
    kvasir = write_synthetic(tmp_path / "k", "kvasir_seg", n=2, size=SIZE)
    boxes = json.loads((kvasir / "kavsir_bboxes.json").read_text())
    assert sorted(boxes) == sorted(p.stem for p in (kvasir / "images").glob("*.jpg"))
    assert all(len(k) == 25 for k in boxes) and all((kvasir / "masks" / f"{k}.jpg").is_file() for k in boxes)


def _arrays(root):
    found = read_seg2d(root)
    return [load_case(found, c) for c in found]


@pytest.mark.parametrize("layout", SYNTH_LAYOUTS)
def test_deterministic_in_seed(tmp_path, layout):
    n = LIMITS[layout][0]
    a = _arrays(write_synthetic(tmp_path / "a", layout, n=n, size=SIZE, seed=3))
    b = _arrays(write_synthetic(tmp_path / "b", layout, n=n, size=SIZE, seed=3))
    c = _arrays(write_synthetic(tmp_path / "c", layout, n=n, size=SIZE, seed=4))
    assert all(np.array_equal(x.image, y.image) and np.array_equal(x.label, y.label) for x, y in zip(a, b))
    # an unlabelled case (meniscus, folder2d) has no label: its image must differ instead
    assert not any(np.array_equal(x.label, y.label) if x.label is not None else np.array_equal(x.image, y.image)
                   for x, y in zip(a, c))


def test_two_layouts_of_one_data_set_never_share_content(tmp_path):
    for first, second in (("synapse", "synapse_raw"), ("acdc_h5", "acdc"), ("cvc_clinicdb", "kvasir_seg")):
        n = LIMITS[first][0]
        a = _arrays(write_synthetic(tmp_path / first, first, n=n, size=SIZE, seed=0))
        b = _arrays(write_synthetic(tmp_path / second, second, n=n, size=SIZE, seed=0))
        assert not any(x.label.shape == y.label.shape and np.array_equal(x.label, y.label) for x in a for y in b)


@pytest.mark.parametrize("layout", ["synapse", "acdc", "kvasir_seg"])
def test_classes_are_learnable_from_intensity(tmp_path, layout):
    """Each foreground class has its own mean intensity (the background mixes air, tissue and bone)."""
    found = read_seg2d(write_synthetic(tmp_path, layout, n=LIMITS[layout][0] + 1, size=48, seed=2))
    arrays = [load_case(found, c) for c in found]
    image = np.concatenate([a.image.mean(1) for a in arrays]).ravel()
    label = np.concatenate([a.label for a in arrays]).ravel()
    means = sorted(image[label == k].mean() for k in range(len(found.classes)) if k)
    assert min(np.diff(means), default=1) > 0.02
    if found.dataset == "polyp":  # polyp and mucosa differ in colour
        rgb = np.concatenate([a.image[0].reshape(3, -1) for a in arrays], 1)
        assert np.linalg.norm(rgb[:, label == 1].mean(1) - rgb[:, label == 0].mean(1)) > 0.05


def test_two_acdc_patients_make_a_val_and_a_test_patient(tmp_path):
    for layout in ("acdc", "acdc_h5"):
        found = read_seg2d(write_synthetic(tmp_path / layout, layout, n=2, size=SIZE))
        assert [c.split for c in found] == ["val", "val", "test", "test"]


def test_split_counts_keep_the_real_proportions():
    assert split_counts("synapse", 30) == {"train": 18, "test": 12}
    assert split_counts("synapse_raw", 2) == {"train": 1, "test": 1}
    assert split_counts("acdc", 100) == {"train": 70, "val": 10, "test": 20}
    assert split_counts("acdc_h5", 3) == {"train": 1, "val": 1, "test": 1}
    assert split_counts("acdc", 2) == {"train": 0, "val": 1, "test": 1}
    assert split_counts("kvasir_seg", 4) == {None: 4}


def test_bad_requests(tmp_path):
    with pytest.raises(ConfigError, match="unknown synthetic 2-D segmentation layout 'drive'"):
        write_synthetic(tmp_path, "drive")
    with pytest.raises(ConfigError, match="synapse twin has 2 to 30 cases, got 31"):
        write_synthetic(tmp_path, "synapse", n=31)
    with pytest.raises(ConfigError, match="acdc_h5 twin has 2 to 100 cases, got 1"):
        write_synthetic(tmp_path, "acdc_h5", n=1)
    with pytest.raises(ConfigError, match="at least 16"):
        write_synthetic(tmp_path, "kvasir_seg", n=1, size=8)
    with pytest.raises(ConfigError, match="seed"):
        write_synthetic(tmp_path, "kvasir_seg", n=1, seed=-1)
