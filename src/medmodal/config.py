"""Experiment configuration: plain dataclasses with paper defaults, read from / written to YAML.

The defaults reproduce the DMAF-Net / PASSION BraTS2020 protocol (AdamW 2e-4, weight decay
1e-4, poly(0.9), 300 epochs, batch 1, 80^3 crops, sliding window 80^3 with 50 % overlap, scored
with PASSION's evaluation protocol: ``eval.protocol: auto`` picks each dataset's reference
protocol, see :mod:`medmodal.evaluation.protocols`). ``configs/demo_cpu.yaml`` shrinks
everything for 2 CPU cores.

Unknown keys in a YAML file are an error naming the key (typos must not be silently ignored).
Every run folder gets the fully resolved config as ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medmodal.errors import ConfigError
from medmodal.io import atomic_write_text

#: PASSION-style imbalanced missing rates (issue protocol: FLAIR 20 / T1 40 / T1ce 60 / T2 80 %).
DEFAULT_MISSING_RATES = {"flair": 0.2, "t1": 0.4, "t1ce": 0.6, "t2": 0.8}
#: MyoPS 2020 imbalanced missing rates (bSSFP 20 / LGE 42.5 / T2 67.5 %).
MYOPS_MISSING_RATES = {"c0": 0.2, "de": 0.425, "t2": 0.675}


def default_missing_rates(dataset: str) -> dict[str, float]:
    """The imbalanced-protocol missing rates of a dataset spec name (BraTS or MyoPS)."""
    return dict(MYOPS_MISSING_RATES if dataset.startswith("myops") else DEFAULT_MISSING_RATES)


@dataclass
class DataConfig:
    root: str = "runs/demo/data"
    layout: str = "auto"
    mapping: str | None = None
    labels: str | None = None
    dataset: str = "brats2020"
    cache_dir: str | None = None  # default: <root>/.medmodal_cache
    split_seed: int = 0
    split_fractions: tuple[float, float, float] = (219 / 369, 50 / 369, 100 / 369)
    crop_size: tuple[int, ...] = (80, 80, 80)
    batch_size: int = 1
    num_workers: int = 2
    samples_per_epoch: int | None = None
    missing: str = "balanced"  # full | balanced | imbalanced
    missing_rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MISSING_RATES))
    missing_csv: str | None = None  # default: written into the run folder
    missing_seed: int = 0
    foreground_ratio: float = 0.5
    # allowed affine difference between a case's files, as a fraction of the voxel size
    affine_tolerance: float = 1e-3
    # training geometry (medmodal.data.volumes.geometry): axis codes such as "RAS" (default: those
    # most training cases share) and voxel size in mm (default: median of the training cases;
    # 2 values for 2-D datasets, whose slice spacing is kept)
    orientation: str | None = None
    target_spacing: tuple[float, ...] | None = None


@dataclass
class ModelConfig:
    name: str = "dmafnet"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    optimizer: str = "adamw"  # adamw | adam
    lr: float = 2e-4
    weight_decay: float = 1e-4
    schedule: str = "poly"  # poly | cosine | constant
    poly_power: float = 0.9
    grad_clip: float | None = None


@dataclass
class TrainerConfig:
    max_epochs: int = 300
    seed: int = 0
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    precision: str = "32-true"  # bf16-mixed on GPUs
    val_every_n_epochs: int = 10
    log_every_n_steps: int = 10  # also how often the progress bar reads the loss back
    progress_bar: bool = True
    deterministic: bool = False
    channels_last: bool = False  # channels_last_3d memory format (faster 3-D convs: bf16 on GPUs, oneDNN on CPUs)
    compile: bool = False  # torch.compile the training step (forward_train + loss) as one graph
    # torch.compile mode: default | reduce-overhead (CUDA graphs) | max-autotune[-no-cudagraphs]
    compile_mode: str = "default"


@dataclass
class EvalConfig:
    roi_size: tuple[int, ...] = (80, 80, 80)
    overlap: float = 0.5
    sw_batch_size: int = 2
    # how predictions are scored: auto (passion for BraTS, myops for MyoPS) | passion | brats-challenge |
    # monai-max-directed | myops (medmodal.evaluation.protocols); runs without the field: monai-max-directed
    protocol: str = "auto"
    et_min_voxels: int | None = None  # ET post-processing threshold; None: the protocol's (500)
    hd95: bool = True
    val_subsets: str = "full"  # full | all: subsets scored during validation


@dataclass
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: dict[str, Any] = field(default_factory=dict)  # DMAFNetLossConfig fields
    dtm: dict[str, Any] = field(default_factory=dict)  # DTMConfig fields
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    out_dir: str = "runs/dmafnet"


#: keys of earlier versions, still found in run folders' config.yaml: dropped when read.
#: ``data.affine_atol`` (absolute, mm) became ``data.affine_tolerance`` (fraction of a voxel).
LEGACY_KEYS = {"DataConfig": ("affine_atol",)}


def _from_dict(cls, data: dict | None, where: str, base=None):
    """Build dataclass ``cls`` from a mapping; unknown keys are refused (naming them).

    A nested dataclass field starts from the field's *default instance* (so a section whose defaults
    differ from its class's, e.g. ``field(default_factory=lambda: OptimSettings(lr=5e-4))``, keeps
    them for the keys the mapping does not set); ``base`` is that instance for ``cls`` itself.
    """
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}")
    data = dict(data or {})
    for key in LEGACY_KEYS.get(cls.__name__, ()):
        data.pop(key, None)
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown config keys {unknown}; known: {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        f = names[name]
        if base is not None:
            default = getattr(base, name)
        else:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            kwargs[name] = _from_dict(type(default), value, f"{where}.{name}", base=default)
        elif isinstance(default, tuple) and isinstance(value, list):
            kwargs[name] = tuple(value)
        elif isinstance(value, str) and _is_float_field(cls, name):
            kwargs[name] = _float(value, f"{where}.{name}")
        else:
            kwargs[name] = value
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def _is_float_field(cls, name: str) -> bool:
    """Whether field ``name`` of ``cls`` is annotated ``float`` or ``float | None``."""
    try:
        hint = typing.get_type_hints(cls)[name]
    except Exception:  # noqa: BLE001 - an unresolvable annotation: no coercion
        return False
    return hint is float or (typing.get_origin(hint) in (typing.Union, types.UnionType)
                             and set(typing.get_args(hint)) == {float, type(None)})


def _float(text: str, where: str) -> float:
    """YAML 1.1 reads ``1e-3`` (no dot) as text: a float field takes it as the number it means."""
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{where}: expected a number, got {text!r}") from None


def dataclass_from_dict(cls, data: dict | None, where: str = "config"):
    """Any config dataclass ``cls`` from a plain mapping (nested sections, tuples from lists).

    Raises:
        ValueError: an unknown key (named with its section), a section that is not a mapping.
    """
    return _from_dict(cls, data, where)


def config_from_dict(data: dict | None, where: str = "config") -> ExperimentConfig:
    return _from_dict(ExperimentConfig, data, where)


def read_yaml_mapping(path: str | Path | None, overrides: list[str] | None = None) -> dict:
    """The mapping in a YAML file (``{}`` for ``None``) with ``a.b=value`` overrides applied.

    Raises:
        FileNotFoundError: no such file. ValueError: not YAML, not a mapping, a bad override.
    """
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config must be a mapping at the top level")
    for item in overrides or []:
        apply_override(data, item)
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML config (or the defaults when ``path`` is None) and apply ``a.b=value`` overrides."""
    return config_from_dict(read_yaml_mapping(path, overrides), where=str(path or "config"))


def apply_override(data: dict, item: str) -> None:
    """Set ``data["a"]["b"] = value`` from ``"a.b=value"`` (value parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"bad override {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"bad override {item!r}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def config_to_dict(cfg) -> dict:
    """Any config dataclass as plain YAML-able data (tuples become lists)."""
    def plain(value):
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(cfg))


def save_config(cfg, path: str | Path) -> Path:
    """Write any config dataclass as YAML (atomically)."""
    return atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def packaged_config(name: str) -> Path:
    """Path of a config shipped with medmodal (``src/medmodal/configs/<name>.yaml``)."""
    path = Path(__file__).parent / "configs" / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise FileNotFoundError(f"no packaged config {name!r}; available: {', '.join(available)}")
    return path
