"""MICS configs: pre-training and fine-tuning, defaults = the authors' released settings.

Sources: the MICS abstract and the authors' pre-training code (LQH89757/MICS, summarised in
``shared/notes/mics.md``): ViT-B/16 at 384 px, AdamW lr 1e-4, weight decay 0.02, cosine, 30
epochs, loss weights 10 / 1 / 0.1, discriminator Adam lr 2e-3 betas (0.5, 0.999). The fine-tuning
code is not released: its optimiser follows the pre-training one (lr 1e-4, AdamW), FixMatch
follows Sohn et al., NeurIPS 2020 (threshold 0.95, lambda_u 1, mu 7).

Packaged presets (``src/medmodal/configs/endoscopy/``): ``pretrain_kvasir`` / ``finetune_kvasir``
(paper defaults), ``pretrain_demo_cpu`` / ``finetune_demo_cpu`` (tiny ViT at 64 px, minutes on 2 cores);
the flat names ``mics_pretrain_kvasir`` ... also resolve.

The sections subclass :mod:`medmodal.config.common`; ``validate()`` replaces ``check_finetune_config``
(kept as an alias, as are ``load_pretrain_config`` / ``load_finetune_config``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Optional, Sequence

from medmodal.config import LoaderSettings, OptimSettings, TrainerSettings, load_run_config
from medmodal.errors import ConfigError
from medmodal.models.endoscopy.classifier import FUSIONS, SHIFTS, MICSClassifierConfig
from medmodal.models.endoscopy.pretrain import MICSPretrainConfig

__all__ = ["EndoscopyDataSettings", "EndoscopyOptimSettings", "EndoscopyTrainerSettings", "FixMatchSettings",
           "MICSPretrainRunConfig", "MICSFinetuneRunConfig", "load_pretrain_config", "load_finetune_config",
           "check_finetune_config", "METHODS"]

#: fine-tuning methods: plain supervised training on the labelled pairs, or FixMatch (+ unlabelled pairs)
METHODS = ("supervised", "fixmatch")


@dataclass
class EndoscopyDataSettings(LoaderSettings):
    """Which data and how it is split.

    Attributes:
        root: dataset folder (any layout of :func:`medmodal.data.endoscopy.read_samples`) or CSV file.
        layout: ``auto`` | ``authors`` | ``wl-nbi`` | ``kvasir`` | ``kvasir-seg`` | ``csv``.
        split_file: official split file of a class-folder dataset (Kvasir / HyperKvasir).
        image_size: network input edge ``S`` (authors 384).
        fractions: train / val / test fractions per class (stratified, ``split_seed``).
        split_seed: seed of the split (fixed across training seeds, so pre-training never sees a
            test image of another seed's split).
        label_fraction: labelled fraction of the training split (1 / 5 / 10 / 100 %); the label
            subset is drawn with the training seed (nested across fractions).
        labelled_draws: labelled samples drawn (with replacement) per fine-tuning epoch; ``None``: the
            training split's size (labelled + unlabelled), so an epoch has the same number of steps
            at every label fraction (at 5 % a plain pass over the labelled subset is one or two
            steps); ``0``: one pass over the labelled subset without replacement.
        batch_size / eval_batch_size / num_workers: DataLoader settings (per process).
        cache_dir: decoded-image cache (``None``: in memory).
        joint_geometry: one crop / flip draw per pair (simulated, registered pairs) or per image.
    """

    root: str = "data/endoscopy"
    layout: str = "auto"
    split_file: Optional[str] = None
    image_size: int = 384
    fractions: tuple = (0.7, 0.1, 0.2)
    label_fraction: float = 1.0
    labelled_draws: Optional[int] = None
    batch_size: int = 32
    eval_batch_size: Optional[int] = None
    joint_geometry: bool = True


@dataclass
class EndoscopyOptimSettings(OptimSettings):
    """AdamW + cosine decay per step after a linear warm-up.

    Attributes:
        lr / weight_decay: AdamW (authors 1e-4 / 0.02). warmup_epochs: linear warm-up.
        schedule: ``warmup_cosine`` (per step; :func:`medmodal.engine.optim.build_optimizer`).
        encoder_lr: fine-tuning learning rate of *pre-trained* encoders (``None``: ``lr``); randomly
            initialised encoders always use ``lr``. On the built-in data at 5 % labels ``lr / 10`` was
            measured worse than ``lr`` (docs/results/endoscopy.md).
        discriminator_lr / discriminator_betas: the discriminator's parameter group (authors'
            separate Adam, 2e-3, (0.5, 0.999)); pre-training only.
        grad_clip: gradient-norm clipping (``None``: off).
        freeze_encoders_epochs: fine-tuning only: the encoders get no gradient (and run in eval mode) for
            the first ``N`` epochs, so the fusion layers and classifier are first fitted on the encoders'
            features, then everything is trained (linear-probe-then-fine-tune, LP-FT: Kumar et al., "Fine-
            Tuning can Distort Pretrained Features", ICLR 2022). ``N >= trainer.max_epochs``: frozen
            throughout (frozen-feature fine-tuning). ``0``: off. Applied alike to every method, also to
            randomly initialised encoders (then the fusion is fitted on random features). Multi-GPU runs
            that unfreeze mid-training need ``strategy=ddp_find_unused_parameters_true``.
    """

    lr: float = 1e-4
    weight_decay: float = 0.02
    schedule: str = "warmup_cosine"
    warmup_epochs: int = 1
    encoder_lr: Optional[float] = None
    discriminator_lr: float = 2e-3
    discriminator_betas: tuple = (0.5, 0.999)
    freeze_encoders_epochs: int = 0


@dataclass
class EndoscopyTrainerSettings(TrainerSettings):
    """Lightning settings (see :func:`medmodal.engine.trainer.make_trainer`).

    Attributes:
        max_epochs: training epochs.
        patience: validations without improvement before stopping (``None``: no early stopping).
    """

    max_epochs: int = 30
    patience: Optional[int] = None


@dataclass
class FixMatchSettings:
    """FixMatch (Sohn et al., NeurIPS 2020): pseudo-labels from a weak view of an unlabelled pair,
    kept when ``max p >= threshold``, train the strong view (RandAugment + Cutout).

    Attributes:
        threshold: confidence threshold (0.95). lambda_u: unlabelled-loss weight (1). mu: unlabelled
        batch / labelled batch (7). randaugment_ops / randaugment_magnitude: strong view (2, 10).
        cutout: erased fraction of the image area (FixMatch: up to 0.5 of the edge, i.e. 0.25 of the area).
    """

    threshold: float = 0.95
    lambda_u: float = 1.0
    mu: int = 7
    randaugment_ops: int = 2
    randaugment_magnitude: int = 10
    cutout: float = 0.25


@dataclass
class MICSPretrainRunConfig:
    """``medmodal endoscopy pretrain``: data, model (:class:`MICSPretrainConfig`), optimiser, trainer."""

    family: ClassVar[str] = "endoscopy"

    out_dir: str = "runs/mics/pretrain"
    data: EndoscopyDataSettings = field(default_factory=EndoscopyDataSettings)
    model: MICSPretrainConfig = field(default_factory=MICSPretrainConfig)
    optim: EndoscopyOptimSettings = field(default_factory=EndoscopyOptimSettings)
    trainer: EndoscopyTrainerSettings = field(default_factory=EndoscopyTrainerSettings)

    def validate(self) -> None:
        """Refuse a config that cannot run (one line); ``model.image_size`` follows ``data.image_size``.

        Raises:
            ConfigError: sizes, fractions, epochs or model.queue_size out of range, an unknown optimiser /
                schedule.
        """
        _check_common(self)
        if int(self.model.queue_size) < 1:
            raise ConfigError(f"model.queue_size must be >= 1 (keys kept per modality for the contrastive loss), "
                              f"got {self.model.queue_size}")
        self.model.image_size = self.data.image_size


@dataclass
class MICSFinetuneRunConfig:
    """``medmodal endoscopy finetune``.

    Attributes:
        init: pre-training run folder or its ``encoders.safetensors`` (``none``: random init, the
            "without pre-training" baseline). Architecture and image size then come from the run.
        method: ``supervised`` | ``fixmatch``.
        modality_dropout: probability that a training pair loses one of its images (WLI or NBI, even
            odds), so the fusion model also learns to predict from one modality (the MRI-sequence
            dropout of the segmentation engine); 0 for single-modality models.
        test_modalities: extra test passes with only these modalities present (default: WLI only,
            the usual clinical case); ignored by single-modality models.
    """

    family: ClassVar[str] = "endoscopy"

    out_dir: str = "runs/mics/finetune"
    init: str = "none"
    method: str = "supervised"
    modality_dropout: float = 0.3
    test_modalities: tuple = (("wli",),)
    data: EndoscopyDataSettings = field(default_factory=EndoscopyDataSettings)
    model: MICSClassifierConfig = field(default_factory=MICSClassifierConfig)
    fixmatch: FixMatchSettings = field(default_factory=FixMatchSettings)
    optim: EndoscopyOptimSettings = field(default_factory=EndoscopyOptimSettings)
    trainer: EndoscopyTrainerSettings = field(default_factory=EndoscopyTrainerSettings)

    def validate(self) -> None:
        """Refuse a fine-tuning config that cannot run (one line); normalises the modality tuples and
        sets ``model.image_size`` from ``data.image_size``.

        Raises:
            ConfigError: an unknown method / fusion / shift, values out of range, a bad test subset.
        """
        _check_common(self)
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.model.fusion not in FUSIONS:
            raise ConfigError(f"unknown model.fusion {self.model.fusion!r}; choose one of {', '.join(FUSIONS)}")
        if self.model.shift not in SHIFTS:
            raise ConfigError(f"unknown model.shift {self.model.shift!r}; choose one of {', '.join(SHIFTS)}")
        if int(self.optim.freeze_encoders_epochs) < 0:
            raise ConfigError(f"optim.freeze_encoders_epochs must be >= 0, got {self.optim.freeze_encoders_epochs}")
        if not 0 <= self.modality_dropout < 1:
            raise ConfigError(f"modality_dropout must be in [0, 1), got {self.modality_dropout}")
        self.model.modalities = tuple(self.model.modalities)
        self.test_modalities = tuple(tuple(m) for m in self.test_modalities)
        if len(self.model.modalities) == 1:  # a single-modality model: its full test is the only one
            self.test_modalities = ()
        for subset in self.test_modalities:
            if not subset or any(m not in self.model.modalities for m in subset):
                raise ConfigError(f"test_modalities {list(subset)} must be a non-empty subset of the model's "
                                  f"{list(self.model.modalities)}")
        self.model.image_size = self.data.image_size


def _check_common(cfg) -> None:
    if cfg.data.image_size < 16:
        raise ConfigError(f"data.image_size must be at least 16, got {cfg.data.image_size}")
    if not 0 < cfg.data.label_fraction <= 1:
        raise ConfigError(f"data.label_fraction must be in (0, 1], got {cfg.data.label_fraction}")
    if cfg.data.batch_size < 2:
        raise ConfigError(f"data.batch_size must be >= 2, got {cfg.data.batch_size}")
    cfg.trainer.validate()
    cfg.optim.validate()


def load_pretrain_config(path: str | Path | None = None, preset: str | None = None,
                         overrides: Sequence[str] | None = None) -> MICSPretrainRunConfig:
    """:func:`medmodal.config.load_run_config` of :class:`MICSPretrainRunConfig` (kept for one release).

    Raises:
        ConfigError: unknown key, bad value (one line). FileNotFoundError: no such file / preset.
    """
    return load_run_config(MICSPretrainRunConfig, path, preset, overrides or ())


def load_finetune_config(path: str | Path | None = None, preset: str | None = None,
                         overrides: Sequence[str] | None = None) -> MICSFinetuneRunConfig:
    """As :func:`load_pretrain_config`, for fine-tuning (kept for one release)."""
    return load_run_config(MICSFinetuneRunConfig, path, preset, overrides or ())


def check_finetune_config(cfg: MICSFinetuneRunConfig) -> None:
    """``cfg.validate()`` (kept for one release)."""
    cfg.validate()
