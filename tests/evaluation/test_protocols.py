"""Evaluation protocols: the real case against an independent implementation (medpy), and the
empty-region and ET rules of every protocol on hand-made volumes."""

import math

import nibabel as nib
import numpy as np
import pytest

from medmodal.config import load_config, packaged_config
from medmodal.data.volumes.spec import BRATS2020, BRATS2023, MYOPS2020
from medmodal.engine.segmentation.module import bundle_meta
from medmodal.evaluation.metrics import region_metrics, surface_distances
from medmodal.evaluation.protocols import (LEGACY_PROTOCOL, PROTOCOLS, EvaluationProtocol, EmptyValues,
                                           get_protocol, protocol_of_run)
from tests.conftest import BRATS_REAL, requires_real_data

CASE = BRATS_REAL / "TCGA-DU-7294"
ALGORITHMS = ("hnfnetv1-20", "isen-20", "sanet0-20", "scan-20", "yixinmpl-20")

# Expected values computed ONCE with medpy 0.5.2 (loli/medpy, run with numpy 2.4.6; medpy is a test extra
# only, and test_stored_values_are_medpys re-checks them when it is installed) on the region masks of each
# algorithm segmentation vs
# TCGA-DU-7294_seg_fusion (WT = labels {1, 2, 4}, TC = {1, 4}; 1 mm isotropic grid):
#   Dice = medpy.metric.binary.dc(pred, ref)
#   pooled HD95 = medpy.metric.binary.hd95(pred, ref, (1, 1, 1))        (what PASSION calls)
#   max-directed = max(np.percentile(d, 95) for d in (medpy.metric.binary.__surface_distances(pred, ref, (1,1,1)),
#                                                    medpy.metric.binary.__surface_distances(ref, pred, (1,1,1))))
# The fusion label has no enhancing tumour; the algorithms predict these ET voxel counts (label 4).
MEDPY = {  # algorithm: {region: (Dice, pooled HD95, max-directed HD95)}
    "hnfnetv1-20": {"WT": (0.9751872564656477, 1.0, 4.47213595499958),
                    "TC": (0.9092891840983444, 2.23606797749979, 2.8284271247461903)},
    "isen-20": {"WT": (0.9775968263910638, 1.0, 4.358898943540674), "TC": (0.9555278695628623, 1.0, 1.0)},
    "sanet0-20": {"WT": (0.9893975507520342, 1.0, 4.358898943540674),
                  "TC": (0.9518989983305509, 1.4142135623730951, 1.4142135623730951)},
    "scan-20": {"WT": (0.9789879144842766, 1.0, 4.69041575982343),
                "TC": (0.9215046749293324, 1.7320508075688772, 1.7320508075688772)},
    "yixinmpl-20": {"WT": (0.9768267964978999, 1.0, 4.358898943540674),
                    "TC": (0.9339781557354779, 1.4142135623730951, 1.4142135623730951)},
}
PREDICTED_ET = {"hnfnetv1-20": 352, "isen-20": 0, "sanet0-20": 279, "scan-20": 0, "yixinmpl-20": 0}


@pytest.fixture(scope="module")
def real_case():
    def read(path):
        return BRATS2020.encode_labels(np.asarray(nib.load(str(path)).dataobj))

    ref = read(CASE / "TCGA-DU-7294_seg_fusion.nii.gz")
    preds = {name: read(CASE / "algorithm-segmentations" / f"{name}.nii.gz") for name in ALGORITHMS}
    return preds, ref


def _expected_et(name: str, protocol: str) -> tuple[float, float]:
    """(Dice, HD95) of ET by the reference code's rules: the reference has no ET."""
    n = PREDICTED_ET[name]
    if n == 0:
        return 1.0, 0.0  # both empty, every protocol
    return {"passion": (1e-8 / (n + 1e-8), 1.0), "brats-challenge": (0.0, 373.12866),
            LEGACY_PROTOCOL: (1.0, 0.0)}[protocol]  # monai-max-directed: ET < 500 relabelled -> both empty


