"""The semi-supervised segmentation paradigm: what a training step adds when part of every batch is unlabelled.

A batch holds ``labelled_batch`` labelled items first and unlabelled items after them
(:class:`medmodal.data.sampler.TwoStreamBatchSampler`). A :class:`SemiMethod` owns the extra networks (an EMA
teacher, a second student) and turns ``(student, images, labels)`` into the loss; the LightningModule of a task
(2-D slices: :class:`medmodal.engine.seg2d.module.Seg2DModule`) calls it and validates the student, which is what
is saved and scored. The unsupervised terms are the functions of :mod:`medmodal.losses.semi`; the ramps are
:mod:`medmodal.layers.ramps`; the teacher update is :func:`medmodal.layers.momentum.ema_update_`.

==================  ==================================================================================================
``semi.method``     step (reference code read, not copied)
==================  ==================================================================================================
``none``            supervised loss on every item (with ``labelled_patients``: only the labelled part is loaded)
``mean_teacher``    SSL4MIS ``train_mean_teacher_2D.py``: EMA teacher on noisy unlabelled input, softmax MSE
``ua_mt``           SSL4MIS ``train_uncertainty_aware_mean_teacher_2D.py`` / ``yulequan/UA-MT``: the same, masked
                    where the entropy of ``uncertainty_passes`` noisy teacher passes exceeds a rising threshold
``cps``             SSL4MIS ``train_cross_pseudo_supervision_2D.py``: two students, each trained on the other's
                    argmax on the unlabelled part (student 1 is validated and saved)
``swdl``            SWDL-Net (arXiv 2506.10325; third-party copy ``NguyenVanCongThanh/SWDL-BHSD``): the two decoders'
                    losses (:class:`medmodal.losses.swdl.SWDLLoss`) over ``swdl_passes`` inner passes per batch, each
                    its own optimiser step, each pass feeding the stratum-wise decoder differences back into the
                    encoder; ``swdl_no_feedback``: the same without the feedback (one pass: the ablation)
``eranet``          ERANet stage 1 (``code/train-u1.py``): EMA teacher, CE to the teacher's argmax on the
                    unlabelled part, prototype consistency alignment with its ramp; optional edge replacement
                    augmentation (``era_classes``) of the labelled part. Conditional self-training is the
                    multi-run :func:`medmodal.engine.seg2d.cst.run_conditional_self_training`.
==================  ==================================================================================================

Departures from the reference codes (also in each class): the ramps run over a share of this run's steps
(``rampup``) instead of SSL4MIS's ``iteration // 150`` "epochs" out of 200; CPS's two students share one optimiser
(SSL4MIS: one SGD each with the same settings, which is the same update for SGD with per-parameter state); the
supervised term is the task's loss (2-D: CE + soft Dice, :func:`medmodal.engine.seg2d.module.build_loss`), where
SSL4MIS takes ``0.5 * (CE + Dice)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from medmodal.config.common import check_choice
from medmodal.data.sampler import DrawSampler, TwoStreamBatchSampler
from medmodal.data.era import edge_replacement_batch
from medmodal.errors import ConfigError
from medmodal.layers.momentum import ema_update_, momentum_copy
from medmodal.layers.ramps import sigmoid_rampup
from medmodal.losses.semi import (cross_pseudo_supervision, predictive_entropy, prototype_consistency, softmax_mse,
                                  uncertainty_masked_mse, uncertainty_threshold)

__all__ = ["SEMI_METHODS", "SemiSettings", "SemiMethod", "MeanTeacher", "UncertaintyAwareMeanTeacher",
           "CrossPseudoSupervision", "ERANetStage1", "StratumWiseDifference", "build_semi_method", "head_features",
           "SemiDataModule"]

#: ``semi.method`` choices (module docstring)
SEMI_METHODS = ("none", "mean_teacher", "ua_mt", "cps", "eranet", "swdl", "swdl_no_feedback")

Supervised = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Student = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class SemiSettings:
    """Semi-supervised training: a few labelled patients, the rest of the training cases unlabelled.

    Defaults are SSL4MIS's for ACDC (``HiLab-git/SSL4MIS``, the ``train_*_2D.py`` scripts): half of each batch
    labelled, EMA 0.99 (``alpha = min(1 - 1 / (step + 1), ema)``), teacher input noise ``clamp(N(0, 0.1), -0.2,
    0.2)``, consistency weight 0.1 ramped by ``sigmoid_rampup``; SSL4MIS ramps over its whole run (200 "epochs" of
    150 iterations = its 30,000 iterations), here ``rampup`` is that share of the run's steps. UA-MT: 8 teacher
    passes. ERANet (``code/train-u1.py``): pseudo-label CE weight 1, prototype weight 0.1 ramped over 10 of its 100
    epochs (``prototype_rampup`` 0.1), ERA cuts up to 30 % of each end.

    Attributes:
        method: one of :data:`SEMI_METHODS`.
        labelled_patients: labelled training patients, the first ones of the layout's training list (SSL4MIS's
            budgets: 3 or 7 ACDC patients; 68 / 136 slices); ``null``: all labelled cases (the supervised upper
            bound; with a semi-supervised method: the data folder's images without a label are the unlabelled part).
        labelled_batch: labelled items per batch (the rest of ``data.batch_size`` unlabelled; SSL4MIS 12 of 24).
        ema: teacher momentum. consistency: the consistency (CPS: pseudo-supervision) weight at the end of the ramp.
        rampup: share of the training steps over which that weight ramps up (sigmoid).
        noise: standard deviation of the teacher's input noise (clamped to twice it).
        uncertainty_passes: UA-MT's T noisy teacher passes (even; run two at a time as the release does).
        pseudo_weight: ERANet's weight of the CE to the teacher's argmax.
        prototype_weight: ERANet's prototype consistency weight. prototype_rampup: its ramp, share of the steps.
        era_classes: label values ERA shortens (``[]``: no ERA; ERANet: the menisci; ACDC proxy: ``[1]``, the RV).
        era_max_cut: largest share cut off each end. snapshots: stage-1 checkpoints kept for conditional
            self-training (ERANet: 5, at evenly spaced epochs).
        self_training: ERANet only: after stage 1, run conditional self-training (U3, U4;
            :mod:`medmodal.engine.seg2d.cst`); the run's model is then U4.
        cst_agreement: the Dice agreement between snapshots above which an unlabelled slice is reliable (0.8).
        swdl_passes: SWDL-Net's inner passes per batch (3), each with its own optimiser step.
        swdl_consistency: weight of SWDL-Net's two-decoder MSE on the whole batch (1; the copy computes a ramp and
            does not apply it, nor does medmodal).
    """

    method: str = "none"
    labelled_patients: Optional[int] = None
    labelled_batch: int = 12
    ema: float = 0.99
    consistency: float = 0.1
    rampup: float = 1.0
    noise: float = 0.1
    uncertainty_passes: int = 8
    pseudo_weight: float = 1.0
    prototype_weight: float = 0.1
    prototype_rampup: float = 0.1
    era_classes: list = field(default_factory=list)
    era_max_cut: float = 0.3
    snapshots: int = 5
    self_training: bool = False
    cst_agreement: float = 0.8
    swdl_passes: int = 3
    swdl_consistency: float = 1.0

    def validate(self, batch_size: int) -> None:
        check_choice("semi.method", self.method, SEMI_METHODS)
        n = self.labelled_patients
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ConfigError(f"semi.labelled_patients must be an integer >= 1 or null, got {n!r}")
        if self.method != "none":
            lb = self.labelled_batch
            if isinstance(lb, bool) or not isinstance(lb, int) or not 1 <= lb < batch_size:
                raise ConfigError(f"semi.labelled_batch must be an integer in [1, data.batch_size - 1] "
                                  f"({batch_size - 1}), got {lb!r}")
        if not isinstance(self.self_training, bool):
            raise ConfigError(f"semi.self_training must be true or false, got {self.self_training!r}")
        if self.self_training and self.method != "eranet":
            raise ConfigError(f"semi.self_training is ERANet's conditional self-training: it needs semi.method "
                              f"eranet, got {self.method}")
        for key, low, high in (("ema", 0.0, 1.0), ("rampup", 0.0, 1.0), ("prototype_rampup", 0.0, 1.0),
                               ("cst_agreement", 0.0, 1.0),
                               ("era_max_cut", 0.0, 0.49)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ConfigError(f"semi.{key} must be in [{low}, {high}], got {value!r}")
        for key in ("consistency", "noise", "pseudo_weight", "prototype_weight"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"semi.{key} must be >= 0, got {value!r}")
        p = self.swdl_passes
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise ConfigError(f"semi.swdl_passes must be an integer >= 1, got {p!r}")
        if isinstance(self.swdl_consistency, bool) or not isinstance(self.swdl_consistency, (int, float)) \
                or self.swdl_consistency < 0:
            raise ConfigError(f"semi.swdl_consistency must be >= 0, got {self.swdl_consistency!r}")
        t = self.uncertainty_passes
        if isinstance(t, bool) or not isinstance(t, int) or t < 2 or t % 2:
            raise ConfigError(f"semi.uncertainty_passes must be an even integer >= 2, got {t!r}")
        if not isinstance(self.era_classes, (list, tuple)) or any(
                isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.era_classes):
            raise ConfigError(f"semi.era_classes must be a list of foreground label values, got {self.era_classes!r}")
        s = self.snapshots
        if isinstance(s, bool) or not isinstance(s, int) or s < 2:
            raise ConfigError(f"semi.snapshots must be an integer >= 2, got {s!r}")


def head_features(model: nn.Module) -> nn.Module:
    """The output convolution of a segmentation network, whose input is the last decoder feature map (ERANet's
    prototypes are built on it): ``model.feature_head`` when the model names one, else the last ``Conv2d`` /
    ``Conv3d`` in module order. Raises ConfigError when there is none."""
    named = getattr(model, "feature_head", None)
    if isinstance(named, nn.Module):
        return named
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    if not convs:
        raise ConfigError(f"{type(model).__name__} has no output convolution to take prototype features from")
    return convs[-1]


class SemiMethod(nn.Module):
    """A semi-supervised step. Subclasses set :attr:`name` and implement :meth:`loss`; the extra networks are
    submodules (saved in checkpoints with the student, moved with it to the device).

    Args:
        settings: the ``semi`` section as a dict (:class:`SemiSettings` fields).
        student: the network being trained (not a submodule of this object).
        make_model: builds a fresh network like the student (CPS's second student).
    """

    name = "none"
    #: True when the method steps the optimiser itself (several updates per batch: :class:`StratumWiseDifference`)
    manual = False

    def __init__(self, settings: dict, student: nn.Module, make_model: Callable[[], nn.Module]):
        super().__init__()
        self.settings = dict(settings)

    def loss(self, student: Student, images: torch.Tensor, labels: torch.Tensor, supervised: Supervised,
             step: int, total: int) -> tuple[torch.Tensor, dict]:
        """``(loss, terms)`` of one batch whose first ``labelled_batch`` items are labelled.

        Args:
            student: ``images -> logits``. images: ``[B, C, *spatial]``. labels: ``[B, *spatial]`` (unlabelled
                items hold -1). supervised: ``(logits, labels [b, *spatial]) -> loss``.
            step: the optimiser step (0-based). total: the run's steps.
        """
        raise NotImplementedError

    def trainable(self) -> list[nn.Parameter]:
        """Parameters optimised besides the student's (CPS's second student)."""
        return []

    def after_step(self, student: nn.Module, step: int) -> None:
        """Called after each optimiser step (EMA teachers follow the student here)."""

    def ramp(self, step: int, total: int, share: float) -> float:
        return sigmoid_rampup(step, share * max(1, total))


class MeanTeacher(SemiMethod):
    """Mean Teacher as SSL4MIS's ``train_mean_teacher_2D.py``: supervised loss on the labelled head of the batch;
    MSE between the student's softmax and the teacher's (input plus clamped Gaussian noise) on the unlabelled tail,
    weighted by ``consistency * sigmoid_rampup(step, rampup * total)``; the teacher follows the student by EMA."""

    name = "mean_teacher"

    def __init__(self, settings, student, make_model):
        super().__init__(settings, student, make_model)
        self.teacher = momentum_copy(student)

    def noisy(self, x: torch.Tensor) -> torch.Tensor:
        noise = float(self.settings["noise"])
        return x + (torch.randn_like(x) * noise).clamp(-2 * noise, 2 * noise)

    @torch.no_grad()
    def teacher_probs(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher(self.noisy(x)).softmax(1)

    def consistency(self, logits_u: torch.Tensor, x_u: torch.Tensor, step: int, total: int) -> torch.Tensor:
        return softmax_mse(logits_u, self.teacher_probs(x_u))

    def loss(self, student, images, labels, supervised, step, total):
        lb = int(self.settings["labelled_batch"])
        logits = student(images)
        sup = supervised(logits[:lb], labels[:lb])
        cons = self.consistency(logits[lb:], images[lb:], step, total)
        weight = float(self.settings["consistency"]) * self.ramp(step, total, float(self.settings["rampup"]))
        return sup + weight * cons, {"supervised": sup.detach(), "consistency": cons.detach(),
                                     "consistency_weight": weight}

    def after_step(self, student, step):
        ema_update_(student, self.teacher, min(1 - 1 / (step + 1), float(self.settings["ema"])))


class UncertaintyAwareMeanTeacher(MeanTeacher):
    """UA-MT (SSL4MIS ``train_uncertainty_aware_mean_teacher_2D.py``, ``yulequan/UA-MT``): the teacher makes
    ``uncertainty_passes`` (T) noisy passes over the unlabelled images, two copies of the batch at a time as the
    releases do; the entropy of their mean is the uncertainty; the MSE to a further noisy teacher pass counts only
    where the uncertainty is below ``(0.75 + 0.25 * sigmoid_rampup(step, total)) * ln 2``
    (:func:`medmodal.losses.semi.uncertainty_threshold`), normalised as the release does
    (:func:`~medmodal.losses.semi.uncertainty_masked_mse`)."""

    name = "ua_mt"

    @torch.no_grad()
    def uncertainty(self, x: torch.Tensor) -> torch.Tensor:
        passes = int(self.settings["uncertainty_passes"])
        pair = torch.cat([x, x])
        total = None
        for _ in range(passes // 2):
            probs = self.teacher(self.noisy(pair)).softmax(1)
            both = probs[: x.shape[0]] + probs[x.shape[0]:]
            total = both if total is None else total + both
        return predictive_entropy(total / passes)

    def consistency(self, logits_u, x_u, step, total):
        threshold = uncertainty_threshold(sigmoid_rampup(step, max(1, total)), math.log(2))
        return uncertainty_masked_mse(logits_u, self.teacher_probs(x_u), self.uncertainty(x_u), threshold)


class CrossPseudoSupervision(SemiMethod):
    """CPS (SSL4MIS ``train_cross_pseudo_supervision_2D.py``): two students of the same architecture and different
    initialisations; each has the supervised loss on the labelled part and learns the other's argmax on the
    unlabelled part, weighted by ``consistency * sigmoid_rampup``. Student 1 (the task's network) is validated,
    saved and scored; SSL4MIS validates both and keeps each one's best (here one optimiser holds both students,
    module docstring)."""

    name = "cps"

    def __init__(self, settings, student, make_model):
        super().__init__(settings, student, make_model)
        self.peer = make_model()

    def trainable(self):
        return list(self.peer.parameters())

    def loss(self, student, images, labels, supervised, step, total):
        lb = int(self.settings["labelled_batch"])
        mask = torch.ones(images.shape[:2], dtype=torch.bool, device=images.device)
        a, b = student(images), self.peer(images, mask)
        sup = supervised(a[:lb], labels[:lb]) + supervised(b[:lb], labels[:lb])
        cps = cross_pseudo_supervision(a[lb:], b[lb:])
        weight = float(self.settings["consistency"]) * self.ramp(step, total, float(self.settings["rampup"]))
        return sup + weight * cps, {"supervised": sup.detach(), "consistency": cps.detach(),
                                    "consistency_weight": weight}


class ERANetStage1(MeanTeacher):
    """ERANet's stage 1 (``code/train-u1.py``, the network ``UNet_pro``): supervised loss on the labelled part
    (edge-replaced when ``era_classes`` is set, :mod:`medmodal.data.era`); CE of the student's unlabelled logits to
    the EMA teacher's argmax (clean input, no threshold), weight ``pseudo_weight``; the prototype consistency
    alignment of the student's unlabelled output (:func:`medmodal.losses.semi.prototype_consistency`) weighted by
    ``prototype_weight * sigmoid_rampup(step, prototype_rampup * total)``.

    Departures: the release ramps by epoch (10 of 100), here by step over the same share; the release runs the
    labelled and unlabelled batches through the network separately (BatchNorm statistics per batch), here as one
    batch as the other methods do; the prototype head is the task's network's last feature map (the release's
    ``UNet_pro`` is a 64-1024 U-Net), read with a forward hook on its output convolution (:func:`head_features`) and
    resized (bilinear) to the logits when the network up-samples after its head.
    """

    name = "eranet"

    def __init__(self, settings, student, make_model):
        super().__init__(settings, student, make_model)
        self._features: list[torch.Tensor] = []
        self._hook = head_features(student).register_forward_pre_hook(self._keep)
        self.rng = np.random.default_rng(int(settings.get("seed", 0)))

    def _keep(self, module, inputs):
        self._features.append(inputs[0])

    def loss(self, student, images, labels, supervised, step, total):
        s, lb = self.settings, int(self.settings["labelled_batch"])
        if s["era_classes"]:
            x_l, y_l = edge_replacement_batch(images[:lb], labels[:lb], s["era_classes"], self.rng,
                                              float(s["era_max_cut"]))
            images, labels = torch.cat([x_l, images[lb:]]), torch.cat([y_l, labels[lb:]])
        self._features.clear()
        logits = student(images)
        features = self._features[-1]
        self._features.clear()
        if features.shape[2:] != logits.shape[2:]:   # a head before a final up-sampling (MSLAU-Net, TransUNet)
            mode = "bilinear" if logits.ndim == 4 else "trilinear"
            features = nn.functional.interpolate(features, size=logits.shape[2:], mode=mode, align_corners=False)
        sup = supervised(logits[:lb], labels[:lb])
        with torch.no_grad():
            target = self.teacher(images[lb:]).argmax(1)
        self._features.clear()   # the teacher is a copy: its hook is not registered, but stay safe
        pseudo = nn.functional.cross_entropy(logits[lb:], target)
        proto = prototype_consistency(features[lb:], logits[lb:])
        weight = float(s["prototype_weight"]) * self.ramp(step, total, float(s["prototype_rampup"]))
        loss = sup + float(s["pseudo_weight"]) * pseudo + weight * proto
        return loss, {"supervised": sup.detach(), "consistency": pseudo.detach(), "prototype": proto.detach(),
                      "consistency_weight": weight}


class StratumWiseDifference(SemiMethod):
    """SWDL-Net's training step (arXiv 2506.10325; read in the third-party copy ``NguyenVanCongThanh/SWDL-BHSD``,
    ``code/BHSD2024/train_SWDL.py``): :meth:`passes` yields one loss per inner pass; the module steps the optimiser
    after each (``swdl_passes`` = 3: each batch makes three parameter updates). Pass ``k + 1`` adds the detached
    ``1e-3 * (Laplacian - DC)`` stage features of pass ``k`` to the encoder
    (:meth:`medmodal.models.segmentation.swdl_net.SWDLNet.stratum_differences`). Loss per pass:
    :class:`medmodal.losses.swdl.SWDLLoss` (Dice on decoder 1 + CE on decoder 2 on the labelled part, deep
    supervision, ``swdl_consistency`` x the decoders' softmax MSE on the whole batch). ``swdl_no_feedback``: one pass,
    no feedback (the dual decoder alone: the ablation).

    Departures: the copy picks its checkpoint on the test set; here on validation cases only. The copy's consistency
    ramp is computed and unused; so here (a constant weight)."""

    name = "swdl"
    manual = True

    def __init__(self, settings, student, make_model):
        super().__init__(settings, student, make_model)
        from medmodal.losses.swdl import SWDLLoss
        self.criterion = SWDLLoss()
        self.feedback = settings["method"] == "swdl"

    def passes(self, network: nn.Module, images: torch.Tensor, labels: torch.Tensor):
        """Yields ``(loss, terms)`` per inner pass; the caller back-propagates and steps between them."""
        lb = int(self.settings["labelled_batch"])
        feedback = None
        for _ in range(int(self.settings["swdl_passes"]) if self.feedback else 1):
            out = network.forward_train(images, None, feedback)
            terms = self.criterion(out, labels[:lb], lb, consistency_weight=float(self.settings["swdl_consistency"]))
            yield terms["loss"], {k: v for k, v in terms.items() if k != "loss"}
            if self.feedback:
                feedback = network.stratum_differences(out)

    def loss(self, student, images, labels, supervised, step, total):
        raise RuntimeError("SWDL-Net steps the optimiser inside a batch: iterate StratumWiseDifference.passes")


_METHODS = {m.name: m for m in (MeanTeacher, UncertaintyAwareMeanTeacher, CrossPseudoSupervision, ERANetStage1,
                                StratumWiseDifference)}
_METHODS["swdl_no_feedback"] = StratumWiseDifference


def build_semi_method(settings: dict, student: nn.Module, make_model: Callable[[], nn.Module]) -> SemiMethod | None:
    """The :class:`SemiMethod` of ``settings["method"]`` (``None`` for ``none``). Raises ConfigError for an unknown
    method."""
    method = settings.get("method", "none")
    if method == "none":
        return None
    if method not in _METHODS:
        raise ConfigError(f"semi.method must be one of {', '.join(SEMI_METHODS)}, got {method!r}")
    return _METHODS[method](settings, student, make_model)


class SemiDataModule(L.LightningDataModule):
    """The loaders of a task's data module (2-D slices, 3-D patches): two-stream batches when ``batch_sampler`` is
    set (a semi-supervised method), else shuffled batches; whole validation cases one at a time. A subclass sets
    ``train_set``, ``batch_sampler`` (or ``None``), ``val_set``, ``batch_size`` and ``num_workers``."""

    train_set = batch_sampler = draw_sampler = val_set = None
    batch_size = 1
    num_workers = 0

    def set_samplers(self, items: int, labelled: int, semi: bool, batch_size: int, labelled_batch: int,
                     seed: int) -> None:
        """The epoch's draws over ``items`` training items (``len(train_set)`` per epoch, the first ``labelled``
        labelled): two streams with a semi-supervised method (:class:`TwoStreamBatchSampler`), else one
        (:class:`DrawSampler`), so that every item is reached even when an epoch is shorter than the set."""
        self.batch_sampler = self.draw_sampler = None
        if semi:
            batches = max(1, len(self.train_set) // batch_size)
            self.batch_sampler = TwoStreamBatchSampler(labelled, items, batch_size, labelled_batch, batches,
                                                       seed=seed)
        else:
            self.draw_sampler = DrawSampler(items, len(self.train_set), seed=seed)

    def epoch_targets(self) -> list:
        """What a callback calls ``set_epoch`` on each epoch."""
        return [t for t in (self.train_set, self.batch_sampler, self.draw_sampler) if t is not None]

    def train_dataloader(self):
        if self.batch_sampler is not None:
            return DataLoader(self.train_set, batch_sampler=self.batch_sampler, num_workers=self.num_workers,
                              persistent_workers=self.num_workers > 0)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=self.draw_sampler,
                          shuffle=None if self.draw_sampler is not None else True,
                          drop_last=len(self.train_set) >= self.batch_size, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=None, shuffle=False, num_workers=0)
