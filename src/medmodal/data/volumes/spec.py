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
from typing import Any, Mapping

import numpy as np

from medmodal.errors import DataError, UnknownNameError


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
        extra: free-form metadata (e.g. long sequence names; ``classes_title``: the class set named
            without a label convention, ``"BraTS tumour classes"``, shared by BraTS 2020 and 2023).
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
            raise UnknownNameError(f"unknown sequence {name!r} for {self.name}; known: {', '.join(self.modalities)}") from None

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
    extra={"classes_title": "BraTS tumour classes"},
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
    extra={"sequence_names": {"c0": "bSSFP", "de": "LGE", "t2": "T2"}, "classes_title": "MyoPS classes"},
)

SPECS: dict[str, DatasetSpec] = {s.name: s for s in (BRATS2020, BRATS2023, MYOPS2020)}


def get_spec(name: str) -> DatasetSpec:
    """Look up a registered :class:`DatasetSpec` by name."""
    try:
        return SPECS[name]
    except KeyError:
        raise UnknownNameError(f"unknown dataset spec {name!r}; known: {', '.join(sorted(SPECS))}") from None


def register_spec(spec: DatasetSpec) -> DatasetSpec:
    SPECS[spec.name] = spec
    return spec


# ------------------------------------------------------------------ declared label conventions
# nnU-Net / Medical Segmentation Decathlon ``dataset.json`` files name their label values. nnU-Net's
# own BraTS conversion (nnunetv2/dataset_conversion/Dataset137_BraTS21.py) writes 1 = edema,
# 2 = necrosis / non-enhancing core, 3 = enhancing, declared region-based as whole tumour (1, 2, 3),
# tumour core (2, 3), enhancing tumour (3,); the Decathlon's Task01 declares "1": "edema",
# "2": "non-enhancing tumor", "3": "enhancing tumour". Names are matched to the spec's classes.

def _norm(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


#: normalised declared class name -> canonical class name (a ``class_names`` entry of a spec).
CLASS_NAME_ALIASES = {
    "background": "background", "bg": "background", "clear": "background",
    # BraTS glioma sub-regions
    "necrosis": "necrosis", "necrotic": "necrosis", "ncr": "necrosis", "net": "necrosis", "ncrnet": "necrosis",
    "necroticcore": "necrosis", "necrotictumorcore": "necrosis", "necrotictumourcore": "necrosis",
    "nonenhancing": "necrosis", "nonenhancingtumor": "necrosis", "nonenhancingtumour": "necrosis",
    "nonenhancingtumorcore": "necrosis", "nonenhancingtumourcore": "necrosis", "necrosisnonenhancing": "necrosis",
    "edema": "edema", "oedema": "edema", "ed": "edema", "peritumoraledema": "edema", "peritumouraloedema": "edema",
    "enhancing": "enhancing", "enhancingtumor": "enhancing", "enhancingtumour": "enhancing", "et": "enhancing",
    "gdenhancingtumor": "enhancing", "gdenhancingtumour": "enhancing",
    # MyoPS cardiac structures
    "lvbloodpool": "lv_blood_pool", "lv": "lv_blood_pool", "leftventricle": "lv_blood_pool",
    "lvmyocardium": "lv_myocardium", "myocardium": "lv_myocardium", "myo": "lv_myocardium",
    "normalmyocardium": "lv_myocardium",
    "rvbloodpool": "rv_blood_pool", "rv": "rv_blood_pool", "rightventricle": "rv_blood_pool",
    "scar": "scar", "myocardialscar": "scar", "infarct": "scar", "myocardialedema": "edema",
}

#: normalised declared region name -> region name of a spec (region-based nnU-Net labels).
REGION_NAME_ALIASES = {
    "wholetumor": "WT", "wholetumour": "WT", "wt": "WT",
    "tumorcore": "TC", "tumourcore": "TC", "tc": "TC",
    "enhancingtumor": "ET", "enhancingtumour": "ET", "et": "ET",
    "scar": "Scar", "edemascar": "Edema+Scar", "lv": "LV", "myo": "Myo", "rv": "RV",
}


def _declared_entries(declared: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``(name, value)`` pairs of a ``labels`` entry in either format.

    nnU-Net v2: ``{"background": 0, "edema": 1}`` or region-based ``{"whole tumor": [1, 2, 3]}``;
    Decathlon / nnU-Net v1: ``{"0": "background", "1": "edema"}``.
    """
    items = list(declared.items())
    if items and all(str(k).strip().isdigit() and isinstance(v, str) for k, v in items):
        return [(v, int(k)) for k, v in items]
    return [(str(k), v) for k, v in items]


def resolve_declared_labels(declared: Mapping[str, Any], spec: DatasetSpec, where: str = "dataset.json"
                            ) -> dict[int, int]:
    """File label value -> internal class index of ``spec``, from a ``dataset.json`` ``labels`` entry.

    Plain labels are matched by name (:data:`CLASS_NAME_ALIASES`). Region-based labels (lists of
    values, nnU-Net v2) are matched to ``spec``'s regions by name (:data:`REGION_NAME_ALIASES`);
    a file value then belongs to the class whose region memberships are the same (BraTS: a value
    in WT and TC but not ET is necrosis).

    Raises:
        ValueError: a declared name fits no class or region of ``spec``, two values claim one
            class, or no foreground label is declared (the message names ``where``).
    """
    entries = _declared_entries(declared)
    plain = [(n, v) for n, v in entries if not isinstance(v, (list, tuple))]
    regions = [(n, v) for n, v in entries if isinstance(v, (list, tuple))]
    out: dict[int, int] = {}
    for name, value in plain:
        canonical = CLASS_NAME_ALIASES.get(_norm(name))
        if canonical not in spec.class_names:
            raise DataError(f"{where}: declared label {name!r} (value {value}) matches no class of the {spec.name} "
                            f"convention ({', '.join(spec.class_names)})")
        out[int(value)] = spec.class_names.index(canonical)
    if regions:
        membership: dict[int, set[str]] = {}
        for name, values in regions:
            region = REGION_NAME_ALIASES.get(_norm(name))
            if region not in spec.regions:
                raise DataError(f"{where}: declared region {name!r} {list(values)} matches no region of "
                                f"{spec.name} ({', '.join(spec.regions)})")
            for v in values:
                membership.setdefault(int(v), set()).add(region)
        by_regions = {frozenset(r for r, members in spec.regions.items() if c in members): c
                      for c in range(1, spec.num_classes)}
        for value, regs in sorted(membership.items()):
            cls = by_regions.get(frozenset(regs))
            if cls is None:
                raise DataError(f"{where}: label value {value} lies in regions {sorted(regs)}, which is no class "
                                f"of {spec.name}")
            out[value] = cls
    if len(set(out.values())) != len(out):
        raise DataError(f"{where}: two declared label values map to one {spec.name} class ({declared})")
    if not any(cls > 0 for cls in out.values()):
        raise DataError(f"{where}: declares no foreground label ({dict(declared)}); cannot tell what the "
                        f"label values mean")
    out.setdefault(0, 0)
    return out


def describe_source_labels(source_labels: Mapping[int, int], spec: DatasetSpec) -> str:
    """``"1 = necrosis, 2 = edema, 4 = enhancing"``: the foreground values of a file convention."""
    return ", ".join(f"{v} = {spec.class_names[c]}" for v, c in sorted(source_labels.items()) if c > 0)
