"""CheXpert v1.0 (Irvin et al., AAAI 2019) as distributed: ``train.csv`` / ``valid.csv`` + JPEG folders.

Layout (``CheXpert-v1.0-small.zip`` or the full-resolution release)::

    CheXpert-v1.0-small/train.csv     Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,...,Support Devices
    CheXpert-v1.0-small/valid.csv     same columns (labels 1.0 / 0.0 only)
    CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg

``Path`` starts with the release folder; it is resolved relative to the folder holding
``train.csv`` (the reference drops the first component the same way), else relative to that
folder's parent. The 14 findings hold ``1.0`` (positive), ``0.0`` (negative), ``-1.0``
(uncertain) or blank (not mentioned).

Labels (MGCA / CM-CGNS ``CheXpertImageDataset``): the five competition findings by default
(Atelectasis, Cardiomegaly, Consolidation, Edema, Pleural Effusion; ``findings="all"`` for the
14); blank -> 0 (``blank="zeros"``, the reference's ``fillna(0)``) or NaN (``"ignore"``);
uncertain by ``uncertain=``:

* ``mixed`` (default, MGCA's ``CHEXPERT_UNCERTAIN_MAPPINGS``): U-Ones for Atelectasis, Edema,
  Pleural Effusion, U-Zeros for Cardiomegaly, Consolidation (and any other finding);
* ``ones`` / ``zeros``: every uncertain -> 1 / 0;
* ``ignore``: NaN, left out of the loss and the metric.

The raw values stay in ``sample.extra["raw"]`` (1 / 0 / -1 / ``None``).

Splits (MGCA ``preprocess/chexpert.py``): ``valid.csv`` is the test split (234 images, 202
frontal); from ``train.csv`` the CheXpert-5x200 images are excluded (``exclude_5x200``: per
competition finding, 200 frontal images positive for it and negative (0 or blank) for the 13
others, drawn with ``RandomState(0)`` as pandas' ``sample(n=200, random_state=0)``; they are
kept in ``result.extra["chexpert_5x200"]`` for zero-shot use), then whole patients go to ``val``
until it holds ``val_size`` images (5,000; a float is a fraction of patients). The reference
draws its 5,000 from all rows, by row (so a patient can be in train and val) and before the
frontal filter; here they are drawn by patient from the images kept. Only frontal images are
read by default (``views="frontal"``; lateral ones are dropped and counted).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from medmodal.data.cxr.downstream.base import (DownstreamDataset, DownstreamReadResult, DownstreamSample,
                                               read_csv_rows, resolve_image)
from medmodal.data.cxr.downstream.splits import check_no_leakage, split_by_group, split_off_images
from medmodal.data.cxr.downstream.synthetic import (check_twin_args, draw, rng_for, save_picture, severity, side,
                                                    write_csv, zone)
from medmodal.data.cxr.findings import Finding
from medmodal.data.cxr.records import CXRDataError, parse_label
from medmodal.errors import ConfigError

CHEXPERT_FINDINGS = ("No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
                     "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
                     "Pleural Other", "Fracture", "Support Devices")
COMPETITION = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
#: MGCA's CHEXPERT_UNCERTAIN_MAPPINGS (U-Ones / U-Zeros per competition finding).
MIXED_UNCERTAIN = {"Atelectasis": 1.0, "Cardiomegaly": 0.0, "Consolidation": 0.0, "Edema": 1.0,
                   "Pleural Effusion": 1.0}
UNCERTAIN_POLICIES = ("mixed", "ones", "zeros", "ignore")
BLANK_POLICIES = ("zeros", "ignore")
COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_FINDINGS)
VAL_IMAGES = 5000
FIVE_X_200 = 200
DROP_LATERAL = "lateral view (frontal only)"
DROP_5X200 = "in CheXpert-5x200 (kept for zero-shot)"

DESCRIPTOR = DownstreamDataset(
    name="chexpert", title="CheXpert v1.0", tasks=("classification",), label_names=COMPETITION,
    label_kind="multilabel", metrics={"classification": "auroc"}, classification_augment="moco2",
    splits={"train": "train.csv minus CheXpert-5x200 minus val", "val": "5,000 train.csv images, whole patients",
            "test": "official valid.csv"})


def find_chexpert_root(path: str | Path) -> Path:
    """The folder holding ``train.csv`` and ``valid.csv`` (``path`` itself, a file in it, or its one
    subfolder that holds them). Raises CXRDataError when there is none."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if (path / "train.csv").is_file():
        return path
    inner = [d for d in sorted(path.glob("*")) if d.is_dir() and (d / "train.csv").is_file()] if path.is_dir() else []
    if len(inner) == 1:
        return inner[0]
    raise CXRDataError(f"{path}: no CheXpert train.csv (expected CheXpert-v1.0-small/train.csv + valid.csv)")


