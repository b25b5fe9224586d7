"""Lightning module training a missing-modality segmentation network.

Training step: ``model.forward_train(image, mask)`` -> the objective (``loss.name``, default
``dmafnet``: :class:`~medmodal.losses.dmafnet_loss.DMAFNetLoss`, segmentation + deep supervision +
per-sequence auxiliary + relation / prototype distillation) weighted per sequence by the training
monitor (``dtm.name``, default ``dtm``: Dynamic Training Monitoring). After backward, the monitor
scales each sequence encoder's gradients.

A new training paradigm subclasses :class:`SegmentationModule` and overrides only what differs:
:meth:`~SegmentationModule.build_objective` / :meth:`~SegmentationModule.build_monitor` (what is
built from ``cfg.loss`` / ``cfg.dtm``), :meth:`~SegmentationModule.step_context` (what the
objective gets besides the model outputs), :meth:`~SegmentationModule.compute_objective` (one
training batch -> the objective's dict; e.g. a mean teacher adds its consistency term here),
:meth:`~SegmentationModule.update_monitor` and :meth:`~SegmentationModule.log_terms`. Validation: sliding-window Dice on whole validation cases with
all sequences (or all subsets), gathered across DDP processes.

DDP note: every encoder runs on every sample (missing sequences are zero inputs whose
features are masked), so no parameter is unused and ``find_unused_parameters`` is not needed.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from typing import Any

import lightning as L
import numpy as np
import torch

from medmodal.config import ExperimentConfig, config_from_dict, config_to_dict
from medmodal.data.missing import all_subsets
from medmodal.data.volumes.geometry import Geometry
from medmodal.data.volumes.spec import get_spec
from medmodal.distributed import all_gather_no_grad
from medmodal.engine.optim import build_optimizer
from medmodal.engine.segmentation.dtm import build_monitor, split_monitor_config
from medmodal.errors import ConfigError
from medmodal.evaluation.evaluator import SubsetEvaluation, evaluate_case
from medmodal.evaluation.protocols import get_protocol
from medmodal.losses import Objective, StepContext, get_objective_class, split_objective_config
from medmodal.models import create_model, get_model_task, list_models
from medmodal.models.segmentation.blocks import to_channels_last_3d


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_training_step(fn, mode: str = "default"):
    """``torch.compile(fn, fullgraph=True, mode=mode)`` whose outputs survive the next call.

    With CUDA graphs (``reduce-overhead`` / ``max-autotune``) every call overwrites the previous
    outputs; the logged terms and DTM gaps are small, so they are cloned. ``fn`` returns the
    objective's dict (``{"loss", <terms>, "gaps"}``; all but ``loss`` are cloned) or the old tuple
    ``(total, terms dict, gaps)``.
    """
    if mode not in COMPILE_MODES:
        raise ConfigError(f"trainer.compile_mode must be one of {COMPILE_MODES}, got {mode!r}")
    compiled = torch.compile(fn, fullgraph=True, mode=mode)

    def step(*args):
        torch.compiler.cudagraph_mark_step_begin()
        out = compiled(*args)
        if isinstance(out, dict):
            return {k: (v if k == "loss" else v.clone()) for k, v in out.items()}
        total, terms, gaps = out
        return total, {k: v.clone() for k, v in terms.items()}, gaps.clone()

    return step


def model_kwargs(cfg: ExperimentConfig) -> dict[str, Any]:
    """Keyword arguments of the model: ``spatial_dims`` from the dataset spec (3 for BraTS, 2 for
    MyoPS slices), then ``cfg.model.kwargs`` (which may override it)."""
    return {"spatial_dims": get_spec(cfg.data.dataset).spatial_dims, **cfg.model.kwargs}


def bundle_meta(cfg: ExperimentConfig, geometry: Geometry | None = None) -> dict[str, Any]:
    """The description stored with the weights (``model.json`` / ckpt ``hyper_parameters.config.bundle``).

    ``geometry``: the training geometry (axis codes, target spacing) evaluate / predict bring
    every case to; ``None`` leaves it out (cases are then used as stored, with a warning).
    """
    spec = get_spec(cfg.data.dataset)
    evaluation = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg.eval).items()}
    evaluation["protocol"] = get_protocol(cfg.eval.protocol, spec).name  # "auto" resolved: the bundle says which
    meta = {
        "format": "medmodal-bundle/1",
        "model_name": cfg.model.name,
        "modalities": list(spec.modalities),
        "num_classes": spec.num_classes,
        "model_kwargs": model_kwargs(cfg),
        "spec": spec.name,
        "eval": evaluation,
    }
    if geometry is not None:
        meta["geometry"] = geometry.to_dict()
    return meta


#: ``loss.name`` / ``dtm.name`` of a config without one (every run folder written before the names existed)
DEFAULT_OBJECTIVE = "dmafnet"
DEFAULT_MONITOR = "dtm"


class SegmentationModule(L.LightningModule):
    """Trains a registered segmentation model with its objective and training monitor (module docstring).

    Attributes:
        model: the network. criterion: the objective (:meth:`build_objective`; attribute name kept so
            checkpoints keep their ``criterion.*`` keys); also :attr:`objective`. dtm: the training
            monitor (:meth:`build_monitor`); also :attr:`monitor`. use_dtm: whether the monitor weights
            the loss and scales gradients.
    """

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters()  # plain dicts only: the checkpoint loads with weights_only=True
        self.bundle = dict(config.get("bundle") or {})  # hyper_parameters.config.bundle in the .ckpt
        self.cfg = config_from_dict(config["experiment"])
        self.spec = get_spec(self.cfg.data.dataset)
        if get_model_task(self.cfg.model.name) != "segmentation":  # unknown names: UnknownModelError
            raise ConfigError(f"model.name {self.cfg.model.name!r} is not a segmentation model; segmentation "
                              f"models: {', '.join(list_models(task='segmentation'))}")
        self.model = create_model(self.cfg.model.name, modalities=self.spec.modalities,
                                  num_classes=self.spec.num_classes, **model_kwargs(self.cfg))
        self.criterion = self.build_objective()
        self.dtm = self.build_monitor()
        self._dtm_enabled = split_monitor_config(self.cfg.dtm, DEFAULT_MONITOR)[1]
        self._train_forward = None  # the compiled forward_loss when trainer.compile is on
        if len(self.cfg.eval.roi_size) != self.spec.spatial_dims:
            raise ConfigError(f"eval.roi_size {list(self.cfg.eval.roi_size)} must have {self.spec.spatial_dims} values "
                              f"for {self.spec.name} (the model sees {self.spec.spatial_dims}-D inputs)")
        get_protocol(self.cfg.eval.protocol, self.spec).columns(self.spec)  # unknown protocol / regions: fail now
        self.eval_settings = SubsetEvaluation(self.cfg.eval.roi_size, self.cfg.eval.overlap,
                                              self.cfg.eval.sw_batch_size, self.cfg.eval.et_min_voxels, hd95=False)

    @classmethod
    def from_experiment(cls, cfg: ExperimentConfig, geometry: Geometry | None = None) -> "SegmentationModule":
        return cls({"experiment": config_to_dict(cfg), "bundle": bundle_meta(cfg, geometry)})

    # ------------------------------------------------------------ objective / monitor
    def build_objective(self) -> Objective:
        """The objective named by ``cfg.loss.name`` (default :data:`DEFAULT_OBJECTIVE`), built as
        ``cls.from_options(other loss options, feature_channels=, num_modalities=, num_classes=, model_name=)``
        (the model's deepest width when it has per-sequence features, else ``None``).

        Raises:
            ConfigError: unknown ``loss.name``. ValueError: the objective's own checks (DMAF-Net: RD / PD
                on for a model without per-sequence features).
        """
        name, options = split_objective_config(self.cfg.loss, DEFAULT_OBJECTIVE)
        return get_objective_class(name).from_options(
            options, feature_channels=getattr(self.model, "feature_channels", None),
            num_modalities=self.spec.num_modalities, num_classes=self.spec.num_classes, model_name=self.cfg.model.name)

    def build_monitor(self):
        """The training monitor named by ``cfg.dtm.name`` (default :data:`DEFAULT_MONITOR`) with the other
        ``dtm`` options (``enabled`` read by :attr:`use_dtm`). Always built, so checkpoints keep its state."""
        name, _, options = split_monitor_config(self.cfg.dtm, DEFAULT_MONITOR)
        return build_monitor(name, self.spec.num_modalities, **options)

    @property
    def objective(self) -> Objective:
        return self.criterion

    @property
    def monitor(self):
        return self.dtm

    @property
    def loss_cfg(self):
        """The objective's config (DMAF-Net: :class:`~medmodal.losses.dmafnet_loss.DMAFNetLossConfig`), or ``None``."""
        return getattr(self.criterion, "config", None)

    @property
    def use_dtm(self) -> bool:
        """``dtm.enabled`` (default true) and the objective's ``use_dtm`` switch (``loss.use_dtm``; true when it has none)."""
        enabled = True if self._dtm_enabled is None else self._dtm_enabled
        return enabled and bool(getattr(self.loss_cfg, "use_dtm", True))

    @property
    def sequence_encoders(self):
        """The per-sequence encoders DTM scales (``None`` for single-encoder models)."""
        encoders = getattr(self.model, "encoders", None)
        return encoders if encoders is not None and len(encoders) == self.spec.num_modalities else None

    def setup(self, stage: str) -> None:
        """Apply the speed options of ``trainer:`` (channels_last_3d, torch.compile) once.

        ``trainer.compile`` compiles :meth:`forward_loss` (network forward + the whole loss) as one
        graph (``fullgraph=True``: :mod:`medmodal.models.segmentation.pairs` keeps every shape static), in the
        ``trainer.compile_mode`` (``reduce-overhead`` replays it as a CUDA graph). The modules are
        not wrapped, so checkpoints keep their keys; validation and inference stay eager.
        """
        t = self.cfg.trainer
        if t.channels_last and self._is_volumetric():
            to_channels_last_3d(self.model)
        if t.compile and self._train_forward is None:
            self._train_forward = compile_training_step(self.forward_loss, t.compile_mode)

    def forward_loss(self, images: torch.Tensor, modality_mask: torch.Tensor, label: torch.Tensor,
                     sequence_weights: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """``model.forward_train`` + the objective: ``{"loss", <terms>, "gaps"}`` (what ``trainer.compile`` compiles)."""
        return self.criterion(self.model.forward_train(images, modality_mask),
                              self.step_context(label, sequence_weights))

    def step_context(self, label: torch.Tensor, sequence_weights: torch.Tensor | None) -> StepContext:
        """What the objective gets besides the model outputs: the target and the per-sequence weights."""
        return StepContext(target=label, sequence_weights=sequence_weights)

    def _is_volumetric(self) -> bool:
        return any(p.dim() == 5 for p in self.model.parameters())

    def _images(self, batch: dict) -> torch.Tensor:
        images = batch["image"]
        if self.cfg.trainer.channels_last and images.dim() == 5:
            images = images.contiguous(memory_format=torch.channels_last_3d)
        return images

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.compute_objective(batch)
        self.update_monitor(out)
        self.log_terms("train", out, batch["image"].shape[0])
        return out["loss"]

    def compute_objective(self, batch: dict) -> dict[str, torch.Tensor]:
        """One training batch -> the objective's dict, with the monitor's loss weights when it is on
        (compiled when ``trainer.compile``)."""
        weights = self.dtm.loss_weights.to(self.device) if self.use_dtm else None
        step = self._train_forward or self.forward_loss
        return step(self._images(batch), batch["modality_mask"], batch["label"], weights)

    def update_monitor(self, out: dict[str, torch.Tensor]) -> None:
        """Feed the objective's per-sequence ``gaps`` (gathered over processes) to the monitor when it is on."""
        if self.use_dtm and "gaps" in out:
            self.dtm.update(self._gather_gaps(out["gaps"]))

    def log_terms(self, phase: str, out: dict[str, torch.Tensor], batch_size: int) -> None:
        """``<phase>/loss`` (progress bar) and every other scalar term; ``gaps`` is the monitor's, not logged."""
        self.log(f"{phase}/loss", out["loss"], prog_bar=True, batch_size=batch_size)
        for name, value in out.items():
            if name not in ("loss", "gaps"):
                self.log(f"{phase}/{name}", value, batch_size=batch_size)

    def _gather_gaps(self, gaps: torch.Tensor) -> torch.Tensor:
        """Average per-sequence gaps over DDP processes (NaN = sequence absent on that process).

        Stays on the device: the DTM update is queued like the step itself, not waited for.
        """
        if self.trainer is None or self.trainer.world_size == 1:
            return gaps.detach()
        return torch.nanmean(all_gather_no_grad(gaps), dim=0)  # [world, M] -> [M]

    def on_fit_start(self) -> None:
        self.dtm.to(self.device)  # after any checkpoint restore: DTM state beside the step's tensors

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.use_dtm and self.sequence_encoders is not None:
            self.dtm.scale_encoder_gradients(self.sequence_encoders)

    def on_train_epoch_end(self) -> None:
        if self.use_dtm:
            self.dtm.step_epoch()
            for i, name in enumerate(self.spec.modalities):  # equal on every process (gaps are gathered)
                self.log(f"dtm/weight_{name}", float(self.dtm.loss_weights[i]), sync_dist=True)
                self.log(f"dtm/grad_scale_{name}", float(self.dtm.grad_scales[i]), sync_dist=True)

    # ---------------------------------------------------------------- validation
    def validation_step(self, item: dict, batch_idx: int) -> None:
        m = self.spec.num_modalities
        subsets = all_subsets(m) if self.cfg.eval.val_subsets == "all" else [(True,) * m]
        rows = evaluate_case(self.model, item, self.spec, subsets, self.eval_settings, self.device)
        for region in self.spec.region_names:
            self.log(f"val/dice_{region}", float(np.mean([r[f"Dice_{region}"] for r in rows])),
                     batch_size=1, sync_dist=True)
        mean = float(np.mean([r[f"Dice_{g}"] for r in rows for g in self.spec.region_names]))
        self.log("val/dice_mean", mean, prog_bar=True, batch_size=1, sync_dist=True)

    # ----------------------------------------------------------------- optimiser
    def configure_optimizers(self):
        """:func:`medmodal.engine.optim.build_optimizer` of ``optim`` (poly / cosine / constant per epoch)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return build_optimizer(params, self.cfg.optim, max_epochs=self.cfg.trainer.max_epochs)

    # --------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Add DTM state and RNG states (plain tensors / lists: loadable with weights_only=True)."""
        checkpoint["dtm"] = self.dtm.state_dict()
        checkpoint["rng"] = {
            "torch": torch.get_rng_state(),
            "python": list(random.getstate()[1]),
            "python_pos": random.getstate()[2],
            **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "dtm" in checkpoint:
            self.dtm.load_state_dict(checkpoint["dtm"])
        rng = checkpoint.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            random.setstate((3, tuple(rng["python"]), rng["python_pos"]))
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
