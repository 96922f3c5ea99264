"""ramh_rt.io: decoding of arrays, PNG/JPEG/BMP/TIFF/DICOM, size limits, robustness, atomic output."""
from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ramh_rt.errors import ImageLoadError, RamhError
from ramh_rt.io import MAX_PIXELS, MAX_SIDE, MIN_SIDE, LoadedImage, load_image

from imaging import DX_SOP, ExplicitVRLittleEndian, ImplicitVRLittleEndian, needs_pydicom, pydicom  # noqa: F401
from imaging import crafted_png as _crafted_png
from imaging import crafted_tiff as _crafted_tiff
from imaging import dicom_dataset as _dicom_dataset
from imaging import encapsulated as _encapsulated
from imaging import image12 as _image12
from imaging import png_bytes as _png_bytes
from imaging import tiff_bytes as _tiff_bytes
from imaging import write_dicom as _write_dicom
if pydicom is not None:
    from pydicom.dataset import Dataset  # noqa: F401
    from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid  # noqa: F401


def _file_state(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


# ---------------------------------------------------------------------------------------------------------------------
# arrays
# ---------------------------------------------------------------------------------------------------------------------

def test_uint8_and_uint16_arrays_are_kept(rng):
    for dtype, hi in ((np.uint8, 256), (np.uint16, 65536)):
        a = rng.integers(0, hi, (40, 50), dtype=dtype)
        img = load_image(a)
        assert isinstance(img, LoadedImage)
        assert img.dtype == dtype and img.shape == (40, 50)
        np.testing.assert_array_equal(img.pixels, a)
        assert img.source == "<array>" and img.meta["format"] == "array"
        assert img.photometric == "MONOCHROME2" and img.bits_stored == 8 * np.dtype(dtype).itemsize
        assert img.spacing_mm is None and img.spacing_source is None and img.side is None and img.warnings == ()


def test_caller_array_is_never_modified_nor_shared(rng):
    a = rng.integers(0, 65536, (40, 50), dtype=np.uint16)
    before = a.copy()
    img = load_image(a)
    assert not np.shares_memory(img.pixels, a)
    assert not img.pixels.flags.writeable and img.pixels.flags.c_contiguous
    with pytest.raises(ValueError):
        img.pixels[0, 0] = 1
    a[0, 0] ^= 1  # the caller may keep using its array; the result does not follow
    assert img.pixels[0, 0] == before[0, 0]
    a[0, 0] ^= 1
    np.testing.assert_array_equal(a, before)


def test_singleton_channel_layouts_are_accepted(rng):
    a = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    np.testing.assert_array_equal(load_image(a[:, :, None]).pixels, a)
    np.testing.assert_array_equal(load_image(a[None]).pixels, a)
    np.testing.assert_array_equal(load_image(np.asfortranarray(a)).pixels, a)
    np.testing.assert_array_equal(load_image(a[:, ::-1]).pixels, a[:, ::-1])


def test_rgb_array_converted_to_luminance_like_pillow(rng):
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    img = load_image(rgb)
    assert img.dtype == np.uint8 and img.photometric == "RGB"
    assert any("luminance" in w for w in img.warnings)
    ref = np.asarray(Image.fromarray(rgb).convert("L")).astype(int)
    assert np.abs(img.pixels.astype(int) - ref).max() <= 1  # Pillow rounds its fixed-point sum slightly differently


def test_grey_stored_as_rgb_is_exact(rng):
    g = rng.integers(0, 65536, (40, 50), dtype=np.uint16)
    img = load_image(np.stack([g, g, g, np.full_like(g, 65535)], axis=-1))
    np.testing.assert_array_equal(img.pixels, g)
    assert img.dtype == np.uint16
    assert any("identical channels" in w for w in img.warnings) and any("alpha" in w for w in img.warnings)


def test_rgb_refused_when_convert_rgb_false(rng):
    with pytest.raises(ImageLoadError, match=r"<array>.*RGB.*\(40, 50, 3\).*convert_rgb"):
        load_image(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8), convert_rgb=False)


