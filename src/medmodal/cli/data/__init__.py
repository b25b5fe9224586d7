"""``medmodal data ...``: one module per kind of data (volumes: BraTS / MyoPS / nnU-Net layouts)."""

from medmodal.cli.data import volumes  # noqa: F401  (registers the commands)
