"""A CSV metrics log that survives a resumed run.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` as soon as it opens a log folder that is not
empty, so after ``medmodal seg train --resume`` the file held only the epochs trained after the
resume: the validation-Dice history of the first session was gone. :class:`ResumableCSVLogger`
keeps the file, and :class:`KeepLogHistoryUntilResumePoint` trims it, once the checkpoint has
been restored, to the rows logged before the resume point; the epochs that are trained again
are logged again, once.
"""

from __future__ import annotations

import csv
import os

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from medmodal.io import atomic_path

__all__ = ["ResumableCSVLogger", "KeepLogHistoryUntilResumePoint"]


def logged_before(row: dict[str, str], epoch: int, step: int) -> bool:
    """Whether a ``metrics.csv`` row was logged before training reached ``epoch`` / global ``step``.

    Rows carry the epoch they were logged in, except Lightning's learning-rate rows, which are
    logged at the start of an epoch with the global step only.
    """
    if row.get("epoch"):
        return float(row["epoch"]) < epoch
    return bool(row.get("step")) and int(float(row["step"])) < step


class _HistoryKeepingWriter(ExperimentWriter):
    """Lightning's CSV writer, minus the deletion of an existing ``metrics.csv`` when it opens."""

    def _check_log_dir_exists(self) -> None:
        pass  # the file is trimmed by keep_rows_before once the resume point is known

    def keep_rows_before(self, epoch: int, step: int) -> None:
        """Rewrite ``metrics.csv`` (atomically) with only the rows logged before ``epoch``/``step``."""
        if not self._fs.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            rows = [row for row in reader if logged_before(row, epoch, step)]
        if not rows:
            os.remove(self.metrics_file_path)
            self.metrics_keys = []
            return
        with atomic_path(self.metrics_file_path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = fields  # new rows are appended under the same header (widened if needed)


class ResumableCSVLogger(CSVLogger):
    """:class:`lightning.pytorch.loggers.CSVLogger` that keeps an existing ``metrics.csv``.

    Use it with :class:`KeepLogHistoryUntilResumePoint`, which trims the kept file to the resume
    point (a fresh run in the same folder empties it, as Lightning's logger does).
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> _HistoryKeepingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _HistoryKeepingWriter(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def keep_history_before(self, epoch: int, step: int) -> None:
        """Keep only the ``metrics.csv`` rows logged before ``epoch`` / global ``step``."""
        self.experiment.keep_rows_before(epoch, step)


class KeepLogHistoryUntilResumePoint(Callback):
    """At the start of training (after a checkpoint is restored), trims every
    :class:`ResumableCSVLogger` of the trainer to the rows logged before the resumed epoch."""

    def on_train_start(self, trainer, pl_module) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, ResumableCSVLogger):
                logger.keep_history_before(trainer.current_epoch, trainer.global_step)
