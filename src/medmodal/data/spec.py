"""Dataset specifications: which sequences a dataset has and what its label values mean.

Sequences are always addressed by *name*; the order in :attr:`DatasetSpec.modalities` is
medmodal's internal canonical order (the channel order of every tensor the models see).
Label conventions live here, per dataset, never in model or metric code:

* ``source_labels`` maps each label value found in the files to a contiguous class index
  (0 = background) used internally for training.
* ``regions`` lists the evaluated regions as sets of *class indices*.

Example (BraTS 2020): file labels ``{0, 1, 2, 4}`` become classes ``{0, 1, 2, 3}``;
WT = {1, 2, 3}, TC = {1, 3}, ET = {3}.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DatasetSpec:
    """Static description of a multi-sequence segmentation dataset.

    Args:
        name: short identifier (``"brats2020"``).
        modalities: canonical sequence names, in internal channel order.
        source_labels: label value in the files -> internal class index (contiguous from 0).
        class_names: one name per internal class index.
        regions: evaluated region name -> tuple of internal class indices.
        et_class: internal class of the region that gets small-component post-processing
            (BraTS enhancing tumour), or ``None``.
        et_replacement: internal class that replaces a too-small ET prediction.
    """

    name: str
    modalities: tuple[str, ...]
    source_labels: dict[int, int]
    class_names: tuple[str, ...]
    regions: dict[str, tuple[int, ...]]
    et_class: int | None = None
    et_replacement: int = 1
    spatial_dims: int = 3
    extra: dict = field(default_factory=dict)

    @property
    def num_modalities(self) -> int:
        return len(self.modalities)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(self.regions)

    def modality_index(self, name: str) -> int:
        try:
            return self.modalities.index(name)
        except ValueError:
            raise KeyError(f"unknown sequence {name!r} for {self.name}; known: {', '.join(self.modalities)}") from None

    def allowed_label_values(self) -> set[int]:
        return set(self.source_labels)

    def encode_labels(self, label: np.ndarray) -> np.ndarray:
        """File label values -> internal class indices (uint8). Assumes values were validated."""
        lut = np.zeros(max(self.source_labels) + 1, dtype=np.uint8)
        for value, cls in self.source_labels.items():
            lut[value] = cls
        return lut[label.astype(np.int64)]

    def decode_labels(self, classes: np.ndarray) -> np.ndarray:
        """Internal class indices -> file label values (the source convention)."""
        inverse = np.zeros(self.num_classes, dtype=np.int16)
        for value, cls in self.source_labels.items():
            inverse[cls] = value
        dtype = np.uint8 if max(self.source_labels) < 256 else np.uint16
        return inverse[classes.astype(np.int64)].astype(dtype)

    def with_source_labels(self, source_labels: dict[int, int], name: str | None = None) -> "DatasetSpec":
        """Same dataset with another file-label convention (e.g. BraTS 2023 ET = 3)."""
        return DatasetSpec(
            name=name or self.name, modalities=self.modalities, source_labels=dict(source_labels),
            class_names=self.class_names, regions=self.regions, et_class=self.et_class,
            et_replacement=self.et_replacement, spatial_dims=self.spatial_dims, extra=self.extra,
        )


BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")

BRATS2020 = DatasetSpec(
    name="brats2020",
    modalities=BRATS_MODALITIES,
    source_labels={0: 0, 1: 1, 2: 2, 4: 3},
    class_names=("background", "necrosis", "edema", "enhancing"),
    regions={"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)},
    et_class=3,
    et_replacement=1,
)

#: BraTS 2023 glioma: enhancing tumour is label 3 in the files.
BRATS2023 = BRATS2020.with_source_labels({0: 0, 1: 1, 2: 2, 3: 3}, name="brats2023")

SPECS: dict[str, DatasetSpec] = {s.name: s for s in (BRATS2020, BRATS2023)}


def get_spec(name: str) -> DatasetSpec:
    """Look up a registered :class:`DatasetSpec` by name."""
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown dataset spec {name!r}; known: {', '.join(sorted(SPECS))}") from None


def register_spec(spec: DatasetSpec) -> DatasetSpec:
    SPECS[spec.name] = spec
    return spec
