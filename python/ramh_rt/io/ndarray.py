"""NumPy arrays as images: the accepted shapes (grey, a single channel first or last, RGB(A)) and pixel types."""
from __future__ import annotations

import numpy as np

from .decoded import Decoded, check_size, luminance, normalise_dtype
from ..errors import ImageLoadError


def decode(arr: np.ndarray, label: str, convert_rgb: bool) -> Decoded:
    """A caller's array as a :class:`Decoded` image; ``arr`` itself is never modified (the pixels are a copy).

    Args:
        arr: (H, W), (H, W, 1), (1, H, W) or (H, W, 3|4) RGB(A); integer, bool or float dtype.
        label: the name of the source in messages (``"<array>"``).
        convert_rgb: convert RGB(A) to luminance (with a warning) instead of refusing it.

    Raises:
        ImageLoadError: unsupported dtype or shape (named), size out of range, NaN/inf values, colour with
            ``convert_rgb=False``, integers that fit neither uint16 nor float32 exactly.
    """
    meta = {"format": "array", "original_dtype": str(arr.dtype), "original_shape": tuple(int(s) for s in arr.shape)}
    warnings: list[str] = []
    if arr.dtype.kind not in "biuf":
        raise ImageLoadError(f"{label}: unsupported dtype {arr.dtype} (expected an integer, bool or float array)")
    photometric = "MONOCHROME2"
    if arr.ndim == 2:
        rows, cols = arr.shape
    elif arr.ndim == 3 and arr.shape[2] == 1:
        rows, cols = arr.shape[:2]
        arr = arr[:, :, 0]
    elif arr.ndim == 3 and arr.shape[0] == 1 and arr.shape[2] not in (3, 4):
        rows, cols = arr.shape[1:]
        arr = arr[0]
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        rows, cols = arr.shape[:2]
        photometric = "RGB" if arr.shape[2] == 3 else "RGBA"
    else:
        raise ImageLoadError(f"{label}: unsupported array shape {tuple(arr.shape)}; expected (H, W), (H, W, 1), "
                             "(1, H, W), or (H, W, 3|4) for RGB(A)")
    check_size(label, int(rows), int(cols))
    if arr.ndim == 3:
        arr = luminance(arr, label, convert_rgb, warnings, photometric)
    pixels, bits = normalise_dtype(arr, label, copy=True)
    return Decoded(pixels=pixels, label=label, photometric=photometric, bits_stored=bits, warnings=warnings,
                    meta=meta)
