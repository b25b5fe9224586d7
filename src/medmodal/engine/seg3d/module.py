"""The 3-D segmentation LightningModule: the 2-D task's training step (supervised CE + soft Dice, or a
semi-supervised method of :mod:`medmodal.engine.semi`) on patches, SWDL-Net's inner passes with manual
optimisation, and validation Dice of whole volumes by sliding window (MONAI ``sliding_window_inference``)."""

from __future__ import annotations

import torch
from monai.inferers import sliding_window_inference

from medmodal.engine.seg2d.module import Seg2DModule, foreground_dice

__all__ = ["Seg3DModule", "predict_volume"]


@torch.no_grad()
def predict_volume(model: torch.nn.Module, image: torch.Tensor, patch, overlap: float = 0.5,
                   sw_batch_size: int = 2) -> torch.Tensor:
    """Class map ``[*S]`` (int64, CPU) of one volume ``image [C, *S]``: softmax averaged over overlapping windows of
    ``patch`` (constant weights, as UA-MT's ``test_single_case``), then argmax. Volumes smaller than ``patch`` are
    padded by MONAI and cropped back."""
    was = model.training
    model.eval()
    x = image[None].to(next(model.parameters()).device)

    def predictor(window: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(window.shape[:2], dtype=torch.bool, device=window.device)
        return model(window, mask).softmax(1)

    probs = sliding_window_inference(x, roi_size=tuple(patch), sw_batch_size=sw_batch_size, predictor=predictor,
                                     overlap=overlap, mode="constant")
    model.train(was)
    return probs[0].argmax(0).cpu()


class Seg3DModule(Seg2DModule):
    """Args:
        config: the run config as a dict (``config_to_dict(Seg3DRunConfig)``) plus ``bundle`` (``modalities``,
            ``num_classes``, ``classes``), stored in checkpoints.
    """

    def __init__(self, config: dict):
        super().__init__(config)
        self.patch = tuple(int(p) for p in config["data"]["patch"])
        # SWDL-Net makes several optimiser steps per batch: Lightning's manual optimisation
        self.automatic_optimization = not (self.semi_method is not None and self.semi_method.manual)

    def training_step(self, batch, batch_idx):
        if self.automatic_optimization:
            return super().training_step(batch, batch_idx)
        x, y = batch["image"], batch["label"]
        opt, sched = self.optimizers(), self.lr_schedulers()
        clip = self.config["optim"].get("grad_clip")
        total = None
        for k, (loss, terms) in enumerate(self.semi_method.passes(self.model, x, y)):
            opt.zero_grad()
            self.manual_backward(loss)
            if clip:
                self.clip_gradients(opt, gradient_clip_val=float(clip), gradient_clip_algorithm="norm")
            opt.step()
            total = loss.detach()
            if k == 0:
                for key, value in terms.items():
                    self.log(f"train/{key}", value, batch_size=x.shape[0])
        if sched is not None:
            sched.step()     # the copy's poly schedule counts outer iterations
        self.log("train/loss", total, prog_bar=True, batch_size=x.shape[0])
        self.semi_method.after_step(self.model, self.global_step)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.automatic_optimization:
            super().on_train_batch_end(outputs, batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        e = self.config["eval"]
        pred = predict_volume(self.model, batch["image"], self.patch, float(e["overlap"]), int(e["sw_batch_size"]))
        dice = foreground_dice(pred.numpy(), batch["label"].cpu().numpy(), int(self.config["bundle"]["num_classes"]))
        self.log("val/dice", torch.tensor(dice, dtype=torch.float32), on_epoch=True, batch_size=1)
