"""Synthetic BraTS-layout generator: files, geometry, labels, determinism and MR contrasts."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from medmodal.data.volumes.layouts import discover_cases
from medmodal.data.volumes.loading import load_case
from medmodal.data.volumes.spec import BRATS2020
from medmodal.data.volumes.synthetic_brats import synth_brats, synth_case

SIZE = 48
NUM_CASES = 4
SEQUENCES = ("flair", "t1", "t1ce", "t2")
SUFFIXES_2023 = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", "seg": "seg"}


def read_case(folder, naming="brats2020"):
    """``({sequence: float array}, int label array, {key: nib image})`` read with nibabel."""
    if naming == "brats2020":
        paths = {k: folder / f"{folder.name}_{k}.nii.gz" for k in (*SEQUENCES, "seg")}
    else:
        paths = {k: folder / f"{folder.name}-{SUFFIXES_2023[k]}.nii.gz" for k in (*SEQUENCES, "seg")}
    imgs = {k: nib.load(str(p)) for k, p in paths.items()}
    arrays = {k: np.asanyarray(imgs[k].dataobj) for k in SEQUENCES}
    return arrays, np.asanyarray(imgs["seg"].dataobj), imgs


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("synth")
    return {
        "brats2020": synth_brats(base / "b20", num_cases=NUM_CASES, size=SIZE, seed=0),
        "brats2023": synth_brats(base / "b23", num_cases=NUM_CASES, size=SIZE, seed=0, naming="brats2023"),
    }


@pytest.fixture(scope="module")
def cases(datasets):
    return [read_case(folder) for folder in datasets["brats2020"]]


def test_brats2020_file_layout(datasets):
    folders = datasets["brats2020"]
    assert [f.name for f in folders] == [f"SynBraTS_{i:03d}" for i in range(NUM_CASES)]
    for folder in folders:
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted(f"{folder.name}_{k}.nii.gz" for k in ("flair", "t1", "t1ce", "t2", "seg"))


def test_brats2023_file_layout_and_labels(datasets):
    for folder in datasets["brats2023"]:
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted(f"{folder.name}-{s}.nii.gz" for s in ("t2f", "t1n", "t1c", "t2w", "seg"))
    labels = [read_case(f, "brats2023")[1] for f in datasets["brats2023"]]
    assert set().union(*(np.unique(lab).tolist() for lab in labels)) == {0, 1, 2, 3}


def test_brats2023_is_brats2020_with_et_relabelled(datasets, cases):
    for folder, (images20, label20, _) in zip(datasets["brats2023"], cases):
        images23, label23, _ = read_case(folder, "brats2023")
        expected = np.where(label20 == 4, 3, label20)
        np.testing.assert_array_equal(label23, expected)
        for name in SEQUENCES:
            np.testing.assert_array_equal(images23[name], images20[name])


def test_shapes_dtypes_and_affines(cases):
    spacing = 240.0 / SIZE
    for _, _, imgs in cases:
        ref = imgs["seg"]
        assert ref.shape == (SIZE,) * 3
        assert np.allclose(np.diag(ref.affine)[:3], spacing)
        assert np.count_nonzero(ref.affine[:3, :3] - np.diag(np.diag(ref.affine)[:3])) == 0
        assert np.allclose(ref.header.get_zooms(), (spacing,) * 3)
        for name in SEQUENCES:
            assert imgs[name].shape == ref.shape
            assert np.array_equal(imgs[name].affine, ref.affine)
            assert imgs[name].get_data_dtype() == np.int16
            assert np.asanyarray(imgs[name].dataobj).dtype == np.int16
        assert ref.get_data_dtype() == np.uint8


def test_spacing_and_tuple_size(tmp_path):
    (folder,) = synth_brats(tmp_path, num_cases=1, size=(32, 40, 24), spacing=1.5)
    images, label, imgs = read_case(folder)
    assert label.shape == (32, 40, 24)
    assert np.allclose(imgs["t1"].header.get_zooms(), (1.5, 1.5, 1.5))
    assert np.allclose(imgs["t1"].affine[:3, :3], 1.5 * np.eye(3))
    assert all(v.any() for v in images.values()) and (label > 0).any()


def test_label_values_and_subregions(cases):
    complete = 0
    for _, label, _ in cases:
        values = set(np.unique(label).tolist())
        assert values <= {0, 1, 2, 4}
        assert {0, 2} <= values  # every case has a tumour with edema
        complete += values == {0, 1, 2, 4}
    assert complete >= NUM_CASES - 1


def test_skull_stripped_background(cases):
    for images, label, _ in cases:
        nonzero = [images[name] != 0 for name in SEQUENCES]
        brain = nonzero[0]
        for mask in nonzero[1:]:
            np.testing.assert_array_equal(mask, brain)  # same mask in every sequence, 0 outside
        assert all((images[name] >= 0).all() for name in SEQUENCES)
        assert 0.05 < brain.mean() < 0.4
        assert ndimage.label(brain)[1] == 1  # one connected brain
        assert not brain[[0, -1]].any() and not brain[:, [0, -1]].any()  # a margin around the head
        assert not (label[~brain]).any()  # the tumour lies inside the brain


def test_determinism(tmp_path, cases):
    again = synth_brats(tmp_path / "again", num_cases=2, size=SIZE, seed=0)
    other = synth_brats(tmp_path / "other", num_cases=1, size=SIZE, seed=1)
    for folder, (images, label, _) in zip(again, cases):
        images2, label2, _ = read_case(folder)
        np.testing.assert_array_equal(label2, label)
        for name in SEQUENCES:
            np.testing.assert_array_equal(images2[name], images[name])
    images_other, label_other, _ = read_case(other[0])
    assert not np.array_equal(label_other, cases[0][1])
    assert not np.array_equal(images_other["t1"], cases[0][0]["t1"])


def zscore_in_brain(image, brain):
    values = image[brain].astype(np.float64)
    return (image - values.mean()) / values.std()


def region_means(images, label, min_voxels=20):
    """z-scored (inside the brain) mean per sequence and region; regions too small are skipped."""
    brain = images["t1"] != 0
    regions = {"ncr": label == 1, "ed": label == 2, "et": label == 4, "normal": brain & (label == 0)}
    z = {name: zscore_in_brain(images[name].astype(np.float64), brain) for name in SEQUENCES}
    return {r: {name: z[name][mask].mean() for name in SEQUENCES} for r, mask in regions.items()
            if mask.sum() >= min_voxels}


def test_enhancing_rim_bright_only_on_t1ce(cases):
    checked = 0
    for images, label, _ in cases:
        means = region_means(images, label)
        if "et" not in means:
            continue
        et = means["et"]
        assert et["t1ce"] > 1.0, et  # > 1 SD above the brain mean
        for other in ("t1", "flair", "t2"):
            assert et["t1ce"] > et[other] + 0.5, (other, et)
        assert et["t1ce"] > means["normal"]["t1ce"] + 1.0
        checked += 1
    assert checked >= NUM_CASES - 1


def test_edema_bright_on_flair_and_t2_necrosis_dark_on_t1(cases):
    checked = 0
    for images, label, _ in cases:
        means = region_means(images, label)
        normal = means["normal"]
        assert means["ed"]["flair"] > normal["flair"] + 1.0
        assert means["ed"]["t2"] > normal["t2"] + 0.5
        assert means["ed"]["t1"] < normal["t1"]
        if "ncr" in means:
            for name in ("t1", "t1ce"):
                assert means["ncr"][name] < normal[name] - 0.5, (name, means["ncr"])
            assert means["ncr"]["t2"] > normal["t2"] + 0.5
            checked += 1
    assert checked >= NUM_CASES - 1


def test_healthy_tissue_contrasts():
    """CSF is dark on T1/FLAIR and bright on T2: check on the healthy brain of in-memory cases."""
    images, label = synth_case(48, seed=3, index=0)
    brain = images["t1"] != 0
    healthy = brain & (label == 0)
    z = {name: zscore_in_brain(images[name].astype(np.float64), brain)[healthy] for name in SEQUENCES}
    # voxels darkest on T1 (CSF) are the brightest on T2 and dark on FLAIR
    dark_t1 = z["t1"] < np.quantile(z["t1"], 0.05)
    assert z["t2"][dark_t1].mean() > 1.0
    assert z["flair"][dark_t1].mean() < -1.0
    # T1 and T2 are anti-correlated in healthy tissue (WM > GM > CSF vs CSF > GM > WM)
    assert np.corrcoef(z["t1"], z["t2"])[0, 1] < -0.5


def test_variety_over_many_cases():
    """Either hemisphere, varied sizes, a minority of cases with little or no enhancement."""
    sides, tumour_fraction, et_fraction = [], [], []
    for index in range(32):
        images, label = synth_case(24, seed=7, index=index)
        brain = images["t1"] != 0
        tumour = label > 0
        centroid_x = np.argwhere(tumour)[:, 0].mean() - np.argwhere(brain)[:, 0].mean()
        sides.append(np.sign(centroid_x))
        tumour_fraction.append(tumour.sum() / brain.sum())
        et_fraction.append((label == 3).sum() / max(tumour.sum(), 1))
    assert {-1.0, 1.0} <= set(sides)
    assert max(tumour_fraction) > 2 * min(tumour_fraction)
    low = sum(f < 0.05 for f in et_fraction)  # about a quarter are low-grade-like
    assert 4 <= low <= 16, et_fraction


def test_files_load_through_medmodal(datasets):
    """The written datasets are discovered and validated by medmodal's own loader, both namings."""
    labels = {}
    for naming, folders in datasets.items():
        cases = discover_cases(folders[0].parent)
        assert [c.case_id for c in cases] == [f.name for f in folders]
        loaded = load_case(cases[0], BRATS2020)
        assert loaded.present.all()
        labels[naming] = loaded.label
    np.testing.assert_array_equal(labels["brats2020"], labels["brats2023"])
    assert set(np.unique(labels["brats2020"]).tolist()) <= {0, 1, 2, 3}


def test_in_memory_case_matches_files(cases):
    images, label = synth_case(SIZE, seed=0, index=1)
    file_images, file_label, _ = cases[1]
    np.testing.assert_array_equal(BRATS2020.decode_labels(label), file_label)
    for name in SEQUENCES:
        np.testing.assert_array_equal(images[name], file_images[name])


def test_anatomy_does_not_depend_on_resolution():
    _, small = synth_case(32, seed=0, index=2)
    _, large = synth_case(64, seed=0, index=2)
    for cls in (1, 2, 3):
        frac_small, frac_large = (small == cls).mean(), (large == cls).mean()
        assert frac_large == pytest.approx(frac_small, rel=0.3, abs=2e-4)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="naming"):
        synth_brats(tmp_path, num_cases=1, size=24, naming="brats2099")
    with pytest.raises(ValueError, match="size"):
        synth_brats(tmp_path, num_cases=1, size=8)
    assert not any(tmp_path.rglob("*.nii.gz"))
