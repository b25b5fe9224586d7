"""Fine-tuning test helpers: tiny synthetic twins of the downstream datasets, written once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmodal.data.cxr.downstream import synth_downstream

pytestmark = pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")


@pytest.fixture(scope="package")
def twins(tmp_path_factory) -> dict[str, Path]:
    """name -> dataset root of 40-image, 64 px twins (CheXpert: the folder holding train.csv)."""
    out = tmp_path_factory.mktemp("finetune-twins")
    roots = {}
    for name in ("covidx", "chexpert", "rsna", "siim", "object-cxr"):
        summary = synth_downstream(out, name, images=40, size=64, seed=3)[name]
        roots[name] = Path(summary["root"])
    return roots
