"""Paired white-light (WLI) / narrow-band (NBI) endoscopy images (MICS): layout readers, image
decoding and its cache, the paired dataset, the WLI -> NBI simulation and the synthetic generator
that writes the authors' layout."""

from medmodal.data.endoscopy.dataset import IMAGENET_MEAN, IMAGENET_STD, PairedImageDataset
from medmodal.data.endoscopy.images import DecodedImageCache, ImageReadError, check_images, load_image
from medmodal.data.endoscopy.layouts import LAYOUTS, LayoutError, detect_layout, read_samples, write_samples_csv
from medmodal.data.endoscopy.samples import AUTHORS_CLASSES, MODALITIES, PairedSample, harmonise_labels

__all__ = ["AUTHORS_CLASSES", "DecodedImageCache", "IMAGENET_MEAN", "IMAGENET_STD", "ImageReadError", "LAYOUTS",
           "LayoutError", "MODALITIES", "PairedImageDataset", "PairedSample", "check_images", "detect_layout",
           "harmonise_labels", "load_image", "read_samples", "write_samples_csv"]
