import os

import numpy as np

from medmodal.data.volumes.layouts import discover_cases
from medmodal.data.volumes.loading import load_case
from medmodal.data.volumes.preprocess import PreprocessedCache, brain_bbox, crop, preprocess, uncrop, zscore_in_brain
from medmodal.data.volumes.spec import BRATS2020
from tests.conftest import write_brats2020_case


def test_brain_bbox_crop_uncrop_roundtrip():
    image = np.zeros((2, 10, 12, 14), np.float32)
    image[0, 2:5, 3:9, 4:6] = 1
    image[1, 6, 1, 10] = 2
    present = np.array([True, True])
    box = brain_bbox(image, present)
    assert box == ((2, 7), (1, 9), (4, 11))
    assert brain_bbox(image, np.array([True, False])) == ((2, 5), (3, 9), (4, 6))
    cropped = crop(image, box)
    assert cropped.shape == (2, 5, 8, 7)
    np.testing.assert_array_equal(uncrop(cropped, box, image.shape[1:]), image)


def test_zscore_inside_brain_only():
    rng = np.random.default_rng(0)
    image = np.zeros((3, 8, 8, 8), np.float32)
    image[:, 2:6, 2:6, 2:6] = rng.normal(50, 7, (3, 4, 4, 4))
    present = np.array([True, False, True])
    image[1] = 0
    out = zscore_in_brain(image, present)
    brain = image[0] != 0
    for m in (0, 2):
        assert abs(out[m][brain].mean()) < 1e-5 and abs(out[m][brain].std() - 1) < 1e-4
        assert not out[m][~brain].any()
    assert not out[1].any()


def test_preprocess_and_cache(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_brats2020_case(root, "c0", shape=(20, 18, 16))
    (case,) = discover_cases(root)
    pre = preprocess(load_case(case, BRATS2020))
    assert pre.image.shape[1:] == pre.label.shape and pre.image.shape[1] < 20
    cache = PreprocessedCache(tmp_path / "cache", BRATS2020)
    assert not cache.is_cached(case)
    first = cache.get(case)
    assert cache.is_cached(case)
    np.testing.assert_array_equal(np.asarray(first.image), pre.image)
    assert first.bbox == pre.bbox and first.original_shape == (20, 18, 16)
    # a second read comes from the .npy files, memory-mapped, without re-reading the NIfTI
    import medmodal.data.volumes.preprocess as pp

    def fail(*a, **k):
        raise AssertionError("NIfTI re-read")

    monkeypatch.setattr(pp, "load_case", fail)
    again = cache.get(case)
    assert isinstance(again.image, np.memmap)
    monkeypatch.undo()
    # editing a source file invalidates the entry
    write_brats2020_case(root, "c0", shape=(20, 18, 16), seed=5)
    os.utime(case.images["t1"], ns=(1, 1))
    assert not cache.is_cached(case)
