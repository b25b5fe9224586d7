"""Segmentation networks for incomplete multi-sequence inputs: DMAF-Net and the zero-filling,
RFNet-, mmFormer- and PASSION-style baselines, with their shared blocks."""

# the contract first: the model modules register under it
from medmodal.models.segmentation import contract  # noqa: E402,F401
