"""The record every endoscopy reader returns, the class names, and the file-name rules.

A :class:`PairedSample` lists the files of one site (lesion, image pair): a white-light (WLI)
image, a narrow-band (NBI) image, either of which may be absent, an optional class name and an
optional official split. Readers only list files; decoding happens in
:mod:`medmodal.data.endoscopy.images`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from medmodal.errors import ConfigError, DataError

logger = logging.getLogger("medmodal.data.endoscopy")

#: canonical modality order inside medmodal (``present`` masks, dataset keys).
MODALITIES = ("wli", "nbi")

#: the MICS authors' default classes (Kvasir v2 folder names; LQH89757/MICS pre-training config).
AUTHORS_CLASSES = ("esophagitis", "normal-cecum", "normal-pylorus", "normal-z-line", "polyps", "ulcerative-colitis")

#: file suffixes read as images (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

#: at most this many files are named one per line in a warning; the count is always given.
MAX_NAMED = 20


@dataclass(frozen=True)
class PairedSample:
    """One site seen in white light and/or narrow-band light.

    Attributes:
        sample_id: unique id inside its dataset (e.g. ``"polyps/0001"``).
        wli: white-light image file, or ``None`` when the site has no WLI image.
        nbi: narrow-band image file, or ``None``.
        label: class name, or ``None`` (unlabelled).
        split: official split or fold (``"train"``, ``"fold0"`` ...) when the dataset ships one.
        source: the layout it was read with (``"authors"``, ``"wl-nbi"``, ``"kvasir"`` ...).
    """

    sample_id: str
    wli: Path | None
    nbi: Path | None
    label: str | None = None
    split: str | None = None
    source: str = ""

    @property
    def present(self) -> tuple[bool, bool]:
        """``(has WLI, has NBI)``, in :data:`MODALITIES` order."""
        return (self.wli is not None, self.nbi is not None)

    @property
    def paired(self) -> bool:
        return self.wli is not None and self.nbi is not None

    def path(self, modality: str) -> Path | None:
        if modality not in MODALITIES:
            raise ConfigError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
        return self.wli if modality == "wli" else self.nbi

    def files(self) -> list[Path]:
        return [p for p in (self.wli, self.nbi) if p is not None]


def is_hidden(path: Path, root: Path | None = None) -> bool:
    """Files and folders that are never data: dot files (``.DS_Store``, macOS ``._x.jpg``) and ``__MACOSX``."""
    parts = path.relative_to(root).parts if root is not None else (path.name,)
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (hidden files skipped), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


def visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_hidden(p))


def name_some(items: Sequence[str], limit: int = MAX_NAMED) -> str:
    """``"a, b, c"`` or ``"a, b, ... and 12 more"``."""
    items = list(items)
    head = ", ".join(items[:limit])
    return head + (f" ... and {len(items) - limit} more" if len(items) > limit else "")


def warn_lines(lines: Sequence[str], summary: str, limit: int = MAX_NAMED) -> None:
    """Log up to ``limit`` lines (one file each), then the summary with the total count."""
    for line in lines[:limit]:
        logger.warning(line)
    if len(lines) > limit:
        logger.warning(f"... and {len(lines) - limit} more")
    logger.warning(summary)


def report_unpaired(samples: Iterable[PairedSample]) -> tuple[int, int]:
    """Log one line per sample lacking a partner image, and a count. Returns ``(wli_only, nbi_only)``.

    The samples stay in the list (a missing modality is data, not an error): the dataset gives the
    absent image as zeros with ``present`` False.
    """
    samples = list(samples)
    lines, wli_only, nbi_only = [], 0, 0
    for s in samples:
        if s.wli is not None and s.nbi is None:
            wli_only += 1
            lines.append(f"{s.wli}: no NBI partner (sample {s.sample_id} kept as WLI-only)")
        elif s.nbi is not None and s.wli is None:
            nbi_only += 1
            lines.append(f"{s.nbi}: no WLI partner (sample {s.sample_id} kept as NBI-only)")
    if lines and any(s.paired for s in samples):  # single-modality datasets are not "unpaired"
        warn_lines(lines, f"{len(lines)} of {len(samples)} samples lack a partner image "
                          f"({wli_only} WLI-only, {nbi_only} NBI-only)")
    return wli_only, nbi_only


def check_unique_ids(samples: Sequence[PairedSample], where: str | Path) -> None:
    seen: dict[str, PairedSample] = {}
    for s in samples:
        if s.sample_id in seen:
            first = seen[s.sample_id]
            raise DataError(f"{where}: sample id {s.sample_id!r} appears twice "
                            f"({name_some([str(p) for p in first.files() + s.files()])})")
        seen[s.sample_id] = s


def class_names(samples: Iterable[PairedSample]) -> list[str]:
    """Sorted class names of the labelled samples."""
    return sorted({s.label for s in samples if s.label is not None})


#: Kvasir v2 / HyperKvasir folder names and HyperKvasir split-file class names -> the authors' six
#: classes (``AUTHORS_CLASSES``). HyperKvasir grades (esophagitis A / B-D, ulcerative colitis grades)
#: are merged into the Kvasir v2 class; other classes have no counterpart.
KVASIR_TO_AUTHORS = {
    "esophagitis": "esophagitis", "esophagitis-a": "esophagitis", "esophagitis-b-d": "esophagitis",
    "oesophagitis-a": "esophagitis", "oesophagitis-b-d": "esophagitis",
    "normal-cecum": "normal-cecum", "cecum": "normal-cecum",
    "normal-pylorus": "normal-pylorus", "pylorus": "normal-pylorus",
    "normal-z-line": "normal-z-line", "z-line": "normal-z-line",
    "polyps": "polyps", "polyp": "polyps",
    "ulcerative-colitis": "ulcerative-colitis",
    **{f"ulcerative-colitis-grade-{g}": "ulcerative-colitis" for g in ("0-1", "1", "1-2", "2", "2-3", "3")},
}


def harmonise_labels(samples: Sequence[PairedSample], aliases: dict[str, str] | None = None,
                     drop_unmapped: bool = True) -> list[PairedSample]:
    """Rename class labels by ``aliases`` (default :data:`KVASIR_TO_AUTHORS`).

    Samples whose label has no alias are dropped when ``drop_unmapped`` (their classes and counts
    are logged), else kept unchanged. Unlabelled samples are kept.
    """
    from dataclasses import replace

    aliases = KVASIR_TO_AUTHORS if aliases is None else aliases
    kept, dropped = [], {}
    for s in samples:
        if s.label is None or s.label in aliases:
            kept.append(replace(s, label=aliases.get(s.label) if s.label is not None else None))
        elif drop_unmapped:
            dropped[s.label] = dropped.get(s.label, 0) + 1
        else:
            kept.append(s)
    if dropped:
        logger.warning(f"{sum(dropped.values())} samples of classes without a counterpart left out: "
                       + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())))
    return kept
