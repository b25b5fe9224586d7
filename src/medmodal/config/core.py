"""The config machinery every family shares: YAML files and packaged presets, ``a.b=value``
overrides, typed dataclasses built from mappings, and :func:`load_run_config`.

A run config is a dataclass (``*RunConfig``) whose sections are dataclasses (``*Settings``, most of
them subclasses of :mod:`medmodal.config.common`) and that has a ``validate()`` method. One call
builds any of them::

    cfg = load_run_config(MICSPretrainRunConfig, preset="endoscopy/pretrain_demo_cpu",
                          overrides=["trainer.max_epochs=2"])

Unknown keys in a YAML file are an error naming the key and its section (typos must never be silently
ignored); every run folder gets the fully resolved config as ``config.yaml`` (:func:`save_config`).

Presets live in ``src/medmodal/configs/<family>/<verb>_<dataset|demo>.yaml`` (family keys ``seg``,
``cxr``, ``endoscopy``). :func:`packaged_config` also resolves the flat names of earlier releases
(``demo_cpu``, ``pretrain_demo_cpu``, ``mics_pretrain_demo_cpu``, ``finetune_tiny_classification`` ...,
:data:`LEGACY_PRESETS`), so old commands and scripts keep working.

Errors caused by the input are :class:`medmodal.errors.ConfigError` (one line naming the file or key);
a file or preset that does not exist is a ``FileNotFoundError``.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Sequence, TypeVar

import yaml

from medmodal.errors import ConfigError
from medmodal.io import atomic_write_text

__all__ = ["LEGACY_KEYS", "LEGACY_PRESETS", "legacy_preset_names", "PRESET_FAMILIES", "dataclass_from_dict", "read_yaml_mapping",
           "apply_override", "config_to_dict", "save_config", "packaged_config", "preset_names", "load_run_config",
           "resolve_source", "preset_families", "register_presets", "unregister_presets"]

T = TypeVar("T")

#: keys of earlier versions, still found in run folders' config.yaml: dropped when read, per section class
#: (matched on the class and its bases). ``data.affine_atol`` (absolute, mm) became ``data.affine_tolerance``
#: (fraction of a voxel).
LEGACY_KEYS = {"SegmentationDataSettings": ("affine_atol",)}

#: the folders of ``src/medmodal/configs/`` (one per family key)
PRESET_FAMILIES = ("seg", "cxr", "endoscopy")

#: flat preset names of earlier releases -> ``<family>/<name>``
LEGACY_PRESETS = {
    "demo_cpu": "seg/train_demo_cpu",
    "dmafnet_brats2020": "seg/train_dmafnet_brats2020",
    "dmafnet_myops2020": "seg/train_dmafnet_myops2020",
    "passion_brats2020": "seg/train_passion_brats2020",
    "tiny_myops2020": "seg/train_tiny_myops2020",
    "pretrain_demo_cpu": "cxr/pretrain_demo_cpu",
    "pretrain_iu_xray": "cxr/pretrain_iu_xray",
    "pretrain_mimic_cxr": "cxr/pretrain_mimic_cxr",
    **{f"finetune_{name}": f"cxr/finetune_{name}" for name in (
        "chexpert_linear", "covidx_linear", "rsna_linear", "rsna_segmentation", "siim_segmentation",
        "rsna_detection", "object_cxr_detection", "tiny_classification", "tiny_segmentation", "tiny_detection")},
    "mics_pretrain_demo_cpu": "endoscopy/pretrain_demo_cpu",
    "mics_pretrain_kvasir": "endoscopy/pretrain_kvasir",
    "mics_finetune_demo_cpu": "endoscopy/finetune_demo_cpu",
    "mics_finetune_kvasir": "endoscopy/finetune_kvasir",
}

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"

#: preset folders of families that ship outside ``src/medmodal/configs/`` (plug-ins, tests): family -> folder
_PRESET_DIRS: dict[str, Path] = {}


def register_presets(family: str, folder: str | Path) -> Path:
    """Make the ``*.yaml`` files of ``folder`` the presets of ``family`` (a family shipped outside
    medmodal: a plug-in, a test). A built-in family's folder is ``src/medmodal/configs/<family>/``
    and needs no registration. Returns the folder."""
    _PRESET_DIRS[family] = Path(folder)
    return Path(folder)


def unregister_presets(family: str) -> None:
    """Undo :func:`register_presets`."""
    _PRESET_DIRS.pop(family, None)


def preset_families() -> tuple[str, ...]:
    """Every family with presets: :data:`PRESET_FAMILIES` first, then any other folder of
    ``src/medmodal/configs/`` (a new built-in family needs no entry here), then registered folders."""
    found = sorted(p.name for p in CONFIGS_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    return tuple(dict.fromkeys([*PRESET_FAMILIES, *found, *_PRESET_DIRS]))


def _preset_dir(family: str) -> Path:
    return _PRESET_DIRS.get(family, CONFIGS_DIR / family)


def _legacy_keys(cls) -> tuple[str, ...]:
    return tuple(key for klass in cls.__mro__ for key in LEGACY_KEYS.get(klass.__name__, ()))


def _from_dict(cls, data: dict | None, where: str, base=None):
    """Build dataclass ``cls`` from a mapping; unknown keys are refused (naming them).

    A nested dataclass field starts from the field's *default instance* (so a section whose defaults
    differ from its class's, e.g. ``field(default_factory=lambda: OptimSettings(lr=5e-4))``, keeps
    them for the keys the mapping does not set); ``base`` is that instance for ``cls`` itself.
    """
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}")
    data = dict(data or {})
    for key in _legacy_keys(cls):
        data.pop(key, None)
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown config keys {unknown} (in the file or an override); known: "
                          f"{sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        f = names[name]
        if base is not None:
            default = getattr(base, name)
        else:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            kwargs[name] = _from_dict(type(default), value, _join(where, name), base=default)
        elif isinstance(default, tuple) and isinstance(value, list):
            kwargs[name] = tuple(value)
        elif isinstance(value, str) and _is_float_field(cls, name):
            kwargs[name] = _float(value, _join(where, name))
        else:
            kwargs[name] = _checked(cls, name, value, _join(where, name))
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def _join(where: str, key: str) -> str:
    """``train_demo_cpu.yaml: data`` for a file's section, ``...: data.batch_size`` below it."""
    return f"{where}: {key}" if where.endswith((".yaml", ".yml")) else f"{where}.{key}"


