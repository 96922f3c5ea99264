"""Image and DICOM input.

:func:`load_image` turns what a user hands to the analyser (a NumPy array, a PNG/JPEG/BMP/TIFF/DICOM file, or the
bytes of one) into a :class:`LoadedImage`: one 2-D grey-level image in which bone is bright, plus what the file says
about pixel spacing and hand side. (Atomic file output lives in :mod:`ramh_rt.fs`.)

Intensity conventions (what makes the same radiograph give the same analysis however it is stored):

* Grey levels are returned as stored whenever possible: ``uint8`` and ``uint16`` stay as they are (16-bit PNG and
  TIFF included), ``float32`` stays ``float32``. The models normalise intensities themselves (a percentile window of
  the whole image, see the bundle manifest), which is invariant to any increasing affine map of the grey levels, so
  the same image stored as 8/16-bit PNG, 16-bit TIFF or DICOM analyses identically as long as it is the same picture
  up to such a map.
* "Bone is bright": inverted encodings are inverted back. DICOM ``MONOCHROME1`` (and a ``MONOCHROME2`` whose Presentation
  LUT Shape is ``INVERSE``) and TIFF ``MINISWHITE`` are flipped *within their value range*: a stored value ``s`` of an
  unsigned image with ``BitsStored = b`` becomes ``(2**b - 1) - s``; after a rescale or VOI the range is the one of
  that stage (see below). Hence the ``MONOCHROME1`` and ``MONOCHROME2`` encodings of one image decode to identical
  pixels: ``s1 = (2**b - 1) - s2`` with the same rescale and, for a window of width ``w``, the mirrored centre
  (``c1 = 2**b - c2`` for the LINEAR function, whose definition is offset by half a level; ``c1 = 2**b - 1 - c2`` for
  LINEAR_EXACT and SIGMOID).
* DICOM pixel pipeline, in the order of the standard (PS3.3 C.7.6.3.1, C.11): stored values -> Modality LUT (Rescale
  Slope/Intercept, or a Modality LUT Sequence) -> VOI (a VOI LUT Sequence, else Window Center/Width with the VOI LUT
  Function LINEAR, LINEAR_EXACT or SIGMOID; the first window when there are several) -> inversion for MONOCHROME1.

  - No rescale (absent or slope 1 / intercept 0) and no VOI: the stored values, unchanged in value and dtype
    (a DICOM and a 16-bit TIFF of the same pixels decode identically).
  - A non-identity rescale: ``float32`` modality values ``slope * s + intercept`` (exact for detector data: integers
    below 2**24).
  - A VOI (``apply_voi=True``, the default): ``float32`` in [0, 1], 0 = the darkest displayed level, 1 = the
    brightest; for MONOCHROME1 the result is ``1 - y``. That is the picture the modality meant to be shown, so it
    matches a PNG export of the displayed image. ``apply_voi=False`` skips the VOI and returns modality values.

Never modified: the caller's array (a copy is always made) and file (opened read-only). The returned pixels are a
read-only, C-contiguous array in native byte order.
"""
from __future__ import annotations

import io as _io
import math
import os
import stat
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from .anatomy import normalise_side, side_from_stem
from .errors import ImageLoadError
from .fs import IMAGE_SUFFIXES

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
        dec = _decode_array(source, "<array>", convert_rgb)
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


# ---------------------------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------------------------

_DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})


@dataclass
class _Decoded:
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


def _check_size(label: str, rows: int, cols: int) -> None:
    """Refuse declared sizes outside the accepted range (called before any pixel data is decoded)."""
    if rows < MIN_SIDE or cols < MIN_SIDE:
        raise ImageLoadError(f"{label}: image is {rows}x{cols} pixels (rows x cols); the smallest accepted side is "
                             f"{MIN_SIDE} px")
    if rows > MAX_SIDE or cols > MAX_SIDE:
        raise ImageLoadError(f"{label}: image is {rows}x{cols} pixels (rows x cols); the largest accepted side is "
                             f"{MAX_SIDE} px")
    if rows * cols > MAX_PIXELS:
        raise ImageLoadError(f"{label}: image is {rows}x{cols} = {rows * cols} pixels; at most {MAX_PIXELS} are "
                             "accepted")


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
    if suffix in _DICOM_SUFFIXES:
        return "dicom"  # DICOM files without the 128-byte preamble (old ACR-NEMA style) are recognised by name only
    return None