@pytest.mark.parametrize("shape", [(40,), (3, 40, 50), (40, 50, 2), (40, 50, 5), (2, 40, 50, 1), ()])
def test_bad_shapes_are_refused_with_the_shape(shape):
    with pytest.raises(ImageLoadError, match=r"<array>: unsupported array shape " + str(shape).replace("(", r"\(")
                       .replace(")", r"\)")):
        load_image(np.zeros(shape, np.uint8))


def test_nan_and_inf_are_counted():
    a = np.zeros((40, 50), np.float32)
    a[0, :3] = np.nan
    a[1, :2] = np.inf
    a[2, 0] = -np.inf
    with pytest.raises(ImageLoadError, match="3 NaN and 3 infinite"):
        load_image(a)


def test_float64_beyond_float32_range_is_refused():
    a = np.zeros((40, 50))
    a[0, 0] = 1e300
    with pytest.raises(ImageLoadError, match="1 infinite values after conversion to float32"):
        load_image(a)


def test_integer_conversions_are_lossless_or_refused():
    base = np.arange(40 * 50).reshape(40, 50)
    img = load_image(base.astype(np.int16))
    assert img.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels, base)
    img = load_image((base - 1000).astype(np.int32))
    assert img.dtype == np.float32
    np.testing.assert_array_equal(img.pixels, base - 1000)
    img = load_image((base % 100).astype(np.int8))
    assert img.dtype == np.uint8
    img = load_image(base.astype(np.uint32))
    assert img.dtype == np.uint16
    with pytest.raises(ImageLoadError, match=r"int64 values range over \[0, .*rescale"):
        load_image(base.astype(np.int64) * 10 ** 6)
    img = load_image(base.astype(">u2"))
    assert img.dtype == np.dtype("=u2")
    np.testing.assert_array_equal(img.pixels, base)
    img = load_image(base % 2 == 0)
    assert img.dtype == np.uint8 and set(np.unique(img.pixels)) == {0, 255}
    img = load_image(base.astype(np.float64) / 7)
    assert img.dtype == np.float32
    np.testing.assert_allclose(img.pixels, base / 7, rtol=1e-7)
    with pytest.raises(ImageLoadError, match="unsupported dtype complex"):
        load_image(base.astype(np.complex64))
    with pytest.raises(ImageLoadError, match="unsupported dtype"):
        load_image(np.full((40, 50), "x", dtype=object))


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(MIN_SIDE, 70), cols=st.integers(MIN_SIDE, 70),
       dtype=st.sampled_from([np.uint8, np.uint16, np.float32]), seed=st.integers(0, 2 ** 31))
def test_property_supported_arrays_round_trip(rows, cols, dtype, seed):
    r = np.random.default_rng(seed)
    a = (r.random((rows, cols)) * 1000).astype(dtype)
    img = load_image(a)
    assert img.dtype == dtype and img.shape == (rows, cols)
    np.testing.assert_array_equal(img.pixels, a)


# ---------------------------------------------------------------------------------------------------------------------
# size limits, checked before decoding
# ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (MIN_SIDE - 1, 100), (100, MIN_SIDE - 1)])
def test_too_small_is_refused(shape):
    with pytest.raises(ImageLoadError, match=f"smallest accepted side is {MIN_SIDE}"):
        load_image(np.zeros(shape, np.uint8))


def test_minimum_size_is_accepted():
    assert load_image(np.zeros((MIN_SIDE, MIN_SIDE), np.uint8)).shape == (MIN_SIDE, MIN_SIDE)


def test_too_small_png_file_is_refused(tmp_path):
    p = tmp_path / "tiny.png"
    p.write_bytes(_png_bytes(np.zeros((1, 1), np.uint8)))
    with pytest.raises(ImageLoadError, match=rf"{p}.*1x1 pixels.*smallest accepted side"):
        load_image(p)


@pytest.mark.parametrize("make,name", [(_crafted_png, "huge.png"), (_crafted_tiff, "huge.tif")])
@pytest.mark.parametrize("width,height,what", [(100_000, 100_000, "largest accepted side"),
                                               (MAX_SIDE, MAX_SIDE, f"at most {MAX_PIXELS}")])
