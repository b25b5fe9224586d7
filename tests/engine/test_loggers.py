"""The resumable CSV log: trimming an existing metrics.csv to the resume point."""

import csv

from medmodal.engine.loggers import ResumableCSVLogger, logged_before

HEADER = ["epoch", "lr-AdamW", "step", "train/loss", "val/dice_mean"]
ROWS = [
    {"lr-AdamW": "0.01", "step": "0"},  # learning-rate rows carry no epoch
    {"epoch": "0", "step": "0", "train/loss": "2.0"},
    {"epoch": "0", "step": "1", "val/dice_mean": "0.3"},
    {"lr-AdamW": "0.009", "step": "2"},
    {"epoch": "1", "step": "2", "train/loss": "1.5"},  # an epoch cut short by a crash
]


def write_log(tmp_path):
    logger = ResumableCSVLogger(tmp_path, name="logs", version="")
    path = tmp_path / "logs" / "metrics.csv"
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(ROWS)
    return logger, path


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_logged_before_uses_the_epoch_and_the_step_for_rows_without_one():
    assert [logged_before(r, epoch=1, step=2) for r in ROWS] == [True, True, True, False, False]


def test_resume_keeps_the_rows_before_the_resume_point_and_appends(tmp_path):
    logger, path = write_log(tmp_path)
    logger.keep_history_before(epoch=1, step=2)
    assert [r["step"] for r in read(path)] == ["0", "0", "1"]
    logger.log_metrics({"epoch": 1, "train/loss": 1.4, "train/new_term": 0.5}, step=2)
    logger.save()
    rows = read(path)
    assert [r["step"] for r in rows] == ["0", "0", "1", "2"]
    assert rows[2]["val/dice_mean"] == "0.3" and rows[3]["train/loss"] == "1.4"
    assert rows[3]["train/new_term"] == "0.5" and rows[0]["train/new_term"] == ""


def test_a_fresh_run_in_the_same_folder_starts_an_empty_log(tmp_path):
    logger, path = write_log(tmp_path)
    logger.keep_history_before(epoch=0, step=0)
    assert not path.exists()
    logger.log_metrics({"epoch": 0, "train/loss": 3.0}, step=0)
    logger.save()
    assert [r["train/loss"] for r in read(path)] == ["3.0"]
