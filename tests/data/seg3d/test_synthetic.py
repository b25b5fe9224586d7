"""medmodal.data.seg3d.synthetic: every twin reads back with its real reader (counts, splits, classes, label values,
shapes, intensity ranges after loading), the content is plausible and deterministic, and bad arguments are refused."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medmodal.data.seg3d import (BHSD_CLASSES, HAEMORRHAGE_CLASSES, LA_CLASSES, load_volume, read_seg3d,
                                 volume_shape, write_synthetic)
from medmodal.data.seg3d.synthetic import BHSD_SPACING, DEFAULT_SIZE, NIFTI_SPACING, SYNTH_LAYOUTS
from medmodal.errors import ConfigError

SIZE = (24, 20, 12)
# layout, n, unlabelled, {split: (labelled, unlabelled)}, dataset, classes, spacing
EXPECTED = [
    ("la2018", 5, 0, {"train": (4, 0), "test": (1, 0)}, "la", LA_CLASSES, (1.0, 1.0, 1.0)),
    ("bhsd", 3, 2, {None: (3, 2)}, "bhsd", HAEMORRHAGE_CLASSES, BHSD_SPACING),
    ("nifti_folder", 4, 2, {"train": (3, 2), "test": (1, 0)}, "nifti", ("background", "organ", "lesion"),
     NIFTI_SPACING),
]


@pytest.mark.parametrize("layout,n,unlabelled,splits,dataset,classes,spacing", EXPECTED)
def test_every_twin_reads_back(tmp_path, layout, n, unlabelled, splits, dataset, classes, spacing):
    root = write_synthetic(tmp_path / layout, layout, n=n, size=SIZE, seed=3, unlabelled=unlabelled)
    found = read_seg3d(root)
    assert found.layout == layout and found.dataset == dataset and found.classes == classes
    assert len(found.channels) == 1 and len(found) == n + unlabelled
    counts = {s: (sum(c.has_label for c in found.split(s)), sum(not c.has_label for c in found.split(s)))
              for s in splits}
    assert counts == splits
    seen: set[int] = set()
    for case in found:
        volume = load_volume(case, found)
        assert volume.image.shape == (1, *SIZE) and volume.image.dtype == np.float32
        assert volume_shape(case, found) == SIZE and volume.spacing == spacing
        if dataset == "bhsd":
            assert 0.0 <= volume.image.min() and volume.image.max() <= 1.0
        else:  # z-scored: UA-MT's stored z-score, the nifti folder's percentile-clipped z-score
            assert abs(float(volume.image.mean())) < 1e-3 and abs(float(volume.image.std()) - 1) < 1e-3
        if case.has_label:
            assert volume.label.shape == SIZE and volume.label.dtype == np.uint8
            assert volume.label.max() < len(classes) and volume.label.any()
            seen |= set(np.unique(volume.label).tolist())
        else:
            assert volume.label is None
    assert seen == set(range(len(classes)))


def test_la2018_twin_is_the_release_form(tmp_path):
    import h5py

    root = write_synthetic(tmp_path / "la", "la2018", n=5, size=SIZE)
    train = (root / "train.list").read_text().split()
    test = (root / "test.list").read_text().split()
    assert len(train) == 4 and len(test) == 1
    assert all(len(i) == 20 and i.isalnum() and i.upper() == i for i in train + test)
    with h5py.File(root / "2018LA_Seg_Training Set" / train[0] / "mri_norm2.h5", "r") as h5:
        assert set(h5) == {"image", "label"} and not h5.attrs.keys()
        assert h5["image"].dtype == np.float32 and h5["label"].dtype == np.uint8
        assert h5["image"].compression == "gzip" and h5["image"].shape == SIZE
        assert set(np.unique(h5["label"][()])) == {0, 1}
    found = read_seg3d(root)
    assert found.train_order == train


def test_bhsd_twin_is_a_head_ct_in_hounsfield_units(tmp_path):
    root = write_synthetic(tmp_path / "bhsd", "bhsd", n=4, size=(40, 40, 16), seed=2, unlabelled=1)
    types: set[int] = set()
    for label_file in sorted((root / "labels").iterdir()):
        hu = np.asanyarray(nib.load(str(root / "images" / label_file.name)).dataobj)
        image = nib.load(str(label_file))
        label = np.asanyarray(image.dataobj)
        assert hu.dtype == np.int16 and label.dtype == np.uint8
        assert np.allclose(image.header.get_zooms(), BHSD_SPACING)
        assert hu.min() == -1000 and (hu > 700).sum() > 0  # air, skull
        brain = (hu > 0) & (hu < 50) & (label == 0)
        assert 28 <= np.median(hu[brain]) <= 42
        assert label.any() and 55 <= np.median(hu[label > 0]) <= 80
        types |= set(np.unique(label[label > 0]).tolist())
    assert types <= set(range(1, 6)) and len(types) >= 2
    multi = read_seg3d(root, binary=False)
    assert multi.classes == BHSD_CLASSES and not multi.binary


def test_twins_are_deterministic_and_layouts_differ(tmp_path):
    for layout in SYNTH_LAYOUTS:
        a = read_seg3d(write_synthetic(tmp_path / f"{layout}-a", layout, n=2, size=16, seed=5))
        b = read_seg3d(write_synthetic(tmp_path / f"{layout}-b", layout, n=2, size=16, seed=5))
        c = read_seg3d(write_synthetic(tmp_path / f"{layout}-c", layout, n=2, size=16, seed=6))
        assert [x.id for x in a] == [x.id for x in b]
        va, vb, vc = (load_volume(s.cases[0], s) for s in (a, b, c))
        assert va.image.shape == (1, 16, 16, 8)  # one edge: (s, s, s // 2)
        assert np.array_equal(va.image, vb.image) and not np.array_equal(va.image, vc.image)


def test_default_size_and_bad_arguments(tmp_path):
    assert DEFAULT_SIZE == (48, 48, 24)
    with pytest.raises(ConfigError, match="unknown synthetic 3-D segmentation layout 'nope'"):
        write_synthetic(tmp_path, "nope")
    with pytest.raises(ConfigError, match="la2018 twin has 2 to 100 labelled volumes, got 1"):
        write_synthetic(tmp_path, "la2018", n=1)
    with pytest.raises(ConfigError, match="at least 8 voxels"):
        write_synthetic(tmp_path, "bhsd", size=(8, 8, 4))
    with pytest.raises(ConfigError, match="seed must be at least 0"):
        write_synthetic(tmp_path, "bhsd", seed=-1)
    with pytest.raises(ConfigError, match="unlabelled must be at least 0"):
        write_synthetic(tmp_path, "bhsd", unlabelled=-1)
