"""Preprocessing as in RFNet / mmFormer / PASSION, plus an on-disk cache of the result.

0. Bring the case to the model's training geometry (:mod:`medmodal.data.volumes.geometry`: axis
   codes and voxel size; nothing happens for a case already in that geometry, or without one).
1. Crop to the brain box: the bounding box of voxels that are non-zero in any present sequence.
2. Z-score each present sequence over the brain mask (that union), zero outside the brain.
   Missing sequences stay all-zero.

Datasets whose spec has ``normalization="volume"`` (MyoPS cardiac MR: a body around the heart,
no brain mask) are cropped the same way but z-scored over *every* voxel of the cropped stack.

The cache stores each case as ``.npy`` files (read with ``mmap_mode="r"``), so a second epoch
does not re-read NIfTI and DDP processes share the page cache instead of holding one copy each.
Cache entries are keyed by the source files' paths, sizes and modification times, the
dataset spec, the label convention, the target geometry, the invalid-sequence policy and the
preprocessing version: editing a source file or training another geometry invalidates its entry.
When the working grid differs from the files' grid, the native label is cached too
(``native_label.npy``): evaluation scores on the native grid.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from medmodal.data.cache import default_cache_dir  # noqa: F401  (re-exported: its former home)
from medmodal.data.volumes.geometry import Geometry, GridTransform, plan_grid, reference_affine
from medmodal.data.volumes.layouts import Case
from medmodal.data.volumes.loading import DEFAULT_AFFINE_TOLERANCE, LoadedCase, load_case, label_spec_for
from medmodal.data.volumes.spec import DatasetSpec
from medmodal.errors import ConfigError
from medmodal.io import atomic_save_npy, atomic_write_json

PREPROCESS_VERSION = 2


@dataclass
class PreprocessedCase:
    """A case ready for training / inference.

    Attributes:
        image: ``[M, x, y, z]`` float32, cropped and z-scored (zeros for missing sequences).
        label: ``[x, y, z]`` uint8 internal classes, or ``None``.
        present: ``[M]`` bool.
        bbox: ``((x0, x1), (y0, y1), (z0, z1))`` crop box in the working grid.
        original_shape: ``(X, Y, Z)`` of the working grid before cropping (the source images'
            shape when no reorientation / resampling was needed).
        spacing: voxel size of the working grid in mm.
        grid: native grid <-> working grid (:class:`GridTransform`; ``grid.identity`` when the case
            was used as stored).
        native_label: ``[*native]`` uint8 label on the files' grid, kept when ``grid`` is not the
            identity (evaluation scores there), else ``None``.
        skipped: sequence -> reason, for invalid sequences treated as missing.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray | None
    present: np.ndarray
    bbox: tuple[tuple[int, int], ...]
    original_shape: tuple[int, ...]
    spacing: tuple[float, ...]
    grid: GridTransform | None = None
    native_label: np.ndarray | None = None
    skipped: dict | None = None


