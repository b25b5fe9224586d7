"""Semi-supervised 2-D runs (issue 29, first step): a labelled budget by patient, two-stream batches, Mean Teacher."""

import json

import pytest
import torch

from medmodal.config import load_run_config
from medmodal.data.sampler import TwoStreamBatchSampler
from medmodal.data.seg2d import read_seg2d, write_synthetic
from medmodal.engine.seg2d.config import Seg2DRunConfig
from medmodal.engine.seg2d.train import labelled_cases, run_seg2d
from medmodal.errors import ConfigError

TINY = ["model.kwargs={widths: [8, 16, 32, 32], depths: [1, 1, 1, 1], head_dim: 8, decoder_channels: 8}",
        "data.size=32", "data.batch_size=4", "trainer.max_epochs=2", "trainer.samples_per_epoch=8",
        "trainer.progress_bar=false", "trainer.accelerator=cpu", "trainer.precision=32-true", "eval.hd95=false"]


@pytest.fixture(scope="module")
def acdc(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("semi") / "ACDC", "acdc_h5", n=10, size=32, seed=0)


def _cfg(root, out, *extra):
    return load_run_config(Seg2DRunConfig, preset="train_mslau_acdc",
                           overrides=[*TINY, f"data.root={root}", f"out_dir={out}", *extra])


def test_two_stream_batches():
    sampler = TwoStreamBatchSampler(num_labelled=3, num_total=10, batch_size=4, labelled_batch=2, batches=5, seed=0)
    batches = list(sampler)
    assert len(batches) == 5 and all(len(b) == 4 for b in batches)
    assert all(i % 10 < 3 for b in batches for i in b[:2]) and all(i % 10 >= 3 for b in batches for i in b[2:])
    labelled = [i for b in batches for i in b[:2]]
    assert len(set(labelled)) == len(labelled)          # repeats of an item are distinct draws
    sampler.set_epoch(1)
    assert list(sampler) != batches
    with pytest.raises(ValueError):
        TwoStreamBatchSampler(0, 10, 4, 2, 5)


def test_labelled_patients_follow_the_training_list(acdc):
    dataset = read_seg2d(acdc)
    train = dataset.split("train")
    labelled, unlabelled = labelled_cases(dataset, train, 2)
    first = list(dict.fromkeys(i.split("_frame")[0] for i in dataset.train_order))[:2]
    assert {c.id.split("_frame")[0] for c in labelled} == set(first)
    assert len(labelled) + len(unlabelled) == len(train)
    with pytest.raises(ConfigError, match="labelled_patients"):
        labelled_cases(dataset, train, 100)


