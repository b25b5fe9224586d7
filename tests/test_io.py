"""Atomic outputs: all-or-nothing, and normal file permissions."""

import os
import stat

import pytest

from medmodal.io import atomic_path, atomic_write_text


def test_atomic_write_has_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "hello")
    finally:
        os.umask(old)
    assert path.read_text() == "hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0o600


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "b.nii.gz") as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("writer crashed")
    assert list(tmp_path.iterdir()) == []
