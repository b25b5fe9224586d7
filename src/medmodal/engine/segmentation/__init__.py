"""Training, inference and prediction for incomplete multi-sequence segmentation (Lightning)."""