@requires_real_data
@pytest.mark.parametrize("protocol", ["passion", "brats-challenge", LEGACY_PROTOCOL])
def test_real_case_matches_medpy(real_case, protocol):
    preds, ref = real_case
    for name, pred in preds.items():
        scores = region_metrics(pred, ref, BRATS2020, spacing=(1.0, 1.0, 1.0), protocol=protocol)
        for region, (dice, pooled, max_directed) in MEDPY[name].items():
            assert scores[f"Dice_{region}"] == pytest.approx(dice, abs=1e-6), (name, region)
            hd95 = max_directed if protocol == LEGACY_PROTOCOL else pooled
            assert scores[f"HD95_{region}"] == pytest.approx(hd95, abs=1e-3), (name, region)
        dice_et, hd95_et = _expected_et(name, protocol)
        assert scores["Dice_ET"] == pytest.approx(dice_et, abs=1e-6) and scores["HD95_ET"] == hd95_et, name
        if protocol == "passion":  # ETPro: every predicted ET here is under 500 voxels -> removed -> both empty
            assert scores["Dice_ETPro"] == 1.0 and scores["HD95_ETPro"] == 0.0, name
        else:
            assert "Dice_ETPro" not in scores


def _medpy():
    """medpy's binary metrics, or a skip (a test dependency: ``pip install medpy``)."""
    return pytest.importorskip("medpy.metric.binary", reason="medpy not installed (test extra)")


def _crop(*masks, margin=2):
    """The masks cut to their joint foreground box plus ``margin``: medpy's edges and distances are
    unchanged (every edge voxel stays inside, none appears at the cut), and its distance
    transforms run on a small array."""
    box = np.argwhere(np.logical_or.reduce(masks))
    lo, hi = np.maximum(box.min(0) - margin, 0), box.max(0) + margin + 1
    return tuple(m[tuple(slice(a, b) for a, b in zip(lo, hi))] for m in masks)


@requires_real_data
def test_stored_values_are_medpys(real_case):
    """The stored MEDPY values are what medpy itself computes now (skipped without medpy)."""
    binary = _medpy()
    preds, ref = real_case
    directed = getattr(binary, "__surface_distances")
    for name, pred in preds.items():
        for region, (dice, pooled, max_directed) in MEDPY[name].items():
            classes = BRATS2020.regions[region]
            p, r = _crop(np.isin(pred, classes), np.isin(ref, classes))
            assert binary.dc(p, r) == pytest.approx(dice, abs=1e-12), (name, region)
            assert binary.hd95(p, r, (1, 1, 1)) == pytest.approx(pooled, abs=1e-9), (name, region)
            worst = max(np.percentile(directed(a, b, (1, 1, 1), 1), 95) for a, b in ((p, r), (r, p)))
            assert worst == pytest.approx(max_directed, abs=1e-9), (name, region)
        assert int((pred == BRATS2020.et_class).sum()) == PREDICTED_ET[name]


