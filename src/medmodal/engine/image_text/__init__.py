"""Image-report pre-training engine (CM-CGNS); :mod:`.speed`: batched vs per-sample step benchmark."""
