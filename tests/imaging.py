"""Image and DICOM file builders shared by the io and pipeline tests."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

try:  # the `dicom` extra; only the DICOM tests need it
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
except ImportError:
    pydicom = None
    ExplicitVRLittleEndian = ImplicitVRLittleEndian = None

needs_pydicom = pytest.mark.skipif(pydicom is None, reason="pydicom is not installed (pip install ramh-rt[dicom])")

DX_SOP = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


# ---------------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------------

def image12(rng, shape=(64, 80)) -> np.ndarray:
    return rng.integers(0, 4096, shape, dtype=np.uint16)


def dicom_dataset(arr: np.ndarray, photometric: str = "MONOCHROME2", bits: int | None = None,
                  ts=None, signed: bool = False, **attrs) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_SOP
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ts or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = DX_SOP
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    if arr.ndim == 3 and arr.shape[-1] == 3:
        ds.Rows, ds.Columns = arr.shape[:2]
        ds.SamplesPerPixel = 3
        ds.PlanarConfiguration = 0
    else:
        ds.Rows, ds.Columns = arr.shape[-2:]
        ds.SamplesPerPixel = 1
    if arr.ndim == 3 and arr.shape[-1] != 3:
        ds.NumberOfFrames = arr.shape[0]
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = bits or arr.dtype.itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = arr.tobytes()
    for k, v in attrs.items():
        setattr(ds, k, v)
    return ds


def write_dicom(ds: Dataset, path=None, preamble: bool = True) -> bytes:
    buf = io.BytesIO()
    if preamble:
        try:
            pydicom.dcmwrite(buf, ds, enforce_file_format=True)  # pydicom >= 3
        except TypeError:
            pydicom.dcmwrite(buf, ds, write_like_original=False)  # pydicom 2.x
    else:
        # No preamble, no file meta: what old ACR-NEMA-style files look like; implicit VR little endian.
        bare = Dataset()
        bare.update({k: ds[k] for k in ds.keys()})
        try:
            pydicom.dcmwrite(buf, bare, implicit_vr=True, little_endian=True)  # pydicom >= 3
        except TypeError:
            bare.is_little_endian, bare.is_implicit_VR = True, True
            pydicom.dcmwrite(buf, bare)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def encapsulated(ds: Dataset, frames: list[bytes], ts) -> Dataset:
    ds.file_meta.TransferSyntaxUID = ts
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def png_bytes(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **kw)
    return buf.getvalue()


def tiff_bytes(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def crafted_png(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG header declaring width x height 8-bit grey pixels (pixel data absent)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
            + png_chunk(b"IEND", b""))


def crafted_tiff(width: int, height: int) -> bytes:
    """A tiny little-endian TIFF whose first IFD declares width x height uint8 pixels in one 16-byte strip."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 16)]
    ifd_offset = 8 + 16
    out = b"II*\x00" + struct.pack("<I", ifd_offset) + b"\x00" * 16
    out += struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        packed = struct.pack("<H", value) + b"\x00\x00" if typ == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, typ, count) + packed
    return out + struct.pack("<I", 0)
