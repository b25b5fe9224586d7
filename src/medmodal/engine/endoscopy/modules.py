"""LightningModules of the MICS engine: paired pre-training and classification fine-tuning
(supervised or FixMatch), with the metrics of the MICS paper.

Metrics (torchmetrics, multiclass): accuracy (micro), macro precision / recall / F1, per-class
precision / recall / F1 / support and the confusion matrix, computed on the gathered predictions
of the whole split (DDP: ``all_gather``). The test pass scores the model with every modality a
sample has (``test/...``) and with the ``test_modalities`` subsets only (e.g. ``test_wli/...``:
white light alone).
"""

from __future__ import annotations

from typing import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from medmodal.data.endoscopy.samples import MODALITIES
from medmodal.engine.optim import build_optimizer
from medmodal.losses import Objective, StepContext, build_objective, split_objective_config
from medmodal.models.endoscopy.pretrain import sample_id_keys

__all__ = ["MICSPretrainTask", "MICSClassificationTask", "classification_metrics", "subset_name"]


def classification_metrics(logits: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict:
    """``logits [N, K]``, ``target [N]`` -> scalars (accuracy, macro precision / recall / F1) and
    per-class tensors (``per_class_precision`` ... ``support`` ``[K]``) and ``confusion [K, K]``
    (rows: true class, columns: predicted)."""
    pred = logits.argmax(1)
    kw = {"num_classes": num_classes}
    return {
        "accuracy": multiclass_accuracy(pred, target, average="micro", **kw),
        "precision": multiclass_precision(pred, target, average="macro", **kw),
        "recall": multiclass_recall(pred, target, average="macro", **kw),
        "f1": multiclass_f1_score(pred, target, average="macro", **kw),
        "per_class_precision": multiclass_precision(pred, target, average=None, **kw),
        "per_class_recall": multiclass_recall(pred, target, average=None, **kw),
        "per_class_f1": multiclass_f1_score(pred, target, average=None, **kw),
        "support": torch.bincount(target, minlength=num_classes),
        "confusion": multiclass_confusion_matrix(pred, target, **kw),
    }


def subset_name(modalities: Sequence[str]) -> str:
    """``("wli",)`` -> ``"wli"``; ``("wli", "nbi")`` -> ``"wli+nbi"``."""
    return "+".join(modalities)


class _EndoscopyTask(L.LightningModule):
    """Shared optimiser (AdamW, warm-up + cosine per step) and epoch bookkeeping."""

    def __init__(self, cfg, model: torch.nn.Module, hparams: dict):
        super().__init__()
        self.cfg, self.model = cfg, model
        self.save_hyperparameters(hparams)

    def parameter_groups(self) -> list[dict]:
        return [{"params": [p for p in self.model.parameters() if p.requires_grad]}]

    def configure_optimizers(self):
        """:func:`medmodal.engine.optim.build_optimizer` of the parameter groups (``warmup_cosine`` per
        step; torch's default kernels, ``fused=None``, as this engine always had)."""
        return build_optimizer(self.parameter_groups(), self.cfg.optim, max_epochs=self.trainer.max_epochs,
                               total_steps=int(self.trainer.estimated_stepping_batches), fused=None)

    def on_train_epoch_start(self) -> None:
        loaders = self.trainer.train_dataloader
        flat = getattr(loaders, "flattened", None) or [loaders]
        for loader in flat:
            dataset = getattr(loader, "dataset", None)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(self.current_epoch)


class MICSPretrainTask(_EndoscopyTask):
    """Pre-training on pairs: the objective (:meth:`build_objective`; default ``mics``,
    :class:`~medmodal.losses.paired.MICSObjective`) per batch, with each pair's sample id (so its own
    older key in the contrastive queue is not a negative). The discriminator is a separate
    parameter group (authors' lr 2e-3, betas 0.5 / 0.999, no weight decay)."""

    def __init__(self, cfg, model: torch.nn.Module, hparams: dict):
        super().__init__(cfg, model, hparams)
        self.objective = self.build_objective()

    def build_objective(self) -> Objective:
        """``build_objective(loss.name or "mics", **other loss options)`` from the config's optional
        ``loss`` mapping (absent today: the MICS terms take their weights from the model config)."""
        name, options = split_objective_config(getattr(self.cfg, "loss", None), "mics")
        return build_objective(name, **options)

    def parameter_groups(self) -> list[dict]:
        o = self.cfg.optim
        disc = {id(p) for p in self.model.discriminator.parameters()}
        main = [p for p in self.model.parameters() if p.requires_grad and id(p) not in disc]
        return [{"params": main},
                {"params": list(self.model.discriminator.parameters()), "lr": o.discriminator_lr,
                 "betas": tuple(o.discriminator_betas), "weight_decay": 0.0}]

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        ids = sample_id_keys(batch["sample_id"], batch["wli"].device) if "sample_id" in batch else None
        out = self.objective({"wli": batch["wli"], "nbi": batch["nbi"]},
                             StepContext(model=self.model, update=stage == "train", sample_ids=ids))
        n = batch["wli"].shape[0]
        self.log(f"{stage}/loss", out["loss"], prog_bar=True, batch_size=n, sync_dist=stage != "train",
                 on_step=stage == "train", on_epoch=True)
        for k in ("reconstruction", "contrastive", "adversarial", "discriminator_accuracy"):
            self.log(f"{stage}/{k}", out[k], batch_size=n, sync_dist=stage != "train", on_step=False, on_epoch=True)
        return out["loss"]

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")


class MICSClassificationTask(_EndoscopyTask):
    """Fine-tuning of :class:`MICSClassifier`: cross-entropy on the labelled pairs with modality
    dropout; with ``cfg.method == "fixmatch"`` plus the FixMatch unlabelled loss.

    Args:
        classes: class names (index order). test_subsets: modality subsets scored at test time
            besides all available modalities.
    """

    def __init__(self, cfg, model: torch.nn.Module, hparams: dict, classes: Sequence[str],
                 test_subsets: Sequence[Sequence[str]] = ()):
        super().__init__(cfg, model, hparams)
        self.classes = list(classes)
        self.index = [MODALITIES.index(m) for m in model.modalities]
        self.test_subsets = [tuple(s) for s in test_subsets]
        self._outputs: dict[str, list] = {}
        self.results: dict[str, dict] = {}
        self.pretrained_encoders = bool(hparams.get("pretrained_encoders", False))

    def parameter_groups(self) -> list[dict]:
        """Pre-trained encoders at ``optim.encoder_lr`` (when set), the rest at ``lr``."""
        o = self.cfg.optim
        if not self.pretrained_encoders or o.encoder_lr is None:
            return super().parameter_groups()
        enc = [p for p in self.model.encoders.parameters() if p.requires_grad]
        ids = {id(p) for p in enc}
        rest = [p for p in self.model.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": rest}, {"params": enc, "lr": o.encoder_lr}]

    def encoders_frozen(self, epoch: int) -> bool:
        """Whether the encoders are frozen in ``epoch`` (``optim.freeze_encoders_epochs``, LP-FT)."""
        return epoch < int(getattr(self.cfg.optim, "freeze_encoders_epochs", 0))

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        frozen = self.encoders_frozen(self.current_epoch)
        for p in self.model.encoders.parameters():
            p.requires_grad_(not frozen)
        self.model.encoders.train(not frozen)

    def inputs(self, batch: dict, subset: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch -> ``(images [B, M, 3, S, S], mask [B, M])`` for the model's modalities (``subset``: only these)."""
        images = torch.stack([batch[m] for m in MODALITIES], 1)[:, self.index]
        mask = batch["present"][:, self.index].clone()
        if subset is not None:
            keep = torch.tensor([m in subset for m in self.model.modalities], device=mask.device)
            mask &= keep
        return images, mask

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(images, mask)

    def _drop_modalities(self, mask: torch.Tensor) -> torch.Tensor:
        p = float(self.cfg.modality_dropout)
        if p <= 0 or mask.shape[1] < 2:
            return mask
        both = mask.all(1)
        drop = both & (torch.rand(mask.shape[0], device=mask.device) < p)
        which = torch.randint(0, mask.shape[1], (mask.shape[0],), device=mask.device)
        out = mask.clone()
        out[drop, which[drop]] = False
        return out

    def _usable(self, mask: torch.Tensor) -> torch.Tensor:
        return mask.any(1)

    def training_step(self, batch, batch_idx):
        labelled = batch["labelled"] if "labelled" in batch else batch
        images, mask = self.inputs(labelled)
        mask = self._drop_modalities(mask)
        keep = self._usable(mask)
        logits = self.model(images[keep], mask[keep])
        loss = F.cross_entropy(logits, labelled["label"][keep])
        n = int(keep.sum())
        if "unlabelled" in batch:
            unl = loss_u = None
            unl = batch["unlabelled"]
            weak_images, weak_mask = self.inputs(unl["weak"])
            strong_images, strong_mask = self.inputs(unl["strong"])
            ok = self._usable(weak_mask) & self._usable(strong_mask)
            with torch.no_grad():
                probs = self.model(weak_images[ok], weak_mask[ok]).softmax(1)
                confidence, pseudo = probs.max(1)
                accept = (confidence >= self.cfg.fixmatch.threshold).float()
            strong_logits = self.model(strong_images[ok], strong_mask[ok])
            loss_u = (F.cross_entropy(strong_logits, pseudo, reduction="none") * accept).mean()
            loss = loss + self.cfg.fixmatch.lambda_u * loss_u
            self.log("train/loss_unlabelled", loss_u, batch_size=int(ok.sum()), on_step=False, on_epoch=True)
            self.log("train/mask_rate", accept.mean(), batch_size=int(ok.sum()), on_step=False, on_epoch=True)
        self.log("train/loss", loss, prog_bar=True, batch_size=n, on_step=True, on_epoch=True)
        return loss

    def _collect(self, key: str, logits: torch.Tensor, target: torch.Tensor) -> None:
        logits_list, target_list = self._outputs.setdefault(key, ([], []))
        logits_list.append(logits.detach().float())
        target_list.append(target.detach())

    def _eval_step(self, batch, stage: str) -> None:
        subsets = [None] + (self.test_subsets if stage == "test" else [])
        for subset in subsets:
            images, mask = self.inputs(batch, subset)
            keep = self._usable(mask)
            if not bool(keep.any()):
                continue
            logits = self.model(images[keep], mask[keep])
            key = stage if subset is None else f"{stage}_{subset_name(subset)}"
            self._collect(key, logits, batch["label"][keep])
            if subset is None:
                self.log(f"{stage}/loss", F.cross_entropy(logits, batch["label"][keep]), batch_size=int(keep.sum()),
                         sync_dist=True, on_step=False, on_epoch=True)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _score(self) -> None:
        for key, (logits, target) in self._outputs.items():
            logits, target = torch.cat(logits), torch.cat(target)
            if self.trainer.world_size > 1:  # equal-length shards are not guaranteed: gather per process
                logits = torch.cat(list(self.all_gather(logits, sync_grads=False)))
                target = torch.cat(list(self.all_gather(target, sync_grads=False)))
            metrics = classification_metrics(logits, target, len(self.classes))
            for name in ("accuracy", "precision", "recall", "f1"):
                self.log(f"{key}/{name}", metrics[name], prog_bar=name == "accuracy" and key == "val")
            self.results[key] = {k: v.cpu() for k, v in metrics.items()}
        self._outputs = {}

    def on_validation_epoch_end(self) -> None:
        self._score()

    def on_test_epoch_end(self) -> None:
        self._score()
