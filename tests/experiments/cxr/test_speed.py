"""The CM-CGNS speed benchmark runs both formulations on one batch and writes its table / JSON
(timings are measured, never asserted)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.experiments.cxr.speed import CMCGNSSpeedSettings, format_report, load_report_sentences, run

TINY = dict(embed_dim=32, num_clusters=4, decoder_channels=(8,), decoder_layers=1, text_pool_heads=4)


@pytest.mark.slow
def test_benchmark_tiny_run_with_the_real_minilm_tokenizer(tmp_path):
    settings = CMCGNSSpeedSettings(image_encoder="test_resnet", image_size=64, batch_size=3, steps=1, warmup=1,
                                   max_text_length=32, model_kwargs=TINY)
    report = run(settings, tmp_path / "speed.json")
    saved = json.loads((tmp_path / "speed.json").read_text())
    assert set(saved["results"]) == {"train_stage1", "train_stage2", "heads_only_stage2"}
    for row in report["results"].values():
        assert row["per_sample"]["clusters_active"] and row["batched"]["clusters_active"]
        assert row["speedup"] > 0 and row["batched"]["seconds_per_step"] > 0
    table = format_report(report)
    assert "heads only" in table and report["batch"]["sentences"] >= 4


def test_report_sentences_fallback_and_file(tmp_path):
    reports, source = load_report_sentences(tmp_path / "absent.csv", 5)
    assert len(reports) == 5 and all(reports) and "fallback" in source
    csv_file = tmp_path / "indiana_reports.csv"
    csv_file.write_text("uid,findings,impression\n1,Heart normal. Lungs clear.,No acute disease.\n2,,\n")
    reports, _ = load_report_sentences(csv_file, 1)
    assert reports == [["No acute disease", "Heart normal", "Lungs clear"]]


def test_cli_rejects_unknown_suite():
    result = CliRunner().invoke(app, ["bench-speed", "--suite", "nope"])
    assert result.exit_code == 1 and "--suite" in result.output


def test_settings_from_the_demo_preset_take_its_model_and_batch():
    from medmodal.engine.image_text.config import load_pretrain_config

    cfg = load_pretrain_config(None, "pretrain_demo_cpu")
    s = CMCGNSSpeedSettings.from_pretrain_config(cfg, "pretrain_demo_cpu", steps=2)
    assert (s.image_encoder, s.image_size, s.batch_size, s.max_text_length) == ("resnet10t", 64, 32, 96)
    assert s.model_kwargs["cache_text_features"] is True and s.model_kwargs["embed_dim"] == 256
    assert "image_encoder" not in s.model_kwargs and s.steps == 2 and s.preset == "pretrain_demo_cpu"
    assert CMCGNSSpeedSettings.from_pretrain_config(cfg, batch_size=8, image_size=None).batch_size == 8


def test_settings_refuse_a_preset_of_another_model():
    from medmodal.engine.image_text.config import load_pretrain_config

    cfg = load_pretrain_config(None, "pretrain_demo_cpu")
    cfg.model.name = "convirt"
    with pytest.raises(ValueError, match="convirt"):
        CMCGNSSpeedSettings.from_pretrain_config(cfg)
