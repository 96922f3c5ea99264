"""What every decoder of :mod:`ramh_rt.io` shares: the accepted image sizes, the record a decoder returns
(:class:`Decoded`), the conversion of pixel types to the three that are returned (uint8, uint16, float32), colour to
luminance, and pixel spacing from a resolution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ImageLoadError

#: Smallest accepted side of an image, in pixels (anything smaller cannot be a hand radiograph: a 1x1 PNG is an error).
MIN_SIDE = 32
#: Largest accepted side, in pixels.
MAX_SIDE = 16384
#: Largest accepted image, in pixels (height x width).
MAX_PIXELS = 200_000_000

#: Relative difference of row and column spacing above which the spacing is reported as anisotropic.
ANISOTROPY_TOLERANCE = 0.01

# Resolutions that image software writes by default (screen dpi) rather than a detector pitch.
_SOFTWARE_DEFAULT_DPI = (72.0, 96.0)

# ITU-R BT.601 luma weights (what PIL's convert("L") uses).
_LUMA = (0.299, 0.587, 0.114)

_FLOAT24 = 2 ** 24  # integers of magnitude <= 2**24 are exact in float32


@dataclass
class Decoded:
    """What one decoder found in its source, before the caller's overrides and the file-name side are applied.

    ``pixels`` is the 2-D (rows, cols) array of uint8 / uint16 / float32, bone bright; the other fields are those of
    :class:`ramh_rt.io.LoadedImage` (``label`` is the source's name in messages: a path, ``"<array>"`` or
    ``"<bytes>"``). Decoders fill ``warnings`` and ``meta`` as they go.
    """

    pixels: np.ndarray
    label: str
    photometric: str
    bits_stored: int | None
    spacing_mm: float | None = None
    spacing_source: str | None = None
    side: str | None = None
    side_source: str | None = None
    warnings: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def check_size(label: str, rows: int, cols: int) -> None:
    """Refuse declared sizes outside the accepted range (called before any pixel data is decoded).

    Raises:
        ImageLoadError: a side below ``MIN_SIDE`` or above ``MAX_SIDE``, or more than ``MAX_PIXELS`` pixels.
    """
    if rows < MIN_SIDE or cols < MIN_SIDE:
        raise ImageLoadError(f"{label}: image is {rows}x{cols} pixels (rows x cols); the smallest accepted side is "
                             f"{MIN_SIDE} px")
    if rows > MAX_SIDE or cols > MAX_SIDE:
        raise ImageLoadError(f"{label}: image is {rows}x{cols} pixels (rows x cols); the largest accepted side is "
                             f"{MAX_SIDE} px")
    if rows * cols > MAX_PIXELS:
        raise ImageLoadError(f"{label}: image is {rows}x{cols} = {rows * cols} pixels; at most {MAX_PIXELS} are "
                             "accepted")


def normalise_dtype(arr: np.ndarray, label: str, copy: bool) -> tuple[np.ndarray, int | None]:
    """(C-contiguous native array of uint8/uint16/float32, bits) for a 2-D array; always a new array if ``copy``.

    ``bits`` is 8 or 16 for integers, None for float32. bool becomes uint8 0/255.

    Raises:
        ImageLoadError: NaN or inf values (counted), an integer type whose values fit neither uint16 nor exactly
            float32, an empty image, a dtype that is neither bool, integer nor float.
    """
    dt = arr.dtype
    if dt.kind == "b":
        out = np.where(arr, np.uint8(255), np.uint8(0))
        return np.ascontiguousarray(out), 8
    # copy=None: copy only when needed (a dtype or layout change); copy=False would raise in NumPy 2 then.
    if dt.kind == "u" and dt.itemsize in (1, 2):
        out = np.array(arr, dtype=dt.newbyteorder("=") if dt.itemsize > 1 else dt, order="C", copy=copy or None)
        return out, 8 * dt.itemsize
    if dt.kind == "f":
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, reported just below
            out = np.array(arr, dtype=np.float32, order="C", copy=copy or None)
        if not np.isfinite(out).all():
            nan = int(np.isnan(out).sum())
            inf = int(np.isinf(out).sum())
            extra = ""
            if dt.itemsize > 4 and np.isfinite(arr).all():
                extra = f" after conversion to float32 (values beyond +-{np.finfo(np.float32).max:.3g})"
            raise ImageLoadError(f"{label}: image contains {nan} NaN and {inf} infinite values{extra}")
        return out, None
    if dt.kind in "iu":
        return integer_to_supported(arr, label)
    raise ImageLoadError(f"{label}: unsupported dtype {dt}")


def integer_to_supported(arr: np.ndarray, label: str) -> tuple[np.ndarray, int | None]:
    """Lossless conversion of other integer types: uint8/uint16 when the values fit, else exact float32.

    Returns (array, bits): bits 8, 16 or None (float32).

    Raises:
        ImageLoadError: an empty array, or values beyond uint16 that float32 cannot hold exactly (|v| > 2**24).
    """
    if arr.size == 0:
        raise ImageLoadError(f"{label}: image is empty")
    lo, hi = int(arr.min()), int(arr.max())
    if lo >= 0 and hi <= 255 and arr.dtype.itemsize == 1:
        return np.array(arr, dtype=np.uint8, order="C"), 8
    if lo >= 0 and hi <= 65535:
        return np.array(arr, dtype=np.uint16, order="C"), 16
    if -_FLOAT24 <= lo and hi <= _FLOAT24:
        return np.array(arr, dtype=np.float32, order="C"), None
    raise ImageLoadError(f"{label}: {arr.dtype} values range over [{lo}, {hi}], which fits neither uint16 nor exactly "
                         "float32 (integers up to 2**24); rescale the image first")


def luminance(arr: np.ndarray, label: str, convert_rgb: bool, warnings: list[str], what: str) -> np.ndarray:
    """(H, W) luminance of an (H, W, 3|4) array, in the input's dtype (rounded for integers).

    ``what`` names the colour encoding in the warning appended to ``warnings`` (and in the error).

    Raises:
        ImageLoadError: ``convert_rgb`` is False.
    """
    if not convert_rgb:
        raise ImageLoadError(f"{label}: image is {what} (shape {tuple(arr.shape)}) and convert_rgb=False; pass "
                             "convert_rgb=True to convert it to luminance or supply a grey-level image")
    if arr.shape[2] == 4:
        warnings.append("alpha channel ignored")
    r, g, b = arr[:, :, 0], arr[:, :, 1], arr[:, :, 2]
    if np.array_equal(r, g) and np.array_equal(g, b):
        warnings.append(f"{what} image with identical channels: used one channel as grey levels")
        return np.array(r, order="C")
    warnings.append(f"{what} image converted to luminance (ITU-R BT.601 weights 0.299, 0.587, 0.114)")
    if arr.dtype.kind == "f":
        acc = _LUMA[0] * r.astype(np.float64) + _LUMA[1] * g.astype(np.float64) + _LUMA[2] * b.astype(np.float64)
        return acc.astype(np.float32)
    # float32 is exact enough for <= 16-bit channels (error << 0.5 before rounding) and halves the memory of float64.
    acc = np.multiply(r, np.float32(_LUMA[0]), dtype=np.float32)
    acc += np.multiply(g, np.float32(_LUMA[1]), dtype=np.float32)
    acc += np.multiply(b, np.float32(_LUMA[2]), dtype=np.float32)
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        np.rint(acc, out=acc)
        np.clip(acc, info.min, info.max, out=acc)
        return acc.astype(arr.dtype)
    return acc  # bool RGB: weights sum to 1, values stay in [0, 1]


def set_spacing_from_dpi(dec: Decoded, dpi: Any, source: str) -> None:
    """Record spacing from a (x, y) resolution in dots per inch, with a warning for a screen default (72/96 dpi).

    An unreadable ``dpi`` is ignored; a non-positive or non-finite one is ignored with a warning.
    """
    try:
        xdpi, ydpi = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return
    if not (xdpi > 0 and ydpi > 0 and math.isfinite(xdpi) and math.isfinite(ydpi)):
        dec.warnings.append(f"ignored invalid resolution {dpi!r} ({source})")
        return
    set_spacing(dec, 25.4 / ydpi, 25.4 / xdpi, source)
    # 0.1 % tolerance: PNG stores whole pixels per metre (72 dpi is written as 2835 px/m = 72.009 dpi).
    if any(abs(xdpi - d) <= 1e-3 * d for d in _SOFTWARE_DEFAULT_DPI):
        dec.warnings.append(f"the file's resolution is {xdpi:g} dpi, a common image-software default rather than a "
                            "detector pitch; pass spacing_mm if the spacing matters")


def set_spacing(dec: Decoded, row_mm: float, col_mm: float, source: str) -> None:
    """Record spacing from a (row, column) pair: their mean, with a warning when they differ by more than 1%."""
    if not (math.isfinite(row_mm) and math.isfinite(col_mm) and row_mm > 0 and col_mm > 0):
        dec.warnings.append(f"ignored invalid pixel spacing {row_mm!r} x {col_mm!r} mm ({source})")
        return
    mean = 0.5 * (row_mm + col_mm)
    if abs(row_mm - col_mm) > ANISOTROPY_TOLERANCE * mean:
        dec.warnings.append(f"anisotropic pixel spacing {row_mm:g} mm (rows) x {col_mm:g} mm (columns) ({source}); "
                            f"using the mean {mean:g} mm")
    dec.spacing_mm = float(f"{mean:.10g}")  # drop float noise from unit conversions (25.4 / 254 dpi)
    dec.spacing_source = source
    dec.meta["spacing_row_col_mm"] = (float(row_mm), float(col_mm))




def cast_back(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` (int64) in ``dtype`` when every value fits it, else unchanged (converted later, losslessly)."""
    if values.size and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if info.min <= int(values.min()) and int(values.max()) <= info.max:
            return values.astype(dtype)
    return values
