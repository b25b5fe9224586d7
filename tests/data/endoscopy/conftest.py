"""Endoscopy test helpers: the real endoscopy folders, and tiny image layouts written on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REAL_DATA

ENDO_REAL = REAL_DATA / "endoscopy-real"
REAL_PAIRS = ENDO_REAL / "wli-nbi-colonoscopy"
KVASIR_ONE_PER_CLASS = ENDO_REAL / "public" / "images" / "kvasir"
HYPERKVASIR_SPLITS = ENDO_REAL / "hyper-kvasir" / "official_splits"
KVASIR_SEG = ENDO_REAL / "kvasir-seg_from_latent-diffusion-inpainting"

requires_endoscopy_data = pytest.mark.skipif(not REAL_PAIRS.is_dir(),
                                             reason=f"real endoscopy data not found at {ENDO_REAL}")


def write_image(path: Path, seed: int = 0, size=(24, 20), fmt: str | None = None) -> Path:
    """A small random RGB image (JPEG or PNG by suffix)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, format=fmt)
    return path


@pytest.fixture
def authors_root(tmp_path) -> Path:
    """Authors' layout: 2 classes x 3 pairs, one WLI without NBI, one NBI without WLI, and junk files."""
    root = tmp_path / "mics"
    for c, cls in enumerate(("polyps", "normal-cecum")):
        for i in range(3):
            write_image(root / f"{cls}_WLI" / f"{i:03d}.png", seed=10 * c + i)
            write_image(root / f"{cls}_NBI" / f"{i:03d}.png", seed=100 + 10 * c + i)
    write_image(root / "polyps_WLI" / "lonely_wli.png", seed=7)
    write_image(root / "normal-cecum_NBI" / "lonely_nbi.png", seed=8)
    (root / "polyps_WLI" / ".DS_Store").write_bytes(b"\0\0")
    (root / "polyps_NBI" / "._000.png").write_bytes(b"\0\0")  # macOS resource fork
    write_image(root / "__MACOSX" / "polyps_WLI" / "000.png", seed=9)
    return root