def _unknown_format(label: str, head: bytes) -> ImageLoadError:
    shown = head[:16]
    return ImageLoadError(f"{label}: not a supported image format (PNG, JPEG, BMP, TIFF or DICOM); the file starts "
                          f"with {shown!r}")


def _decode_path(path: Path, convert_rgb: bool, apply_voi: bool) -> _Decoded:
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


def _decode_bytes(data: bytes, label: str, suffix: str | None, convert_rgb: bool, apply_voi: bool) -> _Decoded:
    if not data:
        raise ImageLoadError(f"{label}: no data (0 bytes)")
    fmt = _sniff(data[:132], suffix or "")
    if fmt is None:
        raise _unknown_format(label, data[:16])
    return _decode_format(fmt, data, label, convert_rgb, apply_voi)


def _decode_format(fmt: str, src: Path | bytes, label: str, convert_rgb: bool, apply_voi: bool) -> _Decoded:
    try:
        if fmt == "tiff":
            dec = _decode_tiff(src, label, convert_rgb)
        elif fmt == "dicom":
            dec = _decode_dicom(src, label, convert_rgb, apply_voi)
        else:
            dec = _decode_pil(fmt, src, label, convert_rgb)
    except ImageLoadError:
        raise
    except MemoryError:
        raise ImageLoadError(f"{label}: not enough memory to decode the image") from None
    except Exception as e:  # any decoder failure means the file is unusable; say which and why
        raise ImageLoadError(f"{label}: corrupt or unreadable {fmt.upper()} file ({type(e).__name__}: {e})") from e
    dec.meta["format"] = fmt
    return dec


# ---- arrays -----------------------------------------------------------------------------------------------------

def _decode_array(arr: np.ndarray, label: str, convert_rgb: bool) -> _Decoded:
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
    _check_size(label, int(rows), int(cols))
    if arr.ndim == 3:
        arr = _luminance(arr, label, convert_rgb, warnings, photometric)
    pixels, bits = _normalise_dtype(arr, label, copy=True)
    return _Decoded(pixels=pixels, label=label, photometric=photometric, bits_stored=bits, warnings=warnings,
                    meta=meta)


def _normalise_dtype(arr: np.ndarray, label: str, copy: bool) -> tuple[np.ndarray, int | None]:
    """(C-contiguous native array of uint8/uint16/float32, bits) for a 2-D array; always a new array if ``copy``."""
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
        return _integer_to_supported(arr, label)
    raise ImageLoadError(f"{label}: unsupported dtype {dt}")


def _integer_to_supported(arr: np.ndarray, label: str) -> tuple[np.ndarray, int | None]:
    """Lossless conversion of other integer types: uint8/uint16 when the values fit, else exact float32."""
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


def _luminance(arr: np.ndarray, label: str, convert_rgb: bool, warnings: list[str], what: str) -> np.ndarray:
    """(H, W) luminance of an (H, W, 3|4) array, in the input's dtype (rounded for integers)."""
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


# ---- PNG / JPEG / BMP through Pillow ----------------------------------------------------------------------------

def _pil_classes() -> dict[str, Any]:
    from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin

    # The plugin classes are used directly: Image.open would run Pillow's own decompression-bomb check, whose limit
    # (179 Mpx by default) differs from ours and is a process-wide setting we must not change.
    return {"png": PngImagePlugin.PngImageFile, "jpeg": JpegImagePlugin.JpegImageFile,
            "bmp": BmpImagePlugin.BmpImageFile}


