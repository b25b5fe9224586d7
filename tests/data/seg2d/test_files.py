"""Single input files for 2-D prediction: read with the model's intensity rule, label maps written back in the
input's geometry."""

import h5py
import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medmodal.data.seg2d.files import normalise, output_name, read_input, write_label
from medmodal.errors import DamagedFileError, DataError


def test_nifti_round_trip_keeps_the_affine_and_the_slice_axis(tmp_path):
    data = np.arange(6 * 5 * 3, dtype=np.int16).reshape(6, 5, 3) * 10 - 200
    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    affine[:3, 3] = (10, -4, 2)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "case.nii.gz")
    item = read_input(tmp_path / "case.nii.gz", 1, "ct_window")
    assert item.image.shape == (3, 1, 6, 5)          # slices along the third axis
    assert item.image.min() >= 0 and item.image.max() <= 1
    np.testing.assert_allclose(item.image[1, 0], (np.clip(data[:, :, 1], -125, 275) + 125) / 400)
    label = (item.image[:, 0] > 0.5).astype(np.int64)
    out = write_label(item, label, tmp_path / output_name(item), 4)
    assert out.name == "case_seg.nii.gz"
    back = nib.load(out)
    np.testing.assert_array_equal(back.affine, affine)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), np.moveaxis(label, 0, -1))
    assert back.get_data_dtype() == np.uint8


def test_h5_npz_and_picture_round_trips(tmp_path):
    with h5py.File(tmp_path / "patient001_frame01.h5", "w") as fh:
        fh["image"] = np.random.default_rng(0).random((4, 8, 9)).astype(np.float32)
    item = read_input(tmp_path / "patient001_frame01.h5", 1, "minmax")
    assert item.image.shape == (4, 1, 8, 9) and item.kind == "h5"    # stored values: SSL4MIS's own [0, 1]
    write_label(item, np.ones((4, 8, 9), int), tmp_path / output_name(item), 4)
    with h5py.File(tmp_path / "patient001_frame01_seg.h5") as fh:
        assert fh["label"].shape == (4, 8, 9)
    np.savez(tmp_path / "case0005_slice001.npz", image=np.zeros((8, 9), np.float32), label=np.zeros((8, 9)))
    item = read_input(tmp_path / "case0005_slice001.npz", 1, "ct_window")
    assert item.image.shape == (1, 1, 8, 9)
    Image.fromarray(np.full((7, 5, 3), 200, np.uint8)).save(tmp_path / "frame.png")
    item = read_input(tmp_path / "frame.png", 3, "rgb255")
    assert item.image.shape == (1, 3, 7, 5) and item.image.max() == pytest.approx(200 / 255)
    write_label(item, np.ones((1, 7, 5), int), tmp_path / output_name(item), 2)
    assert np.asarray(Image.open(tmp_path / "frame_seg.png")).max() == 255      # two classes: 0 / 255 masks


def test_bad_inputs_name_the_file(tmp_path):
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(DamagedFileError, match="broken.nii.gz"):
        read_input(tmp_path / "broken.nii.gz", 1, "minmax")
    with h5py.File(tmp_path / "nolabel.h5", "w") as fh:
        fh["img"] = np.zeros((2, 2))
    with pytest.raises(DataError, match="nolabel.h5: no 'image' dataset"):
        read_input(tmp_path / "nolabel.h5", 1, "as_stored")
    np.savez(tmp_path / "x.npz", image=np.zeros((8, 9)))
    with pytest.raises(DataError, match="x.npz: a .npz stack, but the model takes 3-channel pictures"):
        read_input(tmp_path / "x.npz", 3, "rgb255")


def test_minmax_of_a_constant_stack_is_zero():
    assert normalise(np.full((2, 3), 7.0), "minmax").max() == 0
