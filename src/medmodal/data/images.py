"""2-D image files -> ``uint8`` arrays: one decoder, its checks, resize geometries and a versioned cache.

Shared by every 2-D family (chest X-ray: :mod:`medmodal.data.cxr.images`, grey, longer side to
256 and padded; endoscopy: :mod:`medmodal.data.endoscopy.images`, RGB, squashed to a square). A
family chooses its colour, its resize geometry and the error class it raises; nothing else differs.

Decoding (:func:`decode_image`, ``colour="grey"`` -> ``[H, W]``, ``colour="rgb"`` -> ``[H, W, 3]``):

* PNG / JPEG / TIFF ...: the EXIF orientation (tag 274, values 2..8) is applied first
  (``ImageOps.exif_transpose``, as viewers and OpenCV's ``imread`` do); without it (or with 1)
  the pixels are as stored. Damage that libjpeg only warns about and zlib may hide is refused:
  a Huffman-coded JPEG whose last scan stops early (cut short and closed with an end marker;
  libjpeg's "premature end of data segment" fills the rest grey; :func:`_decode_checked`), stray
  bytes between JPEG header segments ("N extraneous bytes before marker"), a PNG chunk whose CRC
  does not match or that is cut short, and whatever Pillow refuses (a truncated JPEG without end
  marker, a truncated TIFF). Sequential JPEGs cost one decode, progressive ones two.

* PNG / JPEG (any Pillow format), grey: 8-bit grey is kept as stored (the CXR reference reads
  with ``cv2.imread(path, 0)``); RGB / RGBA / palette images are converted with Pillow's ITU-R
  601 luma (``convert("L")``, alpha ignored); 16-bit and 32-bit grey are rescaled linearly from
  the image's own minimum..maximum to 0..255 (``cv2`` divides by 256 instead, which leaves
  12-bit data stored in 16 bits nearly black).
* PNG / JPEG, rgb: ``convert("RGB")`` (grey repeated to three channels, alpha dropped); 16-bit
  grey (``I;16*``, ``I``) is scaled by its full range, 65535 (or 255 when no value exceeds 255),
  rounded, and repeated to three channels (the endoscopy readers' rule since their first release).
* DICOM (pydicom, grey only: an ``rgb`` request repeats the grey image): the modality LUT
  (rescale slope / intercept) then the VOI LUT or the first window (``apply_modality_lut``,
  ``apply_voi_lut``) are applied, MONOCHROME1 is inverted (so bone is bright, as in
  MONOCHROME2), RGB / YBR are converted to grey, then the values are rescaled from
  minimum..maximum to 0..255. Multi-frame files and other photometric interpretations are refused.

Errors are one line naming the file: ``<file>: image file not found``, ``<file>: not an image
Pillow can read``, ``<file>: unreadable or truncated image (<reason>)``, ... raised as the
caller's ``error`` class (default :class:`medmodal.errors.ImageReadError`; CXR passes its
``CXRDataError``).

Resize geometries: :func:`resize_and_pad` (MGCA / CM-CGNS ``get_imgs`` with ``imsize=256``: the
longer side becomes ``size``, area averaging when shrinking, bilinear when enlarging, the shorter
side keeps the aspect ratio, zero-padded and centred; :func:`resize_pad_geometry` moves boxes
(:func:`boxes_to_resized_frame`) and masks (:func:`resize_and_pad_mask`) into that frame) and
:func:`resize_square` (both sides to ``size``, bilinear with antialiasing: the MICS authors'
``Resize((384, 384))``). :func:`read_image_size` gives a file's ``(height, width)`` from its header.

Checking at preparation time (:func:`image_problem`, what the CXR readers run for
``check_images``): ``exists`` (the file is there), ``verify`` (default; the header parses, the size
is non-zero, and the file is complete: PNG chunk CRCs through ``IEND``, a JPEG's header segments
hold no stray bytes and it ends with its end-of-image marker (else it is fully decoded to tell
trailing bytes from truncation), a DICOM's uncompressed pixel data holds ``Rows x Columns x
samples x bits`` bytes, other formats decoded), or ``decode`` (every image fully decoded, as
training will, with the checks above). ``verify`` catches truncated and unreadable files without a
decode; ``decode`` also catches corrupt data inside a complete file, among it a JPEG cut short and
closed with an end marker (no check short of a decode can tell its scan stops early). Measured
costs per image are in the README (CXR data).

Caching (:class:`ImageCache`): the resized images of a fixed list of files live in ONE
memory-mapped ``.npy`` per (file list, size): ``images<size>_<key>.npy`` of shape
``[N, size * size * channels + 1]`` uint8, each row an image plus a trailing "filled" byte.
``key`` (:func:`cache_key`) hashes :data:`CACHE_VERSION`, the size and the files' absolute paths,
sizes and modification times, so editing or replacing any file (its EXIF orientation too) gives a
new cache; a new decoder rule (version 2: the orientation applied, damaged files refused) a new
version. The file is
created atomically (written under a temporary name, then hard-linked into place only if absent,
so concurrent processes agree on one file); rows are filled the first time an image is asked
for (or all at once by :meth:`ImageCache.prefill`) and never decoded again, across epochs,
DataLoader workers, DDP processes and runs. The endoscopy per-file cache
(:class:`medmodal.data.endoscopy.images.DecodedImageCache`) uses the same key and version.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from medmodal.errors import ConfigError, ImageReadError
from medmodal.io import create_npy_once, ensure_writable_dir

__all__ = [
    "CACHE_VERSION", "DEFAULT_RESIZE", "DICOM_SUFFIXES", "decode_image", "load_dicom", "load_picture", "is_dicom",
    "read_image_size",
    "IMAGE_CHECKS", "DEFAULT_IMAGE_CHECK", "IMAGE_CHECK_TEXT", "resolve_image_check", "image_problem",
    "resize_pad_geometry", "resize_and_pad", "resize_and_pad_mask", "boxes_to_resized_frame", "resize_square",
    "save_png", "cache_key", "ImageCache",
]

#: Version of the decoded-image caches (CXR :class:`ImageCache`, endoscopy ``DecodedImageCache``):
#: part of every cache key, so bumping it (a change of what the decoder or a geometry produces)
#: makes both families decode again instead of reading stale images. 1 since their first release;
#: 2 since the decoder applies the EXIF orientation and refuses damaged JPEG / PNG data (a version-1
#: cache may hold a sideways frame or a half-grey one; the orientation is read from the file, whose
#: size and modification time are in the key, so a new tag gives a new key).
CACHE_VERSION = 2
#: Default side of :func:`resize_and_pad` and :class:`ImageCache` (the CXR reference's ``imsize``).
DEFAULT_RESIZE = 256
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
_GREY_DICOM = ("MONOCHROME1", "MONOCHROME2")
_COLOUR_DICOM = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT")
_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # grey: rescaled min..max
_WIDE_RGB = ("I;16", "I;16B", "I;16L", "I")  # rgb: scaled by the full range

ErrorClass = Callable[[str], Exception]


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


def load_dicom(path: str | Path, error: ErrorClass = ImageReadError) -> np.ndarray:
    """A DICOM image as uint8 grey ``[H, W]`` (see the module docstring for the steps).

    Raises:
        error: not readable as DICOM, truncated pixel data, compressed pixel data without a
            decoder, multi-frame, or an unknown photometric interpretation.
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
        raise error(f"{path}: not a readable DICOM file ({type(err).__name__}: {err})") from None
    if "PixelData" not in ds:
        raise error(f"{path}: DICOM file has no pixel data")
    interpretation = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if interpretation not in _GREY_DICOM + _COLOUR_DICOM:
        raise error(f"{path}: unknown photometric interpretation {interpretation or '(none)'!r} "
                    f"(expected MONOCHROME1, MONOCHROME2 or RGB)")
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise error(f"{path}: multi-frame DICOM ({ds.NumberOfFrames} frames) is not a radiograph")
    syntax = _compressed_syntax(ds)
    problem = dicom_decoder_problem(syntax, ds.get("BitsStored")) if syntax is not None else None
    if problem:
        raise error(f"{path}: {problem}")
    try:
        pixels = ds.pixel_array
    except Exception as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise error(f"{path}: cannot decode the DICOM pixel data ({message})") from None
    try:
        if interpretation in _GREY_DICOM:
            values = apply_modality_lut(pixels, ds)
            voi = ds.get("VOILUTSequence")
            if voi and "LUTData" in voi[0] and "LUTDescriptor" in voi[0] and not np.issubdtype(values.dtype, np.integer):
                # a VOI LUT indexes integers: floor as pydicom's own float path does, without its warning
                values = np.floor(values).astype(np.int64)
            values = apply_voi_lut(values, ds)
            values = np.asarray(values, np.float64)
            if interpretation == "MONOCHROME1":
                values = values.max() + values.min() - values
            return _to_uint8(values)
        return _to_uint8(_luma(pixels))
    except Exception as err:
        raise error(f"{path}: cannot apply the DICOM LUTs ({err})") from None