def test_huge_declared_size_is_refused_without_allocating(tmp_path, make, name, width, height, what):
    p = tmp_path / name
    p.write_bytes(make(width, height))
    assert p.stat().st_size < 1000
    tracemalloc.start()
    try:
        with pytest.raises(ImageLoadError, match=what):
            load_image(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2 ** 20, f"peak traced allocation {peak} bytes"


@needs_pydicom
def test_huge_dicom_header_is_refused_before_decoding():
    ds = _dicom_dataset(np.zeros((40, 40), np.uint16))
    ds.Rows, ds.Columns = 60000, 60000  # pixel data stays 3 KB
    tracemalloc.start()
    try:
        with pytest.raises(ImageLoadError, match="60000x60000.*largest accepted side"):
            load_image(_write_dicom(ds))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2 ** 20


# ---------------------------------------------------------------------------------------------------------------------
# PNG / JPEG / BMP / TIFF
# ---------------------------------------------------------------------------------------------------------------------

def test_png_8_and_16_bit_keep_their_values(tmp_path, rng):
    for dtype, hi in ((np.uint8, 256), (np.uint16, 65536)):
        a = rng.integers(0, hi, (48, 64), dtype=dtype)
        p = tmp_path / f"img{dtype.__name__}.png"
        p.write_bytes(_png_bytes(a))
        img = load_image(p)
        assert img.dtype == dtype and img.meta["format"] == "png" and img.source == str(p)
        np.testing.assert_array_equal(img.pixels, a)
        assert img.bits_stored == 8 * np.dtype(dtype).itemsize


def test_png_phys_gives_spacing(tmp_path, rng):
    a = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    img = load_image(_png_bytes(a, dpi=(254, 254)))
    assert img.spacing_mm == pytest.approx(0.1) and img.spacing_source == "png:pHYs"
    img = load_image(_png_bytes(a, dpi=(72, 72)))
    assert img.spacing_mm == pytest.approx(25.4 / 72, rel=1e-3)  # pHYs holds whole pixels per metre
    assert any("software default" in w for w in img.warnings)
    assert load_image(_png_bytes(a)).spacing_mm is None


def test_rgb_png_is_converted(rng):
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    img = load_image(_png_bytes(rgb))
    assert img.photometric == "RGB" and img.dtype == np.uint8
    with pytest.raises(ImageLoadError, match="convert_rgb"):
        load_image(_png_bytes(rgb), convert_rgb=False)


def test_palette_png_with_grey_palette_is_exact(rng):
    a = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    im = Image.fromarray(a).convert("P")  # Pillow keeps a grey palette for L -> P
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    img = load_image(buf.getvalue())
    np.testing.assert_array_equal(img.pixels, np.asarray(im.convert("L")))
    assert img.photometric == "PALETTE COLOR"


def test_jpeg_and_bmp(tmp_path, rng):
    a = (np.add.outer(np.arange(48), np.arange(64)) * 2).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=95)
    img = load_image(buf.getvalue())
    assert img.meta["format"] == "jpeg" and img.dtype == np.uint8
    assert np.abs(img.pixels.astype(int) - a).mean() < 2  # lossy, but the same picture
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="BMP")
    img = load_image(buf.getvalue())
    assert img.meta["format"] == "bmp"
    np.testing.assert_array_equal(img.pixels, a)


def test_jpeg_exif_orientation_is_applied(rng):
    a = np.zeros((40, 64), np.uint8)
    a[:, :8] = 255  # a bright band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display upright
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", exif=exif, quality=95)
    img = load_image(buf.getvalue())
    assert img.shape == (64, 40)
    assert img.pixels[:8].mean() > 200  # the left band is now at the top
    assert any("EXIF orientation 6" in w for w in img.warnings)


