"""Dataset specifications: which sequences a dataset has and what its label values mean.

Sequences are always addressed by *name*; the order in :attr:`DatasetSpec.modalities` is
medmodal's internal canonical order (the channel order of every tensor the models see).
Label conventions live here, per dataset, never in model or metric code:

* ``source_labels`` maps each label value found in the files to a contiguous class index
  (0 = background) used internally for training.
* ``regions`` lists the evaluated regions as sets of *class indices*.

Example (BraTS 2020): file labels ``{0, 1, 2, 4}`` become classes ``{0, 1, 2, 3}``;
WT = {1, 2, 3}, TC = {1, 3}, ET = {3}.

MyoPS 2020 (cardiac MR, myocardial pathology): sequences ``c0`` (bSSFP cine), ``de`` (LGE,
late gadolinium enhancement) and ``t2`` (T2-weighted), named after the files'
``_C0`` / ``_DE`` / ``_T2`` suffixes. File labels 0 background, 500 LV blood pool,
200 LV myocardium (normal), 600 RV blood pool, 1220 myocardial edema, 2221 myocardial scar
become classes 0 background, 1 LV blood pool, 2 LV myocardium, 3 RV, 4 edema, 5 scar (the
MyoPS 2020 label description, as in the organisers' MyoPS-Net code: ``1-200-myo, 2-500-lv`` in
``QJYBall/MyoPS-Net`` ``criterion/metrics.py``). Regions: the challenge targets ``Scar`` = {scar} and
``Edema+Scar`` = {edema, scar}; also reported: ``LV`` = LV blood pool, ``Myo`` = the whole LV
myocardium {normal myocardium, edema, scar} (pathology lies inside the myocardium), ``RV`` =
RV blood pool. The volumes are short-axis stacks of a few thick slices, so models work on
2-D slices (``spatial_dims=2``), and each sequence is z-scored over its whole stack
(``normalization="volume"``: there is no brain mask).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
        spatial_dims: 3 (models see volumes / 3-D crops) or 2 (models see slices along the
            last axis, e.g. MyoPS short-axis stacks).
        normalization: ``"brain"`` (crop to the non-zero box, z-score inside the union of
            non-zero voxels: skull-stripped BraTS) or ``"volume"`` (z-score over every voxel of
            the cropped stack: images with a body/background, e.g. cardiac MR).
        extra: free-form metadata (e.g. long sequence names).
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
    normalization: str = "brain"

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
        return replace(self, name=name or self.name, source_labels=dict(source_labels))


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

#: MyoPS 2020 sequences, canonical order: bSSFP (``_C0``), LGE (``_DE``), T2 (``_T2``).
MYOPS_MODALITIES = ("c0", "de", "t2")

MYOPS2020 = DatasetSpec(
    name="myops2020",
    modalities=MYOPS_MODALITIES,
    source_labels={0: 0, 500: 1, 200: 2, 600: 3, 1220: 4, 2221: 5},
    class_names=("background", "lv_blood_pool", "lv_myocardium", "rv_blood_pool", "edema", "scar"),
    regions={"Scar": (5,), "Edema+Scar": (4, 5), "LV": (1,), "Myo": (2, 4, 5), "RV": (3,)},
    et_class=None,
    spatial_dims=2,
    normalization="volume",
    extra={"sequence_names": {"c0": "bSSFP", "de": "LGE", "t2": "T2"}},
)

SPECS: dict[str, DatasetSpec] = {s.name: s for s in (BRATS2020, BRATS2023, MYOPS2020)}


def get_spec(name: str) -> DatasetSpec:
    """Look up a registered :class:`DatasetSpec` by name."""
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown dataset spec {name!r}; known: {', '.join(sorted(SPECS))}") from None


def register_spec(spec: DatasetSpec) -> DatasetSpec:
    SPECS[spec.name] = spec
    return spec
