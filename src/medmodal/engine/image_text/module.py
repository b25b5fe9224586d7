"""The Lightning module of image-text pre-training (model-agnostic: CM-CGNS and its baselines).

The module builds ``create_model(cfg.model.name, **kwargs)`` for any registered
``task="image_text"`` model and uses only its pre-training interface, through the objective contract
(:class:`~medmodal.losses.image_text.ImageTextObjective`, ``loss.name: image_text``)::

    losses = objective(batch, StepContext(model=model, stage=1|2, update=bool))   # = model.compute_losses(...)
    model.encode_image(images) -> [B, E];  model.encode_text(ids, mask, sentence_index, num_sentences) -> [B, E]
    model.backbone_state_dict()  (export)

**Stages** (CM-CGNS, section 1.3 of the notes): epochs ``[0, stage1_epochs)`` train stage I
(alignment), the following ``stage2_epochs`` stage II (+ CM-MIR). At the switch the optimiser
state is reset and the learning-rate schedule restarts (warm-up + cosine within each stage), as
the released code re-creates both; the weights carry on from stage I in memory (the released
stage switch meant to reload the stage-I checkpoint but its ``load_from_checkpoint`` result was
discarded: a no-op; here the continuation is explicit).

**k-means** (or any other training-only state of a model): ``update_clusters=True`` only in
training steps; validation and evaluation pass ``False`` (the released code also updated and
could seed the centroids in validation). Model buffers are in the checkpoint's ``state_dict``,
and the global / Python RNG states are saved beside it, so a resumed run continues
bit-identically (the train order comes from a ``(seed, epoch)``-seeded sampler).

**DDP**: the global InfoNCE gathers the embeddings of every process (negatives from all GPUs,
gradients through the gather: :func:`medmodal.layers.contrastive.info_nce_loss`); the
local report loss and the k-means run per process on that process's sentences, as released.
With Lightning's DDP (``broadcast_buffers=True``) rank 0's buffers, its k-means centroids
included, are broadcast to every process before each forward: all replicas use and checkpoint
rank 0's centroids, while each process contributes its own update to what rank 0 keeps only
through the shared weights. Stage I leaves the CM-MIR decoder without gradient, so multi-process
runs use ``find_unused_parameters`` (:func:`ddp_strategy`).

**Precision**: ``trainer.precision: auto`` is bf16 autocast on CUDA (the released fp16 needs a
loss scaler; bf16 does not), float32 on CPU; the losses compute in float32 inside.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import torch

from medmodal.config import config_to_dict, dataclass_from_dict
from medmodal.engine.image_text.config import PretrainConfig
from medmodal.engine.optim import build_optimizer, staged_warmup_cosine_factor
from medmodal.errors import ConfigError
from medmodal.losses import Objective, StepContext, build_objective, split_objective_config
from medmodal.models import create_model, get_model_task

__all__ = ["ImageTextPretrainModule", "build_model", "freeze_parameters", "model_batch", "stage_of_epoch",
           "stage_lr_factor", "ddp_strategy"]


def build_model(cfg: PretrainConfig) -> torch.nn.Module:
    """``create_model(cfg.model.name, image_size=cfg.data.image_size, **cfg.model.kwargs)``.

    ``image_size`` comes from ``data.image_size`` unless ``model.kwargs`` sets it; a model that
    does not take ``image_size`` (its factory raises ``TypeError`` naming it) is built without.

    Raises:
        ValueError: the model is not an ``image_text`` model; bad model options (one line).
    """
    if get_model_task(cfg.model.name) != "image_text":
        raise ConfigError(f"model {cfg.model.name!r} is not an image_text model")
    kwargs = dict(cfg.model.kwargs)
    if "image_size" in kwargs:
        return _create(cfg.model.name, kwargs)
    try:
        return _create(cfg.model.name, {"image_size": cfg.data.image_size, **kwargs})
    except ValueError as err:
        if "image_size" not in str(err):
            raise
        return _create(cfg.model.name, kwargs)


def _create(name: str, kwargs: dict) -> torch.nn.Module:
    try:
        return create_model(name, **kwargs)
    except TypeError as err:  # unknown option of the model's config: one line, not a traceback
        raise ConfigError(f"model.kwargs of {name!r}: {err}") from None


def freeze_parameters(model: torch.nn.Module, prefixes) -> list[str]:
    """Set ``requires_grad=False`` on parameters whose name starts with one of ``prefixes``.

    Returns the frozen names. Raises ValueError for a prefix that matches no parameter.
    """
    frozen = []
    for prefix in prefixes or []:
        names = [n for n, _ in model.named_parameters() if n.startswith(prefix)]
        if not names:
            raise ConfigError(f"model.freeze: no parameter of the model starts with {prefix!r}")
        frozen += names
    for name, param in model.named_parameters():
        if name in frozen:
            param.requires_grad_(False)
    return frozen


def model_batch(batch: dict) -> dict[str, torch.Tensor]:
    """The tensors of a collated batch (drops ``study_id`` and other non-tensor entries)."""
    return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}


def stage_of_epoch(epoch: int, stage1_epochs: int) -> int:
    """1 for epochs ``[0, stage1_epochs)``, 2 after."""
    return 1 if epoch < stage1_epochs else 2


def stage_lr_factor(step: int, steps_per_epoch: int, cfg: PretrainConfig) -> float:
    """Learning rate of optimiser step ``step`` divided by ``optim.lr``:
    :func:`medmodal.engine.optim.staged_warmup_cosine_factor` with the config's two stages."""
    return staged_warmup_cosine_factor(step, steps_per_epoch, cfg.optim,
                                       (cfg.trainer.stage1_epochs, cfg.trainer.stage2_epochs))


