"""Engine callbacks: the progress bar reads the loss back every n batches; speed is logged per epoch."""

import csv

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import CSVLogger

from medmodal.engine.callbacks import RichProgressBarEveryN, TrainingSpeedMonitor


class _TinyModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_progress_bar_reads_metrics_every_n_batches_and_at_epoch_end(monkeypatch, tmp_path):
    reads = []
    original = RichProgressBar.get_metrics

    def counting(self, trainer, pl_module):
        reads.append((trainer.global_step, trainer.training))
        return original(self, trainer, pl_module)

    monkeypatch.setattr(RichProgressBar, "get_metrics", counting)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(7, 2)), batch_size=1)
    bar = RichProgressBarEveryN(metrics_every_n_steps=3)
    trainer = L.Trainer(max_epochs=1, callbacks=[bar], logger=False, enable_checkpointing=False,
                        enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu")
    trainer.fit(_TinyModule(), data)
    batch_reads = [step for step, _ in reads]
    assert {3, 6} <= set(batch_reads)                    # every third batch (and the first one)
    assert not {2, 4, 5} & set(batch_reads)             # not the batches in between
    assert batch_reads.count(7) >= 1                     # epoch end shows the last value
    assert "train/loss" in bar.get_metrics(trainer, trainer.lightning_module)


def test_progress_bar_refuses_zero():
    with pytest.raises(ValueError, match="metrics_every_n_steps"):
        RichProgressBarEveryN(metrics_every_n_steps=0)


def test_training_speed_monitor_logs_steps_per_second_each_epoch(tmp_path):
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(5, 2)), batch_size=1)
    trainer = L.Trainer(max_epochs=2, callbacks=[TrainingSpeedMonitor()], logger=CSVLogger(tmp_path, name="", version=""),
                        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
                        default_root_dir=tmp_path, accelerator="cpu")
    trainer.fit(_TinyModule(), data)
    rows = [r for r in csv.DictReader(open(tmp_path / "metrics.csv")) if r.get("train/steps_per_s")]
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    for r in rows:
        seconds, rate = float(r["train/epoch_seconds"]), float(r["train/steps_per_s"])
        assert seconds > 0 and rate == pytest.approx(5 / seconds, rel=1e-4)
