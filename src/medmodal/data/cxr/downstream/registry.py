"""The downstream datasets by name: descriptor, reader and synthetic twin of each."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from medmodal.data.cxr.downstream import chexpert, covidx, object_cxr, rsna, siim
from medmodal.data.cxr.downstream.base import DownstreamDataset, DownstreamReadResult
from medmodal.data.cxr.images import resolve_image_check
from medmodal.errors import ConfigError


@dataclass(frozen=True)
class DatasetEntry:
    descriptor: DownstreamDataset
    reader: Callable[..., DownstreamReadResult]
    twin: Callable[..., dict]


DATASETS: dict[str, DatasetEntry] = {
    "chexpert": DatasetEntry(chexpert.DESCRIPTOR, chexpert.read_chexpert, chexpert.synth_chexpert),
    "rsna": DatasetEntry(rsna.DESCRIPTOR, rsna.read_rsna, rsna.synth_rsna),
    "covidx": DatasetEntry(covidx.DESCRIPTOR, covidx.read_covidx, covidx.synth_covidx),
    "siim": DatasetEntry(siim.DESCRIPTOR, siim.read_siim, siim.synth_siim),
    "object-cxr": DatasetEntry(object_cxr.DESCRIPTOR, object_cxr.read_object_cxr, object_cxr.synth_object_cxr),
}
ALIASES = {"object_cxr": "object-cxr", "objectcxr": "object-cxr", "siim-acr": "siim", "covidx9a": "covidx"}


def dataset_entry(name: str) -> DatasetEntry:
    """The registry entry of ``name``. Raises ValueError for an unknown dataset."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise ConfigError(f"unknown downstream dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[key]


def get_dataset(name: str) -> DownstreamDataset:
    """The static descriptor of ``name`` (label names of the default options)."""
    return dataset_entry(name).descriptor


def read_downstream(name: str, root: str | Path, task: str | None = None, **options) -> DownstreamReadResult:
    """Read dataset ``name`` at ``root`` with the split protocol of ``task`` (default: its first task).

    Options set to ``None`` are left to the reader's defaults; one the reader does not take is refused.
    ``check_images`` (default ``True`` = ``"verify"``; ``"decode"``, ``"exists"``, ``False``): the
    reader checks that every image exists, then every kept image gets
    :func:`medmodal.data.cxr.images.image_problem`; a bad one raises, or is skipped and named under
    ``skip_bad`` (``result.image_check`` / ``images_checked`` say what ran).

    Raises:
        ValueError: an unknown dataset, task or option; CXRDataError: bad input (reader docs).
    """
    entry = dataset_entry(name)
    task = entry.descriptor.check_task(task or entry.descriptor.tasks[0])
    accepted = set(inspect.signature(entry.reader).parameters)
    given = {k: v for k, v in options.items() if v is not None}
    unused = sorted(k for k in given if k not in accepted)
    if unused:
        raise ConfigError(f"the {entry.descriptor.name} reader does not take {', '.join(unused)}")
    check = resolve_image_check(given.get("check_images", True))
    if "check_images" in accepted:
        given["check_images"] = check is not None
    result = entry.reader(root, task=task, **given)
    if check is not None:
        result.image_check = check
        kept = []
        for sample in result.samples:
            bad = result.bad_image([sample.image_path], sample.source or sample.sample_id)
            if bad is not None:
                result.bad(bad[1], bool(given.get("skip_bad")), bad[0])
                continue
            kept.append(sample)
        result.samples = kept
    return result


def synth_downstream(out: str | Path, name: str = "all", images: int = 120, size: int = 128,
                     seed: int = 0) -> dict[str, dict]:
    """Write the synthetic twin of ``name`` (or of every dataset for ``all``) to ``out/<dataset>``.

    Returns:
        dataset -> the twin's summary (counts of images, positives, boxes ...).
    """
    names = list(DATASETS) if name == "all" else [dataset_entry(name).descriptor.name]
    return {n: DATASETS[n].twin(Path(out) / n, images=images, size=size, seed=seed) for n in names}