def ddp_strategy(cfg: PretrainConfig) -> str:
    """``ddp_find_unused_parameters_true`` when the run uses several processes, else ``auto``.

    Stage I leaves the reconstruction decoder without gradient (CM-CGNS), and a baseline may
    leave other heads unused in a stage, so DDP must tolerate parameters without gradient.
    """
    t = cfg.trainer
    devices = t.devices
    if isinstance(devices, (list, tuple)):
        count = len(devices)
    elif isinstance(devices, int) or (isinstance(devices, str) and devices.lstrip("-").isdigit()):
        count = int(devices)
        if count == -1:
            count = torch.cuda.device_count() if t.accelerator in ("gpu", "cuda", "auto") else 1
    else:  # "auto"
        count = torch.cuda.device_count() if t.accelerator in ("gpu", "cuda", "auto") else 1
    return "ddp_find_unused_parameters_true" if count > 1 or int(t.num_nodes) > 1 else "auto"


class ImageTextPretrainModule(L.LightningModule):
    """Two-stage image-text pre-training of any registered ``image_text`` model (module docstring).

    Args:
        config: ``{"pretrain": <PretrainConfig as plain data>}`` (what the checkpoint's
            ``hyper_parameters`` hold, so ``load_from_checkpoint`` rebuilds it with ``weights_only``).
    """

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters()  # plain dicts only: the checkpoint loads with weights_only=True
        self.cfg = dataclass_from_dict(PretrainConfig, config["pretrain"], "pretrain")
        self.model = build_model(self.cfg)
        self.frozen = freeze_parameters(self.model, self.cfg.model.freeze)
        # a Hugging Face ``from_pretrained`` model comes in eval mode (dropout off), which Lightning
        # >= 2.2 keeps through fit; the released code (Lightning 1.5) trained it with its dropout
        self.model.train()
        self.objective = self.build_objective()

    def build_objective(self) -> Objective:
        """``build_objective(loss.name or "image_text", **other loss options)`` from the config's
        optional ``loss`` mapping (absent today: each model computes its method's terms)."""
        name, options = split_objective_config(getattr(self.cfg, "loss", None), "image_text")
        return build_objective(name, **options)

    def compute_losses(self, batch: dict, *, update: bool) -> dict[str, torch.Tensor]:
        """The objective of one collated batch at the current stage."""
        return self.objective(model_batch(batch), StepContext(model=self.model, stage=self.stage, update=update))

    @classmethod
    def from_config(cls, cfg: PretrainConfig) -> "ImageTextPretrainModule":
        return cls({"pretrain": config_to_dict(cfg)})

    @property
    def stage(self) -> int:
        """The stage of the current epoch (1 or 2)."""
        return stage_of_epoch(int(self.current_epoch), int(self.cfg.trainer.stage1_epochs))

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self.compute_losses(batch, update=True)
        bs = int(batch["image"].shape[0])
        self.log("train/loss", losses["loss"].detach(), prog_bar=True, batch_size=bs)
        for name, value in losses.items():
            if name != "loss" and isinstance(value, torch.Tensor) and value.numel() == 1:
                self.log(f"train/{name}", value.detach().float(), batch_size=bs)
        self.log("train/stage", float(self.stage), batch_size=bs)
        return losses["loss"]

    def on_train_epoch_start(self) -> None:
        """At the first stage-II epoch: reset the optimiser state (the released code re-creates
        the optimiser for stage II; the schedule restarts through :func:`stage_lr_factor`).
        A model with ``set_epoch(epoch)`` is told the epoch (MGCA freezes its prototypes in epoch 0)."""
        if hasattr(self.model, "set_epoch"):
            self.model.set_epoch(int(self.current_epoch))
        t = self.cfg.trainer
        if int(self.current_epoch) == int(t.stage1_epochs) and t.stage1_epochs > 0 and t.stage2_epochs > 0:
            for optimizer in self.trainer.optimizers:
                optimizer.state.clear()

    # ---------------------------------------------------------------- validation
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        losses = self.compute_losses(batch, update=False)
        bs = int(batch["image"].shape[0])
        self.log("val/loss", losses["loss"], prog_bar=True, batch_size=bs, sync_dist=True)
        for name in ("global_loss", "local_image_loss", "local_report_loss", "reconstruction_loss"):
            if name in losses:
                self.log(f"val/{name}", losses[name], batch_size=bs, sync_dist=True)

    # ----------------------------------------------------------------- optimiser
    def configure_optimizers(self):
        """:func:`medmodal.engine.optim.build_optimizer` of ``optim`` (``staged``: warm-up + cosine per step
        within each stage, restarting at stage II)."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        t = self.cfg.trainer
        return build_optimizer(params, self.cfg.optim, max_epochs=self.trainer.max_epochs,
                               total_steps=int(self.trainer.estimated_stepping_batches),
                               stage_epochs=(t.stage1_epochs, t.stage2_epochs))

    # --------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Add the RNG states (plain tensors / lists: loadable with ``weights_only=True``); model
        buffers such as the k-means centroids are already in ``state_dict``."""
        checkpoint["rng"] = {
            "torch": torch.get_rng_state(),
            "python": list(random.getstate()[1]),
            "python_pos": random.getstate()[2],
            **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        rng: dict[str, Any] | None = checkpoint.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            random.setstate((3, tuple(rng["python"]), rng["python_pos"]))
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
