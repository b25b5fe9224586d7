"""Lightning data module for segmentation with missing sequences (3-D crops, or 2-D slices for MyoPS).

The training geometry (axis codes + median voxel size of the *training* cases, read from the
files' headers; :mod:`medmodal.data.volumes.geometry`) is derived first: every case, validation
and test included, is brought to it, and the model bundle records it for evaluate / predict.

On rank 0, ``prepare_data`` validates and caches every case (``.npy`` files, memory-mapped
later, so DDP processes share one copy through the page cache: RAM per process is about one
batch of crops plus the worker prefetch). Splits are read from / written next to the data and
copied into the run folder together with the missing-sequence CSV.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
import torch

from medmodal.config import DataConfig
from medmodal.data.volumes.dataset import CaseDataset, CropDataset, MissingProtocol
from medmodal.data.volumes.geometry import Geometry, reference_affine, training_geometry
from medmodal.data.volumes.layouts import discover_cases
from medmodal.data.missing import assign_imbalanced, read_missing_csv, write_missing_csv
from medmodal.data.cache import default_cache_dir
from medmodal.data.volumes.preprocess import PreprocessedCache
from medmodal.data.volumes.slices import SliceDataset
from medmodal.data.sampler import EpochSampler
from medmodal.data.volumes.spec import get_spec
from medmodal.data.splits import default_split_path, load_or_make_splits, write_splits
from medmodal.errors import ConfigError


class SegmentationDataModule(L.LightningDataModule):
    """Train crops (with a missing-sequence protocol) and whole validation / test cases."""

    def __init__(self, cfg: DataConfig, run_dir: str | Path, seed: int = 0):
        super().__init__()
        self.cfg, self.run_dir, self.seed = cfg, Path(run_dir), seed
        self.spec = get_spec(cfg.dataset)
        self.crop_size = self._check_crop_size()  # fail before caching the dataset
        self.cases = None
        self.splits: dict[str, list[str]] | None = None
        self._geometry: Geometry | None = None

    # ------------------------------------------------------------------ set-up
    def _discover(self):
        if self.cases is None:
            found = discover_cases(self.cfg.root, self.cfg.layout, self.cfg.mapping, self.spec.modalities,
                                   self.cfg.labels)
            self.cases = {c.case_id: c for c in found}
        return self.cases

    @property
    def geometry(self) -> Geometry:
        """Training geometry: ``data.orientation`` / ``data.target_spacing``, else derived from the
        training split's headers (codes most cases share, median voxel size)."""
        if self._geometry is None:
            affines = []
            for case in self.split_cases("train"):
                first = next(m for m in self.spec.modalities if m in case.images) if case.images else None
                if first is not None:
                    affines.append(reference_affine(case.images[first])[0])
            self._geometry = training_geometry(affines, self.spec.spatial_dims, self.cfg.orientation,
                                               self.cfg.target_spacing)
        return self._geometry

    @property
    def cache(self) -> PreprocessedCache:
        cache_dir = self.cfg.cache_dir or default_cache_dir(self.cfg.root)
        return PreprocessedCache(cache_dir, self.spec, self.cfg.affine_tolerance, geometry=self.geometry)

    def split_cases(self, name: str):
        cases = self._discover()
        if self.splits is None:
            self.splits = load_or_make_splits(self.cfg.root, list(cases), self.cfg.split_seed, self.cfg.split_fractions)
        return [cases[c] for c in self.splits[name]]

    def prepare_data(self) -> None:
        """Rank 0 only: validate + cache all cases, write the split and missing-sequence files."""
        self.cache.build_all(list(self._discover().values()), progress=False)
        self.split_cases("train")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        split_file = default_split_path(self.cfg.root, self.cfg.split_seed)
        if split_file.is_file():
            shutil.copyfile(split_file, self.run_dir / "splits.json")
        else:
            write_splits(self.run_dir / "splits.json", self.splits, self.cfg.split_seed)
        if self.cfg.missing == "imbalanced":
            self._missing_assignment()

    def _missing_csv_path(self) -> Path:
        return Path(self.cfg.missing_csv) if self.cfg.missing_csv else self.run_dir / "missing_sequences.csv"

    def _missing_assignment(self) -> dict:
        path = self._missing_csv_path()
        if not path.is_file():
            ids = [c.case_id for c in self.split_cases("train")]
            assignment = assign_imbalanced(ids, self.cfg.missing_rates, self.spec.modalities, self.cfg.missing_seed)
            write_missing_csv(path, assignment, self.spec.modalities)
        elif self.cfg.missing_csv and path != self.run_dir / "missing_sequences.csv":
            shutil.copyfile(path, self.run_dir / "missing_sequences.csv")
        return read_missing_csv(path, self.spec.modalities)

    def missing_protocol(self) -> MissingProtocol:
        if self.cfg.missing == "imbalanced":
            return MissingProtocol("imbalanced", self._missing_assignment())
        return MissingProtocol(self.cfg.missing)

    def _check_crop_size(self) -> tuple[int, ...]:
        """``data.crop_size`` must have one value per spatial axis the model sees (``spec.spatial_dims``)."""
        crop = tuple(int(c) for c in self.cfg.crop_size)
        dims = self.spec.spatial_dims
        if len(crop) != dims:
            kind = "2-D slices (H, W)" if dims == 2 else "3-D crops (X, Y, Z)"
            raise ConfigError(f"data.crop_size {list(crop)} has {len(crop)} values, but {self.spec.name} trains on "
                              f"{kind}: give {dims} values, e.g. data.crop_size=[{','.join(['128'] * dims)}]")
        return crop

    def setup(self, stage: str | None = None) -> None:
        """Training: random 3-D crops (``CropDataset``) or, for 2-D specs, random slices
        (``SliceDataset``, along the last axis). Validation / test: whole cases (``CaseDataset``)."""
        dataset = SliceDataset if self.spec.spatial_dims == 2 else CropDataset
        self.train_set = dataset(
            self.cache, self.split_cases("train"), self.crop_size, self.missing_protocol(),
            augment=True, samples_per_epoch=self.cfg.samples_per_epoch, seed=self.seed,
            foreground_ratio=self.cfg.foreground_ratio,
        )
        self.val_set = CaseDataset(self.cache, self.split_cases("val"))
        self.test_set = CaseDataset(self.cache, self.split_cases("test"))

    # ------------------------------------------------------------- loaders
    def train_dataloader(self):
        workers = self.cfg.num_workers
        return torch.utils.data.DataLoader(
            self.train_set, batch_size=self.cfg.batch_size, sampler=EpochSampler(len(self.train_set), self.seed),
            num_workers=workers, pin_memory=torch.cuda.is_available(),
            drop_last=len(self.train_set) >= self.cfg.batch_size, persistent_workers=workers > 0,
        )

    def val_dataloader(self):
        # whole cases of different sizes: batch of one, no collation of the metadata
        return torch.utils.data.DataLoader(self.val_set, batch_size=None, shuffle=False, num_workers=0)
