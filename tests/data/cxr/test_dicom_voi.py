"""The real SIIM DICOM given a VOI LUT after a non-integer rescale (issue 25, item 7): decoded without
pydicom's "VOI LUT on a float input array" warning, and with the pixels the LUT gives."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from medmodal.data.images import _to_uint8, load_dicom
from tests.data.cxr.conftest import SIIM_DICOM, requires_images_real


def with_voi_lut(path, out):
    """The real DICOM with a rescale (slope 2, intercept 0.5: float values) and a 12-bit gamma VOI LUT of 16-bit entries."""
    import pydicom
    from pydicom.dataset import Dataset

    ds = pydicom.dcmread(path)
    ds.RescaleSlope, ds.RescaleIntercept = 2, 0.5
    item = Dataset()
    entries, first = 400, 10
    lut = np.rint(4095 * (np.arange(entries) / (entries - 1)) ** 0.5).astype(np.uint16)
    item.LUTDescriptor = [entries, first, 16]
    item.add_new(0x00283006, "US", lut.tolist())   # LUT Data, 16-bit entries
    ds.VOILUTSequence = [item]
    ds.save_as(out)
    return out, lut, first


@requires_images_real
def test_voi_lut_after_a_float_rescale_warns_nothing(tmp_path, caplog):
    import pydicom

    path, lut, first = with_voi_lut(SIIM_DICOM, tmp_path / "voi.dcm")
    stored = pydicom.dcmread(SIIM_DICOM).pixel_array.astype(np.int64)
    # what the LUT gives (and what medmodal gave before, through pydicom's float path with its warning)
    index = np.clip(np.floor(stored * 2 + 0.5).astype(np.int64) - first, 0, len(lut) - 1)
    expected = _to_uint8(lut[index])
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        got = load_dicom(path)
    assert [str(w.message) for w in caught] == []
    assert "VOI LUT" not in caplog.text
    assert np.array_equal(got, expected)
    try:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pydicom < 3
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
    ds = pydicom.dcmread(path)
    with pytest.warns(UserWarning, match="VOI LUT on a float input array"):   # the old path warned ...
        before = _to_uint8(np.asarray(apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds), np.float64))
    assert np.array_equal(got, before)                                         # ... with the same pixels
    assert np.array_equal(load_dicom(SIIM_DICOM), _to_uint8(stored))          # without a LUT: as stored
