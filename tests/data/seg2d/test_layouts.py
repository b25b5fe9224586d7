"""medmodal.data.seg2d readers: detection of every layout, the layouts' variants, one-line errors naming the
file, notes for what is not used, NIfTI orientation / spacing / BTCV mapping, and the real ACDC copy's counts."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from medmodal.data.layouts import LayoutReader, layout_readers
from medmodal.data.seg2d import (FAMILY, LAYOUTS, as_seg2d_dataset, case_shape, detect_layout, load_case, load_label,
                                 read_seg2d, write_synthetic)
from medmodal.data.seg2d.acdc import patient_of
from medmodal.errors import DamagedFileError, DataError, ImageReadError, InputError, LayoutError
from tests.conftest import REAL_DATA, save_nifti

ACDC_REAL = REAL_DATA / "cardiac-real" / "ACDC"
KVASIR_REAL = REAL_DATA / "endoscopy-real" / "kvasir-seg_from_latent-diffusion-inpainting"
needs_acdc = pytest.mark.skipif(not ACDC_REAL.is_dir(), reason=f"real ACDC not found at {ACDC_REAL}")
needs_kvasir = pytest.mark.skipif(not KVASIR_REAL.is_dir(), reason=f"real Kvasir-SEG not found at {KVASIR_REAL}")
SIZE = 24


def twin(tmp_path, layout, n=None, **kw):
    n = n or {"synapse": 2, "synapse_raw": 2, "acdc_h5": 3, "acdc": 3}.get(layout, 2)
    return write_synthetic(tmp_path / layout, layout, n=n, size=SIZE, **kw)


def one_line(info) -> str:
    text = str(info.value)
    assert "\n" not in text and text
    return text


def rewrite_h5(path, **arrays):
    path.unlink()
    with h5py.File(path, "w") as h5:
        for key, value in arrays.items():
            h5.create_dataset(key, data=value)


def test_the_family_registers_its_layouts_in_detection_order():
    readers = layout_readers(FAMILY)
    assert [r.name for r in readers] == list(LAYOUTS[1:])
    assert all(isinstance(r, LayoutReader) for r in readers)


@pytest.mark.parametrize("layout", LAYOUTS[1:])
def test_detection_picks_each_layout(tmp_path, layout):
    root = twin(tmp_path, layout)
    assert detect_layout(root) == (layout, root)
    assert read_seg2d(root).layout == layout == read_seg2d(root, layout).layout
    assert as_seg2d_dataset(root).layout == layout


def test_ordinary_and_empty_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("x")
    for folder in ("empty", "plain", "missing"):
        assert as_seg2d_dataset(tmp_path / folder) is None
    with pytest.raises(LayoutError, match="no 2-D segmentation layout recognised") as info:
        read_seg2d(tmp_path / "empty")
    assert str(tmp_path / "empty") in one_line(info)
    with pytest.raises(LayoutError, match="data folder not found"):
        read_seg2d(tmp_path / "missing", "acdc")
    for layout, what in (("synapse", "not a TransUNet Synapse folder"), ("synapse_raw", "not a BTCV folder"),
                         ("acdc_h5", "not an SSL4MIS ACDC folder"), ("acdc", "not an ACDC folder"),
                         ("cvc_clinicdb", "not a CVC-ClinicDB folder"), ("kvasir_seg", "not a Kvasir-SEG folder")):
        with pytest.raises(LayoutError, match=what) as info:
            read_seg2d(tmp_path / "empty", layout)
        assert one_line(info).startswith(str(tmp_path / "empty"))
    with pytest.raises(LayoutError, match="unknown 2-D segmentation layout 'nope'; choose one of auto, synapse"):
        read_seg2d(tmp_path, "nope")


def test_a_plain_images_masks_folder_is_kvasir_only_by_name_or_bbox_file(tmp_path):
    root = twin(tmp_path, "kvasir_seg")
    plain = tmp_path / "polyps"
    shutil.copytree(root / "images", plain / "images")
    shutil.copytree(root / "masks", plain / "masks")
    assert as_seg2d_dataset(plain) is None  # the fundus family's generic layout: needs --layout kvasir_seg
    assert len(read_seg2d(plain, "kvasir_seg")) == 2
    named = tmp_path / "My-Kvasir-copy"
    shutil.copytree(plain, named)
    assert detect_layout(named) == ("kvasir_seg", named)
    (plain / "kvasir_bboxes.json").write_text("{}")
    assert detect_layout(plain)[0] == "kvasir_seg"
    outer = tmp_path / "download"
    shutil.copytree(root, outer / "Kvasir-SEG")  # the official zip unpacked into a folder
    assert detect_layout(outer) == ("kvasir_seg", outer / "Kvasir-SEG")
    assert read_seg2d(outer, "kvasir_seg").root == outer / "Kvasir-SEG"


# --------------------------------------------------------------------------- Synapse
def test_synapse_missing_listed_file_names_list_and_file(tmp_path):
    root = twin(tmp_path, "synapse")
    victim = root / "train_npz" / "case0005_slice001.npz"
    victim.unlink()
    with pytest.raises(LayoutError) as info:
        read_seg2d(root)
    assert one_line(info) == (f"{root / 'lists' / 'lists_Synapse' / 'train.txt'} names case0005_slice001 but "
                              f"{victim} is missing")


def test_synapse_notes_unlisted_files_and_reads_without_lists(tmp_path):
    root = twin(tmp_path, "synapse")
    extra = root / "train_npz" / "case0099_slice000.npz"
    shutil.copy(root / "train_npz" / "case0005_slice000.npz", extra)
    found = read_seg2d(root)
    assert [c.id for c in found.split("train")] == ["case0005"]
    assert any("not in" in n and "train.txt" in n and str(extra) in n for n in found.notes)
    shutil.move(root / "lists" / "lists_Synapse", root / "lists_Synapse")  # the other accepted place
    assert len(read_seg2d(root).split("train")) == 1
    shutil.rmtree(root / "lists_Synapse")
    bare = read_seg2d(root)
    assert [c.id for c in bare.split("train")] == ["case0005", "case0099"] and len(bare.split("test")) == 1
    assert sum("no train.txt" in n or "no test_vol.txt" in n for n in bare.notes) == 2


def test_synapse_missing_h5_dataset_and_npz_array(tmp_path):
    root = twin(tmp_path, "synapse")
    volume = root / "test_vol_h5" / "case0001.npy.h5"
    with h5py.File(volume) as h5:
        image = h5["image"][()]
    rewrite_h5(volume, image=image)
    with pytest.raises(DataError) as info:
        read_seg2d(root)
    assert one_line(info) == f"{volume}: no 'label' dataset"
    found = read_seg2d(root, require_labels=False)
    case = found.split("test")[0]
    assert not case.has_label and load_case(found, case).label is None
    assert any(str(volume) in n and "without a 'label'" in n for n in found.notes)
    first = root / "train_npz" / "case0005_slice000.npz"
    np.savez(first, label=np.zeros((SIZE, SIZE), np.float32))
    with pytest.raises(DataError) as info:
        read_seg2d(root, require_labels=False)
    assert one_line(info).startswith(f"{first}: no 'image' array")


def test_synapse_label_out_of_range_names_file_and_values(tmp_path):
    root = twin(tmp_path, "synapse")
    found = read_seg2d(root)
    case = found.split("train")[0]
    bad = case.image[2]
    with np.load(bad) as npz:
        image, label = npz["image"], npz["label"]
    label[0, :3] = [9, 12, 9]
    np.savez(bad, image=image, label=label)
    with pytest.raises(DataError) as info:
        load_case(found, case)
    assert one_line(info) == f"{bad}: label values 9, 12 outside the 9 synapse classes 0..8"
    label[0, :3] = 0.5
    np.savez(bad, image=image, label=label)
    with pytest.raises(DataError, match="non-integer"):
        load_label(found, case)


def test_synapse_damaged_files_are_one_line(tmp_path):
    root = twin(tmp_path, "synapse")
    (root / "test_vol_h5" / "case0001.npy.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DamagedFileError) as info:
        read_seg2d(root)
    assert one_line(info).startswith(f"{root / 'test_vol_h5' / 'case0001.npy.h5'}: not a readable HDF5 file")
    (root / "test_vol_h5" / "case0001.npy.h5").unlink()
    (root / "lists" / "lists_Synapse" / "test_vol.txt").write_text("")
    found = read_seg2d(root)
    npz = found.cases[0].image[0]
    npz.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DamagedFileError) as info:
        load_case(found, found.cases[0])
    assert one_line(info).startswith(str(npz))


def test_synapse_image_outside_unit_range_is_refused(tmp_path):
    root = twin(tmp_path, "synapse")
    volume = root / "test_vol_h5" / "case0001.npy.h5"
    rewrite_h5(volume, image=np.full((3, SIZE, SIZE), 200.0, np.float32), label=np.zeros((3, SIZE, SIZE)))
    found = read_seg2d(root)
    with pytest.raises(DataError, match=r"image values 200\.\.200 outside \[0, 1\]"):
        load_case(found, found.split("test")[0])
    rewrite_h5(volume, image=np.zeros((3, SIZE, SIZE), np.float32), label=np.zeros((3, SIZE, SIZE - 1)))
    with pytest.raises(DataError) as info:
        load_case(found, found.split("test")[0])
    assert one_line(info) == f"{volume}: image (3, {SIZE}, {SIZE}) and label (3, {SIZE}, {SIZE - 1}) differ in shape"


def test_synapse_raw_orientation_spacing_affine_and_btcv_mapping(tmp_path):
    root = tmp_path / "RawData"
    train = root / "Training"
    image = np.linspace(-400, 600, 5 * 6 * 3).reshape(5, 6, 3).astype(np.int16)
    btcv = np.zeros((5, 6, 3), np.uint8)
    btcv[0, :, 0] = np.arange(6)  # 0..5
    btcv[1, :, 1] = np.arange(8, 14)  # 8..13
    affine = np.diag([0.7, 0.9, 2.5, 1.0])
    save_nifti(train / "img" / "img0005.nii.gz", image, affine)
    save_nifti(train / "label" / "label0005.nii.gz", btcv, affine)
    save_nifti(train / "img" / "img0061.nii.gz", image, affine)
    save_nifti(train / "label" / "label0061.nii.gz", btcv, affine)
    save_nifti(root / "Testing" / "img" / "img0061.nii.gz", image, affine)
    assert detect_layout(root) == ("synapse_raw", train)
    found = read_seg2d(root, "synapse_raw")
    assert [(c.id, c.split) for c in found] == [("case0005", "train"), ("case0061", None)]
    assert any("outside TransUNet's 30" in n and "case0061" in n for n in found.notes)
    assert any("Testing" in n and "not read" in n for n in found.notes)
    arrays = load_case(found, found.cases[0])
    assert arrays.image.shape == (3, 1, 5, 6) and arrays.label.shape == (3, 5, 6)
    assert arrays.spacing == pytest.approx((2.5, 0.7, 0.9))
    assert np.allclose(arrays.affine, affine)
    window = (np.clip(image.astype(np.float32), -125, 275) + 125) / 400
    assert np.allclose(arrays.image[1, 0], window[:, :, 1])  # slice k = array[:, :, k]
    assert arrays.label[0, 0].tolist() == [0, 7, 4, 3, 2, 0]  # 1 spleen, 2 R kidney, 3 L kidney, 4 gallbladder, 5 -> 0
    assert arrays.label[1, 1].tolist() == [1, 0, 0, 6, 0, 0]  # 8 aorta, 9, 10 -> 0, 11 pancreas, 12, 13 -> 0
    assert case_shape(found, found.cases[0]) == (3, 5, 6)
    btcv[2, 2, 2] = 14
    save_nifti(train / "label" / "label0005.nii.gz", btcv, affine)
    with pytest.raises(DataError) as info:
        load_case(found, found.cases[0])
    assert one_line(info) == f"{train / 'label' / 'label0005.nii.gz'}: label values 14 outside BTCV's labels 0..13"


def test_synapse_raw_unpaired_files(tmp_path):
    root = twin(tmp_path, "synapse_raw")
    label = root / "label" / "label0005.nii.gz"
    shutil.move(label, tmp_path / "kept.nii.gz")
    with pytest.raises(LayoutError) as info:
        read_seg2d(root)
    assert one_line(info).startswith(f"{root / 'img' / 'img0005.nii.gz'}: image without its label")
    assert not [c for c in read_seg2d(root, require_labels=False) if c.id == "case0005"][0].has_label
    shutil.move(tmp_path / "kept.nii.gz", root / "label" / "label0007.nii.gz")
    with pytest.raises(LayoutError, match="label0007.nii.gz: label without its image"):
        read_seg2d(root, require_labels=False)


def test_nifti_shape_mismatch_and_damaged_nifti(tmp_path):
    root = twin(tmp_path, "acdc")
    found = read_seg2d(root)
    case = found.cases[0]
    save_nifti(case.label[0], np.zeros((SIZE, SIZE - 2, 3), np.uint8))
    with pytest.raises(DataError) as info:
        load_case(found, case)
    assert one_line(info).startswith(f"{case.image[0]} and {case.label[0]}: image (")
    case.image[0].write_bytes(b"\x1f\x8b\x08 not really gzip")
    with pytest.raises(DamagedFileError) as info:
        load_case(found, case)
    assert one_line(info).startswith(f"{case.image[0]}: ")


# --------------------------------------------------------------------------- ACDC
def test_acdc_h5_slices_beside_the_volumes_read_the_same(tmp_path):
    root = twin(tmp_path, "acdc_h5")
    before = read_seg2d(root)
    for path in (root / "data" / "slices").iterdir():
        shutil.move(path, root / "data" / path.name)
    (root / "data" / "slices").rmdir()
    after = read_seg2d(root)
    assert [(c.id, c.split, c.kind, len(c.image)) for c in after] == [
        (c.id, c.split, c.kind, len(c.image)) for c in before]
    assert all(p.parent == root / "data" for c in after for p in c.image)
    case = after.split("train")[0]
    assert [int(p.stem.rsplit("_", 1)[1]) for p in case.image] == list(range(1, len(case.image) + 1))


def test_acdc_h5_missing_listed_volume_and_label_out_of_range(tmp_path):
    root = twin(tmp_path, "acdc_h5")
    found = read_seg2d(root)
    case = found.split("val")[0]
    with h5py.File(case.image[0]) as h5:
        image, label = h5["image"][()], h5["label"][()]
    label[0, 0, :2] = 4
    rewrite_h5(case.image[0], image=image, label=label)
    with pytest.raises(DataError) as info:
        load_case(found, case)
    assert one_line(info) == f"{case.image[0]}: label values 4 outside the 4 acdc classes 0..3"
    case.image[0].unlink()
    with pytest.raises(LayoutError) as info:
        read_seg2d(root)
    assert one_line(info) == f"{root / 'val.list'} names {case.id} but {case.image[0]} is missing"


def test_acdc_h5_without_lists_reads_every_volume_unsplit(tmp_path):
    root = twin(tmp_path, "acdc_h5")
    for path in root.glob("*.list"):
        path.unlink()
    found = read_seg2d(root)
    assert not found.has_splits and all(c.kind == "volume" for c in found) and len(found) == 6
    assert any("no list file" in n for n in found.notes)
    assert any("slices of volumes that are read whole" in n for n in found.notes)


def test_acdc_challenge_layout_flat_and_testing(tmp_path):
    root = twin(tmp_path, "acdc")
    flat = tmp_path / "flat"
    shutil.copytree(root / "training", flat)
    shutil.copytree(flat / "patient003", flat / "patient103")
    for path in sorted((flat / "patient103").iterdir()):
        path.rename(path.with_name(path.name.replace("patient003", "patient103")))
    (flat / "patient103" / "notes.nii.gz").write_bytes(b"")
    found = read_seg2d(flat)
    assert found.layout == "acdc" and {patient_of(c.id) for c in found.split("train")} == {"patient003"}
    assert [c.split for c in found if c.id.startswith("patient103")] == [None, None]
    assert any("outside 1-100" in n and "patient103" in n for n in found.notes)
    assert any("notes.nii.gz" in n for n in found.notes)
    assert not any("_4d" in n or "Info.cfg" in n for n in found.notes)  # the cine series is skipped silently
    gt = next((flat / "patient103").glob("*_gt.nii.gz"))
    gt.unlink()
    with pytest.raises(LayoutError) as info:
        read_seg2d(flat)
    assert "frame without its label" in one_line(info)
    assert sum(not c.has_label for c in read_seg2d(flat, require_labels=False)) == 1


# --------------------------------------------------------------------------- polyps
def test_polyp_pairs_and_mask_rules(tmp_path):
    cvc = twin(tmp_path, "cvc_clinicdb")
    mask = cvc / "Ground Truth" / "2.tif"
    mask.unlink()
    with pytest.raises(LayoutError) as info:
        read_seg2d(cvc)
    assert one_line(info).startswith(f"{cvc / 'Original' / '2.tif'}: image without its mask")
    found = read_seg2d(cvc, require_labels=False)
    assert [c.has_label for c in found] == [True, False] and any("without a mask" in n for n in found.notes)
    from PIL import Image

    rgb_mask = np.zeros((SIZE, SIZE, 3), np.uint8)
    rgb_mask[:4, :4, 2] = 200  # a mask painted in one channel: any channel > 127 counts
    Image.fromarray(rgb_mask).save(mask)
    found = read_seg2d(cvc)
    assert int(load_case(found, found.cases[1]).label.sum()) == 16
    Image.fromarray(np.zeros((SIZE, SIZE + 1), np.uint8)).save(mask)
    with pytest.raises(DataError) as info:
        load_case(found, found.cases[1])
    assert one_line(info).startswith(f"{cvc / 'Original' / '2.tif'} and {mask}: image (")
    (cvc / "Ground Truth" / "3.tif").write_bytes(mask.read_bytes())
    with pytest.raises(LayoutError, match=r"3\.tif: mask without its image"):
        read_seg2d(cvc)
    kvasir = twin(tmp_path, "kvasir_seg")
    found = read_seg2d(kvasir)
    bad = found.cases[0].label[0]
    bad.write_bytes(b"\xff\xd8 broken jpeg")
    with pytest.raises(ImageReadError) as info:
        load_case(found, found.cases[0])
    assert one_line(info).startswith(str(bad))


def test_errors_are_input_errors():
    for cls in (LayoutError, DataError, DamagedFileError, ImageReadError):
        assert issubclass(cls, InputError)


# --------------------------------------------------------------------------- real data
@pytest.mark.realdata
@needs_acdc
def test_real_acdc_h5_counts_and_loading():
    found = read_seg2d(ACDC_REAL)
    assert found.layout == "acdc_h5" and found.dataset == "acdc" and found.has_splits
    patients = {s: {patient_of(c.id) for c in found.split(s)} for s in ("train", "val", "test")}
    assert {s: len(p) for s, p in patients.items()} == {"train": 70, "val": 10, "test": 20}
    assert {s: len(found.split(s)) for s in patients} == {"train": 140, "val": 20, "test": 40}
    assert sum(len(c.image) for c in found.split("train")) == 1312
    assert all(c.kind == "slices" for c in found.split("train"))
    assert all(c.kind == "volume" for c in found.split("val") + found.split("test"))
    assert not (patients["train"] & patients["val"]) and not (patients["train"] & patients["test"])
    # the patients of the shared lists are the ones embedded for the challenge layout
    from medmodal.data.seg2d.acdc import SSL4MIS_TEST_PATIENTS, SSL4MIS_VAL_PATIENTS

    assert patients["val"] == {f"patient{p:03d}" for p in SSL4MIS_VAL_PATIENTS}
    assert patients["test"] == {f"patient{p:03d}" for p in SSL4MIS_TEST_PATIENTS}
    sliced = found.split("train")[0]
    arrays = load_case(found, sliced)
    assert arrays.image.shape == (len(sliced.image), 1, *arrays.label.shape[1:]) and arrays.spacing is None
    assert arrays.image.dtype == np.float32 and 0 <= arrays.image.min() and arrays.image.max() <= 1
    assert set(np.unique(arrays.label)) <= {0, 1, 2, 3} and arrays.label.dtype == np.int64
    volume = found.split("test")[0]
    arrays = load_case(found, volume)
    assert arrays.image.ndim == 4 and arrays.image.shape[0] == case_shape(found, volume)[0] > 1
    assert set(np.unique(arrays.label)) == {0, 1, 2, 3}


@pytest.mark.realdata
@needs_kvasir
def test_real_kvasir_seg_copy():
    found = read_seg2d(KVASIR_REAL)
    assert found.layout == "kvasir_seg" and len(found) == 5 and found.notes == []
    arrays = load_case(found, found.cases[0])
    assert arrays.image.shape[:2] == (1, 3) and 0.05 < arrays.label.mean() < 0.5