def _decode_pil(fmt: str, src: Path | bytes, label: str, convert_rgb: bool) -> _Decoded:
    cls = _pil_classes()[fmt]
    with (open(src, "rb") if isinstance(src, Path) else _io.BytesIO(src)) as fh:
        try:
            im = cls(fh)
        except SyntaxError as e:  # Pillow's "not a <format> file"
            raise ImageLoadError(f"{label}: corrupt {fmt.upper()} header ({e})") from None
        cols, rows = im.size
        _check_size(label, rows, cols)
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
                    meta: dict[str, Any]) -> _Decoded:
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
            arr, bits = _luminance(rgb, label, convert_rgb, warnings, "palette colour"), 8
        if mode == "PA":
            warnings.append("alpha channel ignored")
    else:  # RGB, RGBA, RGBX, CMYK, YCbCr, LAB, HSV...
        photometric = "RGB" if mode in ("RGB", "RGBA", "RGBX") else mode
        if fmt == "png" and any(";16" in str(getattr(t, "args", "")) for t in (im.tile or [])):
            warnings.append("16-bit colour PNG reduced to 8 bits per channel by Pillow")
        if mode in ("RGBA", "RGBX"):
            rgba = np.asarray(im)
            arr = _luminance(rgba if mode == "RGBA" else rgba[:, :, :3], label, convert_rgb, warnings, mode)
        else:
            arr = _luminance(np.asarray(im.convert("RGB")), label, convert_rgb, warnings, mode)
        bits = 8
    meta["original_dtype"] = str(arr.dtype)
    meta["original_shape"] = tuple(int(s) for s in arr.shape)
    pixels, norm_bits = _normalise_dtype(arr, label, copy=True)
    dec = _Decoded(pixels=pixels, label=label, photometric=photometric,
                   bits_stored=bits if bits is not None else norm_bits, warnings=warnings, meta=meta)
    if fmt == "png":
        dpi = im.info.get("dpi")  # Pillow sets it only for a pHYs chunk in pixels per metre
        if dpi is not None:
            _set_spacing_from_dpi(dec, dpi, "png:pHYs")
    return dec


def _set_spacing_from_dpi(dec: _Decoded, dpi: Any, source: str) -> None:
    try:
        xdpi, ydpi = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return
    if not (xdpi > 0 and ydpi > 0 and math.isfinite(xdpi) and math.isfinite(ydpi)):
        dec.warnings.append(f"ignored invalid resolution {dpi!r} ({source})")
        return
    _set_spacing(dec, 25.4 / ydpi, 25.4 / xdpi, source)
    # 0.1 % tolerance: PNG stores whole pixels per metre (72 dpi is written as 2835 px/m = 72.009 dpi).
    if any(abs(xdpi - d) <= 1e-3 * d for d in _SOFTWARE_DEFAULT_DPI):
        dec.warnings.append(f"the file's resolution is {xdpi:g} dpi, a common image-software default rather than a "
                            "detector pitch; pass spacing_mm if the spacing matters")


def _set_spacing(dec: _Decoded, row_mm: float, col_mm: float, source: str) -> None:
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


# ---- TIFF through tifffile --------------------------------------------------------------------------------------

