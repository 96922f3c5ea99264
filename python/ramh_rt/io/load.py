"""The one way in: :func:`load_image` recognises the source's format, hands it to its decoder and applies the
hand side of the file name and the caller's overrides (:func:`with_overrides`) to give a :class:`LoadedImage`.
Conventions: see :mod:`ramh_rt.io`."""
from __future__ import annotations

import dataclasses
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from . import dicom, ndarray, raster, tiff
from .decoded import ANISOTROPY_TOLERANCE, Decoded
from ..anatomy import normalise_side, side_from_stem
from ..errors import ImageLoadError
from ..fs import IMAGE_SUFFIXES

ImageSource = Union[np.ndarray, str, "os.PathLike[str]", bytes, bytearray, memoryview]


@dataclass(frozen=True)
class LoadedImage:
    """One decoded grey-level image, bone bright, with what its source says about spacing and side.

    Raises (on construction):
        ValueError: ``spacing_mm`` not None and not a finite number > 0, or ``side`` not None, "L" or "R".

    Attributes:
        pixels: 2-D array (rows, cols), C-contiguous, read-only. dtype ``uint8``, ``uint16`` (16-bit sources keep
            their 16 bits) or ``float32`` (float sources, DICOM after a rescale or VOI; see the module docstring).
        spacing_mm: pixel spacing in millimetres (the mean of row and column spacing when they differ slightly), or
            None when unknown.
        spacing_source: where ``spacing_mm`` came from: ``"dicom:PixelSpacing"``, ``"dicom:ImagerPixelSpacing"``,
            ``"dicom:NominalScannedPixelSpacing"``, ``"tiff:resolution"``, ``"png:pHYs"``, ``"user"``, or None.
        side: ``"L"``, ``"R"`` or None (unknown).
        side_source: ``"dicom:ImageLaterality"``, ``"dicom:Laterality"``, ``"filename"`` (a ``..._L``/``..._R``
            file stem, :func:`ramh_rt.anatomy.side_from_stem`), ``"user"``, or None.
        source: the file path as given, ``"<array>"`` or ``"<bytes>"``.
        photometric: how the source encoded grey levels or colour, in DICOM terms: ``"MONOCHROME1"`` (inverted:
            DICOM MONOCHROME1, TIFF MINISWHITE), ``"MONOCHROME2"``, ``"RGB"``, ``"PALETTE COLOR"``, ``"YBR_FULL"``...
            The returned pixels are always MONOCHROME2-like (bone bright).
        bits_stored: significant bits of the stored integer values (8, 16, DICOM BitsStored, ...); None for float
            sources.
        warnings: human-readable notes on anything lossy or surprising (RGB converted, first page used, anisotropic
            spacing, conflicting side...).
        meta: details for provenance: ``format`` (``"png"``, ``"jpeg"``, ``"bmp"``, ``"tiff"``, ``"dicom"``,
            ``"array"``), ``original_dtype``, ``original_shape``, and per format e.g. ``pages``, ``frames``,
            ``transfer_syntax``, ``rescale``, ``window``, ``voi_applied``, ``inverted``, ``modality``. No
            patient-identifying DICOM attribute is copied.
    """

    pixels: np.ndarray
    spacing_mm: float | None
    spacing_source: str | None
    side: str | None
    side_source: str | None
    source: str
    photometric: str
    bits_stored: int | None
    warnings: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A LoadedImage built by hand must not carry a spacing or side the analysis cannot use (a NaN spacing would
        # only fail later, in to_json()).
        if self.spacing_mm is not None:
            object.__setattr__(self, "spacing_mm", check_spacing(self.spacing_mm))
        if self.side is not None and self.side not in ("L", "R"):
            raise ValueError(f"side must be 'L', 'R' or None, got {self.side!r}")

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of :attr:`pixels`."""
        return (int(self.pixels.shape[0]), int(self.pixels.shape[1]))

    @property
    def dtype(self) -> np.dtype:
        """dtype of :attr:`pixels`."""
        return self.pixels.dtype


# ---------------------------------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------------------------------

def load_image(source: ImageSource, *, convert_rgb: bool = True, spacing_mm: float | None = None,
               side: str | None = None, apply_voi: bool = True) -> LoadedImage:
    """Decode a radiograph into a :class:`LoadedImage` (2-D, bone bright).

    Args:
        source: a NumPy array (2-D; ``(H, W, 1)`` or ``(1, H, W)``; ``(H, W, 3|4)`` RGB(A)), a path (``str`` or
            ``os.PathLike``) to a PNG, JPEG, BMP, TIFF or DICOM file, or the ``bytes`` of such a file. The format is
            recognised from the file's first bytes (DICOM also by a ``.dcm``/``.dicom`` extension, for files without
            the 128-byte preamble), not from the extension, so extensionless DICOM files work.
        convert_rgb: convert colour images (RGB, RGBA, palette, YCbCr) to luminance (ITU-R BT.601 weights; exact
            when the three channels are equal) with a warning. When False, colour input raises ImageLoadError.
        spacing_mm: pixel spacing in mm supplied by the caller; overrides the file's (``spacing_source="user"``).
        side: ``"L"``/``"R"``/``"left"``/``"right"`` supplied by the caller; overrides the file's
            (``side_source="user"``).
        apply_voi: DICOM only: apply the VOI LUT or window when present (see the module docstring).

    Accepted pixel types: ``uint8``, ``uint16`` (kept), ``float32`` (kept), ``float16``/``float64`` (-> float32),
    ``bool`` (-> uint8 0/255); other integer types are converted losslessly (to uint8/uint16 when the values fit, else
    to float32 when every value is an integer of magnitude <= 2**24) or refused.

    Size limits, checked from the header *before* pixel data is decoded: each side in [``MIN_SIDE``, ``MAX_SIDE``]
    (32..16384) and at most ``MAX_PIXELS`` (200 Mpx).

    Returns:
        The decoded image; see :class:`LoadedImage`.

    Raises:
        ImageLoadError: the source cannot be used; the message names it (path, ``"<array>"`` or ``"<bytes>"``) and
            the reason: file missing, empty, truncated or corrupt; not a supported image format; declared size out
            of range; unsupported shape or dtype (the shape/dtype is named); NaN or inf values (counted); colour with
            ``convert_rgb=False``; a DICOM without pixel data, or compressed with a transfer syntax no installed
            handler decodes (the syntax and the package to install are named); pydicom missing for a DICOM file
            (``pip install ramh-rt[dicom]``).
        TypeError: ``source`` is of none of the accepted types.
        ValueError: ``spacing_mm`` is not a positive finite number, or ``side`` is not L/R/left/right.
    """
    user_spacing = check_spacing(spacing_mm)  # checked before any decoding: a bad argument fails fast
    user_side = normalise_side(side) if side is not None else None

    if isinstance(source, np.ndarray):
        dec = ndarray.decode(source, "<array>", convert_rgb)
        path = None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        dec = _decode_bytes(data, "<bytes>", None, convert_rgb, apply_voi)
        path = None
    elif isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source))
        dec = _decode_path(path, convert_rgb, apply_voi)
    else:
        raise TypeError("source must be a NumPy array, a path (str or os.PathLike) or bytes, got "
                        f"{type(source).__name__}")

    img_side, side_src = dec.side, dec.side_source
    warnings = list(dec.warnings)
    if path is not None:
        name_side = side_from_stem(path.stem if path.suffix.lower() in IMAGE_SUFFIXES else path.name)
        if name_side is not None:
            if img_side is None:
                img_side, side_src = name_side, "filename"
            elif name_side != img_side:
                warnings.append(f"the file name says side {name_side} but {side_src} says {img_side}; "
                                f"using {img_side}")

    pixels = dec.pixels
    pixels.setflags(write=False)
    loaded = LoadedImage(pixels=pixels, spacing_mm=dec.spacing_mm, spacing_source=dec.spacing_source, side=img_side,
                         side_source=side_src, source=str(path) if path is not None else dec.label,
                         photometric=dec.photometric, bits_stored=dec.bits_stored, warnings=tuple(warnings),
                         meta=dict(dec.meta))
    return with_overrides(loaded, spacing_mm=user_spacing, side=user_side)


def with_overrides(loaded: LoadedImage, *, spacing_mm: float | None = None, side: str | None = None) -> LoadedImage:
    """``loaded`` with the caller's pixel spacing and/or hand side in place of the source's (the one way to override
    them, used by :func:`load_image` and by the analyser for a :class:`LoadedImage` it is handed).

    Args:
        loaded: a decoded image (not modified: a new LoadedImage shares its read-only pixels).
        spacing_mm: millimetres per pixel (a Python or NumPy number), finite and > 0; None keeps the source's. The
            result has ``spacing_source="user"``; the source's value is kept in ``meta["file_spacing_mm"]`` (and its
            source in ``meta["file_spacing_source"]``), with a warning when the two differ by more than 1 %.
        side: ``"L"``/``"R"``/``"left"``/``"right"``; None keeps the source's. The result has ``side_source="user"``,
            with a warning when it contradicts the source's side.

    Returns:
        ``loaded`` itself when both are None, else a new :class:`LoadedImage`.

    Raises:
        ValueError: ``spacing_mm`` is not a finite number > 0 (NaN, inf, 0, negative, a string...), or ``side`` is
            not L/R/left/right.
    """
    user_spacing = check_spacing(spacing_mm)
    user_side = normalise_side(side) if side is not None else None
    if user_spacing is None and user_side is None:
        return loaded
    warnings = list(loaded.warnings)
    meta = dict(loaded.meta)
    spacing, spacing_src = loaded.spacing_mm, loaded.spacing_source
    if user_spacing is not None:
        if spacing is not None and abs(spacing - user_spacing) > ANISOTROPY_TOLERANCE * user_spacing:
            warnings.append(f"the given spacing {user_spacing:g} mm overrides the file's {spacing:g} mm "
                            f"({spacing_src})")
        meta.setdefault("file_spacing_mm", spacing)
        meta.setdefault("file_spacing_source", spacing_src)
        spacing, spacing_src = user_spacing, "user"
    img_side, side_src = loaded.side, loaded.side_source
    if user_side is not None:
        if img_side is not None and img_side != user_side:
            warnings.append(f"the given side {user_side} overrides {side_src} ({img_side})")
        img_side, side_src = user_side, "user"
    return dataclasses.replace(loaded, spacing_mm=spacing, spacing_source=spacing_src, side=img_side,
                               side_source=side_src, warnings=tuple(warnings), meta=meta)


def check_spacing(spacing_mm: float | None) -> float | None:
    """A caller's pixel spacing as a float (None stays None).

    Raises:
        ValueError: not a finite number > 0 (NaN, inf, 0, negative, bool, text), named in the message.
    """
    if spacing_mm is None:
        return None
    if isinstance(spacing_mm, (bool, np.bool_)):
        raise ValueError(f"spacing_mm must be a positive number of millimetres, got {spacing_mm!r}")
    try:
        value = float(spacing_mm)
    except (TypeError, ValueError):
        raise ValueError(f"spacing_mm must be a positive number of millimetres, got {spacing_mm!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"spacing_mm must be a positive finite number of millimetres, got {spacing_mm!r}")
    return value


# ---------------------------------------------------------------------------------------------------------------------
# Format recognition and dispatch
# ---------------------------------------------------------------------------------------------------------------------

def _sniff(head: bytes, suffix: str) -> str | None:
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[128:132] == b"DICM":
        return "dicom"
    if suffix in dicom.DICOM_SUFFIXES:
        return "dicom"  # DICOM files without the 128-byte preamble (old ACR-NEMA style) are recognised by name only
    return None


def _unknown_format(label: str, head: bytes) -> ImageLoadError:
    shown = head[:16]
    return ImageLoadError(f"{label}: not a supported image format (PNG, JPEG, BMP, TIFF or DICOM); the file starts "
                          f"with {shown!r}")


def _decode_path(path: Path, convert_rgb: bool, apply_voi: bool) -> Decoded:
    label = str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageLoadError(f"{label}: file not found") from None
    except OSError as e:
        raise ImageLoadError(f"{label}: cannot access the file ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError(f"{label}: is a directory, not an image file")
    if st.st_size == 0:
        raise ImageLoadError(f"{label}: the file is empty")
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as e:
        raise ImageLoadError(f"{label}: cannot read the file ({e.strerror or e})") from None
    fmt = _sniff(head, path.suffix.lower())
    if fmt is None:
        raise _unknown_format(label, head)
    return _decode_format(fmt, path, label, convert_rgb, apply_voi)


def _decode_bytes(data: bytes, label: str, suffix: str | None, convert_rgb: bool, apply_voi: bool) -> Decoded:
    if not data:
        raise ImageLoadError(f"{label}: no data (0 bytes)")
    fmt = _sniff(data[:132], suffix or "")
    if fmt is None:
        raise _unknown_format(label, data[:16])
    return _decode_format(fmt, data, label, convert_rgb, apply_voi)


def _decode_format(fmt: str, src: Path | bytes, label: str, convert_rgb: bool, apply_voi: bool) -> Decoded:
    try:
        if fmt == "tiff":
            dec = tiff.decode(src, label, convert_rgb)
        elif fmt == "dicom":
            dec = dicom.decode(src, label, convert_rgb, apply_voi)
        else:
            dec = raster.decode(fmt, src, label, convert_rgb)
    except ImageLoadError:
        raise
    except MemoryError:
        raise ImageLoadError(f"{label}: not enough memory to decode the image") from None
    except Exception as e:  # any decoder failure means the file is unusable; say which and why
        raise ImageLoadError(f"{label}: corrupt or unreadable {fmt.upper()} file ({type(e).__name__}: {e})") from e
    dec.meta["format"] = fmt
    return dec