def test_tiff_16_bit_with_resolution(rng):
    a = _image12(rng)
    img = load_image(_tiff_bytes(a, resolution=(100, 100), resolutionunit="CENTIMETER"))
    assert img.dtype == np.uint16 and img.meta["format"] == "tiff"
    np.testing.assert_array_equal(img.pixels, a)
    assert img.spacing_mm == pytest.approx(0.1) and img.spacing_source == "tiff:resolution"
    img = load_image(_tiff_bytes(a, resolution=(254, 200), resolutionunit="INCH"))
    assert img.spacing_mm == pytest.approx(0.5 * (0.1 + 0.127))
    assert any("anisotropic" in w for w in img.warnings)
    assert load_image(_tiff_bytes(a)).spacing_mm is None  # tifffile's default: 1/1 with no unit


def test_tiff_multipage_uses_first_page_with_warning(rng):
    stack = rng.integers(0, 65536, (3, 40, 50), dtype=np.uint16)
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tw:
        for page in stack:
            tw.write(page)
    img = load_image(buf.getvalue())
    np.testing.assert_array_equal(img.pixels, stack[0])
    assert img.meta["pages"] == 3 and any("3 pages" in w for w in img.warnings)


def test_tiff_miniswhite_rgb_and_float(rng):
    a = _image12(rng)
    img = load_image(_tiff_bytes((65535 - a).astype(np.uint16), photometric="miniswhite"))
    np.testing.assert_array_equal(img.pixels, a)
    assert img.photometric == "MONOCHROME1" and img.meta["inverted"]
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    img = load_image(_tiff_bytes(rgb, photometric="rgb"))
    assert img.photometric == "RGB" and img.dtype == np.uint8
    planar = load_image(_tiff_bytes(np.ascontiguousarray(rgb.transpose(2, 0, 1)), photometric="rgb",
                                    planarconfig="separate"))
    np.testing.assert_array_equal(planar.pixels, img.pixels)
    f = rng.random((40, 50), dtype=np.float32)
    img = load_image(_tiff_bytes(f))
    assert img.dtype == np.float32 and img.bits_stored is None
    np.testing.assert_array_equal(img.pixels, f)


# ---------------------------------------------------------------------------------------------------------------------
# DICOM
# ---------------------------------------------------------------------------------------------------------------------

@needs_pydicom
def test_dicom_without_voi_or_rescale_is_the_stored_values(rng):
    a = _image12(rng)
    img = load_image(_write_dicom(_dicom_dataset(a, bits=12)))
    assert img.dtype == np.uint16 and img.bits_stored == 12 and img.photometric == "MONOCHROME2"
    np.testing.assert_array_equal(img.pixels, a)
    assert img.meta["format"] == "dicom" and not img.meta["voi_applied"] and not img.meta["inverted"]
    a8 = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    img = load_image(_write_dicom(_dicom_dataset(a8, "MONOCHROME1")))
    assert img.dtype == np.uint8
    np.testing.assert_array_equal(img.pixels, 255 - a8)


@needs_pydicom
def test_same_image_as_png_tiff_and_both_dicom_encodings_decodes_identically(tmp_path, rng):
    a = _image12(rng)
    (tmp_path / "h.png").write_bytes(_png_bytes(a))
    (tmp_path / "h.tif").write_bytes(_tiff_bytes(a))
    _write_dicom(_dicom_dataset(a, "MONOCHROME2", bits=12), tmp_path / "m2.dcm")
    _write_dicom(_dicom_dataset((4095 - a).astype(np.uint16), "MONOCHROME1", bits=12), tmp_path / "m1.dcm")
    decoded = [load_image(tmp_path / n).pixels for n in ("h.png", "h.tif", "m2.dcm", "m1.dcm")]
    for d in decoded:
        assert d.dtype == np.uint16
        np.testing.assert_array_equal(d, a)


