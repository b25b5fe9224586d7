"""The toy family's engine: a DataModule, a LightningModule and ``run_train(cfg, resume) -> RunResult``
on the run spine (:func:`~medmodal.engine.trainer.make_trainer`, :func:`~medmodal.engine.optim.build_optimizer`,
:func:`~medmodal.engine.run.fit`, :func:`~medmodal.engine.run.finished_result`, :func:`~medmodal.bundle.save_bundle`).

Run folder ``<out_dir>/``: ``config.yaml``, ``checkpoints/{best,last}.ckpt``, ``logs/``, ``model/``
(bundle ``toy/model``: ``model.safetensors`` + ``model.json``) and ``metrics.json`` (written last: the
finished marker, so ``resume="auto"`` skips a finished run).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from medmodal.bundle import register_format, save_bundle
from medmodal.config import config_to_dict, load_run_config, save_config
from medmodal.data.layouts import find_layout, layout_reader
from medmodal.engine.optim import build_optimizer
from medmodal.engine.run import RunResult, finished_result, fit, removes_new_files_on_input_error
from medmodal.engine.trainer import fit_time_seconds, make_trainer, quiet_lightning
from medmodal.errors import LayoutError
from medmodal.io import atomic_write_json, ensure_writable_dir
from medmodal.losses import StepContext, get_objective_class, split_objective_config
from medmodal.models import create_model

from tests.toy_family.config import ToyDataSettings, ToyRunConfig
from tests.toy_family.data import FAMILY

__all__ = ["TOY_MODEL", "ToyDataModule", "ToyModule", "run_train", "MODEL_DIR"]

#: the toy family's bundle format (``<family>/<kind>``)
TOY_MODEL = register_format("toy/model", "model.safetensors", "model.json")
MODEL_DIR = "model"
DEFAULT_OBJECTIVE = "toy_ce"


def read_samples(settings: ToyDataSettings):
    """The samples of ``settings.root`` through the layout registry (``data.layout``: ``auto`` detects).

    Raises:
        LayoutError: an unknown layout, a folder no reader recognises, or the reader's own errors.
    """
    root = Path(settings.root)
    if settings.layout == "auto":
        found = find_layout(FAMILY, root)
        if found is None:
            raise LayoutError(f"{root}: no toy layout found (expected labels.csv; `medmodal toy synth OUT` writes one)")
        name, path = found
    else:
        name, path = settings.layout, root
    return layout_reader(FAMILY, name).read(path, num_classes=settings.num_classes)


class ToyDataModule(L.LightningDataModule):
    """Images ``[N, 1, S, S]`` in ``[0, 1]`` and labels; a seeded split (``split_seed``, ``val_fraction``)."""

    def __init__(self, settings: ToyDataSettings):
        super().__init__()
        self.settings = settings
        samples = read_samples(settings)
        images = torch.from_numpy(np.stack([s.image for s in samples])).float().div(255).unsqueeze(1)
        labels = torch.tensor([s.label for s in samples])
        order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(settings.split_seed))
        n_val = max(1, int(round(len(samples) * settings.val_fraction)))
        self.val = TensorDataset(images[order[:n_val]], labels[order[:n_val]])
        self.train = TensorDataset(images[order[n_val:]], labels[order[n_val:]])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.settings.batch_size, shuffle=True,
                          num_workers=self.settings.num_workers)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=self.settings.batch_size, num_workers=self.settings.num_workers)


class ToyModule(L.LightningModule):
    """Trains a ``toy_classifier`` model with the objective named by ``loss.name`` (default ``toy_ce``).

    Built from the config as a plain dict (``save_hyperparameters``: the checkpoint loads with
    ``weights_only=True``).
    """

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = load_run_config(ToyRunConfig, data=config, validate=False)
        self.model = create_model(self.cfg.model.name, num_classes=self.cfg.data.num_classes, **self.cfg.model.kwargs)
        name, options = split_objective_config(self.cfg.loss, DEFAULT_OBJECTIVE)
        self.objective = get_objective_class(name).from_options(options)

    def _step(self, phase: str, batch) -> torch.Tensor:
        images, labels = batch
        out = self.objective({"logits": self.model(images)}, StepContext(target=labels, update=phase == "train"))
        for key, value in out.items():
            self.log(f"{phase}/{key}", value, prog_bar=key == "loss", batch_size=len(labels))
        return out["loss"]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step("train", batch)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step("val", batch)

    def configure_optimizers(self):
        return build_optimizer(self.parameters(), self.cfg.optim, max_epochs=self.cfg.trainer.max_epochs)


@removes_new_files_on_input_error
def run_train(cfg: ToyRunConfig, resume: str | None = "auto") -> RunResult:
    """Train ``cfg`` (module docstring); ``metrics``: ``epochs``, ``steps``, ``val_loss``, ``train_seconds``."""
    quiet_lightning()
    run_dir = ensure_writable_dir(cfg.out_dir)
    artefacts = {"model": run_dir / MODEL_DIR}
    done = finished_result(run_dir, resume, artefacts=artefacts, cfg=cfg)
    if done is not None:
        return done
    save_config(cfg, run_dir / "config.yaml")
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    datamodule = ToyDataModule(cfg.data)
    module = ToyModule(config_to_dict(cfg))
    trainer = make_trainer(run_dir, cfg.trainer, monitor="val/loss", mode="min", grad_clip=cfg.optim.grad_clip)
    fit(trainer, module, datamodule, run_dir, resume)
    save_bundle(run_dir / MODEL_DIR, module.model,
                {"model_name": cfg.model.name, "num_classes": cfg.data.num_classes, "model_kwargs": cfg.model.kwargs},
                format=TOY_MODEL)
    metrics = {"run_dir": str(run_dir), "epochs": int(trainer.current_epoch), "steps": int(trainer.global_step),
               "val_loss": float(trainer.callback_metrics["val/loss"]),
               "train_seconds": round(fit_time_seconds(trainer), 2)}
    atomic_write_json(run_dir / "metrics.json", metrics)  # last: the finished marker
    return RunResult.from_dict(metrics, artefacts)