@pytest.mark.parametrize("seed", range(3))
def test_random_shapes_match_medpy_live(seed):
    """Random blobs on an anisotropic grid: Dice, pooled / max-directed HD95 and HD against medpy."""
    binary = _medpy()
    rng = np.random.default_rng(seed)
    from scipy.ndimage import binary_dilation, gaussian_filter

    noise = gaussian_filter(rng.normal(size=(2, 28, 26, 14)), sigma=(0, 2.5, 2.5, 1.5))
    pred, ref = noise[0] > 0.05, noise[1] > 0.05
    pred[rng.integers(0, 28, 3), rng.integers(0, 26, 3), rng.integers(0, 14, 3)] = True  # isolated voxels
    ref = binary_dilation(ref & pred, iterations=1) | ref  # overlapping, not identical
    spacing = tuple(rng.uniform(0.5, 3.0, 3))
    directed = getattr(binary, "__surface_distances")
    worst = max(np.percentile(directed(a, b, spacing, 1), 95) for a, b in ((pred, ref), (ref, pred)))
    wt_pred, wt_ref = pred.astype(np.uint8) * 2, ref.astype(np.uint8) * 2  # edema: WT only
    passion = region_metrics(wt_pred, wt_ref, BRATS2020, spacing, protocol="passion")
    legacy = region_metrics(wt_pred, wt_ref, BRATS2020, spacing, protocol=LEGACY_PROTOCOL)
    assert passion["Dice_WT"] == pytest.approx(binary.dc(pred, ref), abs=1e-6)
    assert passion["HD95_WT"] == pytest.approx(binary.hd95(pred, ref, spacing), abs=1e-3)
    assert legacy["HD95_WT"] == pytest.approx(worst, abs=1e-3)
    # myops: medpy's hd without a voxel spacing (voxels), as MyoPS-Net's test_metrics.py calls it
    myops = region_metrics(pred.astype(np.uint8) * 4, ref.astype(np.uint8) * 4, MYOPS2020, spacing, protocol="myops")
    assert myops["HD_Edema+Scar"] == pytest.approx(binary.hd(pred, ref), abs=1e-3)


def _ellipsoids():
    g = np.stack(np.meshgrid(*[np.arange(n) for n in (30, 24, 12)], indexing="ij")).astype(float)
    ref = ((g[0] - 14) / 9) ** 2 + ((g[1] - 11) / 7) ** 2 + ((g[2] - 5.5) / 4) ** 2 < 1
    pred = ((g[0] - 16) / 10) ** 2 + ((g[1] - 12) / 6) ** 2 + ((g[2] - 6) / 3.5) ** 2 < 1
    pred[2:4, 2:4, 1:3] = True  # a small false positive far from the reference
    return pred, ref


def test_anisotropic_spacing_matches_medpy():
    # medpy 0.5.2, computed once (see above), spacing (0.5, 1.0, 2.5) mm: dc 0.7514153371075656,
    # hd95 2.5495097567963922, max of the directed 95th percentiles 2.692582403567252, hd 8.12403840463596
    pred, ref = _ellipsoids()
    assert (int(ref.sum()), int(pred.sum())) == (1068, 875)  # the volumes medpy saw
    spacing = (0.5, 1.0, 2.5)
    wt_pred, wt_ref = pred.astype(np.uint8) * 2, ref.astype(np.uint8) * 2  # edema: WT only
    passion = region_metrics(wt_pred, wt_ref, BRATS2020, spacing, protocol="passion")
    legacy = region_metrics(wt_pred, wt_ref, BRATS2020, spacing, protocol=LEGACY_PROTOCOL)
    assert passion["Dice_WT"] == pytest.approx(0.7514153371075656, abs=1e-6)
    assert passion["HD95_WT"] == pytest.approx(2.5495097567963922, abs=1e-3)
    assert legacy["HD95_WT"] == pytest.approx(2.692582403567252, abs=1e-3)
    forward, backward = surface_distances(pred, ref, spacing)
    assert max(forward.max(), backward.max()) == pytest.approx(8.12403840463596, abs=1e-3)
    with pytest.raises(ValueError, match="non-empty"):
        surface_distances(pred, np.zeros_like(ref), spacing)


# ----------------------------------------------------------------------------- empty regions
SHAPE = (16, 16, 16)


def _cube(cls, lo=4, size=6, shape=SHAPE):
    out = np.zeros(shape, np.uint8)
    out[lo:lo + size, lo:lo + size, lo:lo + size] = cls
    return out


EMPTY_RULES = {  # protocol: (both empty, reference empty, prediction empty) as (Dice, distance)
    "passion": ((1.0, 0.0), (1e-8 / (216 + 1e-8), 1.0), (1e-8 / (216 + 1e-8), 1.0)),
    "brats-challenge": ((1.0, 0.0), (0.0, 373.12866), (0.0, 373.12866)),
    LEGACY_PROTOCOL: ((1.0, 0.0), (0.0, 373.13), (0.0, 373.13)),
}


