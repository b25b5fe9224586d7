"""The 2-D segmentation LightningModule: CE + soft Dice on training slices; validation Dice of whole cases on
their native grid (:func:`medmodal.inference.planar.predict_stack`)."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from monai.losses import DiceCELoss

from medmodal.engine.optim import build_optimizer
from medmodal.engine.seg2d.config import Seg2DOptimSettings
from medmodal.engine.semi import build_semi_method
from medmodal.inference.planar import predict_stack
from medmodal.models import create_model

__all__ = ["Seg2DModule", "build_loss", "foreground_dice"]


def build_loss(loss: dict) -> DiceCELoss:
    """MONAI ``DiceCELoss``: softmax, one-hot target, Dice summed over the batch before the ratio (TransUNet's
    ``DiceLoss`` works on the whole batch), smoothing 1e-5 (TransUNet's), weights ``ce_weight`` / ``dice_weight``."""
    return DiceCELoss(to_onehot_y=True, softmax=True, include_background=bool(loss["dice_include_background"]),
                      batch=True, smooth_nr=1e-5, smooth_dr=1e-5, lambda_ce=float(loss["ce_weight"]),
                      lambda_dice=float(loss["dice_weight"]))


def foreground_dice(pred: np.ndarray, ref: np.ndarray, num_classes: int) -> float:
    """Mean Dice of the foreground classes of one case (a class empty in both counts 1): the ``val/dice`` that
    picks the checkpoint."""
    scores = []
    for c in range(1, num_classes):
        p, r = pred == c, ref == c
        den = int(p.sum()) + int(r.sum())
        scores.append(1.0 if den == 0 else 2.0 * int(np.logical_and(p, r).sum()) / den)
    return float(np.mean(scores))


class Seg2DModule(L.LightningModule):
    """Args:
        config: the run config as a dict (``config_to_dict(Seg2DRunConfig)``) plus ``bundle`` (the model description:
            ``modalities`` = image channels, ``classes``), stored in checkpoints.
    """

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = config
        self.model = self._new_model()
        self.loss = build_loss(config["loss"])
        size = config["data"].get("size")   # the 2-D network grid (a 3-D run validates by sliding window)
        self.grid = None if size is None else (int(size), int(size)) if isinstance(size, int) else \
            (int(size[0]), int(size[1]))
        self.semi = dict(config.get("semi") or {"method": "none"})
        # the semi-supervised step (semi.method; medmodal.engine.semi): its teacher / second student are submodules
        # of it; the student (self.model) is what is validated and saved
        self.semi_method = build_semi_method({**self.semi, "seed": int(config["trainer"].get("seed", 0))},
                                             self.model, self._new_model)

    def _new_model(self) -> torch.nn.Module:
        meta = self.config["bundle"]
        return create_model(self.config["model"]["name"], modalities=tuple(meta["modalities"]),
                            num_classes=int(meta["num_classes"]), **dict(self.config["model"].get("kwargs") or {}))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(images.shape[:2], dtype=torch.bool, device=images.device)
        return self.model(images, mask)

    def training_step(self, batch, batch_idx):
        x, y = batch["image"], batch["label"]
        if self.semi_method is None:
            loss = self.loss(self(x), y[:, None])
            self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
            return loss
        total = max(1, int(self.trainer.estimated_stepping_batches))
        loss, terms = self.semi_method.loss(self, x, y, lambda logits, labels: self.loss(logits, labels[:, None]),
                                            self.global_step, total)
        self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
        for key, value in terms.items():
            self.log(f"train/{key}", value, batch_size=x.shape[0])
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        """EMA teachers follow the student after each step (:meth:`medmodal.engine.semi.SemiMethod.after_step`)."""
        if self.semi_method is not None:
            self.semi_method.after_step(self.model, self.global_step)

    def validation_step(self, batch, batch_idx):
        pred = predict_stack(self.model, batch["image"], self.grid)
        dice = foreground_dice(pred, batch["label"].cpu().numpy(), int(self.config["bundle"]["num_classes"]))
        self.log("val/dice", torch.tensor(dice, dtype=torch.float32), on_epoch=True, batch_size=1)

    def configure_optimizers(self):
        trainer, optim = self.config["trainer"], self.config["optim"]
        # a teacher is not optimised; CPS's second student is
        params = [*self.model.parameters(), *(self.semi_method.trainable() if self.semi_method is not None else [])]
        steps = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else None
        return build_optimizer(params, Seg2DOptimSettings(**optim), max_epochs=int(trainer["max_epochs"]),
                               total_steps=steps)
