"""Case discovery for the on-disk layouts users have, without renaming any file.

Supported layouts (``layout=`` argument, or ``"auto"``):

* ``brats2020`` - ``<root>/<case>/<case>_{flair,t1,t1ce,t2,seg}.nii[.gz]`` (also BraTS 2021).
  The known trap of shared BraTS2020 copies (case 355's label named
  ``W39_1998.09.19_Segm.nii``) is handled: a lone ``*seg*``/``*Segm*`` file is the label.
* ``brats2023`` - ``<root>/<case>/<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz`` (enhancing = label 3).
* ``nnunet`` - nnU-Net raw: ``dataset.json`` + ``imagesTr/<case>_000X.nii.gz`` (+ ``imagesTs``)
  + ``labelsTr/<case>.nii.gz``. Channels are matched to sequences by the *names* in
  ``channel_names`` (or nnU-Net v1's ``modality``); an absent ``_000X`` file is a missing sequence
  (nnU-Net itself refuses this).
* ``msd`` - Medical Segmentation Decathlon: ``dataset.json`` with ``modality`` + one 4-D image per
  case ``imagesTr/<case>.nii.gz`` (``imagesTs``), ``labelsTr/<case>.nii.gz``; the 4-D image's
  channels are matched to sequences by the ``modality`` names.
* ``myops2020`` - MyoPS 2020 cardiac MR: ``<case>_{C0,DE,T2}.nii.gz`` (bSSFP, LGE, T2 -> sequences
  ``c0, de, t2``; LGE is also often stored as ``_LGE``) and the label ``<case>_gd.nii.gz``. Both the
  official flat layout (``<root>/train25/myops_training_101_C0.nii.gz ...`` with the labels in
  ``<root>/train25_myops_gd/myops_training_101_gd.nii.gz``; ``test20/`` without labels) and one
  folder per case (``Case3001/Case3001_{C0,LGE,T2,gd}.nii.gz``) are read: files are grouped by the
  case prefix found in ``root`` and in its sub-folders up to two levels down. When ``root`` is
  the image folder itself (``train25``), labels are also looked up in the sibling
  ``<root>_myops_gd`` folder. The same case file found twice is a :class:`LayoutError` naming both.
* ``mapping`` - any layout, given glob patterns per sequence, e.g.
  ``{"flair": "*_fla*.nii.gz", "t1": "*_t1_*.nii.gz", "seg": "*_seg*.nii.gz"}``.

``root`` may be a dataset folder (one sub-folder per case) or a single case folder; it is made
absolute first (``-i .`` names the case after the current folder).

No file is dropped or picked silently:

* hidden entries (``.*``: ``.DS_Store``, macOS ``._<name>`` resource forks, ``.medmodal_cache``)
  and ``__MACOSX/`` folders are ignored everywhere (:func:`visible_entries`);
* two files for one sequence (``<case>_flair.nii`` and ``<case>_flair.nii.gz``) are a
  :class:`LayoutError` naming both;
* a NIfTI file that matches no sequence and is not a label is reported: an
  :class:`medmodal.notices.InputWarning` naming it, and listed in ``Case.unmatched`` /
  :attr:`DiscoveredCases.unmatched` (``medmodal seg summary`` prints them).

nnU-Net / Decathlon ``dataset.json`` ``labels`` are read and kept on each case
(``Case.declared_labels``); :func:`medmodal.data.volumes.spec.resolve_declared_labels` maps them to a
dataset spec's classes (nnU-Net's BraTS conversion: 1 = edema, 2 = necrosis, 3 = enhancing).
Declared labels that fit no supported convention, or disagree with an explicit ``source_labels``,
are a :class:`LayoutError`.

A :class:`Case` only lists files; reading and validation happen in :mod:`medmodal.data.volumes.loading`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from medmodal.data.layouts import Layout, find_layout, known_layouts, layout_reader, register_layout
from medmodal.errors import LayoutError
from medmodal.data.volumes.spec import (BRATS_MODALITIES, SPECS, describe_source_labels, get_spec,
                                        resolve_declared_labels)
from medmodal.notices import warn

NIFTI_SUFFIXES = (".nii.gz", ".nii")
LABEL_KEY = "seg"
#: ``Case.source_labels`` of cases whose label convention is declared by a ``dataset.json``.
DECLARED = "dataset.json"

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
MYOPS_SUFFIXES = {"C0": "c0", "DE": "de", "LGE": "de", "T2": "t2", "GD": LABEL_KEY}
_MYOPS_FILE = re.compile(r"^(?P<case>.+)_(?P<key>C0|DE|LGE|T2|gd)$", re.I)

LAYOUTS = ("auto", "brats2020", "brats2023", "myops2020", "nnunet", "msd", "mapping")
#: Key of these readers in :mod:`medmodal.data.layouts`.
FAMILY = "volumes"

#: folders that archive tools add and that never hold data (besides hidden ``.*`` entries).
IGNORED_NAMES = ("__MACOSX",)


@dataclass
class Case:
    """One case: its id and the files found for it.

    Attributes:
        case_id: identifier (folder name or nnU-Net case prefix); never empty.
        images: canonical sequence name -> file, only for sequences present on disk.
        label: segmentation file, or ``None`` (e.g. for prediction inputs).
        layout: the layout it was discovered with.
        source_labels: name of the label convention (a key of ``medmodal.data.volumes.spec.SPECS``, or
            :data:`DECLARED` when ``declared_labels`` defines it).
        channels: sequence -> channel index for sequences stored in a 4-D file (Decathlon);
            empty for one 3-D file per sequence.
        declared_labels: the ``labels`` entry of the dataset's ``dataset.json``, or ``None``.
        unmatched: NIfTI files in the case's folder that match no sequence and no label (ignored).
    """

    case_id: str
    images: dict[str, Path]
    label: Path | None = None
    layout: str = "mapping"
    source_labels: str = "brats2020"
    extra: dict = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    declared_labels: dict | None = None
    unmatched: list[Path] = field(default_factory=list)

    def present(self, modalities: Sequence[str]) -> tuple[bool, ...]:
        return tuple(m in self.images for m in modalities)

    def files(self) -> list[Path]:
        return list(dict.fromkeys([*self.images.values(), *([self.label] if self.label else [])]))


class DiscoveredCases(list):
    """The cases found (a ``list`` of :class:`Case`, sorted by id) plus what was left aside.

    Attributes:
        layout: the layout used (``auto`` resolved).
        unmatched: every NIfTI file under the searched folders that was not used (each was
            also reported with an :class:`~medmodal.notices.InputWarning`).
        skipped: folders holding NIfTI files that were not read as a case (none of their files
            matched the layout); case-folder layouts (BraTS, ``mapping``) only.
        nested: NIfTI files in sub-folders of a case folder (never read; one warning names them);
            case-folder layouts only.
    """

    def __init__(self, cases, layout: str, unmatched: Sequence[Path] = (), skipped: Sequence[Path] = (),
                 nested: Sequence[Path] = ()):
        super().__init__(cases)
        self.layout = layout
        self.unmatched = list(unmatched)
        self.skipped = list(skipped)
        self.nested = list(nested)


# ---------------------------------------------------------------------------- folder listing
def is_hidden(name: str) -> bool:
    """Hidden entries and archive debris: ``.DS_Store``, ``._<file>`` (macOS), ``.cache``, ``__MACOSX``."""
    return name.startswith(".") or name in IGNORED_NAMES


def visible_entries(folder: Path) -> list[Path]:
    """The non-hidden entries of ``folder`` (see :func:`is_hidden`), sorted; every reader lists folders with this."""
    return sorted(p for p in folder.iterdir() if not is_hidden(p.name))


def strip_nifti_suffix(name: str) -> str | None:
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _nifti_files(folder: Path) -> list[Path]:
    return [p for p in visible_entries(folder) if p.is_file() and strip_nifti_suffix(p.name) is not None]


def _case_folders(root: Path) -> list[Path]:
    return [p for p in visible_entries(root) if p.is_dir()]


def _by_stem(files: Sequence[Path]) -> dict[str, list[Path]]:
    """File stem (name without ``.nii[.gz]``) -> files; a stem with two files is a ``.nii`` + ``.nii.gz`` pair."""
    out: dict[str, list[Path]] = {}
    for p in files:
        out.setdefault(strip_nifti_suffix(p.name), []).append(p)
    return out


def _single(paths: Sequence[Path], what: str) -> Path:
    if len(paths) > 1:
        raise LayoutError(f"two files for {what}: {paths[0]} and {paths[1]}; keep one of them "
                          f"(they are not checked to be the same volume)")
    return paths[0]


# ---------------------------------------------------------------------------- BraTS layouts
def _suffix_layout_case(folder: Path, separator: str, suffixes: Mapping[str, str], layout: str,
                        source_labels: str) -> Case | None:
    """Match ``<case><sep><suffix>.nii[.gz]`` files inside one case folder."""
    files = _nifti_files(folder)
    stems = _by_stem(files)
    case_id = folder.name
    images: dict[str, Path] = {}
    label = None
    for key, suffix in suffixes.items():
        hit = stems.get(f"{case_id}{separator}{suffix}")
        if hit is None:  # case id differs from the folder name: match on the suffix alone
            hits = [ps for s, ps in stems.items() if s.lower().endswith(f"{separator}{suffix}")]
            hit = hits[0] if len(hits) == 1 else None
        if hit is None:
            continue
        path = _single(hit, f"{'the label' if key == LABEL_KEY else key} of case {case_id}")
        if key == LABEL_KEY:
            label = path
        else:
            images[key] = path
    if label is None and layout == "brats2020":
        label = _lone_label_file(files, exclude=set(images.values()))
    if not images and label is None:
        return None
    used = {*images.values(), label}
    return Case(case_id, images, label, layout, source_labels, unmatched=[p for p in files if p not in used])


def _lone_label_file(files: Sequence[Path], exclude: set[Path]) -> Path | None:
    """BraTS2020 trap: a label with a non-standard name (``*seg*`` / ``*Segm*``), if unique."""
    hits = [p for p in files if p not in exclude and re.search(r"seg", p.name, re.I)]
    return hits[0] if len(hits) == 1 else None


def _nested_nifti(folder: Path) -> list[Path]:
    """NIfTI files in the (non-hidden) sub-folders of ``folder``, at any depth (a case-folder layout
    never reads them, e.g. BraTS ``<case>/algorithm-segmentations/*.nii.gz``)."""
    found = []
    for sub in _case_folders(folder):
        for dirpath, dirnames, filenames in os.walk(sub):
            dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
            found += [Path(dirpath) / f for f in sorted(filenames)
                      if not is_hidden(f) and strip_nifti_suffix(f) is not None]
    return found


def _preview(paths: Sequence[Path], root: Path, n: int = 3) -> str:
    """``"a/x.nii.gz, a/y.nii.gz, ... (5 in all)"``: the first ``n`` paths, relative to ``root`` where they can be."""
    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(root))
        except ValueError:
            return str(p)
    return ", ".join(rel(p) for p in paths[:n]) + (f", ... ({len(paths)} in all)" if len(paths) > n else "")


def _case_folder_list(root: Path) -> list[Path]:
    """``[root]`` when ``root`` holds NIfTI files itself (a single case), else its sub-folders."""
    return [root] if _nifti_files(root) else _case_folders(root)


def _discover_suffix_layout(root: Path, layout: str, labels: str) -> tuple[list[Case], list[Path]]:
    separator, suffixes = {"brats2020": ("_", BRATS2020_SUFFIXES), "brats2023": ("-", BRATS2023_SUFFIXES)}[layout]
    cases, unmatched = [], []
    for folder in _case_folder_list(root):
        case = _suffix_layout_case(folder, separator, suffixes, layout, labels)
        if case is None:
            unmatched += _nifti_files(folder)
        else:
            cases.append(case)
            unmatched += case.unmatched
    return cases, unmatched


# ---------------------------------------------------------------------------- MyoPS
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


def _discover_myops(root: Path, source_labels: str) -> tuple[list[Case], list[Path]]:
    """MyoPS 2020: group ``<case>_{C0,DE|LGE,T2,gd}.nii[.gz]`` files by case id (flat or per-case folders)."""
    cases: dict[str, Case] = {}
    unmatched: list[Path] = []
    for folder in _myops_folders(root):
        for path in _nifti_files(folder):
            m = _MYOPS_FILE.match(strip_nifti_suffix(path.name) or "")
            if not m:
                unmatched.append(path)
                continue
            key = MYOPS_SUFFIXES[m["key"].upper()]
            case = cases.setdefault(m["case"], Case(m["case"], {}, None, "myops2020", source_labels,
                                                    extra={"folder": folder.name}))
            previous = case.label if key == LABEL_KEY else case.images.get(key)
            if previous is not None and previous != path:
                raise LayoutError(f"case {m['case']}: two files for {key!r}: {previous} and {path}; "
                                  f"keep one of them (or point the root at one copy of the dataset)")
            if key == LABEL_KEY:
                case.label = path
            else:
                case.images[key] = path
                case.extra["folder"] = folder.name  # the image folder (train25 / test20 / case folder)
    for path in unmatched:  # a stray file inside a case's own folder belongs to that case's report
        owner = cases.get(path.parent.name)
        if owner is not None:
            owner.unmatched.append(path)
    return list(cases.values()), unmatched


# ---------------------------------------------------------------------------- mapping
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
    used = {*images.values(), label}
    return Case(folder.name, images, label, "mapping", source_labels, unmatched=[p for p in files if p not in used])


def _discover_mapping(root: Path, mapping: Mapping[str, str], modalities: Sequence[str],
                      source_labels: str) -> tuple[list[Case], list[Path]]:
    unknown = set(mapping) - set(modalities) - {LABEL_KEY}
    if unknown:
        raise LayoutError(f"mapping names unknown sequences {sorted(unknown)}; "
                          f"known: {', '.join(modalities)}, {LABEL_KEY}")
    cases, unmatched = [], []
    for folder in _case_folder_list(root):
        case = _mapping_case(folder, mapping, source_labels)
        if case is None:
            unmatched += _nifti_files(folder)
        else:
            cases.append(case)
            unmatched += case.unmatched
    return cases, unmatched


# ---------------------------------------------------------------------------- nnU-Net and Decathlon
_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<ch>\d{4})$")
_SPLITS = (("imagesTr", "labelsTr"), ("imagesTs", "labelsTs"))


def _read_dataset_json(root: Path) -> tuple[Path, dict]:
    dataset_json = root / "dataset.json"
    try:
        meta = json.loads(dataset_json.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LayoutError(f"{dataset_json}: cannot read dataset.json ({err})") from None
    if not isinstance(meta, dict):
        raise LayoutError(f"{dataset_json}: expected a JSON object")
    return dataset_json, meta


def _channel_to_sequence(channel_names: Mapping[str, str], dataset_json: Path,
                         modalities: Sequence[str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for idx, name in channel_names.items():
        key = re.sub(r"[^a-z0-9]", "", str(name).lower())
        seq = CHANNEL_ALIASES.get(key, key)
        if seq not in modalities:
            raise LayoutError(f"{dataset_json}: channel {idx} {name!r} is not a known sequence "
                              f"({', '.join(modalities)})")
        if seq in out.values():
            raise LayoutError(f"{dataset_json}: two channels are {seq!r} ({dict(channel_names)})")
        out[int(idx)] = seq
    return out


def _channels_of(meta: dict, dataset_json: Path, modalities: Sequence[str]) -> dict[int, str]:
    names = meta.get("channel_names") or meta.get("modality")
    if not names or not isinstance(names, dict):
        raise LayoutError(f"{dataset_json}: no 'channel_names' (nnU-Net) or 'modality' (Decathlon) entry")
    return _channel_to_sequence(names, dataset_json, modalities)


def _label_files(root: Path, ending: str) -> dict[str, Path]:
    out = {}
    for _, labels_dir in _SPLITS:
        folder = root / labels_dir
        if folder.is_dir():
            for p in _nifti_files(folder):
                if p.name.endswith(ending):
                    out.setdefault(f"{labels_dir}/{p.name[: -len(ending)]}", p)
    return out


def _discover_nnunet(root: Path, modalities: Sequence[str], source_labels: str) -> tuple[list[Case], list[Path]]:
    dataset_json, meta = _read_dataset_json(root)
    channels = _channels_of(meta, dataset_json, modalities)
    ending = meta.get("file_ending", ".nii.gz")
    labels = _label_files(root, ending)
    cases: dict[str, Case] = {}
    unmatched: list[Path] = []
    for images_dir, labels_dir in _SPLITS:
        folder = root / images_dir
        if not folder.is_dir():
            continue
        for path in _nifti_files(folder):
            m = _CHANNEL_FILE.match(path.name[: -len(ending)]) if path.name.endswith(ending) else None
            if not m:
                unmatched.append(path)
                continue
            ch = int(m["ch"])
            if ch not in channels:
                raise LayoutError(f"{path}: channel {ch:04d} is not declared in {dataset_json}")
            case = cases.setdefault(m["case"], Case(m["case"], {}, None, "nnunet", source_labels,
                                                    extra={"split": images_dir}))
            previous = case.images.get(channels[ch])
            if previous is not None:
                raise LayoutError(f"case {m['case']}: two files for {channels[ch]!r}: {previous} and {path}")
            case.images[channels[ch]] = path
            case.label = labels.pop(f"{labels_dir}/{m['case']}", None) or case.label
    if not cases and unmatched and meta.get("modality"):
        raise LayoutError(f"{root}: no <case>_0000{ending} files but {len(unmatched)} other NIfTI files "
                          f"(e.g. {unmatched[0].name}): this looks like the Medical Segmentation Decathlon layout "
                          f"(one 4-D image per case); use --layout msd (or auto)")
    return list(cases.values()), unmatched + list(labels.values())


def _discover_msd(root: Path, modalities: Sequence[str], source_labels: str) -> tuple[list[Case], list[Path]]:
    """Decathlon: ``imagesTr/<case>.nii.gz`` 4-D (X, Y, Z, channel), channels named by ``modality``."""
    dataset_json, meta = _read_dataset_json(root)
    channels = _channels_of(meta, dataset_json, modalities)
    labels = _label_files(root, ".nii.gz")
    cases: list[Case] = []
    unmatched: list[Path] = []
    for images_dir, labels_dir in _SPLITS:
        folder = root / images_dir
        if not folder.is_dir():
            continue
        stems = _by_stem(_nifti_files(folder))
        for stem, paths in stems.items():
            path = _single(paths, f"case {stem} in {folder}")
            if _CHANNEL_FILE.match(stem):
                unmatched.append(path)  # a split nnU-Net channel file does not belong in a Decathlon folder
                continue
            images = {seq: path for seq in channels.values()}
            cases.append(Case(stem, images, labels.pop(f"{labels_dir}/{stem}", None), "msd", source_labels,
                              extra={"split": images_dir},
                              channels={seq: ch for ch, seq in channels.items()}))
    return cases, unmatched + list(labels.values())


def _is_decathlon(root: Path, meta: dict) -> bool:
    """A ``dataset.json`` with ``modality`` and images without ``_000X`` channel suffixes."""
    if meta.get("channel_names") or not meta.get("modality"):
        return False
    for images_dir, _ in _SPLITS:
        if (root / images_dir).is_dir():
            for p in _nifti_files(root / images_dir):
                if _CHANNEL_FILE.match(strip_nifti_suffix(p.name) or ""):
                    return False
    return True


def _apply_declared_labels(cases: Sequence[Case], root: Path, modalities: Sequence[str],
                           explicit: str | None) -> None:
    """Attach the ``dataset.json`` ``labels`` to each case; refuse labels that fit no known convention."""
    dataset_json, meta = _read_dataset_json(root)
    declared = meta.get("labels")
    if not declared:
        if explicit is None:
            warn(f"{dataset_json}: declares no 'labels'; label files are read as {cases[0].source_labels} "
                 f"(pass --labels to choose)")
        return
    if not isinstance(declared, dict):
        raise LayoutError(f"{dataset_json}: 'labels' must be an object, got {type(declared).__name__}")
    candidates = [s for s in SPECS.values() if set(modalities) == set(s.modalities)] or list(SPECS.values())
    problems, resolved = [], None
    for spec in candidates:
        try:
            resolved = (spec, resolve_declared_labels(declared, spec, where=str(dataset_json)))
            break
        except ValueError as err:
            problems.append(str(err))
    if resolved is None:
        raise LayoutError(f"{problems[0]}; the declared labels {declared} match no supported convention")
    spec, mapping = resolved
    if explicit is not None:
        named = get_spec(explicit)
        if named.class_names == spec.class_names and named.source_labels != mapping:
            raise LayoutError(f"{dataset_json} declares {describe_source_labels(mapping, spec)}, but --labels "
                              f"{explicit} reads {describe_source_labels(named.source_labels, spec)}: they disagree; "
                              f"drop --labels to use the declared labels")
    for case in cases:
        case.declared_labels = dict(declared)
        case.source_labels = DECLARED
        case.extra["dataset_json"] = str(dataset_json)


# ---------------------------------------------------------------------------- detection and entry point
def _first_folder_layout(root: Path) -> str | None:
    """Layout of the first of (up to 20) case folders whose file names show one, else ``None``."""
    for folder in _case_folder_list(root)[:20]:
        stems = [strip_nifti_suffix(p.name) or "" for p in _nifti_files(folder)]
        if any(s.endswith(("_flair", "_t1ce")) for s in stems):
            return "brats2020"
        if any(s.endswith(("-t2f", "-t1n", "-t1c", "-t2w")) for s in stems):
            return "brats2023"
        if any(s.lower().endswith(("_c0", "_de", "_lge")) for s in stems):
            return "myops2020"
    return None


def _declared_layout(root: Path) -> str | None:
    """``nnunet`` / ``msd`` for a folder with ``dataset.json`` and ``imagesTr`` / ``imagesTs``, else ``None``."""
    if (root / "dataset.json").is_file() and any((root / d).is_dir() for d in ("imagesTr", "imagesTs")):
        _, meta = _read_dataset_json(root)
        return "msd" if _is_decathlon(root, meta) else "nnunet"
    return None


def _detector(name: str, guess):
    return lambda root: root if guess(root) == name else None


def _read_suffix_layout(layout: str):
    return lambda root, *, labels, **_: _discover_suffix_layout(root, layout, labels)


# Detection order: a dataset.json first, then the first recognisable case folder.
for _layout in (
    Layout(FAMILY, "nnunet", lambda root, *, modalities, labels, **_: _discover_nnunet(root, modalities, labels),
           _detector("nnunet", _declared_layout)),
    Layout(FAMILY, "msd", lambda root, *, modalities, labels, **_: _discover_msd(root, modalities, labels),
           _detector("msd", _declared_layout)),
    Layout(FAMILY, "brats2020", _read_suffix_layout("brats2020"), _detector("brats2020", _first_folder_layout)),
    Layout(FAMILY, "brats2023", _read_suffix_layout("brats2023"), _detector("brats2023", _first_folder_layout)),
    Layout(FAMILY, "myops2020", lambda root, *, labels, **_: _discover_myops(root, labels),
           _detector("myops2020", _first_folder_layout)),
    Layout(FAMILY, "mapping", lambda root, *, mapping, modalities, labels, **_:
           _discover_mapping(root, parse_mapping(mapping), modalities, labels)),
):
    register_layout(_layout)


def detect_layout(root: Path) -> str:
    """Guess the layout of ``root`` (dataset folder or single case folder): the first registered
    reader (:mod:`medmodal.data.layouts`) that recognises it: nnU-Net / Decathlon by ``dataset.json``,
    then BraTS 2020 / BraTS 2023 / MyoPS by the file names of the first recognisable case folder."""
    found = find_layout(FAMILY, root)
    if found is not None:
        return found[0]
    raise LayoutError(
        f"{root}: cannot recognise the layout (no BraTS 2020 '<case>_flair.nii.gz', no BraTS 2023 "
        f"'<case>-t2f.nii.gz', no MyoPS '<case>_C0.nii.gz', no nnU-Net / Decathlon dataset.json). "
        f"Pass --layout, or a --map such as "
        f"'flair=*_fla*.nii.gz,t1=*_t1_*.nii.gz,t1ce=*_t1c*.nii.gz,t2=*_t2*.nii.gz,seg=*seg*.nii.gz'"
    )


def discover_cases(root: str | Path, layout: str = "auto", mapping: str | Mapping[str, str] | None = None,
                   modalities: Sequence[str] = BRATS_MODALITIES, source_labels: str | None = None,
                   labels_only: bool = False) -> DiscoveredCases:
    """Find the cases under ``root``.

    Args:
        root: dataset folder (one sub-folder per case, nnU-Net raw, Decathlon, MyoPS flat folders) or a
            single case folder; relative paths (``.``) are made absolute first.
        layout: one of :data:`LAYOUTS`; ``"auto"`` detects it (``"mapping"`` when ``mapping`` is given).
        mapping: glob patterns per sequence (+ ``seg``), for ``layout="mapping"``.
        modalities: canonical sequence names of the dataset.
        source_labels: label convention name; default: the layout's own (BraTS 2023 -> ``brats2023``,
            MyoPS -> ``myops2020``, nnU-Net / Decathlon -> the ``dataset.json`` ``labels``,
            otherwise ``brats2020``).

    Returns:
        :class:`DiscoveredCases`, sorted by id. Each unused NIfTI file is reported with an
        :class:`~medmodal.notices.InputWarning` (``labels_only``, for a caller that reads only the
        label files: one warning counting and naming the first few); so are, once each, a ``mapping``
        pattern that matches no file in any case (its sequence is then missing everywhere: a typo
        reads as a missing sequence otherwise) and the NIfTI files in sub-folders of case folders
        (never read). Raises :class:`LayoutError` / ``FileNotFoundError`` with the folder named.
    """
    root = Path(os.path.abspath(root))
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder")
    if not root.is_dir():
        raise LayoutError(f"{root}: expected a folder (a dataset or a case), got a file")
    if layout not in known_layouts(FAMILY, LAYOUTS):
        raise LayoutError(f"unknown layout {layout!r}; choose one of {', '.join(known_layouts(FAMILY, LAYOUTS))}")
    if source_labels is not None and source_labels not in SPECS:
        raise LayoutError(f"unknown label convention {source_labels!r}; choose one of {', '.join(SPECS)}")
    if mapping is not None and layout == "auto":
        layout = "mapping"
    if layout == "auto":
        layout = detect_layout(root)
    default_labels = layout if layout in ("brats2023", "myops2020") else "brats2020"
    labels = source_labels or default_labels
    if layout == "mapping" and mapping is None:
        raise LayoutError("layout 'mapping' needs a mapping, e.g. flair=*_fla*.nii.gz,...")
    cases, unmatched = layout_reader(FAMILY, layout).read(root, mapping=mapping, modalities=modalities, labels=labels)
    if layout in ("nnunet", "msd") and cases:
        _apply_declared_labels(cases, root, modalities, source_labels)
    for case in cases:
        if not case.case_id:
            raise LayoutError(f"{root}: a case without a name (files {', '.join(str(p) for p in case.files())})")
    if not cases:  # the error names the files; no warnings first (a caller may try another layout next)
        found = f"; NIfTI files found but not matched: {', '.join(p.name for p in unmatched[:5])}" if unmatched else ""
        raise LayoutError(f"{root}: no cases found for layout {layout!r}{found}")
    if labels_only and unmatched:
        warn(f"{len(unmatched)} NIfTI file{'s' if len(unmatched) > 1 else ''} under {root} "
             f"{'are' if len(unmatched) > 1 else 'is'} not a label file and not read (only labels are needed): "
             f"{_preview(unmatched, root)}")
    elif not labels_only:
        for path in unmatched:
            warn(f"{path}: matches no sequence or label of layout {layout!r}; ignored")
    if layout == "mapping":
        for key, pattern in parse_mapping(mapping).items():
            if not any((c.label if key == LABEL_KEY else c.images.get(key)) for c in cases):
                what = "the label" if key == LABEL_KEY else f"sequence {key}"
                where = f"case folder {root}" if len(cases) == 1 else f"any of the {len(cases)} cases under {root}"
                everywhere = "" if len(cases) == 1 else " in every case"
                warn(f"--map pattern {key}={pattern!r} matches no file in {where}: {what} is missing{everywhere} "
                     f"(a typo in the pattern?)")
    skipped, nested = [], []
    if layout in ("brats2020", "brats2023", "mapping"):
        ids = {c.case_id for c in cases}
        folders = _case_folder_list(root)
        skipped = [f for f in folders if f.name not in ids and _nifti_files(f)]
        nested = [p for f in folders for p in _nested_nifti(f)]
        if nested:
            warn(f"{len(nested)} NIfTI file{'s' if len(nested) > 1 else ''} in sub-folders of case folders "
                 f"{'are' if len(nested) > 1 else 'is'} not read (only the files directly in a case folder are): "
                 f"{_preview(nested, root)}")
    return DiscoveredCases(sorted(cases, key=lambda c: c.case_id), layout, unmatched, skipped, nested)
