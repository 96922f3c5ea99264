"""File reading and writing for the dataset code: JSON with duplicate-key detection, atomic writes, grayscale images.

Atomic means: a file appears under its final name complete or not at all (written to a temporary file in the same
folder, then ``os.replace``); readers never see half a file, and an interrupted writer leaves no partial file behind.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import Problems


class JsonObject(dict):
    """A JSON object that remembers keys that appeared more than once (``json`` keeps the last silently)."""

    __slots__ = ("duplicates",)

    def __init__(self, pairs: list[tuple[str, Any]]):
        super().__init__()
        self.duplicates: list[str] = []
        for k, v in pairs:
            if k in self:
                self.duplicates.append(k)
            self[k] = v


def read_json(path: Path, problems: Problems, rel: str) -> Any | None:
    """Parse a JSON file; objects come back as :class:`JsonObject`.

    Reports a missing/unreadable file or a syntax error (with line and column) to ``problems`` and returns None.
    """
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        problems.error(rel, None, "file is missing")
        return None
    except OSError as e:
        problems.error(rel, None, f"cannot be read: {e.strerror or e}")
        return None
    try:
        return json.loads(text, object_pairs_hook=JsonObject)
    except json.JSONDecodeError as e:
        problems.error(rel, None, f"is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}")
    except UnicodeDecodeError as e:
        problems.error(rel, None, f"is not UTF-8 text: {e}")
    return None


_UMASK: int | None = None


def _file_mode() -> int:
    # mkstemp creates 0600 files; a dataset file gets the mode open() would give it (0666 minus the umask).
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating parent folders (file mode as ``open()`` would give)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: Path, obj: Any, *, indent: int | None = None) -> None:
    """Write ``obj`` as UTF-8 JSON atomically (compact unless ``indent``; key order as given, so output is
    deterministic for deterministic input)."""
    sep = (",", ":") if indent is None else (",", ": ")
    atomic_write_bytes(path, (json.dumps(obj, indent=indent, separators=sep, ensure_ascii=False) + "\n")
                       .encode("utf-8"))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """The 8-bit version of a grayscale image, as written to BMP.

    uint8 is returned unchanged. uint16 is rescaled linearly from the image's own [min, max] to [0, 255] and rounded
    to nearest (ties to even), so that the full 8-bit range carries the contrast whatever bit depth (10, 12, 16) the
    detector used; a constant image becomes all 0.

    Raises:
        ValueError: not a 2-D uint8/uint16 array.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image must be a 2-D uint8 or uint16 array; got "
                         f"{type(image).__name__} {getattr(image, 'dtype', '')} shape {getattr(image, 'shape', '')}")
    if image.dtype == np.uint8:
        return image
    lo, hi = int(image.min()), int(image.max())
    if hi == lo:
        return np.zeros(image.shape, np.uint8)
    scaled = (image.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.rint(scaled).astype(np.uint8)


def encode_bmp(image: np.ndarray) -> bytes:
    """8-bit grayscale BMP bytes of a 2-D uint8 array."""
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"BMP images are written from 2-D uint8 arrays; got {image.dtype} shape {image.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), mode="L").save(buf, format="BMP")
    return buf.getvalue()


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file from its header (the pixels are not decoded).

    Raises:
        OSError: missing or not a readable image (PIL's UnidentifiedImageError is an OSError).
    """
    with Image.open(path) as im:
        return int(im.height), int(im.width)


def read_grayscale(path: Path) -> np.ndarray:
    """Read an image file as a 2-D grayscale array.

    8-bit files (grayscale, palette, bilevel) and colour files come back as uint8 (colour and palette through
    Pillow's ``"L"`` conversion, ITU-R 601-2 luma, which is what OpenCV's grayscale read does too); 16-bit grayscale
    files (PNG, TIFF) come back as uint16 unchanged.

    Raises:
        OSError: missing or unreadable file.
        ValueError: a pixel format that is neither 8-bit nor 16-bit grayscale nor colour (e.g. float or 32-bit
            integer data outside 0..65535).
    """
    with Image.open(path) as im:
        im.load()
        mode = im.mode
        if mode == "L":
            return np.array(im, dtype=np.uint8)
        if mode.startswith("I;16"):
            return np.array(im).astype(np.uint16, copy=False)
        if mode == "I":
            a = np.array(im)
            if a.size and (a.min() < 0 or a.max() > 65535):
                raise ValueError(f"{path}: 32-bit integer image with values {a.min()}..{a.max()} outside 0..65535")
            return a.astype(np.uint16)
        if mode in ("1", "P", "PA", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
            return np.array(im.convert("L"), dtype=np.uint8)
        raise ValueError(f"{path}: unsupported pixel format {mode!r} (expected 8-bit or 16-bit grayscale, or colour)")