def brain_bbox(image: np.ndarray, present: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Bounding box ``((lo, hi), ...)`` (hi exclusive) of voxels non-zero in any present sequence.

    Args:
        image: ``[M, *spatial]``; present: ``[M]`` bool.
    """
    brain = np.any(image[present] != 0, axis=0)
    if not brain.any():
        return tuple((0, s) for s in brain.shape)
    box = []
    for axis in range(brain.ndim):
        other = tuple(a for a in range(brain.ndim) if a != axis)
        idx = np.flatnonzero(brain.any(axis=other))
        box.append((int(idx[0]), int(idx[-1]) + 1))
    return tuple(box)


def crop(array: np.ndarray, bbox: Sequence[tuple[int, int]]) -> np.ndarray:
    """Crop the trailing ``len(bbox)`` axes of ``array`` to ``bbox``."""
    lead = (slice(None),) * (array.ndim - len(bbox))
    return array[lead + tuple(slice(lo, hi) for lo, hi in bbox)]


def uncrop(array: np.ndarray, bbox: Sequence[tuple[int, int]], shape: Sequence[int], fill=0) -> np.ndarray:
    """Place ``array`` (trailing axes = the crop) back into a volume of trailing shape ``shape``."""
    out = np.full((*array.shape[: array.ndim - len(bbox)], *shape), fill, dtype=array.dtype)
    out[(Ellipsis, *(slice(lo, hi) for lo, hi in bbox))] = array
    return out


def zscore_in_brain(image: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Z-score each present sequence over the brain mask (union of non-zero voxels); 0 outside.

    Args:
        image: ``[M, *spatial]`` float. Returns a new float32 array of the same shape.
    """
    out = np.zeros(image.shape, np.float32)
    brain = np.any(image[present] != 0, axis=0)
    for m in np.flatnonzero(present):
        values = image[m][brain].astype(np.float64)
        std = values.std()
        out[m][brain] = (values - values.mean()) / (std if std > 0 else 1.0)
    return out


def zscore_volume(image: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Z-score each present sequence over all its voxels (no mask); missing sequences stay 0.

    Args:
        image: ``[M, *spatial]`` float. Returns a new float32 array of the same shape.
    """
    out = np.zeros(image.shape, np.float32)
    for m in np.flatnonzero(present):
        values = image[m].astype(np.float64)
        std = values.std()
        out[m] = (values - values.mean()) / (std if std > 0 else 1.0)
    return out


NORMALIZATIONS = {"brain": zscore_in_brain, "volume": zscore_volume}


def preprocess(loaded: LoadedCase, normalization: str = "brain", geometry: Geometry | None = None) -> PreprocessedCase:
    """Bring to ``geometry``, crop to the non-zero box and z-score (see module docstring;
    ``normalization``: brain | volume; ``geometry=None``: the case is used as stored)."""
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"unknown normalization {normalization!r}; choose one of {', '.join(NORMALIZATIONS)}")
    grid = plan_grid(loaded.affine, loaded.image.shape[1:], geometry, case_id=loaded.case_id)
    native_label = None
    if grid.identity:
        image, label = loaded.image, loaded.label
    else:
        image = grid.image_to_working(loaded.image)
        label = grid.label_to_working(loaded.label) if loaded.label is not None else None
        native_label = loaded.label
    bbox = brain_bbox(image, loaded.present)
    cropped = NORMALIZATIONS[normalization](crop(image, bbox), loaded.present)
    label = crop(label, bbox).copy() if label is not None else None
    spacing = loaded.spacing if grid.identity else grid.working_spacing
    return PreprocessedCase(loaded.case_id, cropped, label, loaded.present.copy(), bbox,
                            tuple(image.shape[1:]), spacing, grid, native_label, dict(loaded.skipped))


def _cache_key(case: Case, spec: DatasetSpec, grid: GridTransform | None = None, skip_invalid: bool = False) -> str:
    """Key of a cache entry; ``grid``: the case's transform to the target geometry (the identity and
    ``None`` give the same key: the cached arrays are the same)."""
    h = hashlib.sha1()
    labels = sorted(label_spec_for(case, spec).source_labels.items()) if case.label else case.source_labels
    target = json.dumps(grid.to_dict() if grid is not None and not grid.identity else None, sort_keys=True)
    h.update(f"v{PREPROCESS_VERSION}|{spec.name}|{spec.modalities}|{labels}|{target}|{skip_invalid}".encode())
    h.update(json.dumps(case.channels, sort_keys=True).encode())
    for name, path in sorted({**case.images, **({"seg": case.label} if case.label else {})}.items()):
        st = Path(path).stat()
        h.update(f"|{name}={Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


class PreprocessedCache:
    """Preprocess cases once and keep the result as memory-mappable ``.npy`` files.

    Layout: ``<cache_dir>/<case_id>/{image.npy, label.npy, [native_label.npy], meta.json}``;
    ``meta.json`` holds the key, bbox, presence, spacing and the grid transform. ``get`` returns
    arrays memory-mapped read-only.

    Args:
        geometry: the model's training geometry (``None``: cases are used as stored).
        affine_tolerance: allowed affine difference between a case's files, in voxels.
        skip_invalid: treat constant / all-zero sequences as missing instead of refusing the case.
    """

    def __init__(self, cache_dir: str | Path, spec: DatasetSpec, affine_tolerance: float = DEFAULT_AFFINE_TOLERANCE,
                 geometry: Geometry | None = None, skip_invalid: bool = False):
        self.cache_dir = Path(cache_dir)
        self.spec = spec
        self.affine_tolerance = affine_tolerance
        self.geometry = geometry
        self.skip_invalid = skip_invalid
        self._grids: dict[tuple, GridTransform] = {}

    def _grid(self, case: Case) -> GridTransform | None:
        """The case's transform to ``geometry`` from its reference header (memoised per file version)."""
        if self.geometry is None:
            return None
        first = next((m for m in self.spec.modalities if m in case.images), None)
        if first is None:
            return None
        path = Path(case.images[first])
        st = path.stat()
        memo = (str(path), st.st_size, st.st_mtime_ns)
        if memo not in self._grids:
            affine, shape = reference_affine(path)
            self._grids[memo] = plan_grid(affine, shape, self.geometry)
        return self._grids[memo]

    def _key(self, case: Case) -> str:
        return _cache_key(case, self.spec, self._grid(case), self.skip_invalid)

    def _folder(self, case: Case) -> Path:
        return self.cache_dir / case.case_id

    def is_cached(self, case: Case) -> bool:
        meta = self._folder(case) / "meta.json"
        if not meta.is_file():
            return False
        try:
            return json.loads(meta.read_text()).get("key") == self._key(case)
        except (OSError, json.JSONDecodeError):
            return False

    def build(self, case: Case) -> PreprocessedCase:
        """Read, validate, preprocess and store one case (atomic per file; meta written last)."""
        normalization = getattr(self.spec, "normalization", "brain")
        loaded = load_case(case, self.spec, affine_tolerance=self.affine_tolerance, skip_invalid=self.skip_invalid)
        pre = preprocess(loaded, normalization, self.geometry)
        folder = self._folder(case)
        atomic_save_npy(folder / "image.npy", pre.image)
        if pre.label is not None:
            atomic_save_npy(folder / "label.npy", pre.label)
        if pre.native_label is not None:
            atomic_save_npy(folder / "native_label.npy", pre.native_label)
        meta = {
            "key": self._key(case), "case_id": pre.case_id, "present": pre.present.tolist(),
            "bbox": pre.bbox, "original_shape": pre.original_shape, "spacing": pre.spacing,
            "has_label": pre.label is not None, "has_native_label": pre.native_label is not None,
            "grid": pre.grid.to_dict() if pre.grid is not None else None, "skipped": pre.skipped or {},
        }
        atomic_write_json(folder / "meta.json", meta)
        return pre

    def get(self, case: Case) -> PreprocessedCase:
        if not self.is_cached(case):
            self.build(case)
        folder = self._folder(case)
        meta = json.loads((folder / "meta.json").read_text())
        image = np.load(folder / "image.npy", mmap_mode="r")
        label = np.load(folder / "label.npy", mmap_mode="r") if meta["has_label"] else None
        native = np.load(folder / "native_label.npy", mmap_mode="r") if meta.get("has_native_label") else None
        grid = GridTransform.from_dict(meta["grid"]) if meta.get("grid") else None
        return PreprocessedCase(
            meta["case_id"], image, label, np.array(meta["present"], bool),
            tuple(tuple(b) for b in meta["bbox"]), tuple(meta["original_shape"]), tuple(meta["spacing"]),
            grid, native, meta.get("skipped") or {},
        )

    def build_all(self, cases: Sequence[Case], progress: bool = False) -> None:
        """Make sure every case is cached (validating each; the first bad case raises)."""
        todo = [c for c in cases if not self.is_cached(c)]
        if not (progress and todo):
            for case in todo:
                self.build(case)
            return
        from rich.progress import Progress

        with Progress(transient=True) as bar:  # closed (and cleared) even when a case is refused
            for case in bar.track(todo, description="preprocessing"):
                self.build(case)