def _decode_tiff(src: Path | bytes, label: str, convert_rgb: bool) -> _Decoded:
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
        _check_size(label, rows, cols)
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
            arr = _luminance(arr, label, convert_rgb, warnings, "RGB" if arr.shape[2] == 3 else "RGBA")
        elif photometric_code not in (0, 1):
            raise ImageLoadError(f"{label}: unsupported TIFF photometric interpretation {photometric} for a single-"
                                 "sample image")
        inverted = photometric_code == 0
        if inverted:
            arr = _invert_in_range(arr, bits)
        meta["inverted"] = inverted
        pixels, norm_bits = _normalise_dtype(arr, label, copy=False)  # asarray() gave a fresh array
        dec = _Decoded(pixels=pixels, label=label, photometric=photometric,
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


def _tiff_spacing(page: Any, dec: _Decoded) -> None:
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
        _set_spacing_from_dpi(dec, (xres, yres), "tiff:resolution")
    else:
        _set_spacing(dec, mm_per_unit / yres, mm_per_unit / xres, "tiff:resolution")


def _invert_in_range(arr: np.ndarray, bits: int | None) -> np.ndarray:
    """Invert grey levels within the representable range: (2**bits - 1) - v for integers, (min + max) - v for floats."""
    if arr.dtype.kind == "b":
        return ~arr
    if arr.dtype.kind == "u":
        top = (1 << (bits or 8 * arr.dtype.itemsize)) - 1
        return _cast_back(np.int64(top) - arr.astype(np.int64), arr.dtype)
    if arr.dtype.kind == "i":
        info = np.iinfo(arr.dtype)
        return np.int64(info.min) + np.int64(info.max) - arr.astype(np.int64)
    lo, hi = float(arr.min()), float(arr.max())
    return ((lo + hi) - arr.astype(np.float64)).astype(np.float32)


def _cast_back(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` (int64) in ``dtype`` when every value fits it, else unchanged (converted later, losslessly)."""
    if values.size and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if info.min <= int(values.min()) and int(values.max()) <= info.max:
            return values.astype(dtype)
    return values


# ---- DICOM through pydicom --------------------------------------------------------------------------------------

_DICOM_HANDLER_HINT = ("install a pixel-data handler for it, e.g. `pip install pylibjpeg pylibjpeg-libjpeg "
                       "pylibjpeg-openjpeg` (JPEG, JPEG-LS, JPEG 2000) or `pip install python-gdcm`")


def _import_pydicom(label: str) -> Any:
    try:
        import pydicom
    except ImportError:
        raise ImageLoadError(f"{label}: reading DICOM files needs pydicom, which is not installed: "
                             "pip install ramh-rt[dicom]") from None
    return pydicom


def _pydicom_util(name: str) -> Any:
    """A pixel utility from pydicom >= 3 (pydicom.pixels) or 2.x (pydicom.pixel_data_handlers.util)."""
    try:
        from pydicom import pixels as mod  # pydicom >= 3
        if hasattr(mod, name):
            return getattr(mod, name)
    except ImportError:
        pass
    from pydicom.pixel_data_handlers import util  # pydicom 2.x

    return getattr(util, name)


def _decode_dicom(src: Path | bytes, label: str, convert_rgb: bool, apply_voi: bool) -> _Decoded:
    pydicom = _import_pydicom(label)
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(src if isinstance(src, Path) else _io.BytesIO(src), force=True)
    except InvalidDicomError as e:
        raise ImageLoadError(f"{label}: not a valid DICOM file ({e})") from None
    if "SOPClassUID" not in ds and "Rows" not in ds and not _has_dicm_magic(src):
        # Recognised by its .dcm name only, and pydicom (forced) found nothing DICOM-like in it.
        raise ImageLoadError(f"{label}: not a DICOM file (no DICM preamble and no image attributes)")
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        sop = ds.get("SOPClassUID")
        kind = f" (SOP class {getattr(sop, 'name', sop)})" if sop is not None else ""
        raise ImageLoadError(f"{label}: DICOM file has no pixel data{kind}")
    for key in ("Rows", "Columns"):
        if ds.get(key) is None:
            raise ImageLoadError(f"{label}: DICOM pixel data without the {key} attribute")
    rows, cols = int(ds.Rows), int(ds.Columns)
    _check_size(label, rows, cols)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper() or "MONOCHROME2"
    warnings: list[str] = []
    file_meta = getattr(ds, "file_meta", None)
    ts = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if ts is None:
        ts = _guess_transfer_syntax(ds)
        warnings.append(f"DICOM file without a Transfer Syntax UID (no file meta header); read as {ts.name}")
    ts_text = f"{ts.name} ({ts})" if hasattr(ts, "name") else str(ts)
    meta: dict[str, Any] = {"frames": frames, "transfer_syntax": str(ts) if ts is not None else None,
                            "modality": _str_or_none(ds.get("Modality")),
                            "body_part": _str_or_none(ds.get("BodyPartExamined")),
                            "view_position": _str_or_none(ds.get("ViewPosition")),
                            "sop_class_uid": _str_or_none(ds.get("SOPClassUID"))}

    arr = _dicom_first_frame(ds, frames, rows, cols, spp, label, ts, ts_text)
    if frames > 1:
        warnings.append(f"DICOM has {frames} frames; the first frame was used")
    meta["original_dtype"] = str(arr.dtype)
    meta["original_shape"] = tuple(int(s) for s in arr.shape)
    bits_stored = int(ds.get("BitsStored", 8 * arr.dtype.itemsize) or 8 * arr.dtype.itemsize)

    if spp > 1 or photometric == "PALETTE COLOR":
        arr = _dicom_colour(ds, arr, photometric, label, convert_rgb, warnings)
        pixels, _ = _normalise_dtype(arr, label, copy=False)
        meta.update(voi_applied=False, inverted=False)
        dec = _Decoded(pixels=pixels, label=label, photometric=photometric, bits_stored=bits_stored,
                       warnings=warnings, meta=meta)
    else:
        if arr.ndim != 2:
            raise ImageLoadError(f"{label}: unexpected decoded DICOM shape {tuple(arr.shape)} for a grey-level image")
        pixels = _dicom_grey(ds, arr, photometric, bits_stored, apply_voi, label, warnings, meta)
        dec = _Decoded(pixels=pixels, label=label, photometric=photometric,
                       bits_stored=bits_stored, warnings=warnings, meta=meta)
    _dicom_spacing(ds, dec)
    _dicom_side(ds, dec)
    return dec


def _has_dicm_magic(src: Path | bytes) -> bool:
    if isinstance(src, bytes):
        return src[128:132] == b"DICM"
    try:
        with open(src, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _guess_transfer_syntax(ds: Any) -> Any:
    """The uncompressed transfer syntax the reader found for a file without file meta, recorded on ``ds``.

    Files without the file meta header (old ACR-NEMA style) can only hold native pixel data; pydicom needs the
    syntax spelled out to decode it.
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    implicit, little = getattr(ds, "original_encoding", (None, None))  # pydicom >= 3
    if implicit is None:
        implicit, little = getattr(ds, "is_implicit_VR", True), getattr(ds, "is_little_endian", True)
    ts = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    return ts


def _str_or_none(v: Any) -> str | None:
    return None if v is None or str(v) == "" else str(v)


def _dicom_first_frame(ds: Any, frames: int, rows: int, cols: int, spp: int, label: str, ts: Any,
                       ts_text: str) -> np.ndarray:
    try:
        if frames > 1:
            try:
                from pydicom.pixels import pixel_array  # pydicom >= 3 decodes one frame only
            except ImportError:
                pixel_array = None
            if pixel_array is not None:
                arr = pixel_array(ds, index=0)
            else:
                # pydicom 2.x decodes every frame; bound that allocation like a single image.
                if frames * rows * cols * spp > MAX_PIXELS:
                    raise ImageLoadError(f"{label}: {frames} frames of {rows}x{cols} exceed {MAX_PIXELS} pixels; "
                                         "upgrade to pydicom >= 3 to read the first frame alone")
                arr = ds.pixel_array[0]
        else:
            arr = ds.pixel_array
    except ImageLoadError:
        raise
    except Exception as e:
        compressed = bool(getattr(ts, "is_compressed", False))
        if compressed:
            raise ImageLoadError(f"{label}: cannot decode DICOM pixel data with transfer syntax {ts_text}: "
                                 f"{_first_line(e)}; {_DICOM_HANDLER_HINT}") from e
        raise ImageLoadError(f"{label}: cannot decode DICOM pixel data (transfer syntax {ts_text}): "
                             f"{type(e).__name__}: {_first_line(e)}") from e
    return np.asarray(arr)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _dicom_colour(ds: Any, arr: np.ndarray, photometric: str, label: str, convert_rgb: bool,
                  warnings: list[str]) -> np.ndarray:
    if photometric == "PALETTE COLOR":
        arr = _pydicom_util("apply_color_lut")(arr, ds)
    elif photometric.startswith("YBR") and not _pydicom_major_at_least(3):
        # pydicom >= 3 returns RGB already; 2.x returns the stored YCbCr.
        arr = _pydicom_util("convert_color_space")(arr, photometric, "RGB")
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ImageLoadError(f"{label}: unsupported DICOM colour layout {tuple(arr.shape)} ({photometric})")
    return _luminance(np.asarray(arr), label, convert_rgb, warnings, photometric)


def _pydicom_major_at_least(major: int) -> bool:
    import pydicom

    try:
        return int(str(pydicom.__version__).split(".")[0]) >= major
    except ValueError:
        return True


def _stored_range(ds: Any, arr: np.ndarray, bits_stored: int) -> tuple[float, float]:
    if arr.dtype.kind == "f":
        return float(arr.min()), float(arr.max())
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    if signed:
        return float(-(1 << (bits_stored - 1))), float((1 << (bits_stored - 1)) - 1)
    return 0.0, float((1 << bits_stored) - 1)


def _dicom_grey(ds: Any, arr: np.ndarray, photometric: str, bits_stored: int, apply_voi: bool, label: str,
                warnings: list[str], meta: dict[str, Any]) -> np.ndarray:
    lo, hi = _stored_range(ds, arr, bits_stored)
    values: np.ndarray = arr
    rescaled = False

    # Modality LUT: a LUT sequence wins over Rescale Slope/Intercept (PS3.3 C.11.1).
    if "ModalityLUTSequence" in ds and len(ds.ModalityLUTSequence) > 0:
        item = ds.ModalityLUTSequence[0]
        values = np.asarray(_pydicom_util("apply_modality_lut")(arr, ds))
        lut_bits = int(item.LUTDescriptor[2])
        lo, hi = 0.0, float((1 << lut_bits) - 1)
        rescaled = True
        meta["rescale"] = {"modality_lut": True}
    else:
        rs, ri = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
        try:
            slope = float(rs) if rs not in (None, "") else 1.0
            intercept = float(ri) if ri not in (None, "") else 0.0
        except (TypeError, ValueError):
            raise ImageLoadError(f"{label}: unreadable Rescale Slope/Intercept {rs!r}/{ri!r}") from None
        if not (math.isfinite(slope) and math.isfinite(intercept)) or slope == 0:
            raise ImageLoadError(f"{label}: invalid Rescale Slope/Intercept {slope!r}/{intercept!r}")
        if slope != 1.0 or intercept != 0.0:
            values = (arr.astype(np.float64) * slope + intercept)
            lo, hi = sorted((lo * slope + intercept, hi * slope + intercept))
            rescaled = True
            meta["rescale"] = {"slope": slope, "intercept": intercept}

    inverse_shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper() == "INVERSE"
    invert = photometric == "MONOCHROME1" or (photometric == "MONOCHROME2" and inverse_shape)
    if photometric == "MONOCHROME2" and inverse_shape:
        warnings.append("MONOCHROME2 image with Presentation LUT Shape INVERSE: inverted so that bone is bright")
    elif photometric not in ("MONOCHROME1", "MONOCHROME2"):
        warnings.append(f"unexpected photometric interpretation {photometric!r} for one sample per pixel; read as "
                        "MONOCHROME2")

    voi = _dicom_voi(ds, values, label, warnings, meta) if apply_voi else None
    meta["voi_applied"] = voi is not None
    meta["inverted"] = invert
    if voi is not None:
        out = 1.0 - voi if invert else voi
        return np.ascontiguousarray(out, dtype=np.float32)

    if invert:
        if values.dtype.kind == "f" or rescaled:
            values = (lo + hi) - values.astype(np.float64)
        else:
            values = _cast_back(np.int64(lo) + np.int64(hi) - values.astype(np.int64), arr.dtype)
    if values.dtype.kind == "f":
        out = np.ascontiguousarray(values, dtype=np.float32)
        if not np.isfinite(out).all():
            raise ImageLoadError(f"{label}: DICOM pixel values contain {int((~np.isfinite(out)).sum())} NaN/inf")
        return out
    if values.dtype.kind == "u" and values.dtype.itemsize <= 2:
        return np.ascontiguousarray(values)
    out, _ = _integer_to_supported(values, label)
    return out


def _dicom_voi(ds: Any, values: np.ndarray, label: str, warnings: list[str],
               meta: dict[str, Any]) -> np.ndarray | None:
    """VOI output in [0, 1] (float64), or None when the dataset defines no usable VOI."""
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence) > 0:
        item = ds.VOILUTSequence[0]
        lut_bits = int(item.LUTDescriptor[2])
        # The LUT is indexed by (integer) modality values.
        idx = values if values.dtype.kind in "iu" else np.rint(values).astype(np.int64)
        out = np.asarray(_pydicom_util("apply_voi")(idx, ds, index=0), dtype=np.float64)
        meta["window"] = {"voi_lut": True, "lut_bits": lut_bits,
                          "explanation": _str_or_none(item.get("LUTExplanation"))}
        return np.clip(out / float((1 << lut_bits) - 1), 0.0, 1.0)
    wc, ww = ds.get("WindowCenter"), ds.get("WindowWidth")
    if wc is None or ww is None:
        return None
    centres = list(wc) if _is_multi(wc) else [wc]
    widths = list(ww) if _is_multi(ww) else [ww]
    try:
        c, w = float(centres[0]), float(widths[0])
    except (TypeError, ValueError, IndexError):
        warnings.append(f"ignored unreadable Window Center/Width {wc!r}/{ww!r}")
        return None
    func = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    if func not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        warnings.append(f"unknown VOI LUT Function {func!r}; using LINEAR")
        func = "LINEAR"
    min_width = 1.0 if func == "LINEAR" else 0.0
    if not (math.isfinite(c) and math.isfinite(w)) or w < min_width or (func != "LINEAR" and w <= 0):
        warnings.append(f"ignored invalid window centre {c!r} / width {w!r} ({func})")
        return None
    meta["window"] = {"center": c, "width": w, "function": func, "count": len(centres)}
    if len(centres) > 1:
        warnings.append(f"DICOM defines {len(centres)} windows; the first (centre {c:g}, width {w:g}) was used")
    x = values.astype(np.float64)
    if func == "LINEAR":
        # PS3.3 C.11.2.1.2.1; the -0.5 / (w - 1) make discrete stored values land on exact output levels.
        if w == 1.0:
            return (x > c - 0.5).astype(np.float64)
        return np.clip((x - (c - 0.5)) / (w - 1.0) + 0.5, 0.0, 1.0)
    if func == "LINEAR_EXACT":
        return np.clip((x - c) / w + 0.5, 0.0, 1.0)
    return 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))


def _is_multi(v: Any) -> bool:
    return isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue"


def _dicom_spacing(ds: Any, dec: _Decoded) -> None:
    for key in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        v = ds.get(key)
        if v is None:
            continue
        try:
            vals = [float(x) for x in (v if _is_multi(v) else [v])]
        except (TypeError, ValueError):
            dec.warnings.append(f"ignored unreadable {key} {v!r}")
            continue
        if len(vals) == 1:
            vals = vals * 2
        if len(vals) != 2:
            dec.warnings.append(f"ignored {key} with {len(vals)} values")
            continue
        before = dec.spacing_source
        _set_spacing(dec, vals[0], vals[1], f"dicom:{key}")
        if dec.spacing_source != before:
            return


def _dicom_side(ds: Any, dec: _Decoded) -> None:
    for key in ("ImageLaterality", "Laterality"):
        v = str(ds.get(key, "") or "").strip().upper()
        if v in ("L", "R"):
            dec.side, dec.side_source = v, f"dicom:{key}"
            return
        if v:
            dec.meta[f"dicom_{key}"] = v  # "B" (both) or "U" (unpaired) say nothing about one hand


__all__ = ["LoadedImage", "load_image", "write_atomic", "atomic_output", "MIN_SIDE", "MAX_SIDE", "MAX_PIXELS",
           "ANISOTROPY_TOLERANCE"]
