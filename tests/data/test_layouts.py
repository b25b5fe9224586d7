"""medmodal.data.layouts: one registry of layout readers; each family's detect_layout delegates to it."""

from __future__ import annotations

from pathlib import Path

import pytest

import medmodal.data.cxr.readers as cxr
import medmodal.data.endoscopy.layouts as endoscopy
import medmodal.data.fundus.layouts as fundus
import medmodal.data.volumes.layouts as volumes
from medmodal.data.layouts import (Layout, LayoutReader, find_layout, known_layouts, layout_reader, layout_readers,
                                   register_layout, unregister_layout)
from medmodal.errors import LayoutError


@pytest.mark.parametrize("module", [volumes, cxr, endoscopy, fundus])
def test_every_family_registers_its_layouts(module):
    readers = layout_readers(module.FAMILY)
    assert {r.name for r in readers} == set(module.LAYOUTS) - {"auto"}
    assert all(isinstance(r, LayoutReader) for r in readers)


def test_detection_order_is_registration_order():
    assert [r.name for r in layout_readers("volumes")][:2] == ["nnunet", "msd"]  # dataset.json before file names
    assert [r.name for r in layout_readers("cxr")] == ["mimic", "iu", "openi", "csv"]


def test_a_new_family_registers_and_is_detected(tmp_path):
    (tmp_path / "fundus").mkdir()
    (tmp_path / "fundus" / "ok.marker").write_text("")
    register_layout(Layout("toy-family", "marker", read=lambda path, **options: sorted(p.name for p in path.iterdir()),
                           detect=lambda root: root if (root / "ok.marker").is_file() else None))
    register_layout(Layout("toy-family", "manual", read=lambda path, **options: []))  # never auto-detected
    assert find_layout("toy-family", tmp_path / "fundus") == ("marker", tmp_path / "fundus")
    assert find_layout("toy-family", tmp_path) is None
    assert layout_reader("toy-family", "marker").read(tmp_path / "fundus") == ["ok.marker"]
    with pytest.raises(LayoutError, match="unknown toy-family layout 'nope'; choose one of marker, manual"):
        layout_reader("toy-family", "nope")
    unregister_layout("toy-family", "manual")
    assert [r.name for r in layout_readers("toy-family")] == ["marker"]
    unregister_layout("toy-family")
    assert layout_readers("toy-family") == []


def read_flat(root: Path, *, modalities, labels, **_):
    """A layout added to the volumes family (docs/extending.md, "A new data layout"): every file of one
    folder, ``<case>.<sequence>.nii.gz`` and ``<case>.seg.nii.gz``. Readers are asked in registration order
    and this one comes last, so its names must not look like a built-in layout's (``<case>_flair`` would be
    detected as a BraTS 2020 case)."""
    cases, unmatched = {}, []
    for path in sorted(root.glob("*.nii.gz")):
        case_id, _, key = path.name.removesuffix(".nii.gz").rpartition(".")
        case = cases.setdefault(case_id, volumes.Case(case_id, {}, layout="flat", source_labels=labels))
        if key == "seg":
            case.label = path
        elif key in modalities:
            case.images[key] = path
        else:
            unmatched.append(path)
    return list(cases.values()), unmatched


def detect_flat(root: Path):
    return root if any(root.glob("*.seg.nii.gz")) and not any(p.is_dir() for p in root.iterdir()) else None


def test_a_layout_registered_later_is_accepted_by_its_family(tmp_path):
    from tests.conftest import tiny_volumes, save_nifti

    images, label = tiny_volumes((8, 8, 8))
    for case in ("a", "b"):
        for name, image in images.items():
            save_nifti(tmp_path / f"{case}.{name}.nii.gz", image)
        save_nifti(tmp_path / f"{case}.seg.nii.gz", label)
    register_layout(Layout(volumes.FAMILY, "flat", read=read_flat, detect=detect_flat))
    try:
        assert "flat" in known_layouts(volumes.FAMILY, volumes.LAYOUTS)
        for layout in ("flat", "auto"):
            cases = volumes.discover_cases(tmp_path, layout=layout)
            assert cases.layout == "flat" and [c.case_id for c in cases] == ["a", "b"]
            assert set(cases[0].images) == {"flair", "t1", "t1ce", "t2"} and cases[0].label.name == "a.seg.nii.gz"
    finally:
        unregister_layout(volumes.FAMILY, "flat")
    with pytest.raises(LayoutError, match="unknown layout 'flat'; choose one of auto, brats2020"):
        volumes.discover_cases(tmp_path, layout="flat")


def test_family_messages_are_kept(tmp_path):
    with pytest.raises(LayoutError, match="cannot recognise the layout"):
        volumes.detect_layout(Path(tmp_path))
    with pytest.raises(LayoutError, match="cannot recognise the layout"):
        endoscopy.detect_layout(tmp_path)
    with pytest.raises(cxr.CXRDataError, match="no MIMIC-CXR tables"):
        cxr.detect_layout(tmp_path)