def uncertain_value(name: str, policy: str) -> float:
    if policy == "mixed":
        return MIXED_UNCERTAIN.get(name, 0.0)
    return {"ones": 1.0, "zeros": 0.0, "ignore": float("nan")}[policy]


def read_chexpert(root: str | Path, task: str = "classification", findings: str | tuple = "competition",
                  uncertain: str = "mixed", blank: str = "zeros", views: str = "frontal", exclude_5x200: bool = True,
                  val_size: int | float = VAL_IMAGES, seed: int = 0, image_root: str | Path | None = None,
                  check_images: bool = True, skip_bad: bool = False) -> DownstreamReadResult:
    """Read CheXpert (module docstring) with MGCA's splits.

    Args:
        root: the release folder (holding train.csv, valid.csv), a file in it, or its parent.
        findings: ``competition`` (5), ``all`` (14), or a tuple of names.
        uncertain / blank: label policies (module docstring).
        views: ``frontal`` | ``all``.
        val_size: images moved (as whole patients) from train to val, or a fraction of patients.
        seed: the validation draw and the 5x200 draw (reference: 0).
        image_root: folder the ``Path`` column is relative to (after its first component).

    Raises:
        CXRDataError: a missing table or column, a bad label value, an unrecognised ``Path``, a
            missing image (unless ``skip_bad``: skipped, counted and named).
        ValueError: an unknown policy / finding / view, or a patient in two splits.
    """
    DESCRIPTOR.check_task(task)
    names = _finding_names(findings)
    if uncertain not in UNCERTAIN_POLICIES:
        raise ConfigError(f"uncertain policy must be one of {', '.join(UNCERTAIN_POLICIES)}, got {uncertain!r}")
    if blank not in BLANK_POLICIES:
        raise ConfigError(f"blank policy must be one of {', '.join(BLANK_POLICIES)}, got {blank!r}")
    if views not in ("frontal", "all"):
        raise ConfigError(f"views must be 'frontal' or 'all', got {views!r}")
    folder = find_chexpert_root(root)
    image_root = Path(image_root) if image_root is not None else folder
    result = DownstreamReadResult(dataset=dataclasses.replace(DESCRIPTOR, label_names=names), task=task)
    if not (folder / "valid.csv").is_file():
        raise CXRDataError(f"{folder / 'valid.csv'}: not found (the official validation set is the test split)")
    excluded = set(five_x_200(folder / "train.csv", seed)) if exclude_5x200 else set()
    if exclude_5x200:
        result.extra["chexpert_5x200"] = sorted(excluded)
    for table, split in (("train.csv", "train"), ("valid.csv", "test")):
        path = folder / table
        for line, row in read_csv_rows(path, ("Path", "Frontal/Lateral", *names), result, skip_bad):
            where = f"{path}:{line}"
            if views == "frontal" and row["Frontal/Lateral"].lower() != "frontal":
                result.dropped[DROP_LATERAL] += 1
                continue
            if row["Path"] in excluded and split == "train":
                result.dropped[DROP_5X200] += 1
                continue
            try:
                sample = _sample(row, names, uncertain, blank, image_root, folder, where, split, check_images)
            except CXRDataError as err:
                result.bad(err, skip_bad, path)
                continue
            result.samples.append(sample)
    if len({s.sample_id for s in result.samples}) != len(result.samples):
        raise CXRDataError(f"{folder}: a Path appears twice in train.csv / valid.csv")
    train = [s for s in result.samples if s.split == "train"]
    if isinstance(val_size, float):
        split_by_group(train, (1 - val_size, val_size), seed, names=("train", "val"))
    else:
        if val_size > len(train) // 2:
            result.note(f"{folder}: val_size {val_size} is more than half of the {len(train)} training images: "
                        f"15 % of the training patients go to val instead")
            split_by_group(train, (0.85, 0.15), seed, names=("train", "val"))
        else:
            split_off_images(train, val_size, "val", seed)
    check_no_leakage(result.samples)
    return result


