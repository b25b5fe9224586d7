"""The CLI: sub-commands exist, data commands work, input errors are one clear line (no traceback)."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from tests.conftest import BRATS_REAL, TCGA_MAPPING, requires_real_data

runner = CliRunner()


FAMILY_VERBS = {
    "seg": ["train", "evaluate", "predict", "score", "benchmark", "speed", "demo", "synth", "summary", "split",
            "missing-rates", "preprocess"],
    "cxr": ["pretrain", "export", "finetune", "benchmark", "speed", "finetune-speed", "demo", "synth", "reports",
            "synth-downstream", "summary"],
    "endoscopy": ["pretrain", "finetune", "predict", "benchmark", "demo", "synth", "summary", "split", "simulate-nbi",
                  "calibrate-nbi"],
}
#: every old spelling -> the new one its note names
OLD_SPELLINGS = {
    "train": "seg train", "evaluate": "seg evaluate", "predict": "seg predict", "score": "seg score",
    "demo": "seg demo", "benchmark": "seg benchmark", "bench-speed": "seg speed",
    "pretrain": "cxr pretrain", "export": "cxr export", "finetune": "cxr finetune",
    "finetune-speed": "cxr finetune-speed", "pretrain-endoscopy": "endoscopy pretrain",
    "finetune-endoscopy": "endoscopy finetune", "predict-endoscopy": "endoscopy predict",
    "demo-endoscopy": "endoscopy demo",
    "data synth-brats": "seg synth --dataset brats2020", "data synth-myops": "seg synth --dataset myops2020",
    "data summary": "seg summary", "data split": "seg split", "data missing-rates": "seg missing-rates",
    "data preprocess": "seg preprocess", "data summary-endoscopy": "endoscopy summary",
    "data split-endoscopy": "endoscopy split", "data simulate-nbi": "endoscopy simulate-nbi",
    "data calibrate-nbi": "endoscopy calibrate-nbi", "data synth-endoscopy": "endoscopy synth",
    "data synth-cxr": "cxr synth", "data cxr-reports": "cxr reports", "data synth-downstream": "cxr synth-downstream",
    "data downstream-summary": "cxr summary",
}


def _commands(help_text: str) -> list[str]:
    """The command names of a rich ``--help`` box (first word of each row)."""
    box = help_text.split("Commands")[1]
    return [line.strip("│ ").split()[0] for line in box.splitlines()[1:]
            if line.startswith("│ ") and line[2:3].strip()]


def test_root_help_lists_the_families_only():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    assert _commands(result.output) == list(FAMILY_VERBS)


@pytest.mark.parametrize("family", list(FAMILY_VERBS))
def test_family_help_lists_its_verbs(family):
    result = runner.invoke(app, [family, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert _commands(result.output) == FAMILY_VERBS[family]


@pytest.mark.parametrize("cmd", [[f, v] for f, verbs in FAMILY_VERBS.items() for v in verbs])
def test_help(cmd):
    result = runner.invoke(app, [*cmd, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.mark.parametrize("old", list(OLD_SPELLINGS))
def test_old_spelling_help_still_works(old):
    result = runner.invoke(app, [*old.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and "note:" not in result.output


def test_old_spelling_runs_with_one_note_line(tmp_path):
    result = runner.invoke(app, ["data", "synth-brats", str(tmp_path / "d"), "-n", "2", "-s", "16"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == ["note: 'medmodal data synth-brats' is now 'medmodal seg synth --dataset "
                                          "brats2020'; the old spelling goes in the next release"]
    assert result.stdout.startswith("wrote 2 cases")
    new = runner.invoke(app, ["seg", "synth", str(tmp_path / "e"), "-n", "2", "-s", "16"])
    assert new.exit_code == 0 and new.stderr == "" and sorted(p.name for p in (tmp_path / "e").iterdir()) == \
        sorted(p.name for p in (tmp_path / "d").iterdir())
    # an old command that switched on --suite names the family the suite selects
    result = runner.invoke(app, ["benchmark", "--suite", "cxr", "--profile", "nope", "--out", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == ("note: 'medmodal benchmark' is now 'medmodal cxr benchmark'; the old "
                                             "spelling goes in the next release")


def test_family_commands_carry_only_their_own_options():
    for family, foreign in (("seg", "--fractions"), ("cxr", "--real-data"), ("endoscopy", "--imagenet-weights")):
        result = runner.invoke(app, [family, "benchmark", "--help"], terminal_width=200)
        assert "--data" in result.output and "--suite" not in result.output and foreign not in result.output
    for family, foreign in (("seg", "--text-encoder"), ("cxr", "--widths")):
        result = runner.invoke(app, [family, "speed", "--help"], terminal_width=200)
        assert "--suite" not in result.output and foreign not in result.output


@pytest.mark.parametrize("command", [("seg", "train"), ("cxr", "pretrain"), ("cxr", "finetune"),
                                     ("endoscopy", "pretrain"), ("endoscopy", "finetune")], ids=" ".join)
def test_training_verbs_share_the_common_run_options(command):
    """preset, config, --set, out, seed, resume: declared once (cli/_run.py), alike on every training verb."""
    from medmodal.config import preset_names

    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    for option in ("--preset", "--config", "--set", "--out", "--seed", "--resume"):
        assert option in result.output, option
    assert "skip a finished run, else continue from last.ckpt" in result.output
    family, verb = command
    for name in preset_names(family):  # the help lists this verb's presets of this family, no other
        stem = name.split("/", 1)[1]
        assert (stem in result.output) == stem.startswith(f"{verb}_"), stem


def test_summary_split_missing_rates(brats2020_root):
    result = runner.invoke(app, ["seg", "summary", str(brats2020_root)])
    assert result.exit_code == 0, result.output
    assert "BraTS20_Training_002" in result.output and "flair 3/3" in result.output
    result = runner.invoke(app, ["seg", "split", str(brats2020_root), "--seed", "1"])
    assert result.exit_code == 0 and (brats2020_root / "splits_seed1.json").is_file()
    result = runner.invoke(app, ["seg", "missing-rates", str(brats2020_root), "--rates", "flair=0.5,t2=0.5"])
    assert result.exit_code == 0, result.output
    assert (brats2020_root / "missing_mr5005_seed0.csv").is_file()


def test_bad_input_is_one_clear_line(brats2020_root):
    seg = brats2020_root / "BraTS20_Training_000" / "BraTS20_Training_000_t1.nii.gz"
    seg.write_bytes(seg.read_bytes()[:100])
    result = runner.invoke(app, ["seg", "summary", str(brats2020_root)])
    assert result.exit_code == 1
    assert "BraTS20_Training_000_t1.nii.gz: cannot read NIfTI" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["seg", "summary", str(brats2020_root / "missing")])
    assert result.exit_code == 1 and "no such folder" in result.output


@requires_real_data
def test_summary_of_real_case_with_mapping():
    result = runner.invoke(app, ["seg", "summary", str(BRATS_REAL / "TCGA-DU-7294"), "--map", TCGA_MAPPING])
    assert result.exit_code == 0, result.output
    assert "TCGA-DU-7294" in result.output and "240x240x155" in result.output


def test_preprocess_refusing_a_case_leaves_no_progress_bar_behind(brats2020_root):
    """A refused case gives the one-line error and clears the progress bar (a real process: the
    half-drawn bar used to be printed at interpreter exit, after the error)."""
    bad = brats2020_root / "BraTS20_Training_001" / "BraTS20_Training_001_t2.nii.gz"
    bad.write_bytes(b"not a nifti")
    done = subprocess.run([sys.executable, "-m", "medmodal.cli", "seg", "preprocess", str(brats2020_root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and "BraTS20_Training_001_t2.nii.gz: cannot read NIfTI" in done.stderr
    assert "preprocessing" not in done.stdout  # the bar is cleared, not left half-drawn


def test_demo_endoscopy_prints_its_table_unwrapped(tmp_path, monkeypatch):
    """Redirected output (not a terminal): the markdown table and the report path are not cut at 80 columns."""
    import medmodal.experiments.endoscopy.demo as demo

    row = "| " + " | ".join(f"method-{k} accuracy 0.{k}00 +- 0.0{k}" for k in range(5)) + " |"
    report = tmp_path / ("a-long-report-folder-name-" * 4)
    report.mkdir()
    (report / "comparison.md").write_text(row + "\n")
    monkeypatch.setattr(demo, "synth_endoscopy", lambda *a, **k: None)
    monkeypatch.setattr(demo, "run", lambda *a, **k: report)
    result = runner.invoke(app, ["endoscopy", "demo", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert len(row) > 120 and row in result.output.splitlines()
    assert f"report: {report}" in result.output


def test_a_family_registered_after_import_is_mounted_with_its_aliases():
    import typer

    from medmodal.cli.family import Alias, Family, family_app, register_family, unregister_family

    toy = family_app("toy", "A toy family.")

    @toy.command("demo")
    def toy_demo(n: int = typer.Option(2, "--n")):
        """Toy demo."""
        typer.echo(f"toy demo {n}")

    family = Family(key="toy", help="A toy family.", app=toy, aliases=(Alias("toy-demo", toy_demo, "toy demo"),))
    register_family(family)
    try:
        assert "toy" in _commands(runner.invoke(app, ["--help"]).output)
        result = runner.invoke(app, ["toy", "demo", "--n", "3"])
        assert result.exit_code == 0 and result.stdout == "toy demo 3\n"
        result = runner.invoke(app, ["toy-demo"])
        assert result.exit_code == 0 and result.stdout == "toy demo 2\n" and "'medmodal toy demo'" in result.stderr
        with pytest.raises(ValueError, match="already registered"):
            register_family(Family(key="toy", help="", app=family_app("toy", "")))
    finally:
        unregister_family("toy")
    assert "toy" not in _commands(runner.invoke(app, ["--help"]).output)
    assert runner.invoke(app, ["toy-demo"]).exit_code != 0


def test_cxr_demo_runs_the_family_verbs_and_stops_at_a_failing_step(tmp_path):
    """``cxr demo`` = ``cxr synth OUT/data -n N`` then ``cxr pretrain --preset pretrain_demo_cpu``; a step's
    one-line error ends it with exit code 1 (here the draw refuses 0 studies: nothing is pre-trained)."""
    result = runner.invoke(app, ["cxr", "demo", "--out", str(tmp_path / "demo"), "--studies", "0"])
    assert result.exit_code == 1, result.output
    assert "error: number of studies must be >= 1" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "demo" / "run").exists()
