"""Downstream test helpers: the synthetic twins (written once per session), the real COVIDx files,
and tiny hand-made tables in the real layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmodal.data.cxr.downstream import synth_downstream
from tests.conftest import REAL_DATA

COVIDX_REAL = REAL_DATA / "cxr-downstream-real" / "covidx"
requires_covidx_real = pytest.mark.skipif(not (COVIDX_REAL / "labels" / "train_COVIDx9A.txt").is_file(),
                                          reason=f"real COVIDx files not found at {COVIDX_REAL}")
TWIN_IMAGES = 48
TWIN_SIZE = 96

pytestmark = pytest.mark.filterwarnings("ignore::medmodal.data.cxr.records.CXRDataWarning")


@pytest.fixture(scope="session")
def twins(tmp_path_factory) -> dict[str, Path]:
    """Every downstream twin (48 images of 96 px each), written once: name -> its folder."""
    out = tmp_path_factory.mktemp("twins")
    summaries = synth_downstream(out, "all", images=TWIN_IMAGES, size=TWIN_SIZE, seed=3)
    return {name: Path(s["root"]) for name, s in summaries.items()}


def grey_picture(path: Path, height: int, width: int, boxes=(), value=250, seed=0) -> Path:
    """A dark noisy image with bright filled rectangles at ``boxes`` (xyxy, pixels); PNG or JPEG by suffix."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 40, (height, width), dtype=np.uint8)
    for x0, y0, x1, y1 in boxes:
        image[int(y0):int(y1), int(x0):int(x1)] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, **({"quality": 98} if path.suffix == ".jpg" else {}))
    return path
