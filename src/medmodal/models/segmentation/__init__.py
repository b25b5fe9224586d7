"""Segmentation networks for incomplete multi-sequence inputs: DMAF-Net and the zero-filling,
RFNet-, mmFormer- and PASSION-style baselines, with their shared blocks."""
