"""medmodal.data.layouts: one registry of layout readers; each family's detect_layout delegates to it."""

from __future__ import annotations

from pathlib import Path

import pytest

import medmodal.data.cxr.readers as cxr
import medmodal.data.endoscopy.layouts as endoscopy
import medmodal.data.volumes.layouts as volumes
from medmodal.data.layouts import Layout, LayoutReader, find_layout, layout_reader, layout_readers, register_layout
from medmodal.errors import LayoutError


@pytest.mark.parametrize("module", [volumes, cxr, endoscopy])
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


def test_family_messages_are_kept(tmp_path):
    with pytest.raises(LayoutError, match="cannot recognise the layout"):
        volumes.detect_layout(Path(tmp_path))
    with pytest.raises(LayoutError, match="cannot recognise the layout"):
        endoscopy.detect_layout(tmp_path)
    with pytest.raises(cxr.CXRDataError, match="no MIMIC-CXR tables"):
        cxr.detect_layout(tmp_path)
