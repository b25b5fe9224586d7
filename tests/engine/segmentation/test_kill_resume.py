"""Kill-and-resume: a run killed mid-epoch, resumed from ``last.ckpt``, ends exactly where an
uninterrupted run with the same seed ends (weights, DTM state, validation metrics and the log)."""

import csv
import json
import multiprocessing
import os

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer

from medmodal.data.volumes.synthetic_brats import synth_brats
from medmodal.engine.segmentation.train import TRAIN_TIME_FILE, run_training
from tests.engine.segmentation.test_roundtrip import tiny_config


class KillMidEpoch(L.Callback):
    """Ends the process at ``batch`` of ``epoch`` at once, as SIGKILL would: no exception handler,
    teardown or log flush runs."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os._exit(KILLED)


KILLED = 137


def train_until_killed(cfg):
    run_training(cfg, resume="never", extra_callbacks=[KillMidEpoch(1, 1)])


def final_state(run):
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    rows = [r for r in logged_rows(run) if r.get("val/dice_mean")]
    return ckpt, rows[-1]


def logged_rows(run):
    with open(run / "logs" / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def history(run):
    """metrics.csv without the wall-clock columns: (epoch, step, losses, LR, DTM, validation Dice)."""
    clock = {"train/epoch_seconds", "train/steps_per_s"}
    return [{k: v for k, v in row.items() if k not in clock and v} for row in logged_rows(run)]


def test_killed_run_resumes_to_the_same_result(tmp_path):
    data = tmp_path / "data"
    synth_brats(data, num_cases=4, size=24, seed=0)
    extra = {"trainer.max_epochs": 3, "data.samples_per_epoch": 6}  # 3 steps per epoch
    straight = run_training(tiny_config(data, tmp_path / "straight", **extra), resume="never").path

    killed_dir = tmp_path / "killed"
    # killed as by SIGKILL, in its own process: no exception handler or teardown runs
    process = multiprocessing.get_context("spawn").Process(
        target=train_until_killed, args=(tiny_config(data, killed_dir, **extra),))
    process.start()
    process.join()
    assert process.exitcode == KILLED
    before = torch.load(killed_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert before["global_step"] == 3  # the last checkpoint is the end of epoch 0
    clock_at_resume = ClockAtTrainStart()
    resumed = run_training(tiny_config(data, killed_dir, **extra), resume="auto",
                           extra_callbacks=[clock_at_resume]).path

    (a, metrics_a), (b, metrics_b) = final_state(straight), final_state(resumed)
    assert a["global_step"] == b["global_step"] == 9
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for key, value in a["dtm"].items():
        assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["dtm"][key])), key
    assert metrics_a["epoch"] == metrics_b["epoch"] == "2"
    assert metrics_a["val/dice_mean"] == metrics_b["val/dice_mean"]
    # the log keeps the first session's epoch and logs the re-run epoch once (Lightning's CSV
    # logger deleted metrics.csv on resume): the whole history equals the uninterrupted run's
    assert history(resumed) == history(straight)
    assert sorted({r["epoch"] for r in logged_rows(resumed) if r.get("val/dice_mean")}) == ["0", "1", "2"]

    # the recorded training time covers both sessions: the resumed run's clock starts at the first
    # session's time (from the checkpoint) and train_time.json holds the total
    first_session = before["callbacks"]["Timer"]["time_elapsed"]["train"]
    assert first_session > 0 and clock_at_resume.seconds >= first_session
    total = json.loads((resumed / TRAIN_TIME_FILE).read_text())["train_seconds"]
    assert total >= round(clock_at_resume.seconds, 1)


class ClockAtTrainStart(L.Callback):
    """Reads the Timer callback's elapsed training time when (resumed) training starts."""

    seconds = None

    def on_train_start(self, trainer, pl_module):
        timer = next(c for c in trainer.callbacks if isinstance(c, Timer))
        self.seconds = timer.time_elapsed("train")