_SCALARS = (bool, int, float, str)


def _scalar_types(cls, name: str) -> tuple[type, ...] | None:
    """The types a field annotated with scalars (``int``, ``float | None``, ``str``, ``bool``) accepts;
    ``None`` for any other annotation (containers, ``Any``, mixed unions: not checked here)."""
    try:
        hint = typing.get_type_hints(cls)[name]
    except Exception:  # noqa: BLE001 - an unresolvable annotation: no check
        return None
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if not args or not all(a in _SCALARS or a is type(None) for a in args):
        return None
    return tuple(args) + ((int,) if float in args and int not in args else ())


def _checked(cls, name: str, value, where: str):
    """``value`` if it fits field ``name``'s scalar annotation; a config value of the wrong kind (``--set
    data.batch_size=abc``) is refused here, with the key named, not deep inside a run.

    Raises:
        ConfigError: e.g. ``config.yaml.data.batch_size: expected an integer, got 'abc'``.
    """
    allowed = _scalar_types(cls, name)
    if allowed is None:
        return value
    fits = (value is None and type(None) in allowed) or (
        value is not None and isinstance(value, allowed) and (not isinstance(value, bool) or bool in allowed))
    if not fits:
        words = {bool: "true / false", int: "an integer", float: "a number", str: "a text", type(None): "null"}
        wanted = " or ".join(dict.fromkeys(words[a] for a in allowed if not (a is int and float in allowed)))
        raise ConfigError(f"{where}: expected {wanted}, got {value!r}")
    return value


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


def dataclass_from_dict(cls: type[T], data: dict | None, where: str = "config") -> T:
    """Any config dataclass ``cls`` from a plain mapping (nested sections, tuples from lists).

    Raises:
        ConfigError: an unknown key (named with its section), a section that is not a mapping.
    """
    return _from_dict(cls, data, where)


