"""DICOM through pydicom (the ``dicom`` extra): the first frame, the pixel pipeline of the standard (Modality LUT or
rescale, VOI LUT or window, MONOCHROME1 inversion; see :mod:`ramh_rt.io`), colour to luminance, the pixel spacing
and laterality attributes. No patient-identifying attribute is copied."""
from __future__ import annotations

import io as _io
import math
from pathlib import Path
from typing import Any

import numpy as np

from .decoded import (MAX_PIXELS, Decoded, cast_back, check_size, integer_to_supported, luminance,
                      normalise_dtype, set_spacing)
from ..errors import ImageLoadError

#: File extensions that mark a DICOM file without the 128-byte preamble (old ACR-NEMA style), which has no magic.
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})

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


def decode(src: Path | bytes, label: str, convert_rgb: bool, apply_voi: bool) -> Decoded:
    """Decode the first frame of a DICOM file (a path, opened read-only) or of its bytes.

    The size is checked from Rows/Columns before the pixel data is decoded. ``apply_voi`` applies the VOI LUT or
    window when the file defines one (float32 in [0, 1] then).

    Raises:
        ImageLoadError: pydicom missing (the extra to install named); not a DICOM file; no pixel data; Rows or
            Columns missing; size out of range; pixel data no installed handler decodes (the transfer syntax and
            the packages to install named); invalid rescale; colour with ``convert_rgb=False``; NaN/inf values.
    """
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
    check_size(label, rows, cols)
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
        pixels, _ = normalise_dtype(arr, label, copy=False)
        meta.update(voi_applied=False, inverted=False)
        dec = Decoded(pixels=pixels, label=label, photometric=photometric, bits_stored=bits_stored,
                       warnings=warnings, meta=meta)
    else:
        if arr.ndim != 2:
            raise ImageLoadError(f"{label}: unexpected decoded DICOM shape {tuple(arr.shape)} for a grey-level image")
        pixels = _dicom_grey(ds, arr, photometric, bits_stored, apply_voi, label, warnings, meta)
        dec = Decoded(pixels=pixels, label=label, photometric=photometric,
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
    return luminance(np.asarray(arr), label, convert_rgb, warnings, photometric)


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
            values = cast_back(np.int64(lo) + np.int64(hi) - values.astype(np.int64), arr.dtype)
    if values.dtype.kind == "f":
        out = np.ascontiguousarray(values, dtype=np.float32)
        if not np.isfinite(out).all():
            raise ImageLoadError(f"{label}: DICOM pixel values contain {int((~np.isfinite(out)).sum())} NaN/inf")
        return out
    if values.dtype.kind == "u" and values.dtype.itemsize <= 2:
        return np.ascontiguousarray(values)
    out, _ = integer_to_supported(values, label)
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


def _dicom_spacing(ds: Any, dec: Decoded) -> None:
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
        set_spacing(dec, vals[0], vals[1], f"dicom:{key}")
        if dec.spacing_source != before:
            return


def _dicom_side(ds: Any, dec: Decoded) -> None:
    for key in ("ImageLaterality", "Laterality"):
        v = str(ds.get(key, "") or "").strip().upper()
        if v in ("L", "R"):
            dec.side, dec.side_source = v, f"dicom:{key}"
            return
        if v:
            dec.meta[f"dicom_{key}"] = v  # "B" (both) or "U" (unpaired) say nothing about one hand
