"""TIFF through tifffile: the first page, grey levels as stored (16-bit stays 16-bit), MINISWHITE inverted within
its range, RGB and palettes to luminance, the resolution tags as pixel spacing."""
from __future__ import annotations

import io as _io
import math
from pathlib import Path
from typing import Any

import numpy as np

from .decoded import Decoded, cast_back, check_size, luminance, normalise_dtype, set_spacing, set_spacing_from_dpi
from ..errors import ImageLoadError


def decode(src: Path | bytes, label: str, convert_rgb: bool) -> Decoded:
    """Decode the first page of a TIFF file (a path, opened read-only) or of its bytes.

    The size is checked from the page header before the pixel data is decoded.

    Raises:
        ImageLoadError: no page, size out of range, a volumetric page, a compression no installed codec decodes
            (imagecodecs named), an unsupported page layout or colour space, colour with ``convert_rgb=False``.
        Exception: tifffile's own errors for corrupt data (the caller, :func:`ramh_rt.io.load_image`, reports
            them as ImageLoadError).
    """
    import tifffile

    with tifffile.TiffFile(src if isinstance(src, Path) else _io.BytesIO(src)) as tf:
        pages = tf.pages
        n_pages = len(pages)
        if n_pages == 0:
            raise ImageLoadError(f"{label}: TIFF file holds no image")
        page = pages[0]
        warnings: list[str] = []
        if n_pages > 1:
            warnings.append(f"TIFF has {n_pages} pages; the first page was used")
        rows, cols = int(page.imagelength), int(page.imagewidth)
        check_size(label, rows, cols)
        if int(getattr(page, "imagedepth", 1) or 1) > 1:
            raise ImageLoadError(f"{label}: volumetric TIFF page (depth {page.imagedepth}) is not a radiograph")
        photometric_code = int(page.photometric)
        compression = getattr(page.compression, "name", str(page.compression))
        try:
            arr = page.asarray()
        except (ValueError, NotImplementedError, ImportError) as e:
            hint = " (install imagecodecs: pip install imagecodecs)" if "imagecodecs" in str(e).lower() else ""
            raise ImageLoadError(f"{label}: cannot decode TIFF with compression {compression}: {e}{hint}") from e
        axes = page.axes
        meta: dict[str, Any] = {"pages": n_pages, "compression": compression, "axes": axes,
                                "original_dtype": str(arr.dtype), "original_shape": tuple(int(s) for s in arr.shape)}
        arr = _tiff_to_hw_or_hws(arr, axes, label)
        bits = int(page.bitspersample)
        photometric = {0: "MONOCHROME1", 1: "MONOCHROME2", 2: "RGB", 3: "PALETTE COLOR", 5: "CMYK",
                       6: "YBR_FULL"}.get(photometric_code, f"TIFF photometric {photometric_code}")
        if photometric_code == 3:  # palette: map indices through the colour map (16-bit entries)
            cmap = page.colormap
            if cmap is None:
                raise ImageLoadError(f"{label}: palette TIFF without a colour map")
            arr = np.stack([cmap[c][arr] for c in range(3)], axis=-1)
            if arr.ndim != 3:
                raise ImageLoadError(f"{label}: unsupported palette TIFF layout")
            bits = 16
        if arr.ndim == 3:
            if photometric_code not in (2, 3):
                raise ImageLoadError(f"{label}: unsupported TIFF colour space {photometric} with {arr.shape[2]} "
                                     "samples per pixel (RGB or grey levels expected)")
            if arr.shape[2] > 4 or arr.shape[2] < 3:
                raise ImageLoadError(f"{label}: unsupported TIFF with {arr.shape[2]} samples per pixel")
            arr = luminance(arr, label, convert_rgb, warnings, "RGB" if arr.shape[2] == 3 else "RGBA")
        elif photometric_code not in (0, 1):
            raise ImageLoadError(f"{label}: unsupported TIFF photometric interpretation {photometric} for a single-"
                                 "sample image")
        inverted = photometric_code == 0
        if inverted:
            arr = _invert_in_range(arr, bits)
        meta["inverted"] = inverted
        pixels, norm_bits = normalise_dtype(arr, label, copy=False)  # asarray() gave a fresh array
        dec = Decoded(pixels=pixels, label=label, photometric=photometric,
                       bits_stored=None if pixels.dtype.kind == "f" else bits, warnings=warnings, meta=meta)
        _tiff_spacing(page, dec)
        return dec


def _tiff_to_hw_or_hws(arr: np.ndarray, axes: str, label: str) -> np.ndarray:
    """(H, W) or (H, W, S) from a tifffile page array whose dimensions are named by ``axes`` (Y, X, S...)."""
    keep = []
    for i, ax in enumerate(axes):
        if ax in "YXS":
            keep.append(ax)
        elif arr.shape[i] != 1:
            raise ImageLoadError(f"{label}: unsupported TIFF page layout {axes} with shape {tuple(arr.shape)}")
    squeezed = arr.reshape([s for ax, s in zip(axes, arr.shape) if ax in "YXS"])
    order = [keep.index(a) for a in "YXS" if a in keep]
    return np.transpose(squeezed, order)


def _tiff_spacing(page: Any, dec: Decoded) -> None:
    tags = page.tags
    xr, yr = tags.get("XResolution"), tags.get("YResolution")
    if xr is None or yr is None:
        return
    unit_tag = tags.get("ResolutionUnit")
    unit = int(unit_tag.value) if unit_tag is not None else 2  # TIFF 6.0: inch when the tag is absent
    mm_per_unit = {2: 25.4, 3: 10.0}.get(unit)
    if mm_per_unit is None:
        return  # unit "none": an aspect ratio only (tifffile writes 1/1 with no unit by default)

    def per_unit(v: Any) -> float:
        if isinstance(v, tuple):
            return float(v[0]) / float(v[1]) if float(v[1]) != 0 else float("nan")
        return float(v)

    xres, yres = per_unit(xr.value), per_unit(yr.value)
    if not (xres > 0 and yres > 0 and math.isfinite(xres) and math.isfinite(yres)):
        dec.warnings.append("ignored invalid TIFF resolution")
        return
    if unit == 2:
        set_spacing_from_dpi(dec, (xres, yres), "tiff:resolution")
    else:
        set_spacing(dec, mm_per_unit / yres, mm_per_unit / xres, "tiff:resolution")


def _invert_in_range(arr: np.ndarray, bits: int | None) -> np.ndarray:
    """Invert grey levels within the representable range: (2**bits - 1) - v for integers, (min + max) - v for floats."""
    if arr.dtype.kind == "b":
        return ~arr
    if arr.dtype.kind == "u":
        top = (1 << (bits or 8 * arr.dtype.itemsize)) - 1
        return cast_back(np.int64(top) - arr.astype(np.int64), arr.dtype)
    if arr.dtype.kind == "i":
        info = np.iinfo(arr.dtype)
        return np.int64(info.min) + np.int64(info.max) - arr.astype(np.int64)
    lo, hi = float(arr.min()), float(arr.max())
    return ((lo + hi) - arr.astype(np.float64)).astype(np.float32)
