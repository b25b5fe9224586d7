import json
import logging

import numpy as np
import pytest
from scipy import stats

from medmodal.data.endoscopy.export import simulate_nbi_dataset
from medmodal.data.endoscopy.layouts import read_samples
from medmodal.data.endoscopy.nbi import PHYSICAL_PRIOR, NBIParams, simulate_nbi
from medmodal.data.endoscopy.nbi_calibration import (ROWS, calibrate, channel_kl, channel_wasserstein,
                                                     cross_validate, load_pairs)
from medmodal.data.endoscopy.samples import PairedSample
from tests.data.endoscopy.conftest import REAL_PAIRS, requires_endoscopy_data, write_image


def _mucosa(seed=0, size=48):
    """Reddish mucosa with darker, bluer 'vessels' (more haemoglobin: green drops more than red)."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.float64)
    img[:] = (200, 115, 100)
    img += rng.normal(0, 4, img.shape)
    for _ in range(3):
        r = rng.integers(4, size - 4)
        img[r:r + 2, :] = (175, 70, 70)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_simulation_shape_determinism_and_vessel_contrast():
    wli = _mucosa()
    nbi = simulate_nbi(wli)
    assert nbi.shape == wli.shape and nbi.dtype == np.uint8
    assert np.array_equal(nbi, simulate_nbi(wli))
    vessel = (wli[..., 1] < 90)

    def contrast(channel):
        return channel[~vessel].mean() / channel[vessel].mean()

    # haemoglobin absorbs 415 nm strongly: vessels stand out more in NBI's G/B (415 nm) than in WLI's G
    assert contrast(nbi[..., 1].astype(float)) > contrast(wli[..., 1].astype(float))
    # red is suppressed: the NBI image is much less red than the WLI image
    assert nbi[..., 0].mean() / nbi[..., 1].mean() < wli[..., 0].mean() / wli[..., 1].mean()


def test_wli_red_channel_enters_only_through_the_haemoglobin_index():
    wli = _mucosa(1).astype(np.float64) / 255.0
    from medmodal.data.endoscopy.nbi import linear_to_srgb, srgb_to_linear

    redder = wli.copy()
    redder[..., 0] = linear_to_srgb(srgb_to_linear(wli[..., 0]) * 0.8)  # a uniform red gain
    a = simulate_nbi(wli, as_uint8=False)
    b = simulate_nbi(redder, as_uint8=False)
    assert np.allclose(a, b, atol=1e-6)  # a uniform change of the red channel leaves NBI unchanged


def test_specular_highlights_stay_bright_and_bad_input_raises():
    wli = _mucosa()
    wli[10:14, 10:14] = 255
    assert (simulate_nbi(wli)[10:14, 10:14] > 200).all()
    with pytest.raises(ValueError, match="expected an RGB image"):
        simulate_nbi(np.zeros((8, 8), np.uint8))


def test_params_json_roundtrip_and_errors(tmp_path):
    p = NBIParams(gamma=0.9)
    (tmp_path / "p.json").write_text(json.dumps({"params": p.to_dict()}))
    assert NBIParams.from_json(tmp_path / "p.json") == p
    (tmp_path / "bad.json").write_text('{"gama": 1}')
    with pytest.raises(ValueError, match="unknown NBI simulation parameters"):
        NBIParams.from_json(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json: not a JSON"):
        NBIParams.from_json(tmp_path / "broken.json")


def test_distances():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + 10, 0, 255).astype(np.uint8)
    assert np.allclose(channel_wasserstein(a, a), 0) and np.allclose(channel_kl(a, a), 0)
    w = channel_wasserstein(a, b)
    expect = [stats.wasserstein_distance(a[..., c].ravel(), b[..., c].ravel()) for c in range(3)]
    assert np.allclose(w, expect) and 8 < w.mean() <= 10
    assert np.allclose(channel_wasserstein([a, a], [b]), w)  # pooled sets of different sizes


def test_calibration_recovers_a_known_simulation():
    truth = NBIParams(hb_gain_415=2.0, hb_gain_540=1.2, gain_r=0.9, gain_g=1.0, gain_b=0.6, gamma=0.8)
    wlis = [_mucosa(s, 32) for s in range(4)]
    pairs = [(w, simulate_nbi(w, truth)) for w in wlis]
    before = channel_wasserstein([n for _, n in pairs], [simulate_nbi(w, PHYSICAL_PRIOR) for w in wlis]).sum()
    fitted = calibrate(pairs, size=32, max_evals=600)
    after = channel_wasserstein([n for _, n in pairs], [simulate_nbi(w, fitted) for w in wlis]).sum()
    assert after < 0.2 * before
    assert abs(fitted.hb_gain_415 - 2.0) < 0.3 and abs(fitted.gain_b - 0.6) < 0.1 and abs(fitted.gamma - 0.8) < 0.1
    assert fitted.blue_weight == PHYSICAL_PRIOR.blue_weight  # fixed fields are not fitted


def test_cross_validation_protocol():
    pairs = [(w, simulate_nbi(w, NBIParams(gamma=0.9))) for w in (_mucosa(s, 24) for s in range(3))]
    report = cross_validate(["a", "b", "c"], pairs, size=16, max_evals=40)
    assert report.folds == 3 and len(report.params) == 3
    assert set(report.pooled) == set(ROWS) and all(v.shape == (3,) for v in report.per_pair.values())
    assert report.table().count("\n") == len(ROWS) + 1
    with pytest.raises(ValueError, match="at least 2 pairs"):
        cross_validate(["a"], pairs[:1])


@requires_endoscopy_data
def test_packaged_parameters_bring_real_wli_towards_real_nbi():
    """Regression check of the shipped defaults (fitted on these very pairs; the held-out figure is
    ``medmodal data calibrate-nbi --cross-validate``)."""
    _, pairs = load_pairs(read_samples(REAL_PAIRS))
    real = [n for _, n in pairs]
    wli = channel_wasserstein(real, [w for w, _ in pairs])
    sim = channel_wasserstein(real, [simulate_nbi(w) for w, _ in pairs])
    prior = channel_wasserstein(real, [simulate_nbi(w, PHYSICAL_PRIOR) for w, _ in pairs])
    assert sim.sum() < 0.6 * wli.sum() and sim.sum() < prior.sum()


def test_simulate_nbi_dataset_writes_the_authors_layout(tmp_path, caplog):
    src = [PairedSample("polyps/a", write_image(tmp_path / "in" / "polyps" / "a.jpg"), None, "polyps"),
           PairedSample("b", write_image(tmp_path / "in" / "b.jpg", seed=1), None, None),
           PairedSample("c", None, write_image(tmp_path / "in" / "c.jpg", seed=2), "polyps")]
    with caplog.at_level(logging.WARNING, logger="medmodal.data.endoscopy"):
        written = simulate_nbi_dataset(src, tmp_path / "out", size=16)
    assert [s.sample_id for s in written] == ["polyps/a", "unlabelled/b"]
    assert "c.jpg: no WLI image to simulate from" in caplog.text and "unlabelled" in caplog.text
    back = read_samples(tmp_path / "out")
    assert [(s.sample_id, s.paired, s.wli.suffix, s.nbi.name) for s in back] == [
        ("polyps/a", True, ".png", "a.png"), ("unlabelled/b", True, ".png", "b.png")]
    meta = json.loads((tmp_path / "out" / "nbi_simulation.json").read_text())
    assert meta["pairs"] == 2 and meta["params"] == NBIParams().to_dict()
    clash = src[:1] + [PairedSample("x", write_image(tmp_path / "in2" / "polyps" / "a.png"), None, "polyps")]
    with pytest.raises(ValueError, match="two images of class 'polyps' are named 'a'"):
        simulate_nbi_dataset(clash, tmp_path / "out2")
