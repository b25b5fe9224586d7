"""``medmodal data ...``: one module per kind of data (volumes: BraTS / MyoPS / nnU-Net layouts; cxr: chest
X-ray image-report datasets; endoscopy: paired WLI / NBI images)."""

from medmodal.cli.data import cxr, endoscopy, volumes  # noqa: F401  (registers the commands)
