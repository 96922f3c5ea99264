"""PNG, JPEG and BMP through Pillow: grey levels as stored (16-bit PNG stays 16-bit), colour and palettes to
luminance, JPEG EXIF orientation applied, PNG pHYs resolution as pixel spacing."""
from __future__ import annotations

import io as _io
from pathlib import Path
from typing import Any

import numpy as np

from .decoded import Decoded, check_size, luminance, normalise_dtype, set_spacing_from_dpi
from ..errors import ImageLoadError


def _pil_classes() -> dict[str, Any]:
    from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin

    # The plugin classes are used directly: Image.open would run Pillow's own decompression-bomb check, whose limit
    # (179 Mpx by default) differs from ours and is a process-wide setting we must not change.
    return {"png": PngImagePlugin.PngImageFile, "jpeg": JpegImagePlugin.JpegImageFile,
            "bmp": BmpImagePlugin.BmpImageFile}


def decode(fmt: str, src: Path | bytes, label: str, convert_rgb: bool) -> Decoded:
    """Decode a ``"png"``, ``"jpeg"`` or ``"bmp"`` file (a path, opened read-only) or its bytes.

    The size is checked from the header before the pixel data is decoded.

    Raises:
        ImageLoadError: corrupt header, size out of range, colour with ``convert_rgb=False``, NaN/inf values.
        OSError, ValueError...: Pillow's own errors for truncated or corrupt data (the caller,
            :func:`ramh_rt.io.load_image`, reports them as ImageLoadError).
    """
    cls = _pil_classes()[fmt]
    with (open(src, "rb") if isinstance(src, Path) else _io.BytesIO(src)) as fh:
        try:
            im = cls(fh)
        except SyntaxError as e:  # Pillow's "not a <format> file"
            raise ImageLoadError(f"{label}: corrupt {fmt.upper()} header ({e})") from None
        cols, rows = im.size
        check_size(label, rows, cols)
        warnings: list[str] = []
        meta: dict[str, Any] = {"mode": im.mode}
        if fmt == "jpeg":
            im = _exif_transpose(im, warnings)
        im.load()  # decodes now, while the file is open; truncated data raises OSError
        return _pil_to_decoded(im, fmt, label, convert_rgb, warnings, meta)


def _exif_transpose(im: Any, warnings: list[str]) -> Any:
    from PIL import ImageOps

    orientation = im.getexif().get(0x0112, 1)
    if orientation not in (1, None):
        warnings.append(f"JPEG EXIF orientation {orientation} applied (image rotated/flipped upright)")
        return ImageOps.exif_transpose(im)
    return im


def _pil_to_decoded(im: Any, fmt: str, label: str, convert_rgb: bool, warnings: list[str],
                    meta: dict[str, Any]) -> Decoded:
    mode = im.mode
    photometric = "MONOCHROME2"
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        arr = np.asarray(im)
        bits = 16
    elif mode == "L":
        arr, bits = np.asarray(im), 8
    elif mode == "1":
        arr, bits = np.asarray(im.convert("L")), 8
        warnings.append("bilevel (1-bit) image read as 0/255")
    elif mode in ("I", "F"):
        arr, bits = np.asarray(im), None
    elif mode == "LA":
        arr, bits = np.asarray(im.convert("L")), 8
        warnings.append("alpha channel ignored")
    elif mode in ("P", "PA"):
        photometric = "PALETTE COLOR"
        palette = im.getpalette() or []
        rgb_triplets = [tuple(palette[i:i + 3]) for i in range(0, len(palette), 3)]
        if all(t[0] == t[1] == t[2] for t in rgb_triplets):
            arr, bits = np.asarray(im.convert("L")), 8
            warnings.append("grey-level palette image expanded to grey levels")
        else:
            rgb = np.asarray(im.convert("RGB"))
            arr, bits = luminance(rgb, label, convert_rgb, warnings, "palette colour"), 8
        if mode == "PA":
            warnings.append("alpha channel ignored")
    else:  # RGB, RGBA, RGBX, CMYK, YCbCr, LAB, HSV...
        photometric = "RGB" if mode in ("RGB", "RGBA", "RGBX") else mode
        if fmt == "png" and any(";16" in str(getattr(t, "args", "")) for t in (im.tile or [])):
            warnings.append("16-bit colour PNG reduced to 8 bits per channel by Pillow")
        if mode in ("RGBA", "RGBX"):
            rgba = np.asarray(im)
            arr = luminance(rgba if mode == "RGBA" else rgba[:, :, :3], label, convert_rgb, warnings, mode)
        else:
            arr = luminance(np.asarray(im.convert("RGB")), label, convert_rgb, warnings, mode)
        bits = 8
    meta["original_dtype"] = str(arr.dtype)
    meta["original_shape"] = tuple(int(s) for s in arr.shape)
    pixels, norm_bits = normalise_dtype(arr, label, copy=True)
    dec = Decoded(pixels=pixels, label=label, photometric=photometric,
                   bits_stored=bits if bits is not None else norm_bits, warnings=warnings, meta=meta)
    if fmt == "png":
        dpi = im.info.get("dpi")  # Pillow sets it only for a pHYs chunk in pixels per metre
        if dpi is not None:
            set_spacing_from_dpi(dec, dpi, "png:pHYs")
    return dec
