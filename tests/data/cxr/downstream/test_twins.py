"""The synthetic twins: deterministic per seed, written in the datasets' own files."""

import hashlib

import pydicom
import pytest

from medmodal.data.cxr.downstream import DATASETS, synth_downstream


def digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", ["siim", "covidx"])
def test_deterministic_per_seed(tmp_path, name):
    a = synth_downstream(tmp_path / "a", name, images=12, size=64, seed=1)
    b = synth_downstream(tmp_path / "b", name, images=12, size=64, seed=1)
    c = synth_downstream(tmp_path / "c", name, images=12, size=64, seed=2)
    assert a[name]["images"] == 12 and digest(tmp_path / "a" / name) == digest(tmp_path / "b" / name)
    assert digest(tmp_path / "a" / name) != digest(tmp_path / "c" / name) and c


def test_every_dataset_has_a_twin_in_its_layout(twins):
    assert set(twins) == set(DATASETS)
    layout = {"chexpert": ["train.csv", "valid.csv", "train", "valid"],
              "rsna": ["stage_2_train_labels.csv", "stage_2_detailed_class_info.csv", "stage_2_train_images"],
              "covidx": ["train_COVIDx9A.txt", "test_COVIDx9A.txt", "train", "test"],
              "siim": ["train-rle.csv", "dicom-images-train"], "object-cxr": ["train.csv", "dev.csv", "train", "dev"]}
    for name, entries in layout.items():
        assert sorted(p.name for p in twins[name].iterdir()) == sorted(entries), name
    dicom = next((twins["siim"] / "dicom-images-train").rglob("*.dcm"))
    ds = pydicom.dcmread(dicom)
    assert ds.SOPInstanceUID == dicom.stem and ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert len(dicom.relative_to(twins["siim"] / "dicom-images-train").parts) == 3  # <study>/<series>/<id>.dcm