@pytest.mark.parametrize("func,mirror", [("LINEAR", 4096), ("LINEAR_EXACT", 4095), ("SIGMOID", 4095)])
@needs_pydicom
def test_window_monochrome1_and_2_identical(rng, func, mirror):
    a = _image12(rng)
    c, w = 1800.0, 1500.0
    m2 = load_image(_write_dicom(_dicom_dataset(a, bits=12, WindowCenter=c, WindowWidth=w, VOILUTFunction=func)))
    m1 = load_image(_write_dicom(_dicom_dataset((4095 - a).astype(np.uint16), "MONOCHROME1", bits=12,
                                                WindowCenter=mirror - c, WindowWidth=w, VOILUTFunction=func)))
    assert m2.dtype == m1.dtype == np.float32 and m2.meta["voi_applied"]
    assert 0.0 <= m2.pixels.min() and m2.pixels.max() <= 1.0
    np.testing.assert_allclose(m1.pixels, m2.pixels, atol=1e-6)
    x = a.astype(np.float64)
    expected = {"LINEAR": np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1),
                "LINEAR_EXACT": np.clip((x - c) / w + 0.5, 0, 1),
                "SIGMOID": 1 / (1 + np.exp(-4 * (x - c) / w))}[func]
    np.testing.assert_allclose(m2.pixels, expected, atol=1e-6)


@needs_pydicom
def test_window_agrees_with_pydicom(rng):
    a = _image12(rng)
    ds = _dicom_dataset(a, bits=12, WindowCenter=1800, WindowWidth=1500)
    img = load_image(_write_dicom(ds))
    try:
        from pydicom.pixels import apply_windowing
    except ImportError:
        from pydicom.pixel_data_handlers.util import apply_windowing
    ref = apply_windowing(a.astype(np.float64), ds)  # pydicom maps onto the stored range [0, 4095]
    np.testing.assert_allclose(img.pixels, ref / 4095.0, atol=1e-6)


@needs_pydicom
def test_multiple_windows_use_the_first_and_apply_voi_false_skips(rng):
    a = _image12(rng)
    data = _write_dicom(_dicom_dataset(a, bits=12, WindowCenter=[1800, 500], WindowWidth=[1500, 200]))
    img = load_image(data)
    assert img.meta["window"]["center"] == 1800 and any("2 windows" in w for w in img.warnings)
    raw = load_image(data, apply_voi=False)
    assert raw.dtype == np.uint16 and not raw.meta["voi_applied"]
    np.testing.assert_array_equal(raw.pixels, a)


@needs_pydicom
def test_voi_lut_sequence(rng):
    a = rng.integers(0, 256, (40, 50), dtype=np.uint16)
    ds = _dicom_dataset(a, bits=8)
    item = Dataset()
    item.LUTDescriptor = [256, 0, 16]
    lut = (np.arange(256, dtype=np.float64) ** 2 / 255 ** 2 * 65535).astype(np.uint16)
    item.add_new(0x00283006, "OW", lut.tobytes())  # LUT Data
    ds.VOILUTSequence = [item]
    img = load_image(_write_dicom(ds))
    assert img.dtype == np.float32 and img.meta["window"]["voi_lut"]
    np.testing.assert_allclose(img.pixels, lut[a] / 65535.0, atol=1e-6)


@needs_pydicom
def test_rescale_slope_intercept_and_signed_values(rng):
    a = _image12(rng)
    img = load_image(_write_dicom(_dicom_dataset(a, bits=12, RescaleSlope=2, RescaleIntercept=-100)))
    assert img.dtype == np.float32 and img.meta["rescale"] == {"slope": 2.0, "intercept": -100.0}
    np.testing.assert_array_equal(img.pixels, a.astype(np.float64) * 2 - 100)
    m1 = load_image(_write_dicom(_dicom_dataset((4095 - a).astype(np.uint16), "MONOCHROME1", bits=12,
                                                RescaleSlope=2, RescaleIntercept=-100)))
    np.testing.assert_array_equal(m1.pixels, img.pixels)
    s = (a.astype(np.int16) - 2048)
    img = load_image(_write_dicom(_dicom_dataset(s, bits=12, signed=True)))
    assert img.dtype == np.float32
    np.testing.assert_array_equal(img.pixels, s)
    img = load_image(_write_dicom(_dicom_dataset(a.astype(np.int16), bits=16, signed=True)))
    assert img.dtype == np.uint16  # signed storage of non-negative values: converted losslessly
    np.testing.assert_array_equal(img.pixels, a)


