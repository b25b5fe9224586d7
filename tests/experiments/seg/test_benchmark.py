"""The benchmark runner end to end on a tiny profile (2 methods, 1 protocol, 1 epoch)."""

import csv

from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.experiments.seg.benchmark import METHODS, PROFILES, SegProfile, run_config
from medmodal.experiments.seg.benchmark import run as run_benchmark

TINY = SegProfile(cases=4, size=24, crop=16, widths=(4, 8, 16), epochs=1, samples_per_epoch=4, batch_size=2,
               seeds=(0,), num_workers=0, val_every=1)


def test_tiny_benchmark_writes_the_report(tmp_path):
    seen = []
    report = run_benchmark(tmp_path, TINY, ["dmafnet", "zero_unet", "dmafnet w/o RD"], protocols=["imbalanced"],
                           on_run=seen.append)
    text = (report / "report.md").read_text()
    assert "## imbalanced protocol: methods" in text and "## imbalanced protocol: DMAF-Net ablations" in text
    assert "| zero_unet |" in text and "| dmafnet w/o RD |" in text
    with open(report / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows] == ["dmafnet", "zero_unet", "dmafnet w/o RD"]
    assert all(0 <= float(r["Dice_WT"]) <= 100 and float(r["parameters"]) > 0 for r in rows)
    assert all(r["eval_protocol"] == "passion" and r["Dice_ETPro"] for r in rows)
    assert (report / "dice_bars.png").stat().st_size > 1000
    # the papers' main table: every method on each of the 15 subsets, per region
    with open(report / "subset_results.csv") as fh:
        per_subset = list(csv.DictReader(fh))
    assert len(per_subset) == 3 * 16 and per_subset[0]["subset"] == "flair" and per_subset[15]["subset"] == "Average"
    assert {r["eval_protocol"] for r in per_subset} == {"passion"}
    assert "## imbalanced protocol: Dice ET (%) per subset" in text
    assert text.startswith("# Benchmark - scored under `passion`")
    assert "Training under the imbalanced missing-sequence protocol." in text  # only the protocol that ran
    assert "## imbalanced protocol: methods (scored under `passion`)" in text
    assert "## imbalanced protocol: Dice ETPro (%) per subset" in text and "| Dice ETPro |" in text
    table = text.split("## imbalanced protocol: Dice WT (%) per subset (scored under `passion`)")[1]
    table = table.split("##")[0].strip().splitlines()
    assert table[0] == "| FLAIR | T1 | T1ce | T2 | dmafnet | zero_unet | dmafnet w/o RD |" and len(table) == 2 + 16
    assert table[2].startswith("| ● | ○ | ○ | ○ | ") and table[-1].startswith("| Average |")
    zero_flair = [r for r in per_subset if r["method"] == "zero_unet" and r["subset"] == "flair"][0]
    assert table[2].split("|")[6].strip().strip("*") == f"{float(zero_flair['Dice_WT']):.1f}"
    best = [c.strip() for c in table[2].split("|")[5:8]]
    assert sum(c.startswith("**") for c in best) >= 1  # the row's best method is bold
    run = tmp_path / "runs" / "imbalanced" / "zero_unet" / "seed0"
    assert (run / "eval_test" / "dice_heatmap.png").is_file() and (run / "missing_sequences.csv").is_file()
    # a second call skips finished runs (resume of an interrupted benchmark)
    again = []
    run_benchmark(tmp_path, TINY, ["zero_unet"], protocols=["imbalanced"], on_run=again.append)
    assert again[0] == seen[1]
    # another evaluation protocol re-scores the finished run (no re-training) and says so
    trained = (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    report = run_benchmark(tmp_path, TINY, ["zero_unet"], protocols=["imbalanced"], on_run=again.append,
                           eval_protocol="brats-challenge")
    assert again[1]["eval_protocol"] == "brats-challenge" and again[1]["train_s"] == seen[1]["train_s"]
    assert "Dice_ETPro" not in again[1] and (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == trained
    assert (report / "report.md").read_text().startswith("# Benchmark - scored under `brats-challenge`")


def test_every_method_config_is_valid(tmp_path):
    for name, method in METHODS.items():
        cfg = run_config(method, PROFILES["cpu-quick"], "balanced", 0, tmp_path, tmp_path / name)
        assert cfg.model.name == method.model and cfg.data.crop_size == (32, 32, 32)
    assert PROFILES["gpu-full"].seeds == (0, 1, 2) and PROFILES["gpu-full"].real


def test_cli_rejects_unknown_method(tmp_path):
    result = CliRunner().invoke(app, ["seg", "benchmark", "--out", str(tmp_path), "--methods", "unet9000"])
    assert result.exit_code == 1 and "unknown method" in result.output
    result = CliRunner().invoke(app, ["seg", "benchmark", "--out", str(tmp_path), "--protocol", "myops"])
    assert result.exit_code == 1 and "choose another --protocol" in result.output
    result = CliRunner().invoke(app, ["seg", "benchmark", "--out", str(tmp_path), "--protocol", "hd99"])
    assert result.exit_code == 1 and "unknown evaluation protocol 'hd99'" in result.output


def test_cli_real_case_errors(tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["seg", "benchmark", "--out", str(tmp_path), "--real-data", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "nowhere: no such folder (--real-data)" in result.output
    monkeypatch.delenv("MEDMODAL_REAL_CASE", raising=False)
    result = runner.invoke(app, ["seg", "benchmark", "--out", str(tmp_path), "--real"])
    assert result.exit_code == 1 and "no real labelled case found" in result.output
    monkeypatch.setenv("MEDMODAL_REAL_CASE", str(tmp_path / "absent"))  # a typo is named, not ignored
    result = runner.invoke(app, ["seg", "benchmark", "--out", str(tmp_path), "--real"])
    assert result.exit_code == 1 and "absent: no such folder ($MEDMODAL_REAL_CASE)" in result.output


def test_default_real_case(tmp_path, monkeypatch):
    from medmodal.experiments.seg.benchmark import default_real_case

    monkeypatch.setenv("MEDMODAL_REAL_CASE", str(tmp_path))
    assert default_real_case() == tmp_path
    monkeypatch.delenv("MEDMODAL_REAL_CASE")
    assert default_real_case() is None  # no default location: data roots come from arguments or MEDMODAL_*
