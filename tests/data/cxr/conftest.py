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
KVASIR_SEG_MASKS = REAL_DATA / "endoscopy-real" / "kvasir-seg_from_latent-diffusion-inpainting" / "Kvasir-SEG" / "masks"
requires_kvasir_masks = pytest.mark.skipif(not KVASIR_SEG_MASKS.is_dir(), reason=f"real Kvasir-SEG masks not found at {KVASIR_SEG_MASKS}")


def real_polyp_mask(size: int = 1024, index: int = 0) -> np.ndarray:
    """A real Kvasir-SEG polyp mask (JPEG, thresholded at 128) resized to ``size`` x ``size`` (nearest)."""
    path = sorted(KVASIR_SEG_MASKS.glob("*.jpg"))[index]
    grey = Image.open(path).convert("L").resize((size, size), Image.NEAREST)
    return (np.asarray(grey) >= 128).astype(np.uint8)


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


MIMIC_REPORTS = {
    # (subject, study): report text, in the MIMIC-CXR .txt style
    ("10000001", "50000001"): """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with cough  // eval for pneumonia

 COMPARISON:  None.

 FINDINGS:

 There is no focal consolidation, pleural effusion or pneumothorax.  The
 cardiomediastinal silhouette is normal.

 IMPRESSION:

 No acute cardiopulmonary process.
""",
    ("10000001", "50000002"): """                                 FINAL REPORT
 INDICATION:  Follow-up.

 IMPRESSON:  Interval increase in small left pleural effusion.
""",
    ("10000002", "50000003"): """                                 FINAL REPORT
 Portable chest radiograph was obtained and is unchanged from before, see prior.
""",
    ("10000003", "50000004"): """                                 FINAL REPORT
 HISTORY:  Shortness of breath.

 FINDINGS AND IMPRESSION:  Moderate cardiomegaly with mild pulmonary edema.
""",
    ("10000004", "50000005"): """                                 FINAL REPORT
 CHEST, PA AND LATERAL:

 The lungs are clear. Heart size is normal.
""",
}


def write_mimic(root: Path, reports=MIMIC_REPORTS, extra_rows=()) -> Path:
    """A tiny MIMIC-CXR-JPG folder (gzipped tables, files/pXX/...) with the report .txt files beside."""
    import gzip

    views = {"50000001": ["PA", "LATERAL"], "50000002": ["AP"], "50000003": ["PA"], "50000004": ["PA"],
             "50000005": ["AP", "PA"]}
    splits = {"50000001": "train", "50000002": "train", "50000003": "train", "50000004": "test",
              "50000005": "validate"}
    meta = ["dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns"]
    split = ["dicom_id,study_id,subject_id,split"]
    chexpert = ["subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,"
                "Fracture,Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,"
                "Support Devices"]
    for (subject, study), text in reports.items():
        folder = root / "files" / f"p{subject[:2]}" / f"p{subject}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"s{study}.txt").write_text(text)
        for k, view in enumerate(views.get(study, ["PA"])):
            dicom = f"d{study}-{k}"
            write_png(folder / f"s{study}" / f"{dicom}.jpg", (48, 40), seed=k)
            meta.append(f"{dicom},{subject},{study},CHEST (PA AND LAT),{view},48,40")
            split.append(f"{dicom},{study},{subject},{splits.get(study, 'train')}")
        chexpert.append(f"{subject},{study},,1.0,,-1.0,,,,,,0.0,,,," if study == "50000004" else
                        f"{subject},{study}" + ",," * 7)
    meta += list(extra_rows)
    (root / "mimic-cxr-2.0.0-metadata.csv.gz").write_bytes(gzip.compress(("\n".join(meta) + "\n").encode()))
    (root / "mimic-cxr-2.0.0-split.csv.gz").write_bytes(gzip.compress(("\n".join(split) + "\n").encode()))
    (root / "mimic-cxr-2.0.0-chexpert.csv").write_text("\n".join(chexpert) + "\n")
    return root