def _finding_names(findings) -> tuple[str, ...]:
    if findings == "competition":
        return COMPETITION
    if findings == "all":
        return tuple(f for f in CHEXPERT_FINDINGS if f != "No Finding") + ("No Finding",)
    names = tuple(findings)
    unknown = [n for n in names if n not in CHEXPERT_FINDINGS]
    if unknown or not names:
        raise ConfigError(f"unknown CheXpert finding(s) {unknown}; choose from {', '.join(CHEXPERT_FINDINGS)}")
    return names


_PATIENT = re.compile(r"^patient\d+$")


def _sample(row: dict, names, uncertain, blank, image_root: Path, folder: Path, where: str, split: str,
            check_images: bool) -> DownstreamSample:
    rel = row["Path"]
    parts = Path(rel.replace("\\", "/")).parts
    patient = next((p for p in parts if _PATIENT.match(p)), None)
    if patient is None:
        raise CXRDataError(f"{where}: Path {rel!r} has no patientNNNNN folder")
    raw = []
    for name in names:
        try:
            raw.append(parse_label(row[name]))
        except ValueError as err:
            raise CXRDataError(f"{where}: {name}: {err}") from None
    labels = tuple(1.0 if v == 1 else 0.0 if v == 0 else uncertain_value(n, uncertain) if v == -1
                   else (0.0 if blank == "zeros" else float("nan")) for n, v in zip(names, raw))
    image = resolve_image(image_root, rel, strip_first=True)
    if check_images and not image.is_file():
        alternative = folder.parent / Path(rel.replace("\\", "/"))
        if alternative.is_file():
            image = alternative
        else:
            raise CXRDataError(f"{where}: image {image} not found")
    return DownstreamSample(sample_id=rel, patient_id=patient, image_path=image, split=split, labels=labels,
                            view=row["Frontal/Lateral"], source=where,
                            extra={"raw": tuple(raw), "study": next((p for p in parts if p.startswith("study")), "")})


def five_x_200(train_csv: Path, seed: int = 0) -> list[str]:
    """``Path`` values of CheXpert-5x200 (GLoRIA / MGCA): per competition finding, 200 frontal
    ``train.csv`` rows positive for it and 0 / blank for the 13 other findings (No Finding aside),
    drawn as pandas' ``sample(n=200, random_state=seed)``; all candidates when fewer than 200."""
    rows = read_csv_rows(train_csv, ("Path", "Frontal/Lateral", *CHEXPERT_FINDINGS))
    frontal = [r for _, r in rows if r["Frontal/Lateral"] == "Frontal"]
    others = [f for f in CHEXPERT_FINDINGS if f != "No Finding"]
    chosen = []
    for target in COMPETITION:
        candidates = []
        for r in frontal:
            try:
                values = {f: float(r[f]) if r[f] else 0.0 for f in others}
            except ValueError:
                continue
            if values[target] == 1.0 and all(values[f] == 0.0 for f in others if f != target):
                candidates.append(r["Path"])
        if len(candidates) > FIVE_X_200:
            picks = np.random.RandomState(seed).choice(len(candidates), FIVE_X_200, replace=False)
            candidates = [candidates[i] for i in picks]
        chosen += candidates
    return chosen


# ------------------------------------------------------------------------------------------- twin