def _one_line(err: yaml.YAMLError) -> str:
    """A YAML error as one phrase with its place (``mapping values are not allowed here, line 3, column 10``),
    not PyYAML's several lines with a caret."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{problem}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else " ".join(
        str(err).split())


def read_yaml_mapping(path: str | Path | None, overrides: Sequence[str] | None = None) -> dict:
    """The mapping in a YAML file (``{}`` for ``None``) with ``a.b=value`` overrides applied.

    Raises:
        FileNotFoundError: no such file. ConfigError: not YAML, not a mapping, a bad override.
    """
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({_one_line(err)})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config must be a mapping at the top level")
    for item in overrides or []:
        apply_override(data, item)
    return data


def apply_override(data: dict, item: str) -> None:
    """Set ``data["a"]["b"] = value`` from ``"a.b=value"`` (value parsed as YAML).

    Raises:
        ConfigError: no ``=``, or a key path through a value that is not a section.
    """
    if "=" not in item:
        raise ConfigError(f"bad override {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"bad override {item!r}: {part} is not a section")
    try:
        node[parts[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"bad override {item!r}: the value is not valid YAML ({_one_line(err)})") from None


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


def preset_names(family: str | None = None) -> list[str]:
    """``<family>/<name>`` of every packaged preset (of one family when given), sorted."""
    families = (family,) if family else preset_families()
    return sorted(f"{fam}/{p.stem}" for fam in families for p in _preset_dir(fam).glob("*.yaml"))


def legacy_preset_names(family: str, prefix: str = "") -> list[str]:
    """The deprecated flat preset names (0.1.0) that mean a preset of ``family`` whose name starts with
    ``prefix`` (e.g. ``("seg", "train_")`` -> ``demo_cpu``, ``dmafnet_brats2020``, ...)."""
    return sorted(old for old, new in LEGACY_PRESETS.items() if new.startswith(f"{family}/{prefix}"))


def packaged_config(name: str, family: str | None = None) -> Path:
    """Path of a preset shipped with medmodal (``src/medmodal/configs/<family>/<name>.yaml``, or the
    folder a family registered with :func:`register_presets`).

    ``name`` is ``<family>/<name>``, a name of ``family``'s folder, a flat name of an earlier
    release (:data:`LEGACY_PRESETS`, e.g. ``demo_cpu``; with ``family`` given only one of that family's),
    or (no ``family`` given) a name found in exactly one family folder.

    Raises:
        FileNotFoundError: no such preset (the available ones are named).
    """
    name = str(name).removesuffix(".yaml")
    candidates = []
    if "/" in name:
        if family and not name.startswith(f"{family}/"):
            raise FileNotFoundError(f"preset {name!r} is not one of family {family!r}; available: "
                                    f"{', '.join(preset_names(family))}")
        candidates.append(name)
    else:
        if family:
            candidates.append(f"{family}/{name}")
        legacy = LEGACY_PRESETS.get(name)
        if legacy is not None and (not family or legacy.startswith(f"{family}/")):  # demo_cpu is seg's only
            candidates.append(legacy)
        found = [f"{fam}/{name}" for fam in preset_families() if (_preset_dir(fam) / f"{name}.yaml").is_file()]
        if len(found) == 1 and not family:
            candidates.append(found[0])
    for candidate in candidates:
        fam, _, stem = candidate.partition("/")
        path = _preset_dir(fam) / f"{stem}.yaml"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no packaged config {name!r}; available: {', '.join(preset_names(family))}")


def resolve_source(path: str | Path | None = None, preset: str | None = None,
                   family: str | None = None) -> Path | None:
    """The YAML file a run config is read from: ``path``, or the packaged ``preset``, or ``None`` (defaults).

    Raises:
        ConfigError: both ``path`` and ``preset`` are given. FileNotFoundError: no such preset.
    """
    if path is not None and preset is not None:
        raise ConfigError("give a config file (path) or a preset, not both")
    if preset:
        return packaged_config(preset, family)
    return Path(path) if path is not None else None


def load_run_config(cls: type[T], path: str | Path | None = None, preset: str | None = None,
                    overrides: Sequence[str] = (), *, data: dict | None = None, where: str | None = None,
                    validate: bool = True) -> T:
    """Build run config ``cls`` from a YAML file or a packaged preset (else ``cls``'s defaults), with
    ``a.b=value`` overrides applied, and call its ``validate()``.

    Args:
        cls: a ``*RunConfig`` dataclass; its ``family`` class attribute (``seg`` / ``cxr`` /
            ``endoscopy``), when set, is where a bare preset name is looked up first.
        path / preset: the YAML file or the preset name (:func:`packaged_config`); at most one.
        overrides: ``a.b=value`` items (``--set`` on the command line), applied after the file.
        data: a mapping used instead of reading ``path`` / ``preset`` (overrides still apply);
            ``where`` names its origin in messages (default: the file, else ``config``).
        validate: call ``cfg.validate()`` (a caller that patches the config further validates itself).

    Raises:
        ConfigError: both ``path`` and ``preset``, an unknown key, a bad value (one line each).
        FileNotFoundError: the file or preset does not exist.
    """
    source = resolve_source(path, preset, getattr(cls, "family", None))
    mapping = read_yaml_mapping(source, overrides) if data is None else _with_overrides(data, overrides)
    cfg = dataclass_from_dict(cls, mapping, where or str(source or "config"))
    if validate and hasattr(cfg, "validate"):
        cfg.validate()
    return cfg


def _with_overrides(data: dict, overrides: Sequence[str]) -> dict:
    data = copy.deepcopy(data)
    for item in overrides or []:
        apply_override(data, item)
    return data