@needs_pydicom
def test_dicom_spacing_and_side(tmp_path, rng):
    a = _image12(rng)
    img = load_image(_write_dicom(_dicom_dataset(a, PixelSpacing=[0.1, 0.1], ImagerPixelSpacing=[0.2, 0.2],
                                                 ImageLaterality="R")))
    assert (img.spacing_mm, img.spacing_source) == (0.1, "dicom:PixelSpacing")
    assert (img.side, img.side_source) == ("R", "dicom:ImageLaterality")
    img = load_image(_write_dicom(_dicom_dataset(a, ImagerPixelSpacing=[0.15, 0.16], Laterality="L")))
    assert img.spacing_source == "dicom:ImagerPixelSpacing" and img.spacing_mm == pytest.approx(0.155)
    assert any("anisotropic" in w for w in img.warnings)
    assert (img.side, img.side_source) == ("L", "dicom:Laterality")
    img = load_image(_write_dicom(_dicom_dataset(a, PixelSpacing=[0.1, 0.1005])))
    assert not any("anisotropic" in w for w in img.warnings)  # 0.5 % is within tolerance
    p = tmp_path / "patient7_L.dcm"
    _write_dicom(_dicom_dataset(a, ImageLaterality="R"), p)
    img = load_image(p)
    assert img.side == "R" and any("file name says side L" in w for w in img.warnings)
    p = tmp_path / "patient7_L"  # extensionless, recognised by its DICM magic
    _write_dicom(_dicom_dataset(a), p)
    img = load_image(p)
    assert img.meta["format"] == "dicom" and (img.side, img.side_source) == ("L", "filename")


@needs_pydicom
def test_dicom_without_preamble_by_extension(tmp_path, rng):
    a = _image12(rng)
    p = tmp_path / "old.dcm"
    _write_dicom(_dicom_dataset(a, ts=ImplicitVRLittleEndian), p, preamble=False)
    assert p.read_bytes()[128:132] != b"DICM"
    np.testing.assert_array_equal(load_image(p).pixels, a)


@needs_pydicom
def test_dicom_rle_lossless(rng):
    a = _image12(rng)
    ds = _dicom_dataset(a, bits=12)
    ds.compress(RLELossless)
    img = load_image(_write_dicom(ds))
    assert img.meta["transfer_syntax"] == RLELossless
    np.testing.assert_array_equal(img.pixels, a)


@needs_pydicom
def test_dicom_jpeg2000_lossless_through_an_installed_handler(rng):
    from pydicom.pixels import get_decoder

    if not get_decoder(JPEG2000Lossless).is_available:
        pytest.skip("no JPEG 2000 pixel-data handler installed")
    a = _image12(rng)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG2000", no_jp2=True)  # Pillow's default is the reversible wavelet
    ds = _encapsulated(_dicom_dataset(a, bits=16), [buf.getvalue()], JPEG2000Lossless)
    np.testing.assert_array_equal(load_image(_write_dicom(ds)).pixels, a)


@needs_pydicom
def test_dicom_transfer_syntax_without_handler_names_it(rng):
    from pydicom.pixels import get_decoder

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS handler is installed here")
    ds = _encapsulated(_dicom_dataset(_image12(rng), bits=12), [b"\xff\xd8\xff\xf7garbage\xff\xd9"], JPEGLSLossless)
    with pytest.raises(ImageLoadError, match=r"<bytes>: cannot decode DICOM pixel data with transfer syntax "
                                             r"JPEG-LS Lossless.*pip install"):
        load_image(_write_dicom(ds))


@needs_pydicom
def test_dicom_without_pixel_data(rng):
    ds = _dicom_dataset(_image12(rng))
    del ds.PixelData
    with pytest.raises(ImageLoadError, match="DICOM file has no pixel data"):
        load_image(_write_dicom(ds))


@needs_pydicom
def test_dicom_multiframe_uses_first_frame(rng):
    frames = rng.integers(0, 4096, (3, 40, 50), dtype=np.uint16)
    img = load_image(_write_dicom(_dicom_dataset(frames, bits=12)))
    np.testing.assert_array_equal(img.pixels, frames[0])
    assert img.meta["frames"] == 3 and any("3 frames" in w for w in img.warnings)