def synth_chexpert(out: str | Path, images: int = 120, size: int = 128, seed: int = 0) -> dict:
    """Write a CheXpert twin: ``out/CheXpert-v1.0-small/{train,valid}.csv`` + JPEG folders.

    About 85 % of the frontal images go to ``train.csv`` (patients with 1-2 studies; a quarter of
    the studies also get a lateral image, a stand-in: the frontal drawing mirrored, as medmodal
    cannot draw lateral projections), the rest to ``valid.csv`` (new patients). Findings drawn per
    study (generator names -> CheXpert columns): each competition finding with p 0.3, Pneumothorax
    0.08, Lung Opacity 0.12 (also set when Consolidation / Atelectasis / Edema are drawn, CheXpert's
    hierarchy), Nodule -> Lung Lesion 0.06, Support Devices 0.2. In ``train.csv`` a drawn finding is
    written ``1.0`` (p 0.85) or ``-1.0`` (uncertain), an absent one blank (0.55), ``0.0`` (0.35) or
    ``-1.0`` (0.1); Pneumonia is ``-1.0`` with a consolidation, blank otherwise; No Finding is
    ``1.0`` when nothing is drawn. ``valid.csv`` holds only ``1.0`` / ``0.0``, as the real one.
    Images are ``size`` high and ``0.82 size`` wide (CheXpert-small is 320 wide, ~390 high).
    """
    check_twin_args(images, size)
    root = Path(out) / "CheXpert-v1.0-small"
    n_valid = max(2, round(0.15 * images))
    header = list(COLUMNS)
    tables = {"train": [header], "valid": [header]}
    shape = (size, round(0.82 * size))
    k = patient = 0
    positives = {n: 0 for n in CHEXPERT_FINDINGS}
    for split, count in (("train", images - n_valid), ("valid", n_valid)):
        done = 0
        while done < count:
            patient += 1
            meta = rng_for("chexpert", seed, 10**6 + patient)
            sex, age = str(meta.choice(["Male", "Female"])), int(meta.integers(18, 90))
            studies = 2 if split == "train" and meta.random() < 0.4 else 1
            for study in range(1, min(studies, count - done) + 1):
                rng = rng_for("chexpert", seed, k)
                drawn = _draw_findings(rng)
                picture = draw(drawn, size, rng, shape)
                folder = f"{split}/patient{patient:05d}/study{study}"
                frontal = f"{folder}/view1_frontal.jpg"
                save_picture(root / frontal, picture.image)
                values = _label_values({f.name for f in drawn}, rng, uncertain=(split == "train"))
                for n, v in values.items():
                    positives[n] += v == "1.0"
                view = str(rng.choice(["AP", "PA"]))
                tables[split].append([f"CheXpert-v1.0-small/{frontal}", sex, age, "Frontal", view,
                                      *(values[n] for n in CHEXPERT_FINDINGS)])
                if split == "train" and rng.random() < 0.25:
                    lateral = f"{folder}/view2_lateral.jpg"
                    save_picture(root / lateral, np.ascontiguousarray(picture.image[:, ::-1]))
                    tables[split].append([f"CheXpert-v1.0-small/{lateral}", sex, age, "Lateral", "",
                                          *(values[n] for n in CHEXPERT_FINDINGS)])
                k += 1
                done += 1
    write_csv(root / "valid.csv", tables["valid"])
    write_csv(root / "train.csv", tables["train"])
    return {"dataset": "chexpert", "root": str(root), "images": images, "patients": patient,
            "train_rows": len(tables["train"]) - 1, "valid_rows": len(tables["valid"]) - 1,
            "positives": {n: positives[n] for n in COMPETITION}}


def _draw_findings(rng: np.random.Generator) -> list[Finding]:
    drawn = []
    if rng.random() < 0.3:
        drawn.append(Finding("Atelectasis", side(rng), "lower", severity(rng)))
    if rng.random() < 0.3:
        drawn.append(Finding("Cardiomegaly", severity=severity(rng)))
    if rng.random() < 0.3:
        drawn.append(Finding("Consolidation", side(rng), zone(rng)))
    if rng.random() < 0.3:
        drawn.append(Finding("Edema", severity=severity(rng)))
    if rng.random() < 0.3:
        drawn.append(Finding("Pleural Effusion", str(rng.choice(["left", "right", "bilateral"])), "",
                             severity(rng)))
    if rng.random() < 0.08:
        drawn.append(Finding("Pneumothorax", side(rng), "upper", severity(rng)))
    if rng.random() < 0.12:
        drawn.append(Finding("Lung Opacity", side(rng), zone(rng)))
    if rng.random() < 0.06:
        drawn.append(Finding("Nodule", side(rng), zone(rng)))
    if rng.random() < 0.2:
        drawn.append(Finding("Support Devices", kind=str(rng.choice(["catheter", "pacemaker", "sternotomy", "tube"]))))
    return drawn


def _label_values(drawn: set[str], rng: np.random.Generator, uncertain: bool) -> dict[str, str]:
    present = {n for n in drawn if n in CHEXPERT_FINDINGS}
    if "Nodule" in drawn:
        present.add("Lung Lesion")
    if drawn & {"Consolidation", "Atelectasis", "Edema"}:
        present.add("Lung Opacity")
    values = {}
    for name in CHEXPERT_FINDINGS[1:]:
        if not uncertain:
            values[name] = "1.0" if name in present else "0.0"
        elif name in present:
            values[name] = "1.0" if rng.random() < 0.85 else "-1.0"
        elif name == "Pneumonia":
            values[name] = "-1.0" if "Consolidation" in drawn else ""
        else:
            values[name] = str(rng.choice(["", "0.0", "-1.0"], p=[0.55, 0.35, 0.1]))
    values["No Finding"] = "1.0" if not present else ("" if uncertain else "0.0")
    return values