@pytest.mark.parametrize("protocol", list(EMPTY_RULES))
def test_empty_region_rules_brats(protocol):
    empty, tumour = np.zeros(SHAPE, np.uint8), _cube(2)  # edema: WT only (TC and ET empty on both sides)
    both, ref_empty, pred_empty = EMPTY_RULES[protocol]
    cases = {"both": (empty, empty), "reference": (tumour, empty), "prediction": (empty, tumour)}
    for (pred, ref), (dice, distance) in zip(cases.values(), (both, ref_empty, pred_empty)):
        scores = region_metrics(pred, ref, BRATS2020, protocol=protocol)
        assert scores["Dice_WT"] == pytest.approx(dice, abs=1e-12) and scores["HD95_WT"] == distance
        assert scores["Dice_TC"] == 1.0 and scores["HD95_TC"] == 0.0  # empty on both sides


def test_empty_region_rules_myops():
    # MyoPS-Net: no Dice when the reference region is empty; HD 0 whenever one side is empty
    empty, scar = np.zeros(SHAPE, np.uint8), _cube(5)  # class 5 = scar: Scar and Edema+Scar
    for pred, ref, dice in ((empty, empty, math.nan), (scar, empty, math.nan), (empty, scar, 0.0)):
        scores = region_metrics(pred, ref, MYOPS2020, protocol="myops")
        assert list(scores) == ["Dice_Scar", "Dice_Edema+Scar", "HD_Scar", "HD_Edema+Scar"]
        for region in ("Scar", "Edema+Scar"):
            assert scores[f"HD_{region}"] == 0.0
            assert (math.isnan(dice) and math.isnan(scores[f"Dice_{region}"])) or scores[f"Dice_{region}"] == dice


def test_myops_hausdorff_is_in_voxels():
    ref = np.zeros((12, 12, 8), np.uint8)
    ref[3:9, 3:9, 2:5] = 4  # edema
    pred = np.roll(ref, 2, axis=2)  # two slices further
    for spacing in ((1.0, 1.0, 1.0), (1.25, 1.25, 10.0)):
        scores = region_metrics(pred, ref, MYOPS2020, spacing=spacing, protocol="myops")
        assert scores["HD_Edema+Scar"] == pytest.approx(2.0)  # voxels, whatever the slice spacing
        assert math.isnan(scores["Dice_Scar"]) and scores["Dice_Edema+Scar"] == pytest.approx(1 / 3)
    # the protocols that measure in mm see the 10 mm slices
    assert region_metrics(pred, ref, MYOPS2020, spacing=(1.25, 1.25, 10.0), protocol="brats-challenge")[
        "HD95_Edema+Scar"] == pytest.approx(20.0)


# ----------------------------------------------------------------------------- ET post-processing
def _with_et(count, shape=(20, 20, 20)):
    """Edema block of 12^3 voxels whose first ``count`` voxels are enhancing tumour."""
    classes = np.zeros(shape, np.uint8)
    classes[4:16, 4:16, 4:16] = 2
    flat = classes.reshape(-1)
    flat[np.flatnonzero(flat == 2)[:count]] = 3
    return classes


@pytest.mark.parametrize("count", [499, 500])
def test_etpro_removes_small_predicted_et(count):
    pred = ref = _with_et(count)
    passion = region_metrics(pred, ref, BRATS2020, protocol="passion")
    assert passion["Dice_ET"] == 1.0 and passion["HD95_ET"] == 0.0  # ET scored on the raw prediction
    assert passion["Dice_WT"] == passion["Dice_TC"] == 1.0  # removal touches the ETPro column only
    if count < 500:  # predicted ET removed, the reference keeps its 499 voxels: one side empty
        assert passion["Dice_ETPro"] == pytest.approx(1e-8 / (count + 1e-8)) and passion["HD95_ETPro"] == 1.0
    else:
        assert passion["Dice_ETPro"] == 1.0 and passion["HD95_ETPro"] == 0.0
    challenge = region_metrics(pred, ref, BRATS2020, protocol="brats-challenge")
    assert challenge["Dice_ET"] == 1.0 and "Dice_ETPro" not in challenge  # scored as given
    legacy = region_metrics(pred, ref, BRATS2020, protocol=LEGACY_PROTOCOL)  # relabelled as necrosis
    assert legacy["Dice_TC"] == 1.0
    assert (legacy["Dice_ET"], legacy["HD95_ET"]) == ((0.0, 373.13) if count < 500 else (1.0, 0.0))


