"""``medmodal cxr benchmark``: downstream plumbing on tiny twins, resume, report layout."""

from __future__ import annotations

import csv
import json

import pytest

from medmodal.experiments.cxr.benchmark import (
    CXR_METHODS,
    CXR_PROFILES,
    DOWNSTREAM_TASKS,
    run,
    task_table,
    with_overrides,
)
from medmodal.models import list_models

TINY = with_overrides(CXR_PROFILES["cpu-quick"], pretrain_studies=24, pretrain_size=64, pretrain_epochs=1,
                      cmcgns_stage2_epochs=0, pretrain_batch_size=8, twin_images=24, twin_size=64,
                      fractions=(0.1, 1.0), epochs={"classification": 2, "segmentation": 1, "detection": 1},
                      batch_size=8, name="tiny")


def test_methods_cover_every_pretraining_model_and_the_papers_tasks():
    pretrained = {m.model for m in CXR_METHODS.values() if m.init is None}  # init None: pre-trained as m.model
    assert pretrained == set(list_models(task="image_text"))
    assert {d for _, d in DOWNSTREAM_TASKS} == {"chexpert", "rsna", "covidx", "siim", "object-cxr"}
    quick = CXR_PROFILES["cpu-quick"]
    assert {"convirt", "mgca", "cmcgns"} <= set(quick.methods) and quick.fractions == (0.01, 0.1, 1.0)
    assert set(CXR_PROFILES["gpu-full"].methods) == set(CXR_METHODS) and len(CXR_PROFILES["gpu-full"].seeds) == 3


def test_bad_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown profile"):
        run(tmp_path, "tpu-huge")
    with pytest.raises(ValueError, match="unknown method"):
        run(tmp_path, TINY, methods=["simclr"])
    with pytest.raises(ValueError, match="task/dataset"):
        run(tmp_path, TINY, methods=["random"], tasks=[("classification", "siim")])
    with pytest.raises(FileNotFoundError, match="no such weight file"):
        run(tmp_path, TINY, imagenet_weights=tmp_path / "nope.pth")


@pytest.mark.slow
def test_random_init_runs_every_task_resumes_and_reports(tmp_path):
    tasks = [("classification", "covidx"), ("segmentation", "siim"), ("detection", "object-cxr")]
    seen = []
    report = run(tmp_path, TINY, methods=["random", "imagenet"], tasks=tasks, on_run=seen.append)
    assert len(seen) == 3 * 2  # imagenet left out (no weights), 3 tasks x 2 fractions x 1 seed
    text = (report / "report.md").read_text()
    assert "ImageNet init: left out" in text
    for title in ("Linear classification", "Segmentation (Dice %)", "Detection (mAP %"):
        assert title in text
    with open(report / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["task"] for r in rows} == {"classification", "segmentation", "detection"}
    for row in rows:
        assert (tmp_path / row["run"] / "results.csv").is_file()  # a CSV per run
        assert 0.0 <= float(row["value"]) <= 100.0
    assert (report / "fractions.png").stat().st_size > 0
    # resume: everything finished is skipped, the same numbers come back
    again = []
    run(tmp_path, TINY, methods=["random"], tasks=tasks, on_run=again.append)
    assert [r["value"] for r in again] == [r["value"] for r in seen]


def test_task_table_layout_mean_std_over_seeds():
    rows = [{"task": "classification", "dataset": "rsna", "method": "convirt", "fraction": f, "seed": s,
             "value": v} for f, s, v in ((0.01, 0, 60.0), (0.01, 1, 70.0), (1.0, 0, 80.0))]
    table = task_table(rows, "classification").splitlines()
    assert table[0] == "| method | RSNA 1% | RSNA 100% |"
    assert table[2] == "| convirt | 65.0 ± 5.0 | 80.0 |"


@pytest.mark.slow
def test_pretrained_method_flows_through_the_engine_into_every_task_family(tmp_path):
    """ConVIRT pre-trained 1 epoch by the engine; its export is what the downstream run loads."""
    tasks = [("classification", "covidx")]
    report = run(tmp_path, TINY, methods=["convirt"], tasks=tasks, fractions=[1.0])
    export = tmp_path / "pretrain" / "convirt" / "export" / "image_encoder"
    assert (export / "model.safetensors").is_file()
    metrics = (tmp_path / "runs" / "classification" / "covidx" / "convirt" / "frac1" / "seed0" / "metrics.json")
    encoder = json.loads(metrics.read_text())["encoder"]
    assert encoder["kind"] == "export" and encoder["path"] == str(export / "model.safetensors")
    assert "| convirt | convirt | 1 |" in (report / "report.md").read_text()


