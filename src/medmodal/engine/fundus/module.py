"""The vessel LightningModule: BCE-with-logits + soft Dice inside the FOV, validation Dice inside the FOV."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from medmodal.engine.fundus.config import VesselOptimSettings
from medmodal.engine.optim import build_optimizer
from medmodal.layers.randconv import RandConv
from medmodal.models import create_model

__all__ = ["VesselModule", "vessel_loss", "MODALITIES"]

#: the network's input channels
MODALITIES = ("red", "green", "blue")


def vessel_loss(logits: torch.Tensor, label: torch.Tensor, fov: torch.Tensor, eps: float = 1.0
                ) -> dict[str, torch.Tensor]:
    """``{"loss": bce + dice, "bce", "dice"}``: both terms over the FOV pixels only.

    BCE: mean over the batch's FOV pixels. Soft Dice: ``1 - (2 sum p y + eps) / (sum p + sum y + eps)`` per
    image over its FOV pixels (``p = sigmoid(logits)``), averaged over the batch.
    """
    m = fov.float()
    bce = (F.binary_cross_entropy_with_logits(logits, label, reduction="none") * m).sum() / m.sum().clamp_min(1.0)
    p = torch.sigmoid(logits) * m
    y = label * m
    dims = tuple(range(1, logits.ndim))
    dice = 1 - (2 * (p * y).sum(dims) + eps) / (p.sum(dims) + y.sum(dims) + eps)
    dice = dice.mean()
    return {"loss": bce + dice, "bce": bce.detach(), "dice": dice.detach()}


def hard_dice(logits: torch.Tensor, label: torch.Tensor, fov: torch.Tensor) -> torch.Tensor:
    """Dice of ``sigmoid(logits) >= 0.5`` inside the FOV, per image ``[B]`` (1 where both are empty)."""
    m = fov > 0
    pred = (logits >= 0) & m
    y = (label > 0) & m
    dims = tuple(range(1, logits.ndim))
    tp = (pred & y).sum(dims).float()
    den = pred.sum(dims).float() + y.sum(dims).float()
    return torch.where(den > 0, 2 * tp / den.clamp_min(1), torch.ones_like(den))


class VesselModule(L.LightningModule):
    """Args: config: the run config as a dict (``config_to_dict(VesselRunConfig)``), stored in checkpoints."""

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = config
        model = config["model"]
        self.model = create_model(model["name"], modalities=MODALITIES, num_classes=1, **dict(model.get("kwargs") or {}))
        self.randconv = RandConv(seed=int(config["trainer"]["seed"])) if model.get("randconv") else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def training_step(self, batch, batch_idx):
        x, y, m = batch["image"], batch["label"], batch["fov"]
        if self.randconv is not None:
            x = self.randconv(x) * m
        out = vessel_loss(self(x), y, m)
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=x.shape[0])
        self.log("train/bce", out["bce"], batch_size=x.shape[0])
        self.log("train/dice_loss", out["dice"], batch_size=x.shape[0])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        x = batch["image"]
        dice = hard_dice(self(x), batch["label"], batch["fov"])
        self.log("val/dice", dice.mean(), on_epoch=True, batch_size=x.shape[0])

    def configure_optimizers(self):
        trainer = self.config["trainer"]
        batch = int(self.config["data"]["batch_size"])
        steps = int(trainer["max_epochs"]) * (int(trainer["samples_per_epoch"]) // batch)
        optim = self.config["optim"]
        return build_optimizer(self.parameters(), VesselOptimSettings(**optim), max_epochs=int(trainer["max_epochs"]),
                               total_steps=steps)
