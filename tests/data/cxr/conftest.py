"""Chest X-ray test helpers: the real data folders (tests skip without them) and tiny fixtures
written in the real layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REAL_DATA

IU_REAL = REAL_DATA / "cxr-image-report-real" / "iu-xray"
REPORTS_REAL = REAL_DATA / "cxr-reports-real"
IMAGES_REAL = REAL_DATA / "cxr-images-real"
TXRV_TESTS = IMAGES_REAL / "torchxrayvision" / "tests"
SIIM_DICOM = TXRV_TESTS / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"

requires_iu_real = pytest.mark.skipif(not IU_REAL.is_dir(), reason=f"real IU X-ray pairs not found at {IU_REAL}")
requires_reports_real = pytest.mark.skipif(not (REPORTS_REAL / "indiana_reports.csv").is_file(),
                                           reason=f"real Open-i reports not found at {REPORTS_REAL}")
requires_images_real = pytest.mark.skipif(not TXRV_TESTS.is_dir(), reason=f"real CXR images not found at {IMAGES_REAL}")

REPORTS = [
    "The heart is normal in size. The lungs are clear. No pleural effusion or pneumothorax.",
    "1. Mild cardiomegaly. 2. Small left pleural effusion. No pneumothorax.",
    "Right upper lobe opacity. XXXX sternotomy wires. The heart size is normal.",
    "Lungs are clear bilaterally. No focal consolidation. Bony structures intact.",
]


def write_png(path: Path, size=(40, 30), seed=0, mode="L") -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    if mode == "L":
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(path)
    elif mode == "RGB":
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    elif mode == "I;16":
        Image.fromarray(rng.integers(0, 4096, (h, w)).astype(np.uint16)).save(path)
    return path


def write_r2gen(root: Path, reports=REPORTS, images_per_study=2, blank_test_key=False) -> Path:
    """A tiny IU X-ray dataset in the R2Gen layout: annotation.json + images/<id>/<k>.png."""
    splits = ["train", "train", "val", "test"]
    data: dict = {"train": [], "val": [], "test": []}
    for i, report in enumerate(reports):
        sid = f"CXR{100 + i}_IM-{i:04d}"
        names = [f"{sid}/{k}.png" for k in range(images_per_study)]
        for k, name in enumerate(names):
            write_png(root / "images" / name, seed=10 * i + k)
        data[splits[i % 4]].append({"id": sid, "report": report, "image_path": names, "split": splits[i % 4]})
    if blank_test_key:
        data["    "] = data.pop("test")
    (root / "annotation.json").write_text(json.dumps(data))
    return root / "annotation.json"


@pytest.fixture
def r2gen_root(tmp_path) -> Path:
    root = tmp_path / "iu_xray"
    write_r2gen(root)
    return root


def write_dicom(path: Path, pixels: np.ndarray, photometric="MONOCHROME2", window=None, rescale=None,
                bits_stored=12) -> Path:
    """A minimal uncompressed DICOM radiograph (explicit VR little endian) written with pydicom."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.PixelData = pixels.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ds.save_as(path, enforce_file_format=True)
    except TypeError:  # pydicom < 3
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)
    return path
