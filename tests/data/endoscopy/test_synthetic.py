import numpy as np
import pytest

from medmodal.data.endoscopy.dataset import PairedImageDataset
from medmodal.data.endoscopy.features import FEATURE_COUNT, image_features
from medmodal.data.endoscopy.layouts import read_samples
from medmodal.data.endoscopy.samples import AUTHORS_CLASSES
from medmodal.data.endoscopy.synthetic import render_scene, synth_endoscopy


def test_render_is_deterministic_per_seed_and_registered():
    a = render_scene("polyps", 64, np.random.default_rng([3, 1]))
    b = render_scene("polyps", 64, np.random.default_rng([3, 1]))
    c = render_scene("polyps", 64, np.random.default_rng([3, 2]))
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and not np.array_equal(a[0], c[0])
    wli, nbi = a
    assert wli.shape == nbi.shape == (64, 64, 3) and wli.dtype == nbi.dtype == np.uint8
    assert wli[..., 0].mean() > wli[..., 1].mean() + 20  # white light: reddish mucosa
    assert nbi[..., 0].mean() / nbi[..., 1].mean() < wli[..., 0].mean() / wli[..., 1].mean()  # red suppressed
    with pytest.raises(ValueError, match="no synthetic renderer for class 'adenoma'"):
        render_scene("adenoma", 64)


def test_synth_writes_the_authors_layout(tmp_path):
    written = synth_endoscopy(tmp_path / "syn", num_samples=12, size=40, seed=1)
    samples = read_samples(tmp_path / "syn")
    assert len(written) == len(samples) == 12 and all(s.paired for s in samples)
    assert sorted({s.label for s in samples}) == sorted(AUTHORS_CLASSES)
    assert {s.wli.parent.name for s in samples} == {f"{c}_WLI" for c in AUTHORS_CLASSES}
    assert all(s.wli.name == s.nbi.name and s.wli.suffix == ".png" for s in samples)
    assert (tmp_path / "syn" / "synthetic.json").is_file()
    again = synth_endoscopy(tmp_path / "again", num_samples=12, size=40, seed=1, workers=2)
    assert [s.sample_id for s in again] == [s.sample_id for s in written]
    assert all(s.wli.read_bytes() == t.wli.read_bytes() for s, t in zip(again, written))
    ds = PairedImageDataset(samples, image_size=32, train=True)
    assert ds[0]["present"].all() and ds.classes == sorted(AUTHORS_CLASSES)
    with pytest.raises(ValueError, match="must be positive"):
        synth_endoscopy(tmp_path / "x", num_samples=0)


def test_features_shape():
    wli, _ = render_scene("normal-pylorus", 48, np.random.default_rng(0))
    f = image_features(wli)
    assert f.shape == (FEATURE_COUNT,) and np.isfinite(f).all()


def test_each_modality_carries_what_the_other_lacks():
    """The design claim on the two designed class pairs, with a linear classifier on simple features:
    polyp vs cecum pit patterns need NBI, esophagitis vs z-line redness needs white light."""
    sklearn = pytest.importorskip("sklearn")  # noqa: F841  (test dependency only)
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def features(pair, per_class=24):
        x, y = {"wli": [], "nbi": []}, []
        for label, cls in enumerate(pair):
            for i in range(per_class):
                wli, nbi = render_scene(cls, 96, np.random.default_rng([7, label, i]))
                x["wli"].append(image_features(wli))
                x["nbi"].append(image_features(nbi))
                y.append(label)
        return {k: np.array(v) for k, v in x.items()}, np.array(y)

    def accuracy(x, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.3))
        return cross_val_score(model, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean()

    # 48 images per pair: chance-level accuracies scatter by about +-0.07, hence margins, not exact values
    x, y = features(("polyps", "normal-cecum"))
    pits_nbi, pits_wli = accuracy(x["nbi"], y), accuracy(x["wli"], y)
    assert pits_nbi > 0.75 and pits_nbi - pits_wli > 0.15
    x, y = features(("esophagitis", "normal-z-line"))
    red_wli, red_nbi = accuracy(x["wli"], y), accuracy(x["nbi"], y)
    assert red_wli > 0.8 and red_wli - red_nbi > 0.15