def test_mean_teacher_and_supervised_only_runs(acdc, tmp_path):
    mt = run_seg2d(_cfg(acdc, tmp_path / "mt", "semi.method=mean_teacher", "semi.labelled_patients=2",
                        "semi.labelled_batch=2"))
    assert mt.metrics["semi"] == {"method": "mean_teacher", "labelled_patients": 2}
    assert 0 < mt.metrics["labelled_slices"] < mt.metrics["train_slices"]
    splits = json.loads((tmp_path / "mt" / "splits.json").read_text())
    assert set(splits["labelled"]) < set(splits["train"])
    state = torch.load(tmp_path / "mt" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    teacher = {k[len("semi_method.teacher."):]: v for k, v in state.items() if k.startswith("semi_method.teacher.")}
    student = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    assert teacher.keys() == student.keys()
    assert any(not torch.equal(teacher[k], student[k]) for k in teacher if teacher[k].is_floating_point())
    sup = run_seg2d(_cfg(acdc, tmp_path / "sup", "semi.labelled_patients=2"))
    assert sup.metrics["train_slices"] == sup.metrics["labelled_slices"] == mt.metrics["labelled_slices"]
    assert any("not used (supervised on the labelled part only)" in n for n in sup.notes)


def test_semi_config_errors(acdc, tmp_path):
    with pytest.raises(ConfigError, match="needs unlabelled training cases"):
        run_seg2d(_cfg(acdc, tmp_path / "r", "semi.method=mean_teacher", "semi.labelled_batch=2"))
    with pytest.raises(ConfigError, match="semi.labelled_batch"):
        _cfg(acdc, tmp_path / "r", "semi.method=mean_teacher", "semi.labelled_patients=2", "semi.labelled_batch=4")
    with pytest.raises(ConfigError, match="semi.method"):
        _cfg(acdc, tmp_path / "r", "semi.method=uamt_v2")


@pytest.mark.parametrize("method,extra", [("ua_mt", ["semi.uncertainty_passes=2"]), ("cps", []),
                                          ("eranet", ["semi.era_classes=[1]"])])
def test_each_semi_method_trains_the_student(acdc, tmp_path, method, extra):
    run = run_seg2d(_cfg(acdc, tmp_path / method, f"semi.method={method}", "semi.labelled_patients=2",
                         "semi.labelled_batch=2", *extra))
    assert run.metrics["semi"]["method"] == method
    state = torch.load(tmp_path / method / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    extra_net = "semi_method.peer." if method == "cps" else "semi_method.teacher."
    student = {k[len("model."):] for k in state if k.startswith("model.")}
    assert {k[len(extra_net):] for k in state if k.startswith(extra_net)} == student
    assert (tmp_path / method / "model").is_dir()


def test_cps_optimises_both_students(acdc, tmp_path):
    from medmodal.engine.seg2d.module import Seg2DModule
    from medmodal.config import config_to_dict
    cfg = _cfg(acdc, tmp_path / "c", "semi.method=cps", "semi.labelled_patients=2", "semi.labelled_batch=2",
               "optim.schedule=poly")
    module = Seg2DModule({**config_to_dict(cfg), "bundle": {"modalities": ["cine"], "num_classes": 4}})
    ids = {id(p) for group in module.configure_optimizers()["optimizer"].param_groups for p in group["params"]}
    assert all(id(p) in ids for p in module.semi_method.peer.parameters())
    assert all(id(p) in ids for p in module.model.parameters())
    first_a = next(module.model.parameters())
    first_b = next(module.semi_method.peer.parameters())
    assert not torch.equal(first_a, first_b)          # two initialisations


def test_conditional_self_training_after_stage_one(acdc, tmp_path):
    from medmodal.engine.seg2d.cst import agreement, reliable_slices
    a = torch.zeros(2, 4, 4, dtype=torch.long)
    b = a.clone()
    b[1, :2] = 1
    assert agreement(a, a, 2).tolist() == [1.0, 1.0]
    assert agreement(a, b, 2)[1] < 0.8
    assert reliable_slices([a, a, b], 2, 0.8).tolist() == [True, False]
    from medmodal.engine.seg2d.cst import train_2d
    with pytest.raises(ConfigError, match="three trainings"):
        run_seg2d(_cfg(acdc, tmp_path / "era", "semi.method=eranet", "semi.labelled_patients=2",
                       "semi.labelled_batch=2", "semi.self_training=true", "semi.snapshots=2"))
    run = train_2d(_cfg(acdc, tmp_path / "era", "semi.method=eranet", "semi.labelled_patients=2",
                        "semi.labelled_batch=2", "semi.self_training=true", "semi.snapshots=2"))
    cst = run.metrics["cst"]
    assert 0 <= cst["reliable"] <= cst["pseudo_labelled"] > 0
    assert 0 <= cst["agreement_quantiles"]["q05"] <= cst["agreement_quantiles"]["q95"] <= 1
    assert any("unlabelled slices reliable" in n for n in run.notes)
    assert len(list((tmp_path / "era" / "stage1" / "snapshots").glob("*.ckpt"))) >= 2
    assert (tmp_path / "era" / "u3" / "metrics.json").is_file() and (tmp_path / "era" / "model").is_dir()
    assert any("conditional self-training U4" in n for n in run.notes)
    assert run.metrics["train_slices"] > run.metrics["labelled_slices"] - cst["pseudo_labelled"]
    again = train_2d(_cfg(acdc, tmp_path / "era", "semi.method=eranet", "semi.labelled_patients=2",
                           "semi.labelled_batch=2", "semi.self_training=true", "semi.snapshots=2"))
    assert again.skipped
    with pytest.raises(ConfigError, match="self_training"):
        _cfg(acdc, tmp_path / "x", "semi.method=mean_teacher", "semi.labelled_patients=2", "semi.labelled_batch=2",
             "semi.self_training=true")


@pytest.mark.parametrize("layout", ["folder2d", "meniscus"])
def test_unlabelled_images_of_a_folder_are_the_unlabelled_stream(tmp_path, layout):
    root = write_synthetic(tmp_path / layout, layout, n=8 if layout == "folder2d" else 4, size=32, seed=1)
    dataset = read_seg2d(root)
    no_label = {c.id for c in dataset.cases if not c.has_label}
    assert no_label
    run = run_seg2d(_cfg(root, tmp_path / "run", "semi.method=mean_teacher", "semi.labelled_batch=2",
                         f"data.layout={layout}", "data.classes=null"))
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert set(splits["unlabelled"]) == no_label
    assert not no_label & set(splits["val"] + splits["test"])      # never scored
    assert run.metrics["train_slices"] > run.metrics["labelled_slices"]
    assert any("without a label: the unlabelled stream" in n for n in run.notes)
    sup = run_seg2d(_cfg(root, tmp_path / "sup", f"data.layout={layout}", "data.classes=null"))
    assert sup.metrics["train_slices"] == sup.metrics["labelled_slices"]
    assert any("not used (semi.method none)" in n for n in sup.notes)


def test_draw_sampler_reaches_every_item_when_an_epoch_is_shorter_than_the_set():
    from medmodal.data.sampler import DrawSampler
    sampler = DrawSampler(num_items=10, draws=4, seed=0)
    seen, per_epoch = set(), []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        draws = list(sampler)
        assert len(draws) == 4 and len({d % 10 for d in draws}) == 4      # no repeat within an epoch
        per_epoch.append([d % 10 for d in draws])
        seen |= {d % 10 for d in draws}
    assert per_epoch[0] != per_epoch[1] and len(seen) > 4                 # not always the first four
    long = DrawSampler(num_items=3, draws=7, seed=1)
    counts = [sum(1 for d in long if d % 3 == i) for i in range(3)]
    assert sorted(counts) == [2, 2, 3]                                     # every item twice before any third time
    with pytest.raises(ValueError):
        DrawSampler(0, 4)


def test_a_short_epoch_trains_on_slices_beyond_its_length(acdc, tmp_path):
    from medmodal.engine.seg2d.train import Seg2DDataModule, case_splits
    cfg = _cfg(acdc, tmp_path / "d", "trainer.samples_per_epoch=8")
    dataset = read_seg2d(acdc)
    splits, _ = case_splits(dataset, 0.2, 0.2, 0)
    train = [c for c in dataset.cases if c.id in splits["train"]]
    data = Seg2DDataModule(cfg, dataset, train, [])
    n = len(data.train_set.images)
    assert n > 8 and data.draw_sampler is not None
    reached = set()
    for epoch in range(6):
        data.draw_sampler.set_epoch(epoch)
        reached |= {j % n for j in data.draw_sampler}
    assert max(reached) >= 8                                               # the old bug: only slices 0..7
