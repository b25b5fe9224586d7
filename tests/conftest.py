"""Shared test helpers: tiny hand-made NIfTI cases and the location of the real data."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("MEDMODAL_SHARED_DATA", REPO.parent / "shared" / "data"))
BRATS_REAL = REAL_DATA / "brats-real"
TCGA_MAPPING = "flair=*_fla_bet*,t1=*_t1_bet*,t1ce=*_t1c_bet*,t2=*_t2_bet*,seg=*_seg_fusion*"

# Tests may know where the lab's shared data lies; the library does not (it reads arguments and MEDMODAL_*
# variables only). Where the shared copies exist, point the library's variables at them, as before.
if (REAL_DATA / "cxr-reports-real" / "indiana_reports.csv").is_file():
    os.environ.setdefault("MEDMODAL_IU_REPORTS", str(REAL_DATA / "cxr-reports-real" / "indiana_reports.csv"))
if (BRATS_REAL / "TCGA-DU-7294").is_dir():
    os.environ.setdefault("MEDMODAL_REAL_CASE", str(BRATS_REAL / "TCGA-DU-7294"))

requires_real_data = pytest.mark.skipif(not BRATS_REAL.is_dir(), reason=f"real data not found at {BRATS_REAL}")


def save_nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return path


def tiny_volumes(shape=(16, 16, 16), seed=0):
    """Four int16 sequences with a brain ellipsoid and a label volume in BraTS 2020 values {0,1,2,4}."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    brain = (grid**2).sum(0) < 0.8
    tumour = ((grid - 0.2) ** 2).sum(0)
    label = np.zeros(shape, np.uint8)
    label[(tumour < 0.25) & brain] = 2
    label[(tumour < 0.12) & brain] = 4
    label[(tumour < 0.04) & brain] = 1
    images = {}
    for i, name in enumerate(("flair", "t1", "t1ce", "t2")):
        img = (100 + 10 * i + rng.normal(0, 5, shape)) * brain
        img[label == 4] += 80 if name == "t1ce" else 0
        images[name] = img.astype(np.int16)
    return images, label


def write_brats2020_case(root: Path, case_id: str, shape=(16, 16, 16), skip=(), seed=0, label=True) -> Path:
    images, seg = tiny_volumes(shape, seed)
    folder = root / case_id
    for name, img in images.items():
        if name not in skip:
            save_nifti(folder / f"{case_id}_{name}.nii.gz", img)
    if label:
        save_nifti(folder / f"{case_id}_seg.nii.gz", seg)
    return folder


@pytest.fixture
def brats2020_root(tmp_path) -> Path:
    root = tmp_path / "brats2020"
    for i in range(3):
        write_brats2020_case(root, f"BraTS20_Training_{i:03d}", seed=i)
    return root
