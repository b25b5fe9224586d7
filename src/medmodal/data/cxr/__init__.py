"""Chest X-ray image-report data (CM-CGNS pre-training and the downstream suite).

* :mod:`~medmodal.data.cxr.records`: the :class:`Study` row, :class:`ReadResult`, :class:`CXRDataError`.
* :mod:`~medmodal.data.cxr.text`: report -> sentences (the reference's rules), sentence-aware tokenisation.
* :mod:`~medmodal.data.cxr.images`: PNG / JPEG / DICOM -> 8-bit grey, resize 256 + pad, :class:`ImageCache`.
* :mod:`~medmodal.data.cxr.dataset`: :class:`ImageReportDataset`, :class:`ImageReportCollator` (the contract).
* :mod:`~medmodal.data.cxr.splits`: patient-level splits and their check.
* readers: :mod:`~medmodal.data.cxr.iu` (R2Gen, flat names, Open-i CSV pair), :mod:`~medmodal.data.cxr.mimic`
  (MIMIC-CXR-JPG + reports), :mod:`~medmodal.data.cxr.table` (generic CSV); :func:`read_studies` dispatches.
* :mod:`~medmodal.data.cxr.findings` (MeSH / keyword findings), :mod:`~medmodal.data.cxr.synthetic`
  (``medmodal cxr synth``).
* :mod:`~medmodal.data.cxr.downstream`: the downstream datasets (CheXpert, RSNA Pneumonia, COVIDx,
  SIIM-ACR, Object-CXR): readers, MGCA's splits and label fractions, torch datasets, synthetic twins.
"""

from medmodal.data.cxr.dataset import ImageReportCollator, ImageReportDataset
from medmodal.data.cxr.images import ImageCache, load_image, resize_and_pad
from medmodal.data.cxr.records import CXRDataError, ReadResult, Study
from medmodal.data.cxr.splits import assign_patient_splits, check_patient_splits
from medmodal.data.cxr.text import split_report_into_sentences, tokenize_sentences

__all__ = ["CXRDataError", "ImageCache", "ImageReportCollator", "ImageReportDataset", "ReadResult", "Study",
           "assign_patient_splits", "check_patient_splits", "load_image", "resize_and_pad",
           "split_report_into_sentences", "tokenize_sentences"]
