"""Vessel maps of new fundus photographs with a trained vessel model bundle (``medmodal seg predict``).

Input: a folder of photographs (every file directly in it that the fundus readers decode: PNG, JPEG,
TIFF, PPM / PGM, GIF, BMP; hidden files ignored), or a data set root in a known fundus layout (DRIVE,
CHASE_DB1, HRF, STARE, generic ``images/`` + ``masks/``): then its images, with their official FOV
masks where the layout has them. Labels are not needed.

Field of view (FOV), per image, first that applies: a mask from ``fov_masks`` (a folder; the file whose
stem is the image's id, or the id plus ``_mask`` / ``-mask`` / ``_fov`` / ``-fov``), the layout's mask
file, else derived from the photograph (:func:`medmodal.data.fundus.fov.derive_fov`). The per-image JSON
says which (``fov.source``: ``given`` / ``official`` / ``unofficial`` (CHASE_DB1's ``_mask.png``) / ``derived``).

Per image (exactly as :func:`medmodal.engine.fundus.train.score_domain` evaluates): the photograph and its
FOV are brought to the bundle's :class:`~medmodal.data.fundus.geometry.FundusGeometry` (the FOV diameter
the model was trained at), normalised as the bundle records (``normalisation``, the
:class:`~medmodal.data.fundus.dataset.FundusVesselDataset` rule), run whole through the network, and
``sigmoid`` probabilities are mapped back to the NATIVE grid (zero outside the FOV). Written into
``out_dir`` (each file atomically; the JSON last, so it marks a finished image):

* ``<id>_vessel_prob.png`` - vessel probability, uint8 grey ``round(255 * p)``, native ``H x W``.
* ``<id>_vessels.png`` - the vessel map: 0 / 255 uint8, ``p >= threshold`` inside the FOV, native size.
* ``<id>_overlay.png`` - the photograph (RGB) with the predicted vessels tinted green at alpha 0.5 and the
  FOV outline in yellow.
* ``<id>.json`` - model, threshold, FOV source, geometry applied (native size, FOV diameter, scale,
  crop, network size) and the vessel fraction inside the FOV.

Errors: an unreadable photograph or mask raises :class:`~medmodal.errors.ImageReadError` naming the file
(one line), or with ``skip_invalid`` is reported through ``on_image(..., "invalid", reason)`` and skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from medmodal.data.fundus.arrays import load_mask
from medmodal.data.fundus.dataset import FundusVesselDataset
from medmodal.data.fundus.fov import derive_fov
from medmodal.data.fundus.geometry import FundusGeometry, to_native, to_network
from medmodal.data.fundus.layouts import as_fundus_dataset, read_fundus
from medmodal.data.images import decode_image
from medmodal.errors import ConfigError, DataError, ImageReadError, LayoutError
from medmodal.io import OutputError, atomic_path, atomic_write_json, ensure_writable_dir
from medmodal.models.bundles import model_geometry

__all__ = ["FundusPredictOptions", "FundusInput", "find_fundus_images", "predict_fundus", "predict_fundus_image",
           "output_files", "IMAGE_SUFFIXES", "VESSEL_TINT", "FOV_OUTLINE"]

#: suffixes of the photographs read from a plain folder (what :func:`medmodal.data.images.decode_image` decodes)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".ppm", ".pgm", ".gif", ".bmp")
#: RGB of the vessel tint and of the FOV outline in ``<id>_overlay.png``; the tint's alpha
VESSEL_TINT, FOV_OUTLINE, TINT_ALPHA = (0, 255, 0), (255, 255, 0), 0.5
_FOV_STEMS = ("", "_mask", "-mask", "_fov", "-fov")
#: how many parents of ``-o`` are checked for being a fundus data set (``DRIVE/test/images`` -> ``DRIVE``)
DATASET_PARENTS_CHECKED = 3


@dataclass
class FundusPredictOptions:
    """Attributes:
        threshold: vessel where ``p >= threshold``; ``None``: the bundle's (0.5 when it records none).
        skip_existing: skip images whose four files exist (``--continue``).
        skip_invalid: name and skip unreadable images instead of stopping at the first.
        fov_masks: a folder of FOV masks paired by stem (module docstring), or ``None``.
    """

    threshold: Optional[float] = None
    skip_existing: bool = False
    skip_invalid: bool = False
    fov_masks: Optional[Path] = None


@dataclass(frozen=True)
class FundusInput:
    """One photograph to predict: ``id`` (output file stem), ``image`` path, ``fov`` mask path or ``None``, and
    ``fov_source``: what that mask is (``official`` | ``unofficial``, as
    :attr:`medmodal.data.fundus.layouts.FundusSample.fov_source`)."""

    id: str
    image: Path
    fov: Optional[Path] = None
    fov_source: str = "official"


def _visible(path: Path) -> bool:
    return not (path.name.startswith(".") or path.name == "__MACOSX")


def find_fundus_images(folder: str | Path) -> tuple[list[FundusInput], Optional[str]]:
    """The photographs under ``folder`` and the layout read (``None`` for a plain folder of images).

    A folder in a known fundus layout gives its images (with their official FOV masks); every other image
    file directly in ``folder`` (all of them in a plain folder) is a photograph too, without a mask.

    Raises:
        LayoutError: ``folder`` is missing, is a file, is a prediction folder (an ``<id>.json`` beside its
            ``<id>_overlay.png``), holds no image file, or two files share a stem (``a.png`` and ``a.jpg`` would
            write the same outputs).
    """
    folder = Path(folder)
    if folder.is_file():
        raise LayoutError(f"{folder}: not a folder; give the folder that holds the photographs")
    if not folder.is_dir():
        raise LayoutError(f"{folder}: input folder not found")
    written = _prediction_record(folder)
    if written is not None:
        raise LayoutError(f"{folder}: a folder of vessel predictions ({written.name} and its PNGs were written by "
                          f"seg predict), not photographs")
    try:
        found = read_fundus(folder, "auto", require_labels=False)
    except LayoutError:
        found = None
    items = [FundusInput(s.id, s.image, s.fov, s.fov_source if s.fov is not None else "official")
             for s in found.samples] if found is not None else []
    known = {Path(p).resolve() for s in (found.samples if found is not None else [])
             for p in (s.image, *s.labels, *([s.fov] if s.fov else []))}
    # image files directly in the folder that no layout claimed (a plain folder, or extra photographs beside
    # a flat layout's files): each is a photograph of its own, never dropped
    files = sorted(p for p in folder.iterdir() if p.is_file() and _visible(p)
                   and p.name.lower().endswith(IMAGE_SUFFIXES) and p.resolve() not in known)
    items += [FundusInput(p.stem, p) for p in files]
    if not items:
        raise LayoutError(f"{folder}: no fundus photograph found (expected image files "
                          f"{', '.join(IMAGE_SUFFIXES)} or a DRIVE / CHASE_DB1 / HRF / STARE folder)")
    seen: dict[str, Path] = {}
    for item in items:
        if item.id in seen:
            raise LayoutError(f"{folder}: {seen[item.id].name} and {item.image.name} share the name {item.id!r}; "
                              f"their predictions would overwrite each other")
        seen[item.id] = item.image
    return items, (found.layout if found is not None and found.samples else None)


def output_files(out_dir: str | Path, image_id: str) -> dict[str, Path]:
    """``{"prob", "vessels", "overlay", "record"}`` paths of one image's outputs in ``out_dir``.

    The names never end in ``_mask`` (nor any FOV-mask suffix): a prediction folder must not read as a CHASE_DB1
    copy's FOV masks or as ``--fov-masks``."""
    out = Path(out_dir)
    return {"prob": out / f"{image_id}_vessel_prob.png", "vessels": out / f"{image_id}_vessels.png",
            "overlay": out / f"{image_id}_overlay.png", "record": out / f"{image_id}.json"}


