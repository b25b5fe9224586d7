"""The 2-D segmentation LightningModule: CE + soft Dice on training slices; validation Dice of whole cases on
their native grid (:func:`medmodal.inference.planar.predict_stack`)."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from monai.losses import DiceCELoss

from medmodal.engine.optim import build_optimizer
from medmodal.engine.seg2d.config import Seg2DOptimSettings
from medmodal.inference.planar import predict_stack
from medmodal.layers.momentum import ema_update_, momentum_copy
from medmodal.layers.ramps import sigmoid_rampup
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
        meta = config["bundle"]
        self.model = create_model(config["model"]["name"], modalities=tuple(meta["modalities"]),
                                  num_classes=int(meta["num_classes"]), **dict(config["model"].get("kwargs") or {}))
        self.loss = build_loss(config["loss"])
        size = config["data"]["size"]
        self.grid = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.semi = dict(config.get("semi") or {"method": "none"})
        # Mean Teacher (semi.method): the EMA teacher; the student (self.model) is what is validated and saved
        self.teacher = momentum_copy(self.model) if self.semi["method"] == "mean_teacher" else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(images.shape[:2], dtype=torch.bool, device=images.device)
        return self.model(images, mask)

    def training_step(self, batch, batch_idx):
        x, y = batch["image"], batch["label"]
        if self.teacher is None:
            loss = self.loss(self(x), y[:, None])
            self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
            return loss
        return self._mean_teacher_step(x, y)

    def _mean_teacher_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """SSL4MIS's Mean Teacher step: the supervised loss on the labelled head of the batch, the MSE between the
        student's and the teacher's softmax on the unlabelled tail (teacher input with clamped Gaussian noise),
        weighted by ``consistency * sigmoid_rampup(step, rampup * total steps)``."""
        semi, lb = self.semi, int(self.semi["labelled_batch"])
        logits = self(x)
        supervised = self.loss(logits[:lb], y[:lb, None])
        noise = float(semi["noise"])
        with torch.no_grad():
            noisy = x[lb:] + (torch.randn_like(x[lb:]) * noise).clamp(-2 * noise, 2 * noise)
            mask = torch.ones(noisy.shape[:2], dtype=torch.bool, device=x.device)
            target = self.teacher(noisy, mask).softmax(1)
        consistency = ((logits[lb:].softmax(1) - target) ** 2).mean()
        total = max(1, int(self.trainer.estimated_stepping_batches))
        weight = float(semi["consistency"]) * sigmoid_rampup(self.global_step, float(semi["rampup"]) * total)
        loss = supervised + weight * consistency
        self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
        self.log("train/supervised", supervised.detach(), batch_size=lb)
        self.log("train/consistency", consistency.detach(), batch_size=x.shape[0] - lb)
        self.log("train/consistency_weight", weight, batch_size=x.shape[0] - lb)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        """The teacher follows the student: ``alpha = min(1 - 1 / (step + 1), ema)`` (SSL4MIS's ``update_ema_variables``)."""
        if self.teacher is not None:
            alpha = min(1 - 1 / (self.global_step + 1), float(self.semi["ema"]))
            ema_update_(self.model, self.teacher, alpha)

    def validation_step(self, batch, batch_idx):
        pred = predict_stack(self.model, batch["image"], self.grid)
        dice = foreground_dice(pred, batch["label"].cpu().numpy(), int(self.config["bundle"]["num_classes"]))
        self.log("val/dice", torch.tensor(dice, dtype=torch.float32), on_epoch=True, batch_size=1)

    def configure_optimizers(self):
        trainer, optim = self.config["trainer"], self.config["optim"]
        params = self.model.parameters()  # the teacher is not optimised
        steps = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else None
        return build_optimizer(params, Seg2DOptimSettings(**optim), max_epochs=int(trainer["max_epochs"]),
                               total_steps=steps)
