"""Shared pieces of the downstream synthetic twins (``medmodal cxr synth-downstream``).

Every twin draws its radiographs with the ``medmodal cxr synth`` generator
(:func:`medmodal.data.cxr.synthetic.render_radiograph`) from findings chosen per dataset (each
dataset module documents its mapping), and takes the generator's masks and lesion boxes as
ground truth; it then writes them in that dataset's own files, so the real reader reads them.
Each image ``k`` of a twin is drawn with ``numpy.random.default_rng([seed, dataset code, k])``:
the output depends only on (seed, size, images).

Helpers: :func:`draw` (render + optional crop to a non-square shape, boxes and masks cropped
alike), :func:`save_picture` (PNG / JPEG, grey or RGB), :func:`save_dicom` (8-bit MONOCHROME2
radiograph written with pydicom, uncompressed, with proper UIDs), :func:`dicom_uid`,
:func:`fake_uuid`, :func:`write_csv`.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from medmodal.data.cxr.findings import Finding
from medmodal.data.cxr.synthetic import render_radiograph
from medmodal.errors import ConfigError
from medmodal.io import atomic_path, atomic_write_text

#: Per-dataset code in the random streams, so twins of one seed differ from each other.
DATASET_CODES = {"chexpert": 101, "rsna": 102, "covidx": 103, "siim": 104, "object-cxr": 105}
MIN_SIZE = 64


@dataclass
class Picture:
    """A drawn radiograph: uint8 image ``[H, W]``, masks by name, boxes ``(label, x0, y0, x1, y1)``."""

    image: np.ndarray
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    boxes: list[tuple[str, float, float, float, float]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def boxes_of(self, names: Sequence[str]) -> list[tuple[float, float, float, float]]:
        return [tuple(b[1:]) for b in self.boxes if b[0] in names]


def rng_for(dataset: str, seed: int, k: int) -> np.random.Generator:
    return np.random.default_rng([seed, DATASET_CODES[dataset], k])


def draw(findings: Sequence[Finding], size: int, rng: np.random.Generator,
         shape: tuple[int, int] | None = None) -> Picture:
    """Render ``findings`` on a ``size x size`` radiograph, then crop it centred to ``shape = (H, W)``.

    Boxes are shifted with the crop and clipped; a box that leaves the crop is dropped.
    """
    drawing = render_radiograph(list(findings), size, rng)
    picture = Picture(drawing.image, dict(drawing.masks), [tuple(b) for b in drawing.boxes], list(findings))
    if shape is None or tuple(shape) == (size, size):
        return picture
    height, width = shape
    if height > size or width > size:
        raise ValueError(f"crop {height} x {width} is larger than the {size} x {size} drawing")
    top, left = (size - height) // 2, (size - width) // 2
    image = picture.image[top:top + height, left:left + width].copy()
    masks = {n: m[top:top + height, left:left + width].copy() for n, m in picture.masks.items()}
    boxes = []
    for label, x0, y0, x1, y1 in picture.boxes:
        x0, x1 = max(0, x0 - left), min(width, x1 - left)
        y0, y1 = max(0, y0 - top), min(height, y1 - top)
        if x1 > x0 and y1 > y0:
            boxes.append((label, x0, y0, x1, y1))
    return Picture(image, masks, boxes, picture.findings)


def save_picture(path: Path, image: np.ndarray, rgb: bool = False, quality: int = 92) -> Path:
    """Write ``image`` (uint8 grey) as PNG or JPEG by suffix, optionally as 3-channel RGB."""
    from PIL import Image

    picture = Image.fromarray(image)
    if rgb:
        picture = picture.convert("RGB")
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    with atomic_path(path) as tmp:
        picture.save(tmp, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return path


def dicom_uid(*parts: object) -> str:
    """A valid DICOM UID under pydicom's root, derived from ``parts`` (the same parts, the same UID)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def fake_uuid(rng: np.random.Generator) -> str:
    """A random version-4 UUID string from ``rng`` (RSNA patientIds, SIIM / COVIDx patient ids)."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def save_dicom(path: Path, image: np.ndarray, *, sop_uid: str, study_uid: str, series_uid: str,
               patient_id: str, sex: str = "", age: str = "", view: str = "PA", modality: str = "CR") -> Path:
    """An 8-bit MONOCHROME2 secondary-capture radiograph, explicit VR little endian (uncompressed).

    The tags follow the RSNA / SIIM files (Patient ID, sex, age, Body Part CHEST, View Position,
    Conversion Type WSD); the real SIIM files are JPEG-baseline compressed, these are not.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyDate, ds.StudyTime = "19010101", "000000.00"
    ds.Modality, ds.ConversionType = modality, "WSD"
    ds.SeriesDescription = f"view: {view}"
    ds.PatientName = patient_id
    ds.PatientID = patient_id
    ds.PatientSex, ds.PatientAge = sex, age
    ds.BodyPartExamined, ds.ViewPosition = "CHEST", view
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape
    ds.PixelSpacing = [0.168, 0.168]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(image, np.uint8).tobytes()
    with atomic_path(path) as tmp:
        try:
            ds.save_as(tmp, enforce_file_format=True)
        except TypeError:  # pydicom < 3
            ds.is_little_endian, ds.is_implicit_VR = True, False
            ds.save_as(tmp, write_like_original=False)
    return path


def write_csv(path: Path, rows: Sequence[Sequence[object]], delimiter: str = ",") -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def check_twin_args(images: int, size: int, minimum: int = 10) -> None:
    """Raises ValueError for too few images or too small a drawing."""
    if images < minimum:
        raise ConfigError(f"a twin needs at least {minimum} images, got {images}")
    if size < MIN_SIZE:
        raise ConfigError(f"image size must be >= {MIN_SIZE} pixels, got {size}")


def side(rng: np.random.Generator) -> str:
    return str(rng.choice(["left", "right"]))


def severity(rng: np.random.Generator) -> str:
    return str(rng.choice(["mild", "moderate", "severe"], p=[0.45, 0.4, 0.15]))


def zone(rng: np.random.Generator) -> str:
    return str(rng.choice(["upper", "middle", "lower"], p=[0.25, 0.25, 0.5]))
