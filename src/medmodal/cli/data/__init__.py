"""``medmodal data ...``: one module per kind of data (volumes: BraTS / MyoPS / nnU-Net layouts; endoscopy:
paired WLI / NBI images)."""

from medmodal.cli.data import endoscopy, volumes  # noqa: F401  (registers the commands)