@needs_pydicom
def test_dicom_rgb_is_converted(rng):
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    img = load_image(_write_dicom(_dicom_dataset(rgb, "RGB")))
    assert img.photometric == "RGB" and img.dtype == np.uint8
    with pytest.raises(ImageLoadError, match="convert_rgb"):
        load_image(_write_dicom(_dicom_dataset(rgb, "RGB")), convert_rgb=False)


@needs_pydicom
def test_dicom_needs_pydicom(monkeypatch, tmp_path, rng):
    p = tmp_path / "x.dcm"
    _write_dicom(_dicom_dataset(_image12(rng)), p)
    monkeypatch.setitem(sys.modules, "pydicom", None)  # import pydicom now raises ImportError
    with pytest.raises(ImageLoadError, match=r"pip install ramh-rt\[dicom\]"):
        load_image(p)


# ---------------------------------------------------------------------------------------------------------------------
# robustness
# ---------------------------------------------------------------------------------------------------------------------

def test_missing_empty_directory_and_non_image_files(tmp_path):
    with pytest.raises(ImageLoadError, match="nope.png: file not found"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty.png: the file is empty"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageLoadError, match="is a directory"):
        load_image(tmp_path)
    (tmp_path / "notes.png").write_text("this is not an image\n")
    with pytest.raises(ImageLoadError, match=r"notes.png: not a supported image format.*this is not"):
        load_image(tmp_path / "notes.png")
    (tmp_path / "notes.dcm").write_text("this is not a DICOM file either\n")
    with pytest.raises(ImageLoadError, match=r"notes.dcm: (not a DICOM file|reading DICOM files needs pydicom)"):
        load_image(tmp_path / "notes.dcm")
    with pytest.raises(ImageLoadError, match="<bytes>: no data"):
        load_image(b"")
    with pytest.raises(TypeError, match="source must be"):
        load_image(12345)


@pytest.mark.parametrize("fmt", ["png", "tiff", pytest.param("dicom", marks=needs_pydicom), "jpeg"])
def test_truncated_and_corrupt_files(tmp_path, rng, fmt):
    a = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    if fmt == "png":
        data = _png_bytes(a)
    elif fmt == "tiff":
        data = _tiff_bytes(a, compression="zlib")
    elif fmt == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG")
        data = buf.getvalue()
    else:
        data = _write_dicom(_dicom_dataset(a))
    p = tmp_path / f"cut.{fmt}"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=str(p)):
        load_image(p)
    corrupt = bytearray(data)
    corrupt[len(data) // 3: len(data) // 3 + 64] = b"\xff" * 64
    p2 = tmp_path / f"corrupt.{fmt}"
    p2.write_bytes(bytes(corrupt))
    try:
        img = load_image(p2)
    except ImageLoadError as e:
        assert str(p2) in str(e)
    else:  # some formats carry no checksum over the pixels: then the image must still be well-formed
        assert img.shape == (64, 64)


def _fuzz_seeds() -> dict[str, bytes]:
    """One small valid file per decoder path: 8/16-bit PNG, zlib/raw 16-bit TIFF, JPEG, BMP, DICOM (MONOCHROME1
    and 2, RLE)."""
    rng = np.random.default_rng(7)
    a8 = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    a16 = _image12(rng, (40, 48))
    out = {"png8": _png_bytes(a8), "png16": _png_bytes(a16), "tiff-zlib": _tiff_bytes(a16, compression="zlib"),
           "tiff-raw": _tiff_bytes(a16)}
    for fmt in ("JPEG", "BMP"):
        buf = io.BytesIO()
        Image.fromarray(a8).save(buf, format=fmt)
        out[fmt.lower()] = buf.getvalue()
    if pydicom is not None:
        out["dicom-m2"] = _write_dicom(_dicom_dataset(a16, bits=12))
        out["dicom-m1"] = _write_dicom(_dicom_dataset(a16, photometric="MONOCHROME1", bits=12))
        ds = _dicom_dataset(a16, bits=12)
        ds.compress(RLELossless)
        out["dicom-rle"] = _write_dicom(ds)
    return out


_FUZZ_SEEDS = _fuzz_seeds()


@pytest.mark.filterwarnings(r"ignore::UserWarning:pydicom\..*")  # pydicom's own notes on the damaged files
@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(_FUZZ_SEEDS)), cut=st.floats(0.0, 1.0),
       edits=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), max_size=12))
