"""Image-text pre-training engine (CM-CGNS and its baselines): config, data module, Lightning module,
run folder, export.

>>> from medmodal.engine.image_text import load_pretrain_config, run_pretraining
>>> cfg = load_pretrain_config(preset="pretrain_demo_cpu", overrides=["data.root=runs/demo_cmcgns/data"])
>>> result = run_pretraining(cfg, resume="auto")      # result["run_dir"], result["evaluation"], result["export"]

Modules: :mod:`.config` (dataclasses, presets), :mod:`.data` (:class:`PretrainDataModule`),
:mod:`.module` (:class:`ImageTextPretrainModule`: stages, k-means updates in training only, resume,
DDP), :mod:`.train` (:func:`run_pretraining`), :mod:`.export` (``medmodal cxr export``) and
:mod:`.speed` (``cxr speed``). Names are imported lazily (Lightning is heavy).
"""

from __future__ import annotations

__all__ = ["PretrainConfig", "load_pretrain_config", "run_pretraining", "export_run", "ImageTextPretrainModule",
           "PretrainDataModule"]

_WHERE = {"PretrainConfig": "config", "load_pretrain_config": "config", "run_pretraining": "train",
          "export_run": "export", "ImageTextPretrainModule": "module", "PretrainDataModule": "data"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
