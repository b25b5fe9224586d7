"""Chest X-ray image files -> 8-bit grey arrays, resized as the references, cached once.

Reading (:func:`load_image`), per format:

* PNG / JPEG (any Pillow format): 8-bit grey is kept as stored (the reference reads with
  ``cv2.imread(path, 0)``); RGB / RGBA / palette images are converted to grey with Pillow's
  ITU-R 601 luma (``convert("L")``, alpha ignored); 16-bit and 32-bit grey are rescaled
  linearly from the image's own minimum..maximum to 0..255 (``cv2`` divides by 256 instead,
  which leaves 12-bit data stored in 16 bits nearly black).
* DICOM (pydicom): the modality LUT (rescale slope / intercept) then the VOI LUT or the first
  window (``apply_modality_lut``, ``apply_voi_lut``) are applied, MONOCHROME1 is inverted (so
  bone is bright, as in MONOCHROME2), RGB / YBR are converted to grey, then the values are
  rescaled from minimum..maximum to 0..255. Multi-frame files and other photometric
  interpretations are refused.

Resizing (:func:`resize_and_pad`, MGCA / CM-CGNS ``get_imgs`` with ``imsize=256``): the longer
side becomes 256 (area averaging when shrinking, bilinear when enlarging), the shorter side
keeps the aspect ratio, and the image is zero-padded to 256 x 256, centred. The same geometry
(:func:`resize_pad_geometry`) moves boxes (:func:`boxes_to_resized_frame`) and masks
(:func:`resize_and_pad_mask`) into that frame, so images, boxes and masks stay aligned.
:func:`read_image_size` gives a file's ``(height, width)`` from its header only.

Checking at preparation time (:func:`image_problem`, what the readers run for ``check_images``):
``exists`` (the file is there), ``verify`` (default; the header parses, the size is non-zero,
and the file is complete: PNG chunk CRCs through ``IEND`` (Pillow ``verify()``), a JPEG ends with
its end-of-image marker (else it is fully decoded to tell trailing bytes from truncation), a
DICOM's uncompressed pixel data holds ``Rows x Columns x samples x bits`` bytes, other formats
decoded), or ``decode`` (every image fully decoded with :func:`load_image`, as training will).
``verify`` catches truncated and unreadable files without a decode; ``decode`` also catches
corrupt data inside a complete file. Measured costs per image are in the README (CXR data).

Caching (:class:`ImageCache`): the resized images of a fixed list of files live in ONE
memory-mapped ``.npy`` per (file list, size): ``images<size>_<key>.npy`` of shape
``[N, size * size + 1]`` uint8, each row an image plus a trailing "filled" byte. ``key`` hashes
the files' absolute paths, sizes and modification times, so editing or replacing any file gives
a new cache. The file is created atomically (written under a temporary name, then hard-linked
into place only if absent, so concurrent processes agree on one file); rows are filled the
first time an image is asked for (or all at once by :meth:`ImageCache.prefill`) and never
decoded again, across epochs, DataLoader workers, DDP processes and runs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from medmodal.data.cxr.records import CXRDataError
from medmodal.errors import ConfigError

#: Side of the cached square images (the reference's ``imsize``).
DEFAULT_RESIZE = 256
CACHE_VERSION = 1
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
_GREY_DICOM = ("MONOCHROME1", "MONOCHROME2")
_COLOUR_DICOM = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT")


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Linear min..max -> 0..255 (a constant image becomes 0)."""
    values = np.asarray(values, np.float64)
    lo, hi = float(values.min()), float(values.max())
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError("pixel values are not finite")
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    return np.rint((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def is_dicom(path: str | Path) -> bool:
    """A ``.dcm``-like suffix, or the ``DICM`` magic at byte 128."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def load_dicom(path: str | Path) -> np.ndarray:
    """A DICOM radiograph as uint8 ``[H, W]`` (see the module docstring for the steps).

    Raises:
        CXRDataError: not readable as DICOM, truncated pixel data, compressed pixel data
            without a decoder, multi-frame, or an unknown photometric interpretation.
    """
    import pydicom

    try:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pydicom < 3
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut

    path = Path(path)
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as err:  # pydicom raises many types for a broken file
        raise CXRDataError(f"{path}: not a readable DICOM file ({type(err).__name__}: {err})") from None
    if "PixelData" not in ds:
        raise CXRDataError(f"{path}: DICOM file has no pixel data")
    interpretation = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if interpretation not in _GREY_DICOM + _COLOUR_DICOM:
        raise CXRDataError(f"{path}: unknown photometric interpretation {interpretation or '(none)'!r} "
                           f"(expected MONOCHROME1, MONOCHROME2 or RGB)")
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise CXRDataError(f"{path}: multi-frame DICOM ({ds.NumberOfFrames} frames) is not a radiograph")
    try:
        pixels = ds.pixel_array
    except Exception as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CXRDataError(f"{path}: cannot decode the DICOM pixel data ({message})") from None
    try:
        if interpretation in _GREY_DICOM:
            values = apply_voi_lut(apply_modality_lut(pixels, ds), ds)
            values = np.asarray(values, np.float64)
            if interpretation == "MONOCHROME1":
                values = values.max() + values.min() - values
            return _to_uint8(values)
        return _to_uint8(_luma(pixels))
    except Exception as err:
        raise CXRDataError(f"{path}: cannot apply the DICOM LUTs ({err})") from None


def load_picture(path: str | Path) -> np.ndarray:
    """A PNG / JPEG / other Pillow image as uint8 grey ``[H, W]`` (see the module docstring).

    Raises:
        CXRDataError: the file is missing, not an image, or truncated.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise CXRDataError(f"{path}: image file not found")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == "L":
                return np.array(image, np.uint8)
            if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
                return _to_uint8(np.asarray(image))
            if mode == "LA":
                return np.array(image.getchannel("L"), np.uint8)
            return np.array(image.convert("L"), np.uint8)
    except UnidentifiedImageError:
        raise CXRDataError(f"{path}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise CXRDataError(f"{path}: unreadable or truncated image ({err})") from None


def load_image(path: str | Path) -> np.ndarray:
    """Any supported radiograph file (PNG, JPEG, DICOM ...) as uint8 grey ``[H, W]``.

    Raises:
        CXRDataError: one line naming the file (missing, unreadable, truncated, unsupported).
    """
    path = Path(path)
    if not path.is_file():
        raise CXRDataError(f"{path}: image file not found")
    image = load_dicom(path) if is_dicom(path) else load_picture(path)
    if image.ndim != 2 or min(image.shape) < 1:
        raise CXRDataError(f"{path}: expected a 2-D image, got shape {tuple(image.shape)}")
    return image


#: What :func:`image_problem` checks: ``exists`` | ``verify`` (default) | ``decode`` (module docstring).
IMAGE_CHECKS = ("exists", "verify", "decode")
DEFAULT_IMAGE_CHECK = "verify"
IMAGE_CHECK_TEXT = {"exists": "file exists", "verify": "file exists, header and size readable, file complete "
                    "(PNG CRCs, JPEG end marker, DICOM pixel length)", "decode": "full decode"}
_JPEG_PADDING = b"\x00\r\n\t "


def resolve_image_check(check: bool | str | None) -> str | None:
    """``check_images`` of a reader -> an entry of :data:`IMAGE_CHECKS` or ``None`` (no check).

    ``True`` is the default check (``verify``), ``False`` / ``None`` / ``"none"`` none.

    Raises:
        ValueError: an unknown check name.
    """
    if check is True:
        return DEFAULT_IMAGE_CHECK
    if check is False or check is None or check == "none":
        return None
    if check not in IMAGE_CHECKS:
        raise ConfigError(f"unknown image check {check!r}; choose one of none, {', '.join(IMAGE_CHECKS)}")
    return check


def _dicom_problem(path: Path) -> str | None:
    import warnings

    import pydicom

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path, force=True)
    except Exception as err:  # pydicom raises many types for a broken file
        return f"not a readable DICOM file ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    ended = [w for w in caught if "End of file reached" in str(w.message)]
    if ended:
        return f"truncated DICOM file ({str(ended[0].message).split(' in file ')[0]})"
    if "PixelData" not in ds:
        return "DICOM file has no pixel data"
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples, bits = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.BitsAllocated)
    except Exception:
        return "DICOM file without readable Rows / Columns / BitsAllocated"
    if rows < 1 or cols < 1:
        return f"DICOM image of size {rows} x {cols}"
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and getattr(syntax, "is_compressed", False):
        return None  # encapsulated fragments: parsed by dcmread; their content needs a decode
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    expected = rows * cols * samples * frames * bits // 8
    if len(ds.PixelData) < expected:
        return f"truncated DICOM pixel data ({len(ds.PixelData)} of {expected} bytes)"
    return None


def image_problem(path: str | Path, check: str = DEFAULT_IMAGE_CHECK) -> str | None:
    """What is wrong with an image file under ``check`` (one phrase), or ``None`` when it passes.

    Args:
        path: a PNG / JPEG / DICOM (or other Pillow) file.
        check: ``exists`` | ``verify`` | ``decode`` (module docstring).

    Returns:
        e.g. ``"image file not found"``, ``"truncated or corrupt image (...)"``; ``None``: passed.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        return "image file not found"
    if check == "exists":
        return None
    if check == "decode":
        try:
            load_image(path)
        except CXRDataError as err:
            return str(err).removeprefix(f"{path}: ")
        return None
    try:
        if path.stat().st_size == 0:
            return "empty file"
        if is_dicom(path):
            return _dicom_problem(path)
        with Image.open(path) as image:
            width, height = image.size
            kind = image.format
            if width < 1 or height < 1:
                return f"image of size {width} x {height}"
            if kind == "PNG":
                image.verify()  # every chunk's CRC through IEND, no decompression
                return None
        if kind == "JPEG":
            with open(path, "rb") as fh:
                fh.seek(max(0, path.stat().st_size - 64))
                if fh.read().rstrip(_JPEG_PADDING).endswith(b"\xff\xd9"):
                    return None
        load_picture(path)  # no end marker (trailing bytes or truncation) or another format: decode
        return None
    except CXRDataError as err:
        return str(err).removeprefix(f"{path}: ")
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return f"unreadable or truncated image ({err})"


def resize_pad_geometry(height: int, width: int, size: int = DEFAULT_RESIZE) -> tuple[int, int, int, int]:
    """Where :func:`resize_and_pad` puts an ``height x width`` image in its ``size x size`` frame.

    Returns:
        ``(new_h, new_w, top, left)``: the resized image's extent and its offset in the frame
        (pixel ``(y, x)`` of the original lands at ``(y * new_h / height + top, x * new_w / width + left)``).
    """
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    return new_h, new_w, (size - new_h) // 2, (size - new_w) // 2


def resize_and_pad(image: np.ndarray, size: int = DEFAULT_RESIZE) -> np.ndarray:
    """Longer side to ``size`` keeping the aspect ratio, then zero-pad (centred) to ``size x size``.

    Args:
        image: uint8 ``[H, W]``.
    Returns:
        uint8 ``[size, size]``.
    """
    from PIL import Image

    h, w = image.shape
    new_h, new_w, top, left = resize_pad_geometry(h, w, size)
    if (new_h, new_w) != (h, w):
        resample = Image.Resampling.BOX if max(h, w) > size else Image.Resampling.BILINEAR
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), resample))
    out = np.zeros((size, size), np.uint8)
    out[top:top + new_h, left:left + new_w] = image
    return out


def resize_and_pad_mask(mask: np.ndarray, size: int = DEFAULT_RESIZE) -> np.ndarray:
    """A binary mask through the geometry of :func:`resize_and_pad` (area average, then >= 0.5).

    Args:
        mask: ``[H, W]``, non-zero = foreground.
    Returns:
        uint8 ``[size, size]`` of 0 / 1, aligned with ``resize_and_pad`` of the ``H x W`` image.
    """
    grey = (np.asarray(mask) != 0).astype(np.uint8) * 255
    return (resize_and_pad(grey, size) >= 128).astype(np.uint8)


def boxes_to_resized_frame(boxes: np.ndarray, height: int, width: int, size: int = DEFAULT_RESIZE) -> np.ndarray:
    """``[N, 4]`` xyxy boxes in original pixels -> the ``size x size`` frame of :func:`resize_and_pad`.

    Coordinates are continuous (a pixel ``i`` spans ``[i, i + 1)``), so the image's full extent
    ``[0, width] x [0, height]`` maps onto the resized image's extent inside the padding.
    """
    new_h, new_w, top, left = resize_pad_geometry(height, width, size)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    boxes[:, 0::2] = boxes[:, 0::2] * (new_w / width) + left
    boxes[:, 1::2] = boxes[:, 1::2] * (new_h / height) + top
    return boxes


def read_image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image file from its header (DICOM ``Rows`` / ``Columns``, Pillow ``size``).

    Raises:
        CXRDataError: the file is missing or its header cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise CXRDataError(f"{path}: image file not found")
    if is_dicom(path):
        import pydicom

        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Rows", "Columns"], force=True)
            return int(ds.Rows), int(ds.Columns)
        except Exception as err:
            raise CXRDataError(f"{path}: no readable DICOM Rows / Columns ({type(err).__name__}: {err})") from None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            return int(height), int(width)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise CXRDataError(f"{path}: not an image Pillow can read ({err})") from None


def _cache_key(paths: Sequence[Path], size: int) -> str:
    digest = hashlib.sha1(f"v{CACHE_VERSION}|{size}".encode())
    for path in paths:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise CXRDataError(f"{path}: image file not found") from None
        digest.update(f"|{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


class ImageCache:
    """Resized uint8 images of a fixed list of files, decoded once (see the module docstring).

    Args:
        paths: image files (absolute or relative to the working folder; stored absolute). Building
            the key stats every file once (for MIMIC-CXR's ~377k images, seconds on a local disk).
        cache_dir: folder of the memory-mapped cache, or ``None`` for a per-process in-memory
            cache (each DataLoader worker then decodes its share once; keep workers persistent).
        size: side of the square images (the reference's 256).
        loader: ``path -> uint8 [H, W]`` (default :func:`load_image`).

    Attributes:
        decodes: images decoded by this process (a second epoch adds none).
        file: the ``.npy`` file (``None`` without ``cache_dir``).

    Raises:
        CXRDataError: an image file is missing.
        medmodal.io.OutputError: ``cache_dir`` cannot be created or written.
    """

    def __init__(self, paths: Sequence[str | Path], cache_dir: str | Path | None = None, size: int = DEFAULT_RESIZE,
                 loader: Callable[[Path], np.ndarray] = load_image):
        self.paths = [Path(os.path.abspath(p)) for p in paths]  # lexical: no system call per file
        self.index = {}
        for i, path in enumerate(self.paths):
            self.index.setdefault(path, i)
        self.size = int(size)
        self.loader = loader
        self.decodes = 0
        self.file = None
        self._memory: dict[int, np.ndarray] = {}
        self._array = None
        if cache_dir is not None:
            from medmodal.io import ensure_writable_dir

            folder = ensure_writable_dir(cache_dir)
            self.file = folder / f"images{self.size}_{_cache_key(self.paths, self.size)}.npy"
            self._create()

    def __len__(self) -> int:
        return len(self.paths)

    def __contains__(self, path: str | Path) -> bool:
        return Path(os.path.abspath(path)) in self.index

    def __getstate__(self):  # a DataLoader worker re-opens the memory map itself
        state = dict(self.__dict__)
        state["_array"] = None
        return state

    def _create(self) -> None:
        if self.file.exists():
            return
        fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=".tmp-", suffix=".npy")
        os.close(fd)
        try:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                              shape=(len(self.paths), self.size * self.size + 1))
            array.flush()
            del array
            try:
                os.link(tmp, self.file)  # create-if-absent: a concurrent creator's file wins
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links: plain rename (last creator wins)
                if not self.file.exists():
                    os.replace(tmp, self.file)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _rows(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.file, mmap_mode="r+")
        return self._array

    def position(self, path: str | Path) -> int:
        """Row of ``path``. Raises KeyError when the file is not in the cache's list."""
        try:
            return self.index[Path(os.path.abspath(path))]
        except KeyError:
            raise KeyError(f"{path}: not in this image cache") from None

    def is_filled(self, i: int) -> bool:
        return i in self._memory if self.file is None else bool(self._rows()[i, -1])

    def get(self, i: int) -> np.ndarray:
        """uint8 ``[size, size]`` image of row ``i``, decoded and stored on first use."""
        if self.file is None:
            if i not in self._memory:
                self._memory[i] = resize_and_pad(self.loader(self.paths[i]), self.size)
                self.decodes += 1
            return self._memory[i]
        rows = self._rows()
        if not rows[i, -1]:
            image = resize_and_pad(self.loader(self.paths[i]), self.size)
            self.decodes += 1
            rows[i, :-1] = image.reshape(-1)
            rows[i, -1] = 1  # written after the pixels: a row is never marked before it is complete
            return image
        return np.array(rows[i, :-1]).reshape(self.size, self.size)

    def get_path(self, path: str | Path) -> np.ndarray:
        return self.get(self.position(path))

    def prefill(self, progress: bool = False) -> int:
        """Decode every row not yet cached; returns how many were decoded."""
        todo = [i for i in range(len(self.paths)) if not self.is_filled(i)]
        if progress and todo:
            from rich.progress import track

            todo = track(todo, description="caching images", transient=True)
        count = 0
        for i in todo:
            self.get(i)
            count += 1
        if self.file is not None and self._array is not None:
            self._array.flush()
        return count
