"""Compressed DICOM (issue 25, item 3): a transfer syntax no installed pydicom decoder reads is refused by
the default image check, naming the packages that would decode it, before ``cxr finetune`` writes
anything; a compressed syntax that has a decoder (RLE, pydicom's own) passes and decodes exactly.

Built from the real SIIM DICOM (JPEG Baseline, decoded by pydicom's Pillow plugin): its pixels
re-encoded as RLE Lossless, and its header relabelled JPEG Lossless SV1 (1.2.840.10008.1.2.4.70) over
its encapsulated fragments, which is what the check reads (no JPEG Lossless encoder is installed here).
"""

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.data.images import decode_image, dicom_decoder_problem, image_problem
from medmodal.errors import ImageReadError
from tests.data.cxr.conftest import SIIM_DICOM, requires_images_real, write_dicom

pydicom = pytest.importorskip("pydicom")
from pydicom.uid import JPEGLosslessSV1, RLELossless  # noqa: E402

LOSSLESS_LINE = ("JPEG Lossless (1.2.840.10008.1.2.4.70) DICOM, no decoder installed: "
                 "pip install pylibjpeg pylibjpeg-libjpeg (or python-gdcm)")


def lossless_decoder_installed() -> bool:
    return dicom_decoder_problem(JPEGLosslessSV1) is None


def write_jpeg_lossless_labelled(path: Path) -> Path:
    """The real SIIM DICOM with its transfer syntax relabelled JPEG Lossless SV1 (fragments kept)."""
    ds = pydicom.dcmread(SIIM_DICOM)
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


@requires_images_real
def test_rle_reencoded_real_dicom_passes_and_decodes_exactly(tmp_path):
    ds = pydicom.dcmread(SIIM_DICOM)
    ds.compress(RLELossless, ds.pixel_array)  # pydicom's own RLE encoder
    rle = tmp_path / "rle.dcm"
    ds.save_as(rle)
    assert pydicom.dcmread(rle).file_meta.TransferSyntaxUID == RLELossless
    assert image_problem(rle) is None and image_problem(rle, "decode") is None
    assert np.array_equal(decode_image(rle), decode_image(SIIM_DICOM))


@requires_images_real
@pytest.mark.skipif(lossless_decoder_installed(), reason="a JPEG Lossless decoder is installed here")
def test_jpeg_lossless_without_decoder_is_one_line_naming_the_packages(tmp_path):
    path = write_jpeg_lossless_labelled(tmp_path / "x.dcm")
    assert image_problem(path) == LOSSLESS_LINE  # the default check (verify) reads the transfer syntax
    assert image_problem(path, "decode") == LOSSLESS_LINE
    with pytest.raises(ImageReadError) as err:
        decode_image(path)
    assert str(err.value) == f"{path}: {LOSSLESS_LINE}"  # not pydicom's message cut short


def test_decoder_problem_wording():
    assert dicom_decoder_problem(RLELossless) is None  # pydicom decodes RLE itself
    unknown = dicom_decoder_problem("1.2.3.4")
    assert unknown == "DICOM of transfer syntax 1.2.3.4: pydicom has no decoder for this transfer syntax"
    if not lossless_decoder_installed():
        assert "pip install pylibjpeg pylibjpeg-libjpeg" in dicom_decoder_problem("1.2.840.10008.1.2.4.57")


def test_unknown_transfer_syntax_is_refused_by_verify(tmp_path):
    path = write_dicom(tmp_path / "p.dcm", np.full((8, 8), 100, np.uint16))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.3.4"
    ds.save_as(path)
    problem = image_problem(path)
    assert problem is not None and "1.2.3.4" in problem


@requires_images_real
@pytest.mark.skipif(lossless_decoder_installed(), reason="a JPEG Lossless decoder is installed here")
def test_finetune_on_undecodable_dicom_exits_1_and_writes_nothing(tmp_path):
    root = tmp_path / "rsna"
    pids = ["a", "b", "c", "d"]
    (root / "stage_2_train_images").mkdir(parents=True)
    (root / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\n"
                                                   + "".join(f"{p},,,,,0\n" for p in pids))
    for pid in pids[:-1]:
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", np.full((64, 64), 100, np.uint16))
    bad = write_jpeg_lossless_labelled(root / "stage_2_train_images" / "d.dcm")
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["cxr", "finetune", "--preset", "finetune_tiny_classification", "--dataset",
                                      "rsna", "--data", str(root), "-o", str(run)])
    assert result.exit_code == 1, result.output
    assert f"{bad}: {LOSSLESS_LINE}" in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output
    assert not run.exists()


@requires_images_real
@pytest.mark.skipif(dicom_decoder_problem("1.2.840.10008.1.2.4.51", 12) is None,
                    reason="a 12-bit JPEG Extended decoder is installed here")
def test_twelve_bit_jpeg_extended_with_only_pillow_is_refused(tmp_path):
    """Pillow (pydicom's only JPEG Extended plugin out of the box) decodes its 8-bit form only."""
    ds = pydicom.dcmread(SIIM_DICOM)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.51"
    eight = tmp_path / "eight.dcm"
    ds.save_as(eight)
    assert image_problem(eight) is None  # 8-bit: Pillow reads it
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    twelve = tmp_path / "twelve.dcm"
    ds.save_as(twelve)
    assert image_problem(twelve) == ("JPEG Extended (Process 2 and 4) (1.2.840.10008.1.2.4.51) DICOM with 12-bit "
                                     "samples, no decoder installed: pip install pylibjpeg pylibjpeg-libjpeg "
                                     "(or python-gdcm)")
