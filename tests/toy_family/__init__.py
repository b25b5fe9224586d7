"""A toy method family built only from medmodal's extension points (docs/extending.md), for tests.

==================  ===============================================================  ===========================
file                what                                                             registers (on import)
==================  ===============================================================  ===========================
``config.py``       ``ToyRunConfig`` from the common ``*Settings``                   --
``configs/``        presets ``<verb>_<dataset|demo>.yaml`` (``train_demo``)          ``register_presets`` (cli)
``data.py``         the ``png-csv`` layout, its reader, ``synth_toy``                ``register_layout``
``model.py``        contract ``toy_classifier`` and model ``toy_net``                ``register_contract``,
                                                                                     ``register_model``
``objective.py``    ``loss.name: toy_ce``                                            ``register_objective``
``engine.py``       DataModule, LightningModule, ``run_train -> RunResult``          ``register_format``
``cli.py``          ``medmodal toy synth|train|demo``, ``FAMILY``                    --
==================  ===============================================================  ===========================

A test mounts it with one call, ``register_family(tests.toy_family.cli.FAMILY)``, and takes it all
back with :func:`unregister`. A built-in family puts the same files under ``src/medmodal`` (see
docs/extending.md) and needs neither ``register_presets`` (its presets sit in
``src/medmodal/configs/<family>/``) nor :func:`unregister`.
"""

from __future__ import annotations

import sys

KEY = "toy"


def unregister() -> None:
    """Undo everything the toy family registered, and forget its modules (a later import registers again)."""
    from medmodal.bundle import unregister_format
    from medmodal.cli.family import FAMILIES, unregister_family
    from medmodal.config.core import unregister_presets
    from medmodal.data.layouts import unregister_layout
    from medmodal.losses.base import unregister_objective
    from medmodal.models.registry import unregister_contract

    if any(f.key == KEY for f in FAMILIES):
        unregister_family(KEY)
    unregister_contract("toy_classifier")  # and its model toy_net
    unregister_objective("toy_ce")
    unregister_layout(KEY)
    unregister_format("toy/model")
    unregister_presets(KEY)
    package = sys.modules[__name__]
    for name in [m for m in sys.modules if m.startswith(__name__ + ".")]:
        del sys.modules[name]
        package.__dict__.pop(name.rsplit(".", 1)[1], None)  # `from tests.toy_family import cli` imports it again
