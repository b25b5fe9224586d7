"""Lightning modules of the fine-tuning engine: one per task, sharing optimiser, schedule and freezing.

:class:`FinetuneTask` (shared): AdamW (betas 0.9 / 0.999) over two parameter groups, the head at
``optim.lr`` and, when the encoder is not frozen, the encoder at ``optim.encoder_lr`` (default
``lr / 10``); ``CosineAnnealingLR(T_max, eta_min)`` stepped per epoch (the references'). A frozen
encoder has no gradient AND stays in eval mode (BatchNorm statistics fixed) whatever Lightning
switches (the detection / segmentation references only set ``requires_grad=False``, so their
BatchNorm running statistics still drifted in training mode: fixed here).

Logged (``/`` separated; epoch values synchronised across DDP processes):
``train/loss`` (+ the task's terms), ``val/loss``, ``test/loss`` and

* classification: ``{val,test}/auroc`` (macro) + ``auroc_<finding>`` (multi-label), or
  ``{val,test}/accuracy`` (top-1, micro) + ``accuracy_<class>`` (per-class recall; multi-class);
* segmentation: ``{val,test}/dice`` (reference per-image rule), ``dice_dataset``;
* detection: ``{val,test}/map`` (all images), ``map_50``, ``map_75``, ``map_reference`` (the
  references' counting), see :mod:`medmodal.engine.finetune.metrics`.
"""

from __future__ import annotations

import re
from typing import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from medmodal.engine.finetune.config import FinetuneConfig
from medmodal.engine.finetune.metrics import DetectionMAP, PerLabelAUROC, ReferenceDice
from medmodal.engine.optim import build_optimizer
from medmodal.errors import CheckpointError

__all__ = ["FinetuneTask", "ClassificationTask", "SegmentationTask", "DetectionTask", "slug"]


