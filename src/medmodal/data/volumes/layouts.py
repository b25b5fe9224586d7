"""Case discovery for the on-disk layouts users have, without renaming any file.

Supported layouts (``layout=`` argument, or ``"auto"``):

* ``brats2020`` - ``<root>/<case>/<case>_{flair,t1,t1ce,t2,seg}.nii[.gz]`` (also BraTS 2021).
  The known trap of shared BraTS2020 copies (case 355's label named
  ``W39_1998.09.19_Segm.nii``) is handled: a lone ``*seg*``/``*Segm*`` file is the label.
* ``brats2023`` - ``<root>/<case>/<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz`` (enhancing = label 3).
* ``nnunet`` - nnU-Net raw: ``dataset.json`` + ``imagesTr/<case>_000X.nii.gz`` (+ ``imagesTs``)
  + ``labelsTr/<case>.nii.gz``. Channels are matched to sequences by the *names* in
  ``channel_names``; an absent ``_000X`` file is a missing sequence (nnU-Net itself refuses this).
* ``myops2020`` - MyoPS 2020 cardiac MR: ``<case>_{C0,DE,T2}.nii.gz`` (bSSFP, LGE, T2 -> sequences
  ``c0, de, t2``) and the label ``<case>_gd.nii.gz``. Both the official flat layout
  (``<root>/train25/myops_training_101_C0.nii.gz ...`` with the labels in
  ``<root>/train25_myops_gd/myops_training_101_gd.nii.gz``; ``test20/`` without labels) and one
  folder per case are read: files are grouped by the case prefix found in ``root`` and in its
  sub-folders up to two levels down (hidden folders skipped). When ``root`` is the image folder
  itself (``train25``), labels are also looked up in the sibling ``<root>_myops_gd`` folder.
  The same case file found twice is a :class:`LayoutError` naming both files.
* ``mapping`` - any layout, given glob patterns per sequence, e.g.
  ``{"flair": "*_fla*.nii.gz", "t1": "*_t1_*.nii.gz", "seg": "*_seg*.nii.gz"}``.

``root`` may be a dataset folder (one sub-folder per case) or a single case folder.
A :class:`Case` only lists files; reading and validation happen in :mod:`medmodal.data.volumes.loading`.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from medmodal.data.volumes.spec import BRATS_MODALITIES

NIFTI_SUFFIXES = (".nii.gz", ".nii")
LABEL_KEY = "seg"

#: file-name suffix per canonical sequence, per layout.
BRATS2020_SUFFIXES = {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2", LABEL_KEY: "seg"}
BRATS2023_SUFFIXES = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", LABEL_KEY: "seg"}

#: nnU-Net ``channel_names`` values (lower-cased, non-alphanumerics removed) -> canonical sequence.
CHANNEL_ALIASES = {
    "flair": "flair", "t2flair": "flair", "t2f": "flair",
    "t1": "t1", "t1w": "t1", "t1n": "t1", "t1native": "t1",
    "t1ce": "t1ce", "t1c": "t1ce", "t1gd": "t1ce", "t1contrast": "t1ce", "t1post": "t1ce",
    "t2": "t2", "t2w": "t2",
    # MyoPS / cardiac MR
    "c0": "c0", "bssfp": "c0", "cine": "c0", "ssfp": "c0",
    "de": "de", "lge": "de", "psir": "de",
}

#: MyoPS 2020 file suffix (upper-cased) -> canonical sequence name, ``seg`` for the label.
MYOPS_SUFFIXES = {"C0": "c0", "DE": "de", "T2": "t2", "GD": LABEL_KEY}
_MYOPS_FILE = re.compile(r"^(?P<case>.+)_(?P<key>C0|DE|T2|gd)$", re.I)

LAYOUTS = ("auto", "brats2020", "brats2023", "myops2020", "nnunet", "mapping")


class LayoutError(ValueError):
    """The folder does not look like the requested layout, or a pattern is ambiguous."""


@dataclass
class Case:
    """One case: its id and the files found for it.

    Attributes:
        case_id: identifier (folder name or nnU-Net case prefix).
        images: canonical sequence name -> file, only for sequences present on disk.
        label: segmentation file, or ``None`` (e.g. for prediction inputs).
        layout: the layout it was discovered with.
        source_labels: name of the label convention (a key of ``medmodal.data.volumes.spec.SPECS``).
    """

    case_id: str
    images: dict[str, Path]
    label: Path | None = None
    layout: str = "mapping"
    source_labels: str = "brats2020"
    extra: dict = field(default_factory=dict)

    def present(self, modalities: Sequence[str]) -> tuple[bool, ...]:
        return tuple(m in self.images for m in modalities)

    def files(self) -> list[Path]:
        return [*self.images.values(), *([self.label] if self.label else [])]


def strip_nifti_suffix(name: str) -> str | None:
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _nifti_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and strip_nifti_suffix(p.name) is not None)


def _suffix_layout_case(folder: Path, separator: str, suffixes: Mapping[str, str], layout: str,
                        source_labels: str) -> Case | None:
    """Match ``<case><sep><suffix>.nii[.gz]`` files inside one case folder."""
    by_stem = {strip_nifti_suffix(p.name): p for p in _nifti_files(folder)}
    case_id = folder.name
    images: dict[str, Path] = {}
    label = None
    for key, suffix in suffixes.items():
        hit = by_stem.get(f"{case_id}{separator}{suffix}")
        if hit is None:  # case id differs from the folder name: match on the suffix alone
            hits = [p for s, p in by_stem.items() if s.lower().endswith(f"{separator}{suffix}")]
            hit = hits[0] if len(hits) == 1 else None
        if hit is None:
            continue
        if key == LABEL_KEY:
            label = hit
        else:
            images[key] = hit
    if label is None and layout == "brats2020":
        label = _lone_label_file(folder, exclude=set(images.values()))
    if not images and label is None:
        return None
    return Case(case_id, images, label, layout, source_labels)


def _lone_label_file(folder: Path, exclude: set[Path]) -> Path | None:
    """BraTS2020 trap: a label with a non-standard name (``*seg*`` / ``*Segm*``), if unique."""
    hits = [p for p in _nifti_files(folder) if p not in exclude and re.search(r"seg", p.name, re.I)]
    return hits[0] if len(hits) == 1 else None


def _case_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _discover_suffix_layout(root: Path, layout: str) -> list[Case]:
    separator, suffixes, labels = {
        "brats2020": ("_", BRATS2020_SUFFIXES, "brats2020"),
        "brats2023": ("-", BRATS2023_SUFFIXES, "brats2023"),
    }[layout]
    folders = [root] if _nifti_files(root) else _case_folders(root)
    cases = [c for f in folders if (c := _suffix_layout_case(f, separator, suffixes, layout, labels))]
    return cases


def _myops_folders(root: Path, depth: int = 2) -> list[Path]:
    """``root`` and its non-hidden sub-folders down to ``depth`` levels (the MyoPS search space)."""
    folders, frontier = [root], [root]
    for _ in range(depth):
        frontier = [d for f in frontier for d in _case_folders(f)]
        folders += frontier
    if _nifti_files(root):  # root is an image folder such as train25: its label folder is a sibling
        sibling = root.parent / f"{root.name}_myops_gd"
        if sibling.is_dir():
            folders.append(sibling)
    return folders


def _discover_myops(root: Path, source_labels: str) -> list[Case]:
    """MyoPS 2020: group ``<case>_{C0,DE,T2,gd}.nii[.gz]`` files by case id (flat or per-case folders)."""
    cases: dict[str, Case] = {}
    for folder in _myops_folders(root):
        for path in _nifti_files(folder):
            m = _MYOPS_FILE.match(strip_nifti_suffix(path.name) or "")
            if not m:
                continue
            key = MYOPS_SUFFIXES[m["key"].upper()]
            case = cases.setdefault(m["case"], Case(m["case"], {}, None, "myops2020", source_labels,
                                                    extra={"folder": folder.name}))
            previous = case.label if key == LABEL_KEY else case.images.get(key)
            if previous is not None and previous != path:
                raise LayoutError(f"case {m['case']}: two files for {key!r}: {previous} and {path}; "
                                  f"point the root at one copy of the dataset")
            if key == LABEL_KEY:
                case.label = path
            else:
                case.images[key] = path
                case.extra["folder"] = folder.name  # the image folder (train25 / test20 / case folder)
    return list(cases.values())


def parse_mapping(text: str | Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """``"flair=*_fla*.nii.gz,t1=*_t1_*"`` (or a list / dict) -> ``{"flair": "*_fla*.nii.gz", ...}``.

    Keys are canonical sequence names or ``seg`` for the label.
    """
    if isinstance(text, Mapping):
        items = list(text.items())
    else:
        parts = text.split(",") if isinstance(text, str) else list(text)
        items = []
        for part in parts:
            if not part.strip():
                continue
            if "=" not in part:
                raise LayoutError(f"bad mapping entry {part!r}: expected name=glob, e.g. flair=*_fla*.nii.gz")
            key, pattern = part.split("=", 1)
            items.append((key, pattern))
    mapping = {k.strip().lower(): p.strip() for k, p in items}
    return mapping


def _mapping_case(folder: Path, mapping: Mapping[str, str], source_labels: str) -> Case | None:
    files = _nifti_files(folder)
    images: dict[str, Path] = {}
    label = None
    for key, pattern in mapping.items():
        hits = [p for p in files if fnmatch.fnmatch(p.name, pattern)]
        if len(hits) > 1:
            names = ", ".join(p.name for p in hits)
            raise LayoutError(f"{folder}: pattern {key}={pattern!r} matches several files ({names}); make it specific")
        if hits:
            if key == LABEL_KEY:
                label = hits[0]
            else:
                images[key] = hits[0]
    if not images and label is None:
        return None
    return Case(folder.name, images, label, "mapping", source_labels)


def _discover_mapping(root: Path, mapping: Mapping[str, str], modalities: Sequence[str],
                      source_labels: str) -> list[Case]:
    unknown = set(mapping) - set(modalities) - {LABEL_KEY}
    if unknown:
        raise LayoutError(f"mapping names unknown sequences {sorted(unknown)}; known: {', '.join(modalities)}, {LABEL_KEY}")
    folders = [root] if _nifti_files(root) else _case_folders(root)
    return [c for f in folders if (c := _mapping_case(f, mapping, source_labels))]


def _channel_to_sequence(channel_names: Mapping[str, str], dataset_json: Path,
                         modalities: Sequence[str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for idx, name in channel_names.items():
        key = re.sub(r"[^a-z0-9]", "", str(name).lower())
        seq = CHANNEL_ALIASES.get(key, key)
        if seq not in modalities:
            raise LayoutError(f"{dataset_json}: channel {idx} {name!r} is not a known sequence ({', '.join(modalities)})")
        out[int(idx)] = seq
    return out


def _discover_nnunet(root: Path, modalities: Sequence[str], source_labels: str) -> list[Case]:
    dataset_json = root / "dataset.json"
    try:
        meta = json.loads(dataset_json.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LayoutError(f"{dataset_json}: cannot read nnU-Net dataset.json ({err})") from None
    names = meta.get("channel_names") or meta.get("modality")
    if not names:
        raise LayoutError(f"{dataset_json}: no 'channel_names' entry")
    channels = _channel_to_sequence(names, dataset_json, modalities)
    ending = meta.get("file_ending", ".nii.gz")
    pattern = re.compile(r"^(?P<case>.+)_(?P<ch>\d{4})" + re.escape(ending) + "$")
    cases: dict[str, Case] = {}
    for images_dir, labels_dir in (("imagesTr", "labelsTr"), ("imagesTs", "labelsTs")):
        folder = root / images_dir
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            m = pattern.match(path.name)
            if not m:
                continue
            ch = int(m["ch"])
            if ch not in channels:
                raise LayoutError(f"{path}: channel {ch:04d} is not declared in {dataset_json}")
            case = cases.setdefault(m["case"], Case(m["case"], {}, None, "nnunet", source_labels,
                                                    extra={"split": images_dir}))
            case.images[channels[ch]] = path
            label = root / labels_dir / f"{m['case']}{ending}"
            case.label = label if label.is_file() else None
    return list(cases.values())


def detect_layout(root: Path) -> str:
    """Guess the layout of ``root`` (dataset folder or single case folder)."""
    if (root / "dataset.json").is_file() and any((root / d).is_dir() for d in ("imagesTr", "imagesTs")):
        return "nnunet"
    folders = [root] if _nifti_files(root) else _case_folders(root)[:20]
    for folder in folders:
        stems = [strip_nifti_suffix(p.name) or "" for p in _nifti_files(folder)]
        if any(s.endswith(("_flair", "_t1ce")) for s in stems):
            return "brats2020"
        if any(s.endswith(("-t2f", "-t1n", "-t1c", "-t2w")) for s in stems):
            return "brats2023"
        if any(s.lower().endswith(("_c0", "_de")) for s in stems):
            return "myops2020"
    raise LayoutError(
        f"{root}: cannot recognise the layout (no BraTS 2020 '<case>_flair.nii.gz', no BraTS 2023 "
        f"'<case>-t2f.nii.gz', no MyoPS '<case>_C0.nii.gz', no nnU-Net dataset.json). "
        f"Pass --layout, or a --map such as "
        f"'flair=*_fla*.nii.gz,t1=*_t1_*.nii.gz,t1ce=*_t1c*.nii.gz,t2=*_t2*.nii.gz,seg=*seg*.nii.gz'"
    )


def discover_cases(root: str | Path, layout: str = "auto", mapping: str | Mapping[str, str] | None = None,
                   modalities: Sequence[str] = BRATS_MODALITIES, source_labels: str | None = None) -> list[Case]:
    """Find the cases under ``root``.

    Args:
        root: dataset folder (one sub-folder per case, nnU-Net raw, MyoPS flat folders) or a single
            case folder.
        layout: one of :data:`LAYOUTS`; ``"auto"`` detects it (``"mapping"`` when ``mapping`` is given).
        mapping: glob patterns per sequence (+ ``seg``), for ``layout="mapping"``.
        modalities: canonical sequence names of the dataset.
        source_labels: label convention name; default: the layout's own (BraTS 2023 -> ``brats2023``,
            MyoPS -> ``myops2020``, otherwise ``brats2020``).

    Returns:
        Cases sorted by id. Raises :class:`LayoutError` / ``FileNotFoundError`` with the folder named.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder")
    if not root.is_dir():
        raise LayoutError(f"{root}: expected a folder (a dataset or a case), got a file")
    if layout not in LAYOUTS:
        raise LayoutError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if mapping is not None and layout == "auto":
        layout = "mapping"
    if layout == "auto":
        layout = detect_layout(root)
    default_labels = layout if layout in ("brats2023", "myops2020") else "brats2020"
    labels = source_labels or default_labels
    if layout == "mapping":
        if mapping is None:
            raise LayoutError("layout 'mapping' needs a mapping, e.g. flair=*_fla*.nii.gz,...")
        cases = _discover_mapping(root, parse_mapping(mapping), modalities, labels)
    elif layout == "nnunet":
        cases = _discover_nnunet(root, modalities, labels)
    elif layout == "myops2020":
        cases = _discover_myops(root, labels)
    else:
        cases = _discover_suffix_layout(root, layout)
        for case in cases:
            case.source_labels = labels
    if not cases:
        raise LayoutError(f"{root}: no cases found for layout {layout!r}")
    return sorted(cases, key=lambda c: c.case_id)
