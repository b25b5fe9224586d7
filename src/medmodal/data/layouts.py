"""One protocol and one registry for the dataset-layout readers of every data family.

A *layout* is one way users keep a data set on disk (BraTS 2020 case folders, an nnU-Net raw
folder, a MIMIC-CXR tree, the MICS authors' ``<class>_WLI`` / ``<class>_NBI`` folders, a CSV ...).
Each data family (the package under ``medmodal.data``: ``volumes``, ``cxr``, ``endoscopy``) registers
one :class:`LayoutReader` per layout, in its detection order, when its layout module is imported
(``medmodal.data.volumes.layouts``, ``medmodal.data.cxr.readers``, ``medmodal.data.endoscopy.layouts``).

The contract of a reader:

* ``family`` / ``name``: the data family and the layout name users pass as ``--layout``;
* ``detect(root) -> Path | None``: when ``root`` looks like this layout, the path to read (``root``
  itself, or a file inside it, e.g. a folder's ``annotation.json``), else ``None``. ``None`` as
  the attribute: never auto-detected (e.g. a glob mapping). A detector may raise
  :class:`~medmodal.errors.LayoutError` for a file that claims the layout but is unreadable;
* ``read(path, **options)``: the family's records (volumes: ``(cases, unmatched files)``; CXR: a
  ``ReadResult``; endoscopy: ``PairedSample`` s). The options are the family's.

:func:`find_layout` asks a family's readers in registration order and returns the first match;
each family's ``detect_layout`` calls it and keeps its own messages for paths it cannot read.
A new family (fundus, OCT, 2-D segmentation) writes its readers, registers them with
:func:`register_layout` (or a :class:`Layout` of two functions) and gets ``auto`` detection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Protocol, runtime_checkable

from medmodal.errors import LayoutError

__all__ = ["LayoutReader", "Layout", "register_layout", "unregister_layout", "layout_readers", "layout_reader",
           "find_layout", "known_layouts", "register_layouts", "detect_family_layout", "resolve_layout"]


@runtime_checkable
class LayoutReader(Protocol):
    """What the registry holds for one layout (see the module docstring)."""

    family: str
    name: str
    detect: Optional[Callable[[Path], Optional[Path]]]

    def read(self, path: Path, **options) -> Any: ...


@dataclass(frozen=True)
class Layout:
    """A :class:`LayoutReader` made of two functions.

    Attributes:
        family: data family (``volumes`` | ``cxr`` | ``endoscopy`` | ...). name: layout name.
        read: ``read(path, **options)``. detect: ``detect(root) -> Path | None`` or ``None``
            (never auto-detected).
    """

    family: str
    name: str
    read: Callable[..., Any]
    detect: Optional[Callable[[Path], Optional[Path]]] = None


_REGISTRY: dict[str, dict[str, LayoutReader]] = {}


def register_layout(reader: LayoutReader) -> LayoutReader:
    """Add ``reader`` to its family, after the readers already there (detection order). Registering
    a ``(family, name)`` again replaces the reader in place (a module imported twice)."""
    _REGISTRY.setdefault(reader.family, {})[reader.name] = reader
    return reader


def unregister_layout(family: str, name: str | None = None) -> None:
    """Undo :func:`register_layout` (tests and plug-ins): the reader ``name`` of ``family``, or every
    reader of ``family`` when ``name`` is ``None``. Unknown names do nothing."""
    if name is None:
        _REGISTRY.pop(family, None)
        return
    readers = _REGISTRY.get(family, {})
    readers.pop(name, None)
    if not readers:
        _REGISTRY.pop(family, None)


def layout_readers(family: str) -> list[LayoutReader]:
    """The readers of ``family`` in detection order (empty when its layout module is not imported)."""
    return list(_REGISTRY.get(family, {}).values())


def known_layouts(family: str, listed: tuple[str, ...] = ("auto",)) -> tuple[str, ...]:
    """The layout names ``family`` accepts: ``listed`` (a family's documented names, ``auto`` first) then
    every other registered reader's (a layout added by :func:`register_layout` is accepted everywhere)."""
    return (*listed, *(name for name in _REGISTRY.get(family, {}) if name not in listed))


def layout_reader(family: str, name: str) -> LayoutReader:
    """The reader of layout ``name``.

    Raises:
        LayoutError: no such layout in ``family`` (naming the known ones).
    """
    readers = _REGISTRY.get(family, {})
    if name not in readers:
        raise LayoutError(f"unknown {family} layout {name!r}; choose one of {', '.join(readers) or '(none)'}")
    return readers[name]


def find_layout(family: str, root: str | Path) -> tuple[str, Path] | None:
    """``(layout name, path to read)`` of the first reader of ``family`` that recognises ``root``,
    or ``None`` when none does (the family's ``detect_layout`` then names what it expected).

    Raises:
        LayoutError: raised by a detector (a file that claims a layout but cannot be read).
    """
    root = Path(root)
    for reader in layout_readers(family):
        if reader.detect is None:
            continue
        target = reader.detect(root)
        if target is not None:
            return reader.name, Path(target)
    return None


# --------------------------------------------------------------------------- what a family's layouts module shares
def register_layouts(family: str, readers: Iterable[tuple[str, Callable[..., Any], Optional[Callable]]]) -> None:
    """Register ``(name, read, detect)`` triples of ``family`` as :class:`Layout` s, in detection order."""
    for name, read, detect in readers:
        register_layout(Layout(family, name, read=read, detect=detect))


def detect_family_layout(family: str, root: str | Path, what: str, expected: str) -> tuple[str, Path]:
    """``(layout, path to read)`` of ``root`` by :func:`find_layout` (a family's ``detect_layout``).

    Args:
        family: the data family. root: the data folder.
        what: the family in words (``"2-D segmentation"``). expected: what ``auto`` looks for, in one line.

    Raises:
        LayoutError: ``root`` is missing or matches no layout (one line naming ``expected``).
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: {what} data folder not found")
    found = find_layout(family, root)
    if found is None:
        raise LayoutError(f"{root}: no {what} layout recognised (expected {expected})")
    return found


def resolve_layout(family: str, root: str | Path, layout: str, listed: tuple[str, ...], what: str,
                   detect: Callable[[Path], tuple[str, Path]]) -> tuple[str, Path]:
    """``(layout, path to read)`` for a family's ``read_*(root, layout)``: ``layout`` checked against
    :func:`known_layouts`, ``auto`` resolved by ``detect(root)`` (the family's ``detect_layout``).

    Raises:
        LayoutError: an unknown layout, a missing folder (``what``: the family in words), no layout detected.
    """
    accepted = known_layouts(family, listed)
    if layout not in accepted:
        raise LayoutError(f"unknown {what} layout {layout!r}; choose one of {', '.join(accepted)}")
    if layout == "auto":
        return detect(root)
    path = Path(root)
    if not path.is_dir():
        raise LayoutError(f"{path}: {what} data folder not found")
    return layout, path