def test_property_mutated_files_decode_or_raise_image_load_error(kind, cut, edits):
    """Random byte overwrites and truncations of valid files: the decoder either returns a well-formed image or raises
    ImageLoadError naming the source, never another exception, whatever the header or pixel data now claims."""
    data = bytearray(_FUZZ_SEEDS[kind])
    for where, value in edits:
        data[int(where * len(data))] = value
    if cut < 0.5:  # half the examples are truncated too, anywhere from nothing left to all but the last byte
        data = data[: int(2 * cut * (len(data) - 1))]
    try:
        img = load_image(bytes(data))
    except ImageLoadError as e:
        assert "<bytes>" in str(e)
        return
    assert img.pixels.ndim == 2 and MIN_SIDE <= min(img.pixels.shape)
    assert img.pixels.dtype in (np.uint8, np.uint16, np.float32)
    if img.pixels.dtype == np.float32:
        assert np.isfinite(img.pixels).all()


def test_the_file_is_never_modified(tmp_path, rng):
    paths = []
    a = _image12(rng)
    files = [("a.png", _png_bytes(a)), ("a.tif", _tiff_bytes(a))]
    if pydicom is not None:
        files.append(("a.dcm", _write_dicom(_dicom_dataset(a, bits=12))))
    for name, data in files:
        p = tmp_path / name
        p.write_bytes(data)
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
        paths.append(p)
    for p in paths:
        before = _file_state(p)
        load_image(p)
        load_image(str(p))
        assert _file_state(p) == before
        assert stat.S_IMODE(p.stat().st_mode) & stat.S_IWUSR  # still writable by its owner: we changed nothing


@needs_pydicom
def test_user_spacing_and_side_override(rng):
    data = _write_dicom(_dicom_dataset(_image12(rng), PixelSpacing=[0.1, 0.1], ImageLaterality="L"))
    img = load_image(data, spacing_mm=0.2, side="right")
    assert (img.spacing_mm, img.spacing_source, img.side, img.side_source) == (0.2, "user", "R", "user")
    assert img.meta["file_spacing_mm"] == 0.1
    assert any("overrides" in w for w in img.warnings)
    for bad in (0, -1, float("nan"), "abc"):
        with pytest.raises(ValueError, match="spacing_mm"):
            load_image(np.zeros((40, 40), np.uint8), spacing_mm=bad)
    with pytest.raises(ValueError, match="side"):
        load_image(np.zeros((40, 40), np.uint8), side="up")


def test_errors_are_ramh_errors_and_value_errors():
    with pytest.raises(RamhError):
        load_image(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError):
        load_image(np.zeros((2, 2), np.uint8))


def test_public_names_are_importable_from_the_package():
    # ramh_rt.io is a package of one module per format; callers import everything from ramh_rt.io itself, and
    # `import *` gives exactly the public names (every name in __all__ exists).
    import ramh_rt.io as rio

    namespace: dict = {}
    exec("from ramh_rt.io import *", namespace)
    assert set(rio.__all__) <= set(namespace)
    for name in ("LoadedImage", "load_image", "with_overrides", "check_spacing", "ImageSource", "MIN_SIDE",
                 "MAX_SIDE", "MAX_PIXELS", "ANISOTROPY_TOLERANCE"):
        assert name in rio.__all__ and getattr(rio, name) is namespace[name]
    assert (rio.MIN_SIDE, rio.MAX_SIDE, rio.MAX_PIXELS) == (32, 16384, 200_000_000)
    assert rio.with_overrides(load_image(np.zeros((40, 40), np.uint8)), side="L").side_source == "user"
