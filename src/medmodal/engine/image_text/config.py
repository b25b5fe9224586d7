"""Image-text pre-training configs: dataclasses whose defaults are CM-CGNS's released ones.

Source: ``cgns/models/cgns/cgns_module_update.py`` of github.com/violet-42/CM-CGNS (summarised in
``shared/notes/cmcgns-reference-code.md`` section 1.3):

=================  ===================================================================
model              ``create_model(model.name, **model.kwargs)``: any registered
                   ``task="image_text"`` model (``cmcgns`` default: ResNet-50, 224 px)
stages             stage I 10 epochs (alignment), then stage II 20 epochs (+ CM-MIR); the
                   optimiser and schedule restart at stage II, the weights carry on
optimiser          Adam, lr 1e-5, weight decay 1e-6
schedule           per iteration: 1 warm-up epoch linear from 1e-7, then cosine to 0,
                   within each stage (pl_bolts ``LinearWarmupCosineAnnealingLR``)
batch / precision  64 per GPU (released: 2 GPUs, DDP), fp16 there; here ``precision: auto``
                   = bf16 autocast on CUDA, float32 on CPU
seed               42
images             longer side 256, zero-pad, train ``RandomCrop(224)`` / eval ``CenterCrop``
text               256 tokens, 16 sentences per report
=================  ===================================================================

Presets (``src/medmodal/configs/cxr/``): ``pretrain_mimic_cxr`` (the paper's setting),
``pretrain_iu_xray`` (the same recipe on IU X-ray, R2Gen splits) and ``pretrain_demo_cpu``
(ResNet-10-T at 64 px, frozen MiniLM text encoder with cached features, minutes on 2 CPU cores).

The sections subclass :mod:`medmodal.config.common` (``PretrainRunConfig`` was ``PretrainConfig``, kept
as an alias; ``check_pretrain_config(cfg)`` is ``cfg.validate()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

from medmodal.config import LoaderSettings, OptimSettings, TrainerSettings, load_run_config
from medmodal.errors import ConfigError
from medmodal.models.registry import list_models

__all__ = ["PretrainDataSettings", "PretrainModelSettings", "PretrainOptimSettings", "PretrainTrainerSettings",
           "PretrainEvalSettings", "PretrainRunConfig", "PretrainConfig", "load_pretrain_config",
           "check_pretrain_config", "resolved_resize", "resolved_precision", "PRESETS"]

PRESETS = ("pretrain_mimic_cxr", "pretrain_iu_xray", "pretrain_demo_cpu")


@dataclass
class PretrainDataSettings(LoaderSettings):
    """Which image-report pairs and how they are loaded (:mod:`medmodal.data.cxr`).

    Attributes:
        root: a MIMIC-CXR-JPG folder, an IU ``annotation.json`` (or its folder), an Open-i
            ``indiana_reports.csv`` or a generic CSV (``medmodal cxr reports`` layouts).
        layout: ``auto`` | ``mimic`` | ``iu`` | ``openi`` | ``csv``.
        reader: further options of the layout's reader (``--set data.reader.KEY=VALUE``; a key the
            layout does not take is refused). Every layout: ``views`` (``frontal`` | ``all``),
            ``rows`` (``image`` | ``study``), ``check_images``, ``skip_bad``. ``mimic``:
            ``reports_root``, ``merge_val_test``. ``iu``: ``image_root``, ``projections`` (the
            ``indiana_projections.csv`` giving each image's view), ``labels``. ``openi``:
            ``projections``, ``image_root``. ``csv``: ``image_root`` and the column names
            ``image_col``, ``report_col``, ``findings_col``, ``impression_col``, ``study_col``,
            ``patient_col``, ``split_col``, ``view_col``, ``label_cols``.
        split_seed: rows without an official split get a patient-level 70/10/20 split drawn with
            this seed (IU Open-i CSV, generic CSV).
        train_split / val_split / test_split: split names (MIMIC's ``validate`` is read as ``val``).
            ``test_split`` is held out for the retrieval / zero-shot evaluation.
        image_size: network input side (reference 224).
        resize: side of the cached square frame (reference 256); ``None``: ``round(image_size * 256 / 224)``.
        max_length / max_sentences: text budget per report (reference 256 tokens, 16 sentences).
        batch_size: per process (reference 64). eval_batch_size: ``None`` = ``batch_size``.
        num_workers: DataLoader workers (capped at the CPUs this process may use, with a note).
        cache_dir: decoded-image cache (``None``: ``<root folder>/.medmodal_cache`` when writable, else under
            ``$MEDMODAL_CACHE``).
        skip_bad: skip (and name) bad reports / images instead of stopping.
        max_studies: use only the first N training rows (smoke runs); ``None`` = all.
    """

    root: str = "data/mimic-cxr-jpg"
    layout: str = "auto"
    reader: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    image_size: int = 224
    resize: Optional[int] = None
    max_length: int = 256
    max_sentences: int = 16
    batch_size: int = 64
    eval_batch_size: Optional[int] = None
    num_workers: int = 4
    skip_bad: bool = False
    max_studies: Optional[int] = None


@dataclass
class PretrainModelSettings:
    """``create_model(name, **kwargs)`` of a registered ``task="image_text"`` model.

    For ``cmcgns`` the kwargs are :class:`~medmodal.models.image_text.CMCGNSConfig` fields; the
    engine passes ``image_size`` from ``data.image_size`` unless given here.

    Attributes:
        name: a registered ``image_text`` model (``cmcgns``, ``convirt``, ``gloria``, ``mgca`` ...).
        kwargs: keyword arguments of the model's constructor (its config fields).
        freeze: parameter-name prefixes kept frozen (no gradient, not in the optimiser), e.g.
            ``["text_encoder.model.embeddings"]``; empty (released: everything is trained).
    """

    name: str = "cmcgns"
    kwargs: dict[str, Any] = field(default_factory=dict)
    freeze: list[str] = field(default_factory=list)


@dataclass
class PretrainOptimSettings(OptimSettings):
    """Adam(W) + per-iteration linear warm-up and cosine decay within each stage (released values).

    Attributes:
        optimizer: ``adam`` (released) | ``adamw``.
        lr: peak learning rate (1e-5). weight_decay: 1e-6.
        schedule: ``staged`` (the released per-stage restart, see
            :func:`medmodal.engine.optim.staged_warmup_cosine_factor`).
        warmup_epochs: linear warm-up from ``warmup_start_lr`` (1 epoch from 1e-7).
        warmup_start_lr: learning rate at the start of the warm-up.
        final_lr: cosine floor (0).
        grad_clip: gradient-norm clipping (``None``: off, as released).
    """

    optimizer: str = "adam"
    lr: float = 1e-5
    weight_decay: float = 1e-6
    schedule: str = "staged"
    warmup_epochs: float = 1.0
    warmup_start_lr: float = 1e-7
    final_lr: float = 0.0


@dataclass
class PretrainTrainerSettings(TrainerSettings):
    """Stages and the Lightning trainer.

    Attributes:
        stage1_epochs / stage2_epochs: released 10 / 20. A model without a second stage is
            trained with ``stage=2`` passed all the same (it ignores it) unless ``stage2_epochs: 0``.
        precision: ``auto`` (bf16 autocast on CUDA, ``32-true`` elsewhere) or a Lightning precision.
        monitor: validation metric of ``best.ckpt`` (``val/loss``; mind that stage II adds a term).
    """

    stage1_epochs: int = 10
    stage2_epochs: int = 20
    seed: int = 42
    precision: str = "auto"
    deterministic: bool = False
    monitor: str = "val/loss"

    @property
    def max_epochs(self) -> int:
        return int(self.stage1_epochs) + int(self.stage2_epochs)


@dataclass
class PretrainEvalSettings:
    """Evaluation after pre-training (:mod:`medmodal.evaluation.image_text`).

    Attributes:
        enabled: evaluate on ``data.test_split`` at the end of ``run_pretraining``.
        ks: retrieval cut-offs (R@1/5/10).
        untrained_baseline: also evaluate the same model freshly initialised (random-init image
            encoder, untrained heads; the text encoder as loaded), side by side.
        prompts: zero-shot prompts per finding ``{finding: {"positive": [...], "negative": [...]}}``
            replacing / adding to :data:`medmodal.evaluation.image_text.DEFAULT_PROMPTS`.
        checkpoint: ``last`` (the weights at the end of training) | ``best`` (``best.ckpt``).
    """

    enabled: bool = True
    ks: tuple[int, ...] = (1, 5, 10)
    untrained_baseline: bool = True
    prompts: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = "last"


@dataclass
class PretrainRunConfig:
    """One image-text pre-training run: ``data``, ``model``, ``optim``, ``trainer``, ``eval``, ``export``."""

    family: ClassVar[str] = "cxr"

    data: PretrainDataSettings = field(default_factory=PretrainDataSettings)
    model: PretrainModelSettings = field(default_factory=PretrainModelSettings)
    optim: PretrainOptimSettings = field(default_factory=PretrainOptimSettings)
    trainer: PretrainTrainerSettings = field(default_factory=PretrainTrainerSettings)
    eval: PretrainEvalSettings = field(default_factory=PretrainEvalSettings)
    export: bool = True
    out_dir: Optional[str] = None

    def validate(self) -> None:
        """Refuse a config that cannot run (one clear line).

        Raises:
            ConfigError: unknown model / optimiser / schedule / evaluation checkpoint, sizes or epochs out of range.
        """
        names = list_models(task="image_text")
        if self.model.name not in names:
            raise ConfigError(f"model.name {self.model.name!r} is not a registered image_text model; known: "
                              f"{', '.join(names) or 'none'}")
        if not isinstance(self.model.kwargs, dict):
            raise ConfigError("model.kwargs must be a mapping")
        d, o, t = self.data, self.optim, self.trainer
        if d.image_size < 32 or d.image_size % 32:
            raise ConfigError(f"data.image_size must be a multiple of 32 (>= 32), got {d.image_size}")
        if d.resize is not None and d.resize < d.image_size:
            raise ConfigError(f"data.resize {d.resize} is smaller than data.image_size {d.image_size}")
        if d.batch_size < 2:
            raise ConfigError(f"data.batch_size must be >= 2 (contrastive losses need negatives), got {d.batch_size}")
        if o.optimizer not in ("adam", "adamw"):
            raise ConfigError(f"optim.optimizer must be adam or adamw, got {o.optimizer!r}")
        if o.lr <= 0 or o.warmup_epochs < 0:
            raise ConfigError("optim.lr must be > 0 and optim.warmup_epochs >= 0")
        o.validate()
        t.validate()
        if t.stage1_epochs < 0 or t.stage2_epochs < 0 or t.max_epochs < 1:
            raise ConfigError(f"trainer.stage1_epochs / stage2_epochs must be >= 0 with at least one epoch in "
                              f"total, got {t.stage1_epochs} / {t.stage2_epochs}")
        if self.eval.checkpoint not in ("last", "best"):
            raise ConfigError(f"eval.checkpoint must be last or best, got {self.eval.checkpoint!r}")
        if not self.eval.ks or any(int(k) < 1 for k in self.eval.ks):
            raise ConfigError(f"eval.ks must be positive integers, got {list(self.eval.ks)}")


#: the earlier name (kept for one release)
PretrainConfig = PretrainRunConfig


def load_pretrain_config(path: str | Path | None = None, preset: str | None = None,
                         overrides: Sequence[str] | None = None) -> PretrainRunConfig:
    """:func:`medmodal.config.load_run_config` of :class:`PretrainRunConfig` (kept for one release).

    Raises:
        ConfigError: both ``path`` and ``preset``, an unknown key, a bad value (one line each).
        FileNotFoundError: the file or preset does not exist.
    """
    return load_run_config(PretrainRunConfig, path, preset, overrides or ())


def check_pretrain_config(cfg: PretrainRunConfig) -> None:
    """``cfg.validate()`` (kept for one release)."""
    cfg.validate()


def resolved_resize(cfg: PretrainRunConfig) -> int:
    """Side of the cached frame: ``data.resize`` or ``round(image_size * 256 / 224)`` (the references' ratio)."""
    return int(cfg.data.resize or round(cfg.data.image_size * 256 / 224))


def resolved_precision(cfg: PretrainRunConfig) -> str:
    """``trainer.precision``; ``auto`` = ``bf16-mixed`` when training runs on CUDA, else ``32-true``."""
    if cfg.trainer.precision != "auto":
        return cfg.trainer.precision
    import torch

    on_gpu = cfg.trainer.accelerator in ("gpu", "cuda") or (cfg.trainer.accelerator == "auto"
                                                             and torch.cuda.is_available())
    return "bf16-mixed" if on_gpu else "32-true"


def default_run_dir(cfg: PretrainRunConfig) -> str:
    """``runs/pretrain/<model>-<data folder name>-seed<seed>``."""
    return f"runs/pretrain/{cfg.model.name}-{Path(cfg.data.root).stem or 'data'}-seed{cfg.trainer.seed}"
