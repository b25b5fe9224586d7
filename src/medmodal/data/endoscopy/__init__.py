"""Paired white-light (WLI) / narrow-band (NBI) endoscopy images (MICS): layout readers, image
decoding and its cache, the paired dataset, the WLI -> NBI simulation and the synthetic generator
that writes the authors' layout.

The names below are imported lazily, so reading a folder does not import torch.
"""

from importlib import import_module

_EXPORTS = {
    "AUTHORS_CLASSES": "samples", "MODALITIES": "samples", "PairedSample": "samples", "harmonise_labels": "samples",
    "LAYOUTS": "layouts", "LayoutError": "layouts", "detect_layout": "layouts", "read_samples": "layouts",
    "write_samples_csv": "layouts",
    "DecodedImageCache": "images", "ImageReadError": "images", "check_images": "images", "load_image": "images",
    "IMAGENET_MEAN": "dataset", "IMAGENET_STD": "dataset", "PairedImageDataset": "dataset",
    "NBIParams": "nbi", "simulate_nbi": "nbi",
    "calibrate": "nbi_calibration", "cross_validate": "nbi_calibration",
    "simulate_nbi_dataset": "export", "synth_endoscopy": "synthetic",
    "label_fraction_subset": "..stratified", "stratified_splits": "..stratified",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _EXPORTS[name]
    return getattr(import_module(module if module.startswith(".") else "." + module, __name__), name)