def test_et_threshold_override():
    pred = ref = _with_et(499)
    assert region_metrics(pred, ref, BRATS2020, protocol="passion", et_min_voxels=100)["Dice_ETPro"] == 1.0
    assert region_metrics(pred, ref, BRATS2020, protocol=LEGACY_PROTOCOL, et_min_voxels=0)["Dice_ET"] == 1.0


def test_threshold_in_force_is_stated_once():
    """An overridden ET threshold: the protocol line names the threshold in force, never "500 voxels"
    beside a contradicting "set to 20"."""
    passion = PROTOCOLS["passion"]
    assert passion.describe() == f"`passion`: {passion.summary}" and "under 500 voxels removed" in passion.summary
    line = passion.describe(20)
    assert "ETPro = ET with a predicted ET under the threshold (500 voxels by default; 20 in this run) removed" in line
    assert "under 500 voxels" not in line and "threshold set to" not in line
    assert "(500 voxels by default; 0 in this run)" in PROTOCOLS[LEGACY_PROTOCOL].describe(0)
    assert PROTOCOLS["brats-challenge"].describe(20) == f"`brats-challenge`: {PROTOCOLS['brats-challenge'].summary}"


# ----------------------------------------------------------------------------- registry and defaults
def test_registry_and_columns():
    assert set(PROTOCOLS) == {"passion", "brats-challenge", LEGACY_PROTOCOL, "myops", "transunet"}
    assert get_protocol("passion").columns(BRATS2020) == ("WT", "TC", "ET", "ETPro")
    assert get_protocol("brats-challenge").columns(BRATS2023) == ("WT", "TC", "ET")
    assert get_protocol("passion").columns(MYOPS2020) == MYOPS2020.region_names  # no ET class: no ETPro
    assert get_protocol("myops").columns(MYOPS2020) == ("Scar", "Edema+Scar")
    with pytest.raises(ValueError, match="choose another --protocol"):
        get_protocol("myops").columns(BRATS2020)
    with pytest.raises(KeyError, match="known: auto, passion"):
        get_protocol("medpy")
    assert get_protocol("auto", BRATS2020).name == get_protocol("auto", BRATS2023).name == "passion"
    assert get_protocol("auto", MYOPS2020).name == "myops"
    assert get_protocol(None).name == LEGACY_PROTOCOL
    with pytest.raises(ValueError, match="0/0"):
        EvaluationProtocol("bad", "", "", dice_empty=EmptyValues(None, 0.0, 0.0))


def test_presets_and_old_bundles():
    for preset, name in (("dmafnet_brats2020", "passion"), ("passion_brats2020", "passion"),
                         ("demo_cpu", "passion"), ("dmafnet_myops2020", "myops"), ("tiny_myops2020", "myops")):
        cfg = load_config(packaged_config(preset))
        assert cfg.eval.protocol == name, preset
        assert bundle_meta(cfg)["eval"]["protocol"] == name
    default = load_config()  # the paper defaults: "auto" is resolved in the bundle
    assert default.eval.protocol == "auto" and bundle_meta(default)["eval"]["protocol"] == "passion"
    # bundles written before protocols existed keep their scoring
    assert protocol_of_run({"roi_size": [80, 80, 80], "et_min_voxels": 500}, BRATS2020).name == LEGACY_PROTOCOL
    assert protocol_of_run({}, BRATS2020).name == LEGACY_PROTOCOL
