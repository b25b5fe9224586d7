"""Evaluation protocols: how a paper's (or a challenge's) code turns two label maps into numbers.

The same pair of segmentations gives different tables under different conventions. On the real
case TCGA-DU-7294, the whole-tumour HD95 of five BraTS algorithms is 1.0 mm when the 95th
percentile is taken over the surface distances of *both directions pooled* (medpy's ``hd95``,
used by PASSION and the BraTS evaluation as re-implemented in nnU-Net) and 4.4-4.7 mm as the
*maximum of the two directed* 95th percentiles (MONAI's ``compute_hausdorff_distance``). A case
whose region is empty on one side costs 373.13 mm in one convention and 1.0 in another. So every
table medmodal writes names the :class:`EvaluationProtocol` that produced it.

Registered protocols (:data:`PROTOCOLS`; pick one with ``eval.protocol`` or ``--protocol``):

``passion``
    PASSION (Shi et al., ACM MM 2024), whose evaluation scripts DMAF-Net's README uses. Read in
    ``Jun-Jie-Shi/PASSION``, ``code/utils/predict.py`` (``softmax_output_dice_class4``,
    ``compute_BraTS_HD95``, ``cal_hd95``). Dice ``(2|P∩R| + 1e-8) / (|P| + |R| + 1e-8)`` (both
    empty -> 1, one empty -> ~0); HD95 = medpy ``hd95`` (pooled); both empty -> 0, exactly one
    empty -> 1.0 (the code's own choice; its comments name 373.12866 as the nnU-Net value). WT,
    TC and ET are scored on the raw argmax; a fourth column ``ETPro`` scores ET with the
    predicted ET *removed* when it has fewer than 500 voxels (the same rule as RFNet/mmFormer's
    ``enhancing_postpro``).
``brats-challenge``
    The BraTS 2018-2021 evaluation as nnU-Net re-implements it ("attempting to reimplement the
    brats evaluation scheme": ``MIC-DKFZ/nnUNet``, ``nnunet/dataset_conversion/Task082_BraTS_2020.py``,
    ``compute_BraTS_dice`` / ``compute_BraTS_HD95``). Dice: both empty -> 1, one empty -> 0;
    HD95 = medpy ``hd95`` (pooled); both empty -> 0, one empty -> 373.12866 (the diagonal of the
    240 x 240 x 155 mm BraTS volume). The challenge scores the label map it receives: no ET
    post-processing. This is the 2018-2021 (CaPTk-era) scoring; the BraTS 2023+ metrics
    (``rachitsaluja/BraTS-2023-Metrics``, ``eval.py``) rank lesion-wise and compute their
    "Legacy_HD95" with DeepMind's ``compute_robust_hausdorff`` (the larger of the two directed,
    surface-area-weighted percentiles; an empty side -> 374), which medmodal does not implement.
``monai-max-directed``
    What medmodal computed before protocols existed, kept under an honest name: HD95 as MONAI's
    ``compute_hausdorff_distance(percentile=95)`` (the larger of the two directed 95th
    percentiles); Dice 1 / HD95 0 when both are empty, Dice 0 / HD95 373.13 when one is. A
    predicted ET under 500 voxels is relabelled as necrosis in the whole map before scoring
    (the nnU-Net BraTS post-processing, ``apply_brats_threshold`` in the file above). Run
    folders and model bundles written before ``eval.protocol`` existed are scored with it, so
    their numbers do not change.
``myops``
    MyoPS-Net (Qiu et al., MedIA 2023; Zhuang's group, the MyoPS 2020 organisers), the
    missing-sequence method of the MyoPS family: ``QJYBall/MyoPS-Net``, ``test_metrics.py``.
    Per case, on the whole 3-D stack: Dice of ``Scar`` and ``Edema+Scar`` (the challenge
    targets); a case whose reference region is empty has no Dice (``'Null'`` there, NaN here:
    left out of the means and counted in ``n``); Hausdorff distance (medpy ``hd``, the 100th
    percentile) with no voxel spacing passed, i.e. in *voxels*, and 0 when either side is empty
    (the script catches medpy's error and writes 0). MyoPS-Net's connected-component
    post-processing of its own predictions (``process.py``) belongs to the method, not to the
    scoring, and is not applied.

``transunet``
    TransUNet's ``calculate_metric_percase`` (``Beckschen/TransUNet`` ``utils.py``), which MSLAU-Net,
    Swin-UNet and most 2-D Synapse / ACDC tables use: per class on the whole 3-D stack, predicted slice-wise
    and resized back; Dice and medpy ``hd95`` (pooled) with no voxel spacing passed, i.e. in *voxels*; a
    class predicted where the reference has none scores Dice 1, HD95 0; a class absent from the prediction
    scores 0 and 0, also when the reference lacks it too (the release's ``else: return 0, 0``).

Distances always come from MONAI's surface distances
(:func:`monai.metrics.utils.get_edge_surface_distance`: edges by binary erosion with the
6-neighbourhood, as medpy's ``connectivity=1``, exact Euclidean distances between edge voxels
in physical units), reduced with :func:`numpy.percentile`. The pooled reduction equals medpy's
``hd95`` to 1e-5 mm on the real case (``tests/evaluation/test_protocols.py``).

Note on spacing: PASSION's and nnU-Net's code pass ``(1, 1, 1)``, assuming BraTS' 1 mm grid;
medmodal passes the file's voxel size, which is the same on BraTS and stays in mm elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from medmodal.data.volumes.spec import DatasetSpec
from medmodal.errors import ConfigError, UnknownNameError

ETPRO = "ETPro"
#: scored with what medmodal computed before ``eval.protocol`` existed (bundles without the field)
LEGACY_PROTOCOL = "monai-max-directed"
#: ``eval.protocol: auto``: the reference protocol of each dataset (others: :data:`FALLBACK_PROTOCOL`)
DATASET_PROTOCOLS = {"brats2020": "passion", "brats2023": "passion", "myops2020": "myops"}
FALLBACK_PROTOCOL = "passion"
ET_POSTPROCESSING = ("none", "relabel", "etpro")


@dataclass(frozen=True)
class EmptyValues:
    """Values given when a region is empty in the prediction and/or the reference.

    ``None`` means "use the formula" (e.g. PASSION's smoothed Dice is defined for empty masks).
    ``math.nan`` means "undefined": left out of means, the case still listed.
    """

    both: float | None
    reference: float | None  # the reference is empty, the prediction is not
    prediction: float | None  # the prediction is empty, the reference is not

    def value(self, pred_empty: bool, ref_empty: bool) -> float | None:
        if pred_empty and ref_empty:
            return self.both
        if ref_empty:
            return self.reference
        if pred_empty:
            return self.prediction
        return None


@dataclass(frozen=True)
class EvaluationProtocol:
    """A named way of scoring label maps (see the module docstring for the registered ones).

    Attributes:
        name: registry name (``eval.protocol``, ``--protocol``).
        summary: one line for reports and table titles.
        source: the reference code the rules were read from.
        distance: column prefix of the distance metric (``"HD95"``, ``"HD"``).
        percentile: percentile of the surface distances (95; 100 = Hausdorff distance).
        pooled: ``True``: percentile of both directions' distances pooled (medpy ``hd95``);
            ``False``: the larger of the two directed percentiles (MONAI).
        spacing: ``"physical"`` (the file's voxel size, mm) or ``"voxel"`` (unit spacing).
        dice_smooth: ``eps`` of ``(2|P∩R| + eps) / (|P| + |R| + eps)`` (0: plain Dice).
        dice_empty / distance_empty: :class:`EmptyValues` for empty regions.
        et_postprocess: ``"none"``; ``"relabel"``: a predicted ET smaller than
            ``et_min_voxels`` becomes necrosis in the whole map before scoring; ``"etpro"``:
            regions are scored on the raw map and an extra ``ETPro`` column scores ET with a
            too-small predicted ET removed. Only for datasets with an ``et_class``.
        et_min_voxels: the post-processing threshold (voxels of predicted ET in the volume).
        regions: the regions shown (``None``: every region of the dataset spec).
    """

    name: str
    summary: str
    source: str
    distance: str = "HD95"
    percentile: float = 95.0
    pooled: bool = True
    spacing: str = "physical"
    dice_smooth: float = 0.0
    dice_empty: EmptyValues = field(default_factory=lambda: EmptyValues(1.0, 0.0, 0.0))
    distance_empty: EmptyValues = field(default_factory=lambda: EmptyValues(0.0, 373.12866, 373.12866))
    et_postprocess: str = "none"
    et_min_voxels: int = 500
    regions: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.et_postprocess not in ET_POSTPROCESSING:
            raise ValueError(f"protocol {self.name}: et_postprocess must be one of {ET_POSTPROCESSING}")
        if self.spacing not in ("physical", "voxel"):
            raise ValueError(f"protocol {self.name}: spacing must be 'physical' or 'voxel'")
        if self.dice_smooth <= 0 and self.dice_empty.both is None:
            raise ValueError(f"protocol {self.name}: Dice of two empty masks is 0/0; give dice_empty.both "
                             f"or a dice_smooth > 0")
        if None in (self.distance_empty.both, self.distance_empty.reference, self.distance_empty.prediction):
            raise ValueError(f"protocol {self.name}: distance_empty needs a value for every case (no formula exists)")
        if not 0 < self.percentile <= 100:
            raise ValueError(f"protocol {self.name}: percentile must be in (0, 100]")

    @property
    def distance_unit(self) -> str:
        return "mm" if self.spacing == "physical" else "voxels"

    def columns(self, spec: DatasetSpec) -> tuple[str, ...]:
        """Column names (regions, then ``ETPro`` where it applies) for ``spec``.

        Raises:
            ValueError: the protocol's regions are not regions of ``spec``.
        """
        regions = tuple(spec.region_names if self.regions is None else self.regions)
        unknown = [r for r in regions if r not in spec.regions]
        if unknown:
            raise ConfigError(f"protocol {self.name!r} scores regions {list(regions)}, but {spec.name} has "
                              f"{list(spec.region_names)}; choose another --protocol")
        if self.et_postprocess == "etpro" and spec.et_class is not None:
            regions += (ETPRO,)
        return regions

    def summary_for(self, et_min_voxels: int | None = None) -> str:
        """:attr:`summary` with the ET threshold in force: when ``et_min_voxels`` overrides the
        protocol's, "under 500 voxels" reads "under the threshold (500 voxels by default; 20 in this run)"."""
        threshold = self.et_min_voxels if et_min_voxels is None else int(et_min_voxels)
        if self.et_postprocess == "none" or threshold == self.et_min_voxels:
            return self.summary
        default = f"under {self.et_min_voxels} voxels"
        in_force = f"under the threshold ({self.et_min_voxels} voxels by default; {threshold} in this run)"
        if default in self.summary:
            return self.summary.replace(default, in_force)
        return f"{self.summary} ET threshold: {threshold} voxels in this run ({self.et_min_voxels} by default)."

    def describe(self, et_min_voxels: int | None = None) -> str:
        """``"passion (PASSION's scripts: ...)"``: the line written above every table."""
        return f"`{self.name}`: {self.summary_for(et_min_voxels)}"


PROTOCOLS: dict[str, EvaluationProtocol] = {}


def register_protocol(protocol: EvaluationProtocol) -> EvaluationProtocol:
    PROTOCOLS[protocol.name] = protocol
    return protocol


PASSION = register_protocol(EvaluationProtocol(
    name="passion",
    summary="PASSION's evaluation (DMAF-Net's scripts): Dice with 1e-8 smoothing; HD95 = 95th percentile of both "
            "directions' surface distances pooled (medpy hd95), 0 if both regions are empty, 1.0 if one is; "
            "WT/TC/ET on the raw prediction, ETPro = ET with a predicted ET under 500 voxels removed.",
    source="Jun-Jie-Shi/PASSION code/utils/predict.py",
    dice_smooth=1e-8,
    dice_empty=EmptyValues(None, None, None),
    distance_empty=EmptyValues(0.0, 1.0, 1.0),
    et_postprocess="etpro",
))

BRATS_CHALLENGE = register_protocol(EvaluationProtocol(
    name="brats-challenge",
    summary="BraTS challenge scoring (as re-implemented in nnU-Net's BraTS 2020 code): Dice 1 if both regions are "
            "empty, 0 if one is; HD95 = 95th percentile of both directions pooled (medpy hd95), 0 if both are "
            "empty, 373.12866 if one is; the label map scored as given (no ET post-processing).",
    source="MIC-DKFZ/nnUNet nnunet/dataset_conversion/Task082_BraTS_2020.py",
))

MONAI_MAX_DIRECTED = register_protocol(EvaluationProtocol(
    name=LEGACY_PROTOCOL,
    summary="medmodal's earlier scoring: MONAI HD95 = the larger of the two directed 95th percentiles, Dice 1 / "
            "HD95 0 if both regions are empty, Dice 0 / HD95 373.13 if one is; a predicted ET under 500 voxels "
            "relabelled as necrosis before scoring.",
    source="monai.metrics.compute_hausdorff_distance; nnU-Net apply_brats_threshold",
    pooled=False,
    distance_empty=EmptyValues(0.0, 373.13, 373.13),
    et_postprocess="relabel",
))

MYOPS = register_protocol(EvaluationProtocol(
    name="myops",
    summary="MyoPS-Net's evaluation: per case on the whole stack, Dice of Scar and Edema+Scar (no Dice when the "
            "reference region is empty: left out of the means); HD = Hausdorff distance in voxels, 0 when either "
            "side is empty.",
    source="QJYBall/MyoPS-Net test_metrics.py",
    distance="HD",
    percentile=100.0,
    spacing="voxel",
    dice_empty=EmptyValues(math.nan, math.nan, 0.0),
    distance_empty=EmptyValues(0.0, 0.0, 0.0),
    regions=("Scar", "Edema+Scar"),
))


TRANSUNET = register_protocol(EvaluationProtocol(
    name="transunet",
    summary="TransUNet's evaluation (MSLAU-Net, Swin-UNet): per class on the whole stack, Dice and HD95 = 95th "
            "percentile of both directions pooled (medpy hd95) in voxels; a class predicted but absent from the "
            "reference: Dice 1, HD95 0; absent from the prediction: Dice 0, HD95 0 (also when both are empty).",
    source="Beckschen/TransUNet utils.py calculate_metric_percase",
    spacing="voxel",
    dice_empty=EmptyValues(0.0, 1.0, 0.0),
    distance_empty=EmptyValues(0.0, 0.0, 0.0),
))


def protocol_names() -> tuple[str, ...]:
    return tuple(PROTOCOLS)


def get_protocol(name: str | EvaluationProtocol | None, spec: DatasetSpec | None = None) -> EvaluationProtocol:
    """Look a protocol up by name.

    Args:
        name: a registered name, an :class:`EvaluationProtocol` (returned as is), ``"auto"``
            (the dataset's reference protocol, :data:`DATASET_PROTOCOLS`; needs ``spec``) or
            ``None`` (:data:`LEGACY_PROTOCOL`: what a run or bundle without the field was scored with).

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    if isinstance(name, EvaluationProtocol):
        return name
    if name is None:
        name = LEGACY_PROTOCOL
    if name == "auto":
        name = DATASET_PROTOCOLS.get(spec.name, FALLBACK_PROTOCOL) if spec is not None else FALLBACK_PROTOCOL
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UnknownNameError(f"unknown evaluation protocol {name!r}; known: auto, {', '.join(PROTOCOLS)}") from None


def et_threshold(protocol: EvaluationProtocol, et_min_voxels: int | None) -> int:
    """The ET post-processing threshold: ``et_min_voxels`` when set (``eval.et_min_voxels``),
    else the protocol's."""
    return protocol.et_min_voxels if et_min_voxels is None else int(et_min_voxels)


def protocol_of_run(eval_meta: dict | None, spec: DatasetSpec) -> EvaluationProtocol:
    """The protocol recorded in a bundle's / run's ``eval`` settings; :data:`LEGACY_PROTOCOL`
    when the field is absent (written before protocols existed: their numbers stay the same)."""
    return get_protocol((eval_meta or {}).get("protocol"), spec)
