"""Writing the MICS authors' layout: ``<class>_WLI/<name>.png`` + ``<class>_NBI/<name>.png``.

:func:`simulate_nbi_dataset` pairs a single-modality (white-light) dataset with simulated NBI
images, as the authors did for Kvasir (their pairs are PNG files with Kvasir's names, while Kvasir
ships JPEG; medmodal also writes PNG: lossless, so the simulation is not blurred by a second JPEG
encoding). A ``nbi_simulation.json`` next to the class folders records the parameters and the source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from medmodal.data.endoscopy.images import ImageReadError, load_image, resize_square, save_png
from medmodal.data.endoscopy.nbi import NBIParams, simulate_nbi
from medmodal.data.endoscopy.samples import PairedSample, logger, warn_lines
from medmodal.errors import DataError
from medmodal.io import atomic_write_json, ensure_writable_dir

UNLABELLED_CLASS = "unlabelled"


def authors_paths(out: str | Path, label: str, name: str) -> tuple[Path, Path]:
    """``(out/<label>_WLI/<name>.png, out/<label>_NBI/<name>.png)``."""
    out = Path(out)
    return out / f"{label}_WLI" / f"{name}.png", out / f"{label}_NBI" / f"{name}.png"


def write_authors_pair(out: str | Path, label: str, name: str, wli: np.ndarray, nbi: np.ndarray,
                       compress_level: int = 6) -> PairedSample:
    """Write one pair (``uint8 [H, W, 3]`` each, PNG) atomically; returns its :class:`PairedSample`."""
    w, n = authors_paths(out, label, name)
    save_png(w, wli, compress_level)
    save_png(n, nbi, compress_level)
    return PairedSample(f"{label}/{name}", w, n, label, None, "authors")


def simulate_nbi_dataset(samples: Sequence[PairedSample], out: str | Path, params: NBIParams | None = None,
                         size: int | None = None, skip_bad: bool = False, progress: bool = False,
                         source: str = "") -> list[PairedSample]:
    """Write the authors' layout with the WLI image of each sample and its simulated NBI image.

    Args:
        samples: samples with a WLI image (NBI-only samples are skipped and named; a real NBI image,
            if any, is not used: the output NBI is always simulated, and the count is logged).
        out: output folder.
        params: simulation parameters (default: the calibrated defaults).
        size: resize both images to ``size x size`` (default: keep the WLI image's size).
        skip_bad: skip (and name) unreadable WLI images instead of raising :class:`ImageReadError`.
        source: recorded in ``nbi_simulation.json``.

    Returns:
        The written samples. Raises ``ValueError`` when two samples of one class share a file name.
    """
    params = params or NBIParams()
    out = ensure_writable_dir(out)
    usable = [s for s in samples if s.wli is not None]
    no_wli = [s for s in samples if s.wli is None]
    if no_wli:
        warn_lines([f"{s.nbi}: no WLI image to simulate from (skipped)" for s in no_wli],
                   f"{len(no_wli)} NBI-only sample(s) skipped")
    real_nbi = sum(s.nbi is not None for s in usable)
    if real_nbi:
        logger.warning(f"{real_nbi} sample(s) have a real NBI image; the output holds the simulated one")
    unlabelled = sum(s.label is None for s in usable)
    if unlabelled:
        logger.warning(f"{unlabelled} unlabelled sample(s) written to the class '{UNLABELLED_CLASS}'")
    seen: dict[tuple[str, str], Path] = {}
    for s in usable:
        key = (s.label or UNLABELLED_CLASS, s.wli.stem)
        if key in seen:
            raise DataError(f"two images of class {key[0]!r} are named {key[1]!r} ({seen[key]}, {s.wli}); "
                            f"the authors' layout cannot hold both")
        seen[key] = s.wli
    written, bad = [], []
    iterator = usable
    bar = None
    if progress and usable:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        iterator = bar.track(usable, description="simulating NBI")
    try:
        for s in iterator:
            try:
                wli = load_image(s.wli)
            except ImageReadError as err:
                if not skip_bad:
                    raise
                bad.append(str(err))
                continue
            if size is not None:
                wli = resize_square(wli, size)
            written.append(write_authors_pair(out, s.label or UNLABELLED_CLASS, s.wli.stem, wli,
                                              simulate_nbi(wli, params)))
    finally:
        if bar is not None:
            bar.stop()
    if bad:
        warn_lines([f"{m} (skipped)" for m in bad], f"{len(bad)} unreadable image(s) skipped")
    atomic_write_json(out / "nbi_simulation.json", {
        "simulation": "medmodal.data.endoscopy.nbi.simulate_nbi", "params": params.to_dict(),
        "source": source, "pairs": len(written), "size": size, "format": "PNG",
    })
    return written
