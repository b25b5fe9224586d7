"""Multi-sequence volumes (BraTS, MyoPS, nnU-Net and Decathlon layouts): dataset specs, layout
discovery, reading and validation, preprocessing and its cache, training datasets and the
synthetic generators that write the official layouts."""