def slug(name: str) -> str:
    """``Pleural Effusion`` -> ``pleural_effusion`` (metric-name friendly)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


class FinetuneTask(L.LightningModule):
    """Shared base (module docstring). ``model`` has an ``encoder`` attribute (``None`` on the
    cached-feature path); every other parameter belongs to the head.

    Args:
        cfg: the run's config. model: the task network.
        hparams: plain data saved in checkpoints (config dict, encoder info, label names).
    """

    def __init__(self, cfg: FinetuneConfig, model: nn.Module, hparams: dict):
        super().__init__()
        self.save_hyperparameters(hparams)  # plain dicts only: checkpoints load with weights_only=True
        self.cfg = cfg
        self.model = model
        self.frozen = bool(cfg.encoder.freeze)
        if self.encoder is not None and self.frozen:
            self.encoder.requires_grad_(False)
        self.train()  # Lightning keeps each module's mode as found: head in training mode, a frozen encoder in eval

    def on_fit_start(self) -> None:
        self.train()

    @property
    def encoder(self) -> nn.Module | None:
        return getattr(self.model, "encoder", None)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen and self.encoder is not None:
            self.encoder.eval()
        return self

    # ------------------------------------------------------------ checkpoints
    def _frozen_prefix(self) -> str | None:
        """State-dict prefix of a frozen encoder (``model.encoder.``, ``model.unet.encoder.``), else None."""
        if not self.frozen or self.encoder is None:
            return None
        return next(name for name, module in self.named_modules() if module is self.encoder) + "."

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Leave a frozen encoder's weights out (they are the encoder source's, named by its
        fingerprint): a ResNet-50 would add ~95 MB to every checkpoint of every run."""
        prefix = self._frozen_prefix()
        if prefix is not None:
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith(prefix)}
            checkpoint["frozen_encoder"] = {"prefix": prefix, "fingerprint": self._encoder_fingerprint()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Put the (identical) frozen encoder weights back before Lightning loads the state dict.

        Raises:
            ValueError: the checkpoint was trained on another encoder (fingerprints differ).
        """
        frozen = checkpoint.get("frozen_encoder")
        if not frozen:
            return
        if frozen["fingerprint"] != self._encoder_fingerprint():
            raise CheckpointError(f"this checkpoint was trained on another frozen encoder (fingerprint "
                                  f"{frozen['fingerprint'][:12]}, this run's {self._encoder_fingerprint()[:12]})")
        own = {k: v for k, v in self.state_dict().items() if k.startswith(frozen["prefix"])}
        checkpoint["state_dict"] = {**checkpoint["state_dict"], **own}

    def _encoder_fingerprint(self) -> str:
        return str((self.hparams.get("encoder") or {}).get("fingerprint", ""))

    def parameter_groups(self) -> list[dict]:
        """``head`` (lr) and, unless frozen, ``encoder`` (encoder_lr) parameter groups."""
        o = self.cfg.optim
        encoder = list(self.encoder.parameters()) if self.encoder is not None else []
        encoder_ids = {id(p) for p in encoder}
        groups = [{"name": "head", "lr": o.lr,
                   "params": [p for p in self.model.parameters() if id(p) not in encoder_ids and p.requires_grad]}]
        if not self.frozen and encoder:
            groups.append({"name": "encoder", "lr": o.encoder_lr if o.encoder_lr is not None else o.lr / 10,
                           "params": encoder})
        return groups

    def configure_optimizers(self):
        """:func:`medmodal.engine.optim.build_optimizer` of the parameter groups (``cosine_annealing``
        per epoch, ``T_max = optim.t_max or trainer.max_epochs``)."""
        return build_optimizer(self.parameter_groups(), self.cfg.optim, max_epochs=self.cfg.trainer.max_epochs)

    def log_loss(self, stage: str, loss: torch.Tensor, batch_size: int, terms: dict | None = None) -> None:
        training = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=training, on_epoch=True, prog_bar=stage != "test",
                 batch_size=batch_size, sync_dist=not training)
        for name, value in (terms or {}).items():
            self.log(f"{stage}/{name}", value, on_step=False, on_epoch=True, batch_size=batch_size,
                     sync_dist=not training)

    def log_values(self, stage: str, values: dict[str, torch.Tensor], prog_bar: Sequence[str] = ()) -> None:
        for name, value in values.items():
            self.log(f"{stage}/{name}", torch.as_tensor(value, dtype=torch.float32, device=self.device),
                     prog_bar=name in prog_bar and stage == "val", sync_dist=True)

    # each task implements step(batch, stage) -> loss and score(stage)
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self.step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self.step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self.score("val")

    def on_test_epoch_end(self) -> None:
        self.score("test")


class ClassificationTask(FinetuneTask):
    """Linear classification: BCE on logits (multi-label, NaN targets ignored) or CE (multi-class).

    Batches: ``{"image": [B, 3, S, S]}`` or ``{"features": [B, D]}`` (cached path), ``"target"``
    float ``[B, K]`` (multi-label) or int64 ``[B]``.
    """

    def __init__(self, cfg: FinetuneConfig, model: nn.Module, label_names: Sequence[str], label_kind: str,
                 hparams: dict):
        super().__init__(cfg, model, hparams)
        self.label_names, self.label_kind = list(label_names), label_kind
        k = len(self.label_names)
        if label_kind == "multilabel":
            self.metrics = nn.ModuleDict({"val": PerLabelAUROC(k), "test": PerLabelAUROC(k)})
        else:
            from torchmetrics.classification import MulticlassAccuracy

            stages = ("val", "test")
            self.metrics = nn.ModuleDict({s: MulticlassAccuracy(num_classes=k, average="micro") for s in stages})
            self.per_class = nn.ModuleDict({s: MulticlassAccuracy(num_classes=k, average=None) for s in stages})

    def forward(self, batch: dict) -> torch.Tensor:
        if "features" in batch:
            return self.model.classify(batch["features"])
        return self.model(batch["image"])

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.label_kind == "multiclass":
            return F.cross_entropy(logits, target.long())
        known = ~torch.isnan(target)
        per_entry = F.binary_cross_entropy_with_logits(logits, torch.where(known, target, torch.zeros_like(target)),
                                                       reduction="none")
        return (per_entry * known).sum() / known.sum().clamp_min(1)

    def step(self, batch: dict, stage: str) -> torch.Tensor:
        logits = self(batch)
        target = batch["target"]
        loss = self.loss(logits, target)
        self.log_loss(stage, loss, target.shape[0])
        if stage != "train":
            if self.label_kind == "multiclass":
                self.metrics[stage].update(logits.float(), target)
                self.per_class[stage].update(logits.float(), target)
            else:
                self.metrics[stage].update(torch.sigmoid(logits.float()), target)
        return loss

    def score(self, stage: str) -> None:
        if self.label_kind == "multiclass":
            values = {"accuracy": self.metrics[stage].compute()}
            per = self.per_class[stage].compute()
            values.update({f"accuracy_{slug(n)}": per[i] for i, n in enumerate(self.label_names)})
            self.per_class[stage].reset()
        else:
            per = self.metrics[stage].compute()
            finite = per[~torch.isnan(per)]
            values = {"auroc": finite.mean() if finite.numel() else torch.tensor(float("nan"))}
            if len(self.label_names) > 1:
                values.update({f"auroc_{slug(n)}": per[i] for i, n in enumerate(self.label_names)})
        self.metrics[stage].reset()
        self.log_values(stage, values, prog_bar=("auroc", "accuracy"))


class SegmentationTask(FinetuneTask):
    """U-Net segmentation with the references' mixed loss; Dice as the reference counts it.

    Batches: ``{"image": [B, 3, S, S], "mask": float [B, S, S]}``.
    """

    def __init__(self, cfg: FinetuneConfig, model: nn.Module, hparams: dict):
        super().__init__(cfg, model, hparams)
        from medmodal.losses.focal_dice import MixedFocalDiceLoss

        s = cfg.segmentation
        self.criterion = MixedFocalDiceLoss(s.focal_weight, s.focal_gamma)
        self.metrics = nn.ModuleDict({stage: ReferenceDice(s.threshold) for stage in ("val", "test")})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)[:, 0]

    def step(self, batch: dict, stage: str) -> torch.Tensor:
        logits = self(batch["image"])
        loss, terms = self.criterion(logits, batch["mask"])
        self.log_loss(stage, loss, logits.shape[0], terms)
        if stage != "train":
            self.metrics[stage].update(torch.sigmoid(logits.float()), batch["mask"])
        return loss

    def score(self, stage: str) -> None:
        values = self.metrics[stage].compute()
        self.metrics[stage].reset()
        self.log_values(stage, values, prog_bar=("dice",))


class DetectionTask(FinetuneTask):
    """YOLOv3 detection; mAP over IoU 0.40:0.05:0.75 (standard and reference-counted).

    Batches: :func:`~medmodal.data.cxr.downstream.collate_detection` (``image`` ``[B, 3, S, S]``,
    ``boxes`` list of ``[N_i, 4]`` xyxy pixels, ``labels`` list of ``[N_i]``).
    """

    def __init__(self, cfg: FinetuneConfig, model: nn.Module, hparams: dict):
        super().__init__(cfg, model, hparams)
        from medmodal.losses.yolo import YOLOv3Loss

        s = cfg.detection
        self.criterion = YOLOv3Loss(model.num_classes, s.lambda_xy, s.lambda_wh, s.lambda_conf, s.lambda_cls,
                                    s.noobj_weight, s.ignore_threshold)
        self.metrics = nn.ModuleDict({stage: DetectionMAP(s.iou_thresholds) for stage in ("val", "test")})

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.model(images)

    def predict_boxes(self, outputs: list[torch.Tensor], image_size: tuple[int, int]) -> list[dict]:
        """Decoded, thresholded, NMS-ed detections per image (:mod:`medmodal.models.downstream.yolo`)."""
        from medmodal.models.downstream.yolo import decode_predictions, postprocess_detections

        s = self.cfg.detection
        decoded = decode_predictions(outputs, self.model.anchors, image_size)
        return postprocess_detections(decoded, s.conf_threshold, s.nms_iou, s.max_detections)

    def step(self, batch: dict, stage: str) -> torch.Tensor:
        images = batch["image"]
        size = tuple(images.shape[-2:])
        outputs = self(images)
        loss, terms = self.criterion(outputs, batch["boxes"], batch["labels"], self.model.anchors, size)
        self.log_loss(stage, loss, images.shape[0], terms)
        if stage != "train":
            predictions = self.predict_boxes(outputs, size)
            targets = [{"boxes": b.to(self.device), "labels": lab.to(self.device)}
                       for b, lab in zip(batch["boxes"], batch["labels"])]
            self.metrics[stage].update(predictions, targets)
        return loss

    def score(self, stage: str) -> None:
        values = self.metrics[stage].compute()
        self.metrics[stage].reset()
        self.log_values(stage, values, prog_bar=("map",))