def _grey(image) -> np.ndarray:
    mode = image.mode
    if mode == "L":
        return np.array(image, np.uint8)
    if mode in _WIDE_GREY:
        return _to_uint8(np.asarray(image))
    if mode == "LA":
        return np.array(image.getchannel("L"), np.uint8)
    return np.array(image.convert("L"), np.uint8)


def _rgb(image) -> np.ndarray:
    if image.mode in _WIDE_RGB:
        arr = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if arr.max() > 255 else 255.0
        arr = np.clip(arr / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def load_picture(path: str | Path, colour: str = "grey", error: ErrorClass = ImageReadError) -> np.ndarray:
    """A PNG / JPEG / other Pillow image as uint8 ``[H, W]`` (grey) or ``[H, W, 3]`` (rgb), fully decoded.

    The EXIF orientation (tag 274, values 2..8) is applied (``ImageOps.exif_transpose``), as viewers
    and OpenCV's ``imread`` do; an image without it decodes as stored. Damage that libjpeg and
    zlib only warn about or hide is refused: a JPEG whose image data stops early (cut short and
    closed with an end marker: :func:`_decode_checked`), stray bytes between JPEG header segments,
    a PNG chunk whose CRC does not match (:func:`_png_problem`).

    Raises:
        error: the file is missing, not an image, truncated or corrupt (one line naming it).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: image file not found")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise error(f"{path}: cannot read the file ({err.strerror or err})") from None
    problem = _png_problem(data) or _jpeg_header_problem(data)
    if problem:
        raise error(f"{path}: {problem}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow's "Truncated File Read" ...: refused below
            image = _decode_checked(data)
            if image is not None:
                try:
                    image = _oriented(image)
                    return _grey(image) if colour == "grey" else _rgb(image)
                finally:
                    image.close()
    except UnidentifiedImageError:
        raise error(f"{path}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise error(f"{path}: unreadable or truncated image ({str(err) or type(err).__name__})") from None
    raise error(f"{path}: {_JPEG_CUT}")


def _open_decoded(data: bytes):
    """A fully decoded Pillow image of the bytes ``data`` (a truncated file fails here, not in a worker)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


#: EXIF / TIFF tag of the orientation; 1 (or absent) is "as stored".
_ORIENTATION_TAG = 0x0112


def _oriented(image):
    """``image`` turned as its EXIF orientation says (2..8), else unchanged (same object, same pixels)."""
    from PIL import ImageOps

    try:
        orientation = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # an unparsable EXIF block: the orientation is unknown, the pixels are as stored
        return image
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(image)
    return image


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_DAMAGED = "unreadable or truncated image"


def _png_problem(data: bytes) -> str | None:
    """A PNG's chunks through ``IEND``: each CRC, each chunk complete (Pillow's ``load`` checks no
    image-data CRC; zlib's checksum catches most flipped bytes there, none in a chunk after the image
    data). ``None`` for a sound PNG or for a file that is not a PNG."""
    if data[:8] != _PNG_SIGNATURE:
        return None
    view, pos = memoryview(data), 8
    while pos + 12 <= len(data):
        length = int.from_bytes(view[pos:pos + 4], "big")
        kind = bytes(view[pos + 4:pos + 8]).decode("latin-1")
        end = pos + 12 + length
        if end > len(data):
            return f"{_DAMAGED} (truncated PNG: {kind} chunk at byte {pos} cut short)"
        if zlib.crc32(view[pos + 4:end - 4]) != int.from_bytes(view[end - 4:end], "big"):
            return f"{_DAMAGED} (corrupt PNG data: CRC mismatch in the {kind} chunk at byte {pos})"
        if kind == "IEND":
            return None
        pos = end
    return f"{_DAMAGED} (truncated PNG: no IEND chunk)"


_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def _jpeg_header_problem(data: bytes) -> str | None:
    """The marker segments of a JPEG from its start to the first scan (``SOS``): stray bytes between
    them (libjpeg's "Corrupt JPEG data: N extraneous bytes before marker") or a header cut short.
    ``None`` for a sound header or a file that is not a JPEG."""
    if data[:3] != b"\xff\xd8\xff":
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            nxt = data.find(b"\xff", pos)
            count = (nxt if nxt >= 0 else len(data)) - pos
            return f"{_DAMAGED} (corrupt JPEG data: {count} extraneous bytes before a marker at byte {pos})"
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker == 0xD9:
            return f"{_DAMAGED} (JPEG ends before its image data: end-of-image marker before any scan)"
        if marker == 0xDA:
            return None
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return f"{_DAMAGED} (truncated JPEG header: no scan)"


def _jpeg_frame(data: bytes) -> tuple[int | None, int, int]:
    """``(start-of-frame marker, components of the frame, components of the first scan)`` of a sound
    JPEG header (``0xC0`` baseline, ``0xC1`` extended, ``0xC2`` progressive ...; ``None`` if not found)."""
    pos, sof, frame = 2, None, 0
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF or marker in _JPEG_STANDALONE:
            pos += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and pos + 9 < len(data):
            sof, frame = marker, data[pos + 9]
        if marker == 0xDA:
            return sof, frame, data[pos + 4] if pos + 4 < len(data) else 0
        if marker == 0xD9:
            break
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return sof, frame, 0


#: Bytes put before a JPEG's end marker (:func:`_decode_checked`): no 0xFF, so after a complete scan
#: libjpeg skips them as garbage, while a scan that stops early decodes them as image data.
_JPEG_PROBE = bytes((i * 73 + 41) % 255 for i in range(512))
_JPEG_CUT = ("unreadable or truncated image (premature end of JPEG data: the image data stops before the "
             "last row, a file cut short and closed with an end marker)")


def _decode_checked(data: bytes):
    """A fully decoded Pillow image of ``data``, or ``None`` for a JPEG whose last scan stops early.

    libjpeg meets the end marker inside a scan that stops early, warns "Corrupt JPEG data: premature
    end of data segment" (Pillow does not surface it) and fills the rest with zeros: the rows below
    become flat grey. So a Huffman-coded JPEG that ends with its end marker is decoded

    * single-scan sequential (baseline / extended, the common case): with the end marker replaced by
      zero bytes. A complete scan never reads them (same pixels, one decode); one that stops early
      runs out of data (Pillow's "image file is truncated");
    * progressive or multi-scan (all scans are read before any row): as stored and again with
      :data:`_JPEG_PROBE` before the end marker; a complete last scan skips it (same pixels), one
      that stops early decodes it (other pixels). Two decodes.

    Arithmetic-coded and lossless JPEGs (libjpeg cannot suspend there) and PNG / TIFF / ... are
    decoded as stored (a truncated PNG / TIFF fails in Pillow; PNG CRCs: :func:`_png_problem`).

    Raises:
        OSError, SyntaxError, ValueError, PIL.UnidentifiedImageError: what Pillow raises for the bytes.
    """
    if data[:3] != b"\xff\xd8\xff":
        return _open_decoded(data)
    end = data.rstrip(_JPEG_PADDING)
    sof, frame, scan = _jpeg_frame(data)
    if not end.endswith(b"\xff\xd9") or sof not in (0xC0, 0xC1, 0xC2):
        return _open_decoded(data)  # no end marker: Pillow decodes trailing bytes, refuses a truncation
    if sof != 0xC2 and scan == frame:
        try:
            return _open_decoded(end[:-2] + bytes(16))
        except OSError as err:
            if "truncated" in str(err):
                return None
            raise
    image = _open_decoded(data)
    probed = _open_decoded(end[:-2] + _JPEG_PROBE + b"\xff\xd9")
    try:
        same = probed.size == image.size and probed.tobytes() == image.tobytes()
    finally:
        probed.close()
    if not same:
        image.close()
        return None
    return image


def decode_image(path: str | Path, colour: str = "grey", error: ErrorClass = ImageReadError) -> np.ndarray:
    """Any supported 2-D image file (PNG, JPEG, DICOM ...) as uint8 grey ``[H, W]`` or RGB ``[H, W, 3]``.

    Args:
        path: the file. colour: ``grey`` | ``rgb`` (module docstring).
        error: exception class raised for a bad file (default :class:`~medmodal.errors.ImageReadError`).

    Raises:
        error: one line naming the file (missing, unreadable, truncated, unsupported, empty).
        ConfigError: an unknown ``colour``.
    """
    if colour not in ("grey", "rgb"):
        raise ConfigError(f"unknown image colour {colour!r}; choose grey or rgb")
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: image file not found")
    if is_dicom(path):
        image = load_dicom(path, error)
        if colour == "rgb":
            image = np.repeat(image[..., None], 3, axis=-1)
    else:
        image = load_picture(path, colour, error)
    if image.ndim != (2 if colour == "grey" else 3) or min(image.shape[:2]) < 1:
        raise error(f"{path}: expected a 2-D image, got shape {tuple(image.shape)}")
    return image


def read_image_size(path: str | Path, error: ErrorClass = ImageReadError) -> tuple[int, int]:
    """``(height, width)`` of an image file from its header (DICOM ``Rows`` / ``Columns``, Pillow ``size``),
    as decoded: swapped when the EXIF orientation turns the image by 90 degrees (5..8).

    Raises:
        error: the file is missing or its header cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: image file not found")
    if is_dicom(path):
        import pydicom

        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Rows", "Columns"], force=True)
            return int(ds.Rows), int(ds.Columns)
        except Exception as err:
            raise error(f"{path}: no readable DICOM Rows / Columns ({type(err).__name__}: {err})") from None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            try:
                turned = image.getexif().get(_ORIENTATION_TAG, 1) in (5, 6, 7, 8)
            except Exception:  # an unparsable EXIF block: decoded as stored (_oriented)
                turned = False
            return (int(width), int(height)) if turned else (int(height), int(width))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise error(f"{path}: not an image Pillow can read ({err})") from None


# --------------------------------------------------------------------------- checks
#: What :func:`image_problem` checks: ``exists`` | ``verify`` (default) | ``decode`` (module docstring).
IMAGE_CHECKS = ("exists", "verify", "decode")
DEFAULT_IMAGE_CHECK = "verify"
IMAGE_CHECK_TEXT = {"exists": "file exists", "verify": "file exists, header and size readable, file complete "
                    "(PNG CRCs, JPEG header and end marker, DICOM pixel length, a DICOM transfer syntax an "
                    "installed decoder reads)", "decode": "full decode (also a JPEG cut short and closed)"}
_JPEG_PADDING = b"\x00\r\n\t "


def resolve_image_check(check: bool | str | None) -> str | None:
    """``check_images`` of a reader -> an entry of :data:`IMAGE_CHECKS` or ``None`` (no check).

    ``True`` is the default check (``verify``), ``False`` / ``None`` / ``"none"`` none.

    Raises:
        ConfigError: an unknown check name.
    """
    if check is True:
        return DEFAULT_IMAGE_CHECK
    if check is False or check is None or check == "none":
        return None
    if check not in IMAGE_CHECKS:
        raise ConfigError(f"unknown image check {check!r}; choose one of none, {', '.join(IMAGE_CHECKS)}")
    return check


_PIP_NAMES = {"gdcm": "python-gdcm", "pil": "pillow", "openjpeg": "pylibjpeg-openjpeg",
              "libjpeg": "pylibjpeg-libjpeg", "rle": "pylibjpeg-rle", "jpeg_ls": "pyjpegls"}


def _pip_names(requirements) -> list[str]:
    """Import / requirement names -> pip package names (numpy, always installed here, left out)."""
    import re

    names = []
    for req in requirements:
        name = re.match(r"\s*([A-Za-z0-9_.-]+)", str(req))
        name = _PIP_NAMES.get(name.group(1).lower(), name.group(1)) if name else None
        if name and name != "numpy" and name not in names:
            names.append(name)
    return names


def _missing_decoders(syntax, bits_stored: int | None = None) -> list[list[str]] | None:
    """The pip packages of each pydicom decoder of ``syntax``; ``None`` if one is installed, ``[]`` if none exists.

    Pillow, pydicom's only plugin for JPEG Extended out of the box, reads its 8-bit form only.
    """
    try:
        from pydicom.pixels import get_decoder  # pydicom >= 3
    except ImportError:
        get_decoder = None
    if get_decoder is not None:
        try:
            decoder = get_decoder(syntax)
        except (NotImplementedError, ValueError, KeyError):
            return []
        twelve_bit = syntax == "1.2.840.10008.1.2.4.51" and bits_stored not in (None, 8)
        if decoder.is_available and not (twelve_bit and set(decoder.available_plugins) <= {"pillow"}):
            return None
        return [_pip_names(text.split(" requires ", 1)[-1].split(" and ")) for text in decoder.missing_dependencies]
    import pydicom.config  # pydicom 2: the handlers, each with its DEPENDENCIES {module: (url, name)}

    handlers = [h for h in pydicom.config.pixel_data_handlers if h.supports_transfer_syntax(syntax)]
    if any(h.is_available() for h in handlers):
        return None
    return [_pip_names(getattr(h, "DEPENDENCIES", {})) for h in handlers]


def _compressed_syntax(ds):
    """The transfer syntax of a dataset whose pixel data needs a decoder (compressed or unknown), else ``None``."""
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is None:
        return None
    try:
        return syntax if syntax.is_compressed else None
    except (ValueError, AttributeError):  # not a transfer syntax pydicom knows (private, newer)
        return syntax


def dicom_decoder_problem(syntax, bits_stored: int | None = None) -> str | None:
    """Why no installed pydicom pixel-data decoder reads transfer syntax ``syntax`` (one phrase), or ``None``.

    e.g. ``"JPEG Lossless (1.2.840.10008.1.2.4.70) DICOM, no decoder installed: pip install pylibjpeg
    pylibjpeg-libjpeg (or python-gdcm)"``. Read from pydicom's decoders (3.x: ``get_decoder(uid)``,
    its ``missing_dependencies``; 2.x: ``config.pixel_data_handlers``), so a decoder installed later is found.
    """
    from pydicom.uid import UID

    syntax = UID(str(syntax))
    missing = _missing_decoders(syntax, bits_stored)
    if missing is None:
        return None
    kind = f"{syntax.name.split(',')[0].replace(' Image Compression', '')} ({syntax}) DICOM" if syntax.is_valid \
        and syntax.name != str(syntax) else f"DICOM of transfer syntax {syntax}"
    choices = sorted((m for m in missing if m), key=lambda m: (not m[0].startswith("pylibjpeg"), m))
    if not choices:
        return f"{kind}: pydicom has no decoder for this transfer syntax"
    others = f" (or {', or '.join(' '.join(m) for m in choices[1:])})" if len(choices) > 1 else ""
    if syntax == "1.2.840.10008.1.2.4.51" and bits_stored not in (None, 8):
        kind += f" with {bits_stored}-bit samples"
    return f"{kind}, no decoder installed: pip install {' '.join(choices[0])}{others}"


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
    syntax = _compressed_syntax(ds)
    if syntax is not None:
        return dicom_decoder_problem(syntax, ds.get("BitsStored"))  # fragments parsed; their content needs a decode
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    expected = rows * cols * samples * frames * bits // 8
    if len(ds.PixelData) < expected:
        return f"truncated DICOM pixel data ({len(ds.PixelData)} of {expected} bytes)"
    return None


def image_problem(path: str | Path, check: str = DEFAULT_IMAGE_CHECK) -> str | None:
    """What is wrong with an image file under ``check`` (one phrase), or ``None`` when it passes.

    Args:
        path: a PNG / JPEG / DICOM (or other Pillow) file.
        check: ``exists`` | ``verify`` | ``decode`` (module docstring; ``decode`` decodes as grey).

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
            decode_image(path)
        except ImageReadError as err:
            return str(err).removeprefix(f"{path}: ")
        return None
    try:
        if path.stat().st_size == 0:
            return "empty file"
        if is_dicom(path):
            return _dicom_problem(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow's "Truncated File Read" ...: refused below
            return _picture_problem(path)
    except ImageReadError as err:
        return str(err).removeprefix(f"{path}: ")
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return f"unreadable or truncated image ({err})"


def _picture_problem(path: Path) -> str | None:
    """:func:`image_problem`'s ``verify`` of a Pillow image (its exceptions pass through)."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
        kind = image.format
        if width < 1 or height < 1:
            return f"image of size {width} x {height}"
        if kind == "PNG":
            problem = _png_problem(path.read_bytes())  # every chunk's CRC through IEND, no decompression
            if problem:
                return problem
            image.verify()
            return None
    if kind == "JPEG":
        data = path.read_bytes()
        problem = _jpeg_header_problem(data)
        if problem:
            return problem
        if data.rstrip(_JPEG_PADDING).endswith(b"\xff\xd9"):
            return None  # complete as far as a check without a decode can tell (module docstring)
    load_picture(path)  # no end marker (trailing bytes or truncation) or another format: decode
    return None


# --------------------------------------------------------------------------- geometry
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


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """``uint8 [H, W, 3]`` -> ``uint8 [size, size, 3]`` (bilinear, antialiased when shrinking; aspect not kept)."""
    from PIL import Image

    if image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR), dtype=np.uint8)


def save_png(path: str | Path, image: np.ndarray, compress_level: int = 6) -> Path:
    """Write ``uint8 [H, W(, 3)]`` as PNG atomically (temporary file, then rename); ``compress_level`` 0-9
    (zlib; lossless at every level, 1 is several times faster than the default 6)."""
    from PIL import Image

    from medmodal.io import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG", compress_level=compress_level)
    return Path(path)


# --------------------------------------------------------------------------- cache
def cache_key(paths: Sequence[Path], size: int, error: ErrorClass = ImageReadError) -> str:
    """20 hex digits of ``sha1("v<CACHE_VERSION>|<size>" + "|<path>:<bytes>:<mtime_ns>" per file)``.

    ``paths`` are used as given (callers make them absolute: :class:`ImageCache` lexically, the
    endoscopy cache with symlinks resolved). Raises ``error`` naming a missing file.
    """
    digest = hashlib.sha1(f"v{CACHE_VERSION}|{size}".encode())
    for path in paths:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise error(f"{path}: image file not found") from None
        digest.update(f"|{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


class ImageCache:
    """Resized uint8 images of a fixed list of files, decoded once (see the module docstring).

    Args:
        paths: image files (absolute or relative to the working folder; stored absolute). Building
            the key stats every file once (for MIMIC-CXR's ~377k images, seconds on a local disk).
        cache_dir: folder of the memory-mapped cache, or ``None`` for a per-process in-memory
            cache (each DataLoader worker then decodes its share once; keep workers persistent).
        size: side of the square images.
        loader: ``path -> uint8 [H, W]`` or ``[H, W, C]`` (default: :func:`decode_image`, grey).
        resize: ``(image, size) -> uint8 [size, size(, C)]`` (default :func:`resize_and_pad`).
        channels: ``C`` of the resized images (1: ``[size, size]``).
        error: exception class for a missing file (default :class:`~medmodal.errors.ImageReadError`).

    Attributes:
        decodes: images decoded by this process (a second epoch adds none).
        file: the ``.npy`` file (``None`` without ``cache_dir``).
        created: this object created ``file`` (no cache of these files at this size was there).

    Raises:
        error: an image file is missing.
        medmodal.io.OutputError: ``cache_dir`` cannot be created or written.
    """

    def __init__(self, paths: Sequence[str | Path], cache_dir: str | Path | None = None, size: int = DEFAULT_RESIZE,
                 loader: Callable[[Path], np.ndarray] = decode_image,
                 resize: Callable[[np.ndarray, int], np.ndarray] = resize_and_pad, channels: int = 1,
                 error: ErrorClass = ImageReadError):
        self.paths = [Path(os.path.abspath(p)) for p in paths]  # lexical: no system call per file
        self.index = {}
        for i, path in enumerate(self.paths):
            self.index.setdefault(path, i)
        self.size = int(size)
        self.loader, self.resize, self.channels = loader, resize, int(channels)
        self.shape = (self.size, self.size) if self.channels == 1 else (self.size, self.size, self.channels)
        self.decodes = 0
        self.file = None
        self.created = False
        self._memory: dict[int, np.ndarray] = {}
        self._array = None
        if cache_dir is not None:
            folder = ensure_writable_dir(cache_dir)
            self.file = folder / f"images{self.size}_{cache_key(self.paths, self.size, error)}.npy"
            self.created = not self.file.exists()
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
        create_npy_once(self.file, (len(self.paths), int(np.prod(self.shape)) + 1), np.uint8)

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
        """uint8 ``[size, size(, C)]`` image of row ``i``, decoded and stored on first use."""
        if self.file is None:
            if i not in self._memory:
                self._memory[i] = self.resize(self.loader(self.paths[i]), self.size)
                self.decodes += 1
            return self._memory[i]
        rows = self._rows()
        if not rows[i, -1]:
            image = self.resize(self.loader(self.paths[i]), self.size)
            self.decodes += 1
            rows[i, :-1] = image.reshape(-1)
            rows[i, -1] = 1  # written after the pixels: a row is never marked before it is complete
            return image
        return np.array(rows[i, :-1]).reshape(self.shape)

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