def test_cli_rejects_bad_suite_profile_and_tasks_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from medmodal.cli import app

    runner = CliRunner()
    for args, message in ((["benchmark", "--suite", "nope"], "--suite must be"),  # the old spelling
                          (["cxr", "benchmark", "--profile", "tpu"], "unknown profile"),
                          (["cxr", "benchmark", "--tasks", "classification"], "not task:dataset"),
                          (["cxr", "benchmark", "--data", str(tmp_path / "own")], "own/pretrain")):
        result = runner.invoke(app, [*args, "--out", str(tmp_path)])
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output


def test_cpu_compare_profile_pretrains_every_method_as_the_cmcgns_demo_preset():
    """cpu-compare is the demo preset's pre-training for every method: kept equal to the YAML by this test."""
    from medmodal.engine.image_text import load_pretrain_config

    preset = load_pretrain_config(preset="pretrain_demo_cpu")
    prof = CXR_PROFILES["cpu-compare"]
    kwargs = preset.model.kwargs
    assert prof.arch == kwargs["image_encoder"] and prof.image_size == preset.data.image_size
    assert prof.pretrain_epochs == preset.trainer.stage1_epochs + preset.trainer.stage2_epochs
    assert prof.cmcgns_stage2_epochs == preset.trainer.stage2_epochs
    assert prof.pretrain_batch_size == preset.data.batch_size and prof.pretrain_lr == preset.optim.lr
    assert {k: v for k, v in kwargs.items() if k != "image_encoder"} == prof.model_kwargs["cmcgns"]
    for family in ("convirt", "gloria", "mgca"):  # the shared sizes, never CM-CGNS-only keys
        assert prof.model_kwargs[family] == {k: kwargs[k] for k in ("embed_dim", "cache_text_features")}
    assert len(prof.seeds) == 3 and prof.pretrain_eval and {"convirt", "mgca", "cmcgns"} <= set(prof.methods)
    assert prof.task_seeds == {"detection": (0,)}


def test_report_summarises_the_pretraining_evaluation(tmp_path):
    from medmodal.experiments.cxr.benchmark import pretrain_quality, write_cxr_report

    evaluation = {name: {"retrieval": {"image_to_report": {"R@10": r}, "report_to_image": {"R@10": r / 2},
                                       "chance": {"R@10": 0.05}}, "zero_shot": {"mean_auroc": a}}
                  for name, r, a in (("pretrained", 0.2, 0.8), ("untrained", 0.05, 0.5))}
    quality = pretrain_quality({"evaluation": evaluation})
    assert quality == pytest.approx({"i2r_R@10": 20.0, "r2i_R@10": 10.0, "chance_R@10": 5.0,
                                     "zero_shot_auroc": 80.0, "zero_shot_auroc_untrained": 50.0})
    assert pretrain_quality({"train_seconds": 3.0}) == {}
    rows = [{"task": "classification", "dataset": "rsna", "method": "convirt", "fraction": 1.0, "seed": 0,
             "value": 70.0}]
    report = write_cxr_report(rows, [{"method": "convirt", "model": "convirt", "train_s": 12.0, "epochs": 3,
                                      **quality}], tmp_path, "cpu-compare", CXR_PROFILES["cpu-compare"])
    text = (report / "report.md").read_text()
    assert "| convirt | convirt | 3 | 12 | 20.0 | 10.0 | 80.0 | 50.0 |" in text
    assert "(chance 5.0)" in text and "What cpu-compare can show" in text


def test_every_method_gives_the_profile_arch_to_the_finetuning_engine(tmp_path):
    """The task presets name their own backbone; a pre-trained export is checked against the arch given."""
    from medmodal.experiments.cxr.benchmark import encoder_source

    prof = CXR_PROFILES["cpu-compare"]
    assert encoder_source("convirt", prof, tmp_path, None) == (str(tmp_path / "convirt"), "resnet10t")
    assert encoder_source("random", prof, tmp_path, None) == ("random", "resnet10t")