def _given_fov(folder: Path, image_id: str) -> Optional[Path]:
    for stem in _FOV_STEMS:
        for path in sorted(folder.glob(f"{image_id}{stem}.*")):
            if path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES):
                return path
    return None


def _write_png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")
    return path


def overlay(image: np.ndarray, mask: np.ndarray, fov: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]``: ``image`` with ``mask`` pixels blended with :data:`VESSEL_TINT` (alpha 0.5) and
    the FOV's outline (:data:`FOV_OUTLINE`, about ``min(H, W) / 250`` px wide, at least 2) drawn on top."""
    from scipy import ndimage

    out = np.asarray(image, dtype=np.float32).copy()
    tint = np.asarray(VESSEL_TINT, np.float32)
    out[mask] = (1 - TINT_ALPHA) * out[mask] + TINT_ALPHA * tint
    width = max(2, min(fov.shape) // 250)
    edge = fov & ~ndimage.binary_erosion(fov, iterations=width, border_value=0)
    out[edge] = FOV_OUTLINE
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@torch.no_grad()
def predict_fundus_image(model: torch.nn.Module, item: FundusInput, out_dir: Path, geometry: FundusGeometry,
                         threshold: float, normalisation: str = "fov", meta: Optional[dict] = None,
                         fov_masks: Optional[Path] = None, device: torch.device | str = "cpu") -> dict:
    """Predict one photograph and write its four files (module docstring); returns its JSON record.

    Raises:
        ImageReadError: the photograph or its FOV mask cannot be decoded (names the file).
        DataError: the FOV is empty or a mask's size differs from the photograph's.
    """
    image = decode_image(item.image, "rgb", error=ImageReadError)
    fov_path, source = None, "derived"
    if fov_masks is not None:
        fov_path = _given_fov(Path(fov_masks), item.id)
        source = "given" if fov_path is not None else source
    if fov_path is None and item.fov is not None:
        fov_path, source = item.fov, item.fov_source
    fov = load_mask(fov_path, image.shape[:2]) if fov_path is not None else derive_fov(image)
    if not fov.any():
        raise DataError(f"{item.image}: the field of view is empty ({'derived from the image' if fov_path is None else fov_path}); "
                        f"give a FOV mask with --fov-masks")
    (net_image, net_fov), grid = to_network(image, fov, geometry=geometry, name=str(item.image))
    prepared = FundusVesselDataset([], geometry, train=False, normalize=normalisation).prepare(
        net_image, np.zeros_like(net_fov), net_fov, None, train=False)
    logits = model(prepared["image"][None].to(device))
    prob = to_native(torch.sigmoid(logits)[0, 0].float().cpu().numpy(), grid)
    mask = (prob >= threshold) & fov
    files = output_files(out_dir, item.id)
    _write_png(files["prob"], np.clip(np.rint(prob * 255), 0, 255).astype(np.uint8))
    _write_png(files["vessels"], (mask * 255).astype(np.uint8))
    _write_png(files["overlay"], overlay(image, mask, fov))
    meta = meta or {}
    h, w = grid.native_shape
    record = {
        "id": item.id, "image": str(item.image),
        "model": {"name": meta.get("model_name"), "source": meta.get("source"), "trained_on": meta.get("trained_on")},
        "threshold": float(threshold),
        "fov": {"source": source, "file": None if fov_path is None else str(fov_path),
                **({"note": "no FOV mask: derived from the photograph (red-channel threshold, largest component, "
                            "holes filled)"} if source == "derived" else {})},
        "geometry": {"native_size": {"width": w, "height": h}, "fov_diameter": int(grid.fov.diameter),
                     "target_diameter": int(geometry.target_diameter), "scale": float(grid.scale),
                     "crop": list(grid.crop), "network_shape": list(grid.network_shape),
                     "normalisation": normalisation},
        "vessel_fraction_in_fov": float(mask.sum() / max(int(fov.sum()), 1)),
        "outputs": {k: v.name for k, v in files.items() if k != "record"},
    }
    atomic_write_json(files["record"], record)
    return record


def _prediction_record(folder: Path) -> Optional[Path]:
    """The first ``<id>.json`` in ``folder`` that has its ``<id>_overlay.png`` beside it (a prediction folder)."""
    for record in sorted(folder.glob("*.json")):
        if (folder / f"{record.stem}_overlay.png").is_file():
            return record
    return None


def _check_output(out_dir: Path, input_root: Path, items: list[FundusInput]) -> None:
    out = Path(os.path.abspath(out_dir))
    if out == Path(os.path.abspath(input_root)):
        raise OutputError(f"{out}: the output folder is the input folder; choose another -o")
    root = Path(os.path.abspath(input_root))
    if root in out.parents:
        raise OutputError(f"{out}: the output folder is inside the input folder {root}; choose another -o")
    # the output folder, or one of its nearest parents, is a fundus data set: predictions would mix with its files
    for folder in [out, *list(out.parents)[:DATASET_PARENTS_CHECKED]]:
        found = as_fundus_dataset(folder)
        if found is not None:
            where = "is" if folder == out else f"is inside {folder}, which is"
            raise OutputError(f"{out}: the output folder {where} a fundus data set ({found.layout} layout, "
                              f"{len(found.samples)} photographs); choose another -o")
    for folder in sorted({Path(os.path.abspath(i.image)).parent for i in items}):
        if out == folder:
            raise OutputError(f"{out}: the output folder holds input photographs; its PNGs would be read as "
                              f"input next time; choose another -o")


def predict_fundus(model: torch.nn.Module, meta: dict, input_root: str | Path, out_dir: str | Path,
                   options: FundusPredictOptions | None = None, device: torch.device | str = "cpu",
                   on_image: Callable[[FundusInput, str, object], None] | None = None) -> dict[str, int]:
    """Predict every photograph of ``input_root`` into ``out_dir`` (module docstring).

    ``on_image(item, status, detail)`` reports ``written`` (detail: the JSON record), ``skipped`` (already
    predicted, ``--continue``; detail ``None``) or ``invalid`` (``skip_invalid``; detail: the one-line reason).
    Returns ``{"written", "skipped", "invalid"}`` counts.

    Raises:
        ConfigError: the bundle is not a fundus model, or the threshold is outside ``(0, 1]``.
        LayoutError: no photograph found, ``input_root`` is a prediction folder, or no photograph has a mask in
            ``fov_masks`` (one that lacks it gets the layout's or a derived FOV, said in its JSON and line). OutputError: ``out_dir`` is
            the input folder or inside it, holds input photographs, or is (or is inside, up to
            :data:`DATASET_PARENTS_CHECKED` levels) a fundus data set.
        ImageReadError / DataError: an unreadable image (without ``skip_invalid``).
    """
    options = options or FundusPredictOptions()
    if meta.get("image_kind") != "fundus":
        raise ConfigError(f"{meta.get('source', 'the model')}: not a fundus vessel model (image_kind "
                          f"{meta.get('image_kind')!r})")
    threshold = float(options.threshold if options.threshold is not None else meta.get("threshold", 0.5))
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"--threshold must be in (0, 1], got {threshold}")
    geometry = model_geometry(meta)
    if not isinstance(geometry, FundusGeometry):
        raise ConfigError(f"{meta.get('source', 'the model')}: records no fundus geometry")
    if options.fov_masks is not None and not Path(options.fov_masks).is_dir():
        raise LayoutError(f"{options.fov_masks}: FOV mask folder not found")
    items, _ = find_fundus_images(input_root)
    if options.fov_masks is not None and not any(_given_fov(Path(options.fov_masks), i.id) for i in items):
        example = items[0].id
        raise LayoutError(f"{options.fov_masks}: no FOV mask named like the photographs (e.g. {example}.png, "
                          f"{example}_mask.png or {example}_fov.png for {items[0].image.name})")
    _check_output(Path(out_dir), Path(input_root), items)
    created = not Path(out_dir).exists()
    out = ensure_writable_dir(out_dir)
    try:
        return _predict_items(model, meta, items, out, options, geometry, threshold, device, on_image)
    finally:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # nothing written (the first image failed): leave no empty -o behind


def _predict_items(model, meta, items, out, options, geometry, threshold, device, on_image) -> dict[str, int]:
    counts = {"written": 0, "skipped": 0, "invalid": 0}
    for item in items:
        files = output_files(out, item.id)
        if options.skip_existing and all(p.is_file() for p in files.values()):
            counts["skipped"] += 1
            on_image and on_image(item, "skipped", None)
            continue
        try:
            record = predict_fundus_image(model, item, out, geometry, threshold,
                                          normalisation=meta.get("normalisation", "fov"), meta=meta,
                                          fov_masks=options.fov_masks, device=device)
        except DataError as err:  # ImageReadError is one
            if not options.skip_invalid:
                kept = counts["written"]
                kept_text = f"; the {kept} written so far are kept and --continue skips them" if kept else ""
                raise type(err)(f"{err} (--skip-invalid names and skips such images{kept_text})") from None
            counts["invalid"] += 1
            on_image and on_image(item, "invalid", str(err).splitlines()[0])
            continue
        counts["written"] += 1
        on_image and on_image(item, "written", record)
    return counts
