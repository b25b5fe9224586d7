"""Object-CXR (JF Healthcare, MIDL 2020 challenge) as distributed: annotation tables + JPEG folders.

Layout::

    train.csv      image_name,annotation      (8,000 images)
    dev.csv        image_name,annotation      (1,000 images)
    train/<image_name>
    dev/<image_name>

``annotation`` lists the foreign objects of an image separated by ``;``, each ``type x y x y
...`` in pixels of the original image: type ``0`` = rectangle (two corners), ``1`` = ellipse (its
bounding rectangle's corners), ``2`` = polygon (its vertices). Blank = no object. Column names
are matched case-insensitively (some copies spell ``ANNOTATION``).

Boxes: rectangles and ellipses -> the min / max of their points (MGCA / CM-CGNS
``preprocess/object_cxr.py``); polygons -> the min / max of their vertices. The reference
boxes a polygon differently (a square around shapely's ``polylabel`` pole of inaccessibility,
half-side = the largest distance from it to the polygon's bounds), which can reach outside the
polygon; the tight box is used here (no shapely). The shape of each box is kept in
``sample.extra["shapes"]``. One class, ``Foreign object``; images without objects are kept
(negatives, as in the reference).

Splits (the reference): ``train.csv`` 90 / 10 into train / val (seed 0; no patient ids: by
image), ``dev.csv`` is the test split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medmodal.data.cxr.downstream.base import (BOX_TOLERANCE, DownstreamDataset, DownstreamReadResult,
                                               DownstreamSample, boxes_array, check_box, read_csv_rows)
from medmodal.data.cxr.downstream.splits import check_no_leakage, split_by_group
from medmodal.data.cxr.downstream.synthetic import check_twin_args, draw, rng_for, save_picture, write_csv
from medmodal.data.cxr.images import read_image_size
from medmodal.data.cxr.records import CXRDataError

SHAPES = {"0": "rectangle", "1": "ellipse", "2": "polygon"}
VAL_FRACTION = 0.1
TABLES = (("train.csv", "train", "train"), ("dev.csv", "dev", "test"))

DESCRIPTOR = DownstreamDataset(
    name="object-cxr", title="Object-CXR (foreign objects)", tasks=("detection",), label_names=("Foreign object",),
    label_kind="multilabel", metrics={"detection": "map_40_75"}, box_label_names=("Foreign object",),
    splits={"train": "90 % of train.csv", "val": "10 % of train.csv", "test": "official dev.csv"})


def parse_annotation(text: str, where: str) -> list[tuple[str, np.ndarray]]:
    """``"0 x y x y;2 x y x y x y ..."`` -> ``[(shape, box xyxy)]`` (module docstring).

    Raises:
        CXRDataError: an unknown type, a non-numeric coordinate, an odd number of coordinates, or
            too few points for the shape (rectangle / ellipse 2, polygon 3).
    """
    objects = []
    for part in text.split(";"):
        tokens = part.split()
        if not tokens:
            continue
        shape = SHAPES.get(tokens[0])
        if shape is None:
            raise CXRDataError(f"{where}: object type {tokens[0]!r} is not 0 (rectangle), 1 (ellipse) or 2 (polygon)")
        try:
            coords = np.array([float(t) for t in tokens[1:]], np.float64)
        except ValueError:
            bad = next(t for t in tokens[1:] if not _is_number(t))
            raise CXRDataError(f"{where}: {shape} with coordinate {bad!r}, not a number") from None
        if coords.size % 2:
            raise CXRDataError(f"{where}: {shape} with an odd number of coordinates ({coords.size})")
        points = coords.reshape(-1, 2)
        needed = 3 if shape == "polygon" else 2
        if len(points) < needed:
            raise CXRDataError(f"{where}: {shape} with {len(points)} point(s), needs at least {needed}")
        objects.append((shape, np.array([*points.min(0), *points.max(0)])))
    return objects


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_object_cxr(root: str | Path, task: str = "detection", seed: int = 0, val_fraction: float = VAL_FRACTION,
                    check_images: bool = True, box_tolerance: float = BOX_TOLERANCE,
                    skip_bad: bool = False) -> DownstreamReadResult:
    """Read Object-CXR (module docstring).

    Args:
        root: the folder with ``train.csv``, ``dev.csv``, ``train/`` and ``dev/``.
        check_images: every image must exist; images with objects have their size read from the
            header and every box is checked against it (clipped within ``box_tolerance`` pixels).

    Raises:
        CXRDataError: a missing table / column, a malformed annotation, a degenerate box or one
            outside its image, a missing image (rows skipped and counted under ``skip_bad``).
        ValueError: an unknown task, an image listed in both tables.
    """
    DESCRIPTOR.check_task(task)
    root = Path(root)
    result = DownstreamReadResult(dataset=DESCRIPTOR, task=task)
    for table, folder, split in TABLES:
        path = root / table
        rows = read_csv_rows(path, (), result, skip_bad)
        for line, row in rows:
            columns = {k.lower(): v for k, v in row.items()}
            if "image_name" not in columns or "annotation" not in columns:
                raise CXRDataError(f"{path}: expected columns image_name, annotation (got {', '.join(row)})")
            where = f"{path}:{line}"
            try:
                sample = _sample(columns["image_name"], columns["annotation"], root / folder, where, check_images,
                                 box_tolerance)
            except CXRDataError as err:
                result.bad(err, skip_bad, path)
                continue
            sample.split = split
            result.samples.append(sample)
    split_by_group([s for s in result.samples if s.split == "train"], (1 - val_fraction, val_fraction), seed,
                   names=("train", "val"))
    check_no_leakage(result.samples)
    return result


def _sample(name: str, annotation: str, folder: Path, where: str, check_images: bool,
            tolerance: float) -> DownstreamSample:
    if not name:
        raise CXRDataError(f"{where}: empty image_name")
    image = folder / name
    if check_images and not image.is_file():
        raise CXRDataError(f"{where}: image {image} not found")
    objects = parse_annotation(annotation, where)
    size = read_image_size(image) if objects and check_images else None
    boxes = [check_box(box, *(size or (None, None)), where, tolerance) for _, box in objects]
    return DownstreamSample(sample_id=name, patient_id=name, image_path=image, labels=(float(bool(objects)),),
                            boxes=boxes_array(boxes), box_labels=np.zeros(len(boxes), np.int64), image_size=size,
                            source=where, extra={"shapes": [shape for shape, _ in objects]})


# ------------------------------------------------------------------------------------------- twin

def synth_object_cxr(out: str | Path, images: int = 120, size: int = 128, seed: int = 0) -> dict:
    """Write an Object-CXR twin: ``out/train.csv``, ``dev.csv``, ``train/``, ``dev/`` (JPEG).

    Radiographs come from the generator (no finding, or a random one of its findings); half of
    them then get 1-4 foreign objects drawn in image pixels, each annotated in its own shape:
    rectangles (clips, ECG lead connectors: ``0``), ellipses (buttons, coins, electrodes: ``1``)
    and polygons (a wire or necklace drawn as a thick curve, annotated by the outline of that
    curve: ``2``). Objects are metal-bright with a slight blur; 1 in 8 of them reaches the
    image border. About 85 % of the images go to ``train.csv``, the rest to ``dev.csv``;
    shapes are non-square (``0.9 size`` wide or high). Names ``00001.jpg`` ... as released.
    """
    check_twin_args(images, size)
    root = Path(out)
    n_dev = max(3, round(0.15 * images))
    tables = {"train": [["image_name", "annotation"]], "dev": [["image_name", "annotation"]]}
    counts = {"rectangle": 0, "ellipse": 0, "polygon": 0}
    for k in range(images):
        folder = "train" if k < images - n_dev else "dev"
        rng = rng_for("object-cxr", seed, k)
        shape = (size, round(0.9 * size)) if rng.random() < 0.5 else (round(0.9 * size), size)
        picture = draw(_background(rng), size, rng, shape)
        annotations = []
        if rng.random() < 0.5:
            image, annotations = draw_objects(picture.image, rng, int(rng.integers(1, 5)))
            picture.image = image
        for a in annotations:
            counts[SHAPES[a.split()[0]]] += 1
        name = f"{k + 1:05d}.jpg"
        save_picture(root / folder / name, picture.image)
        tables[folder].append([name, ";".join(annotations)])
    write_csv(root / "dev.csv", tables["dev"])
    write_csv(root / "train.csv", tables["train"])
    return {"dataset": "object-cxr", "root": str(root), "images": images,
            "images_with_objects": sum(1 for t in tables.values() for r in t[1:] if r[1]), "objects": counts}


def _background(rng: np.random.Generator):
    from medmodal.data.cxr.findings import Finding

    if rng.random() < 0.6:
        return []
    return [[Finding("Cardiomegaly", severity="moderate"), Finding("Pleural Effusion", "right", severity="mild"),
             Finding("Nodule", "left", "upper")][int(rng.integers(3))]]


def draw_objects(image: np.ndarray, rng: np.random.Generator, count: int) -> tuple[np.ndarray, list[str]]:
    """Draw ``count`` foreign objects on a copy of ``image``; returns it and the Object-CXR annotations."""
    from PIL import Image, ImageDraw, ImageFilter

    height, width = image.shape
    layer = Image.new("L", (width, height), 0)
    pen = ImageDraw.Draw(layer)
    annotations = []
    unit = min(height, width)
    for _ in range(count):
        kind = str(rng.choice(["0", "1", "2"], p=[0.3, 0.45, 0.25]))
        edge = rng.random() < 0.125
        cx = float(rng.uniform(0.1, 0.9) * width) if not edge else float(rng.choice([0.02, 0.98]) * width)
        cy = float(rng.uniform(0.1, 0.9) * height)
        brightness = int(rng.integers(225, 256))
        if kind in ("0", "1"):
            half_w, half_h = rng.uniform(0.02, 0.06, size=2) * unit
            x0, y0 = int(max(0, np.floor(cx - half_w))), int(max(0, np.floor(cy - half_h)))
            x1, y1 = int(min(width, np.ceil(cx + half_w))), int(min(height, np.ceil(cy + half_h)))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            if kind == "0":
                pen.rectangle([x0, y0, x1 - 1, y1 - 1], fill=brightness)
            else:
                pen.ellipse([x0, y0, x1 - 1, y1 - 1], fill=brightness)
            annotations.append(f"{kind} {x0} {y0} {x1} {y1}")
        else:
            length = rng.uniform(0.15, 0.35) * unit
            angle = rng.uniform(0, np.pi)
            t = np.linspace(-0.5, 0.5, 8)
            bend = rng.uniform(-0.15, 0.15) * length
            xs = cx + np.cos(angle) * t * length - np.sin(angle) * bend * (1 - 4 * t ** 2)
            ys = cy + np.sin(angle) * t * length + np.cos(angle) * bend * (1 - 4 * t ** 2)
            xs, ys = np.clip(xs, 1, width - 2), np.clip(ys, 1, height - 2)
            thick = max(2.0, 0.012 * unit)
            pen.line(list(zip(xs.tolist(), ys.tolist())), fill=brightness, width=int(round(thick)))
            nx, ny = -np.gradient(ys), np.gradient(xs)
            norm = np.hypot(nx, ny) + 1e-9
            off = thick / 2 + 1
            left = np.stack([xs + nx / norm * off, ys + ny / norm * off], 1)
            right = np.stack([xs - nx / norm * off, ys - ny / norm * off], 1)[::-1]
            outline = np.clip(np.rint(np.concatenate([left, right])), 0, [width, height]).astype(int)
            annotations.append("2 " + " ".join(f"{x} {y}" for x, y in outline))
    layer = layer.filter(ImageFilter.GaussianBlur(0.6))
    out = np.maximum(image, np.asarray(layer, np.uint8))
    return out, annotations
