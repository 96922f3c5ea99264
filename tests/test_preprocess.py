"""CPU tests of ramh_rt.ops.preprocess: letterbox geometry, percentile windows, resampling against torch / OpenCV,
normalisation, float16 rounding, batches, the Letterbox transform, and every documented error."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ramh_rt import _core
from ramh_rt.ops import Letterbox, preprocess

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

F32 = np.float32


# ---- independent references ----------------------------------------------------------------------------------------
def rank(p: float, n: int) -> int:
    """k(p) = max(1, ceil(p * n / 100)), clamped to n (the documented definition)."""
    return int(min(n, max(1, math.ceil(p * n / 100.0))))


def int_window_ref(img: np.ndarray, plo: float, phi: float) -> tuple[float, float]:
    s = np.sort(img.ravel())
    return float(s[rank(plo, s.size) - 1]), float(s[rank(phi, s.size) - 1])


def float_window_ref(img: np.ndarray, plo: float, phi: float) -> tuple[float, float]:
    """4096 equal bins over [min, max] (float64 binning), lower edge of p_lo's bin, upper edge of p_hi's bin."""
    f = img.astype(F32).ravel()
    mn, mx = f.min(), f.max()
    if mn == mx:
        return float(mn), float(mn)
    scale = 4096.0 / (float(mx) - float(mn))
    b = np.floor((f.astype(np.float64) - float(mn)) * scale).clip(0, 4095).astype(np.int64)
    cum = np.cumsum(np.bincount(b, minlength=4096))
    blo = int(np.searchsorted(cum, rank(plo, f.size)))
    bhi = int(np.searchsorted(cum, rank(phi, f.size)))

    def edge(e: int) -> float:
        if e <= 0:
            return float(mn)
        if e >= 4096:
            return float(mx)
        # fma(width, e / 4096, mn) in double: exact rational arithmetic, rounded once to double, then to float32.
        width = float(mx) - float(mn)
        return float(F32(float(Fraction(width) * Fraction(e, 4096) + Fraction(float(mn)))))

    return edge(blo), edge(bhi + 1)


def window_ref(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """v' = clip((v - lo) * (1 / (hi - lo)), 0, 1) in float32, or the step v > lo when hi == lo."""
    v = img.astype(F32)
    lo32, hi32 = F32(lo), F32(hi)
    if not hi32 > lo32:
        return (v > lo32).astype(F32)
    inv = F32(1.0) / (hi32 - lo32)
    return np.clip((v - lo32) * inv, F32(0), F32(1))


def resize_torch(f: np.ndarray, hw: tuple[int, int], antialias: bool) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(f, dtype=F32))[None, None]
    out = torch.nn.functional.interpolate(t, size=hw, mode="bilinear", antialias=antialias, align_corners=False)
    return out[0, 0].numpy()


def tent_matrix(n_in: int, n_out: int, antialias: bool) -> np.ndarray:
    """Resampling matrix of the documented filter, in float64: tent of radius r = max(s, 1) (or 1), normalised."""
    s = n_in / n_out
    r = max(s, 1.0) if antialias else 1.0
    c = (np.arange(n_out) + 0.5)[:, None] * s
    w = np.clip(1.0 - np.abs(np.arange(n_in)[None, :] + 0.5 - c) / r, 0.0, None)
    return w / w.sum(axis=1, keepdims=True)


def resize_ref(f: np.ndarray, hw: tuple[int, int], antialias: bool) -> np.ndarray:
    return tent_matrix(f.shape[0], hw[0], antialias) @ f.astype(np.float64) @ tent_matrix(f.shape[1], hw[1],
                                                                                          antialias).T


def inner(x: np.ndarray, lb: Letterbox) -> np.ndarray:
    """The resized image inside the canvas of a 4-D output."""
    nh, nw = lb.resized_hw
    return x[..., lb.pad_y:lb.pad_y + nh, lb.pad_x:lb.pad_x + nw]


def smooth_u16(rng, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    base = 2000 + 1500 * np.sin(xx / 9.0) * np.cos(yy / 7.0) + rng.normal(0, 200, (h, w))
    return base.clip(0, 65535).astype(np.uint16)


# ---- letterbox geometry ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("in_hw,out_hw,resized,pad", [
    ((2048, 2560), (512, 640), (512, 640), (0, 0)),
    ((1000, 500), (512, 512), (512, 256), (0, 128)),
    ((101, 200), (50, 100), (50, 99), (0, 0)),     # height-limited; 200 * 50 / 101 = 99.0099 -> 99
    ((2, 4), (3, 3), (2, 3), (0, 0)),              # 2 * 3 / 4 = 1.5 rounds half up to 2
    ((3, 1000), (64, 64), (1, 64), (31, 0)),       # 0.192 rounds to 0, clamped to 1 pixel
    ((37, 53), (100, 120), (84, 120), (8, 0)),     # upscaling
])
def test_letterbox_geometry_examples(in_hw, out_hw, resized, pad):
    g = _core.letterbox_geometry(*in_hw, *out_hw)
    assert tuple(g["resized_hw"]) == resized
    assert (g["pad_y"], g["pad_x"]) == pad
    assert g["scale_x"] == resized[1] / in_hw[1] and g["scale_y"] == resized[0] / in_hw[0]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 2000), st.integers(1, 2000))
def test_letterbox_geometry_properties(h, w, oh, ow):
    g = _core.letterbox_geometry(h, w, oh, ow)
    nh, nw = g["resized_hw"]
    s = min(oh / h, ow / w)
    assert 1 <= nh <= oh and 1 <= nw <= ow
    assert nh == oh or nw == ow                       # the limiting side fills the canvas
    assert abs(nh - h * s) <= 0.5 + 1e-9 or nh == 1   # each side is round(side * s), at least 1
    assert abs(nw - w * s) <= 0.5 + 1e-9 or nw == 1
    assert g["pad_y"] == (oh - nh) // 2 and g["pad_x"] == (ow - nw) // 2


# ---- windows -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,hi", [(np.uint8, 256), (np.uint16, 65536), (np.uint16, 4096)])
@pytest.mark.parametrize("pct", [(0.5, 99.5), (0.0, 100.0), (3.7, 50.0), (10.0, 90.0)])
def test_integer_percentiles_are_exact(rng, dtype, hi, pct):
    img = rng.integers(0, hi, (37, 53), dtype=dtype)
    _, lb = preprocess(img, (16, 16), percentiles=pct)
    assert lb.window == int_window_ref(img, *pct)
    # the documented definition is numpy's inverted_cdf (n * p / 100 is never an integer here)
    assert lb.window == tuple(float(v) for v in np.percentile(img, pct, method="inverted_cdf"))


def test_percentiles_on_a_skewed_image(rng):
    img = np.zeros((64, 64), np.uint16)   # 90 % background at 0, a bright object: the low percentile is 0
    img[20:30, 20:45] = rng.integers(1000, 3000, (10, 25))
    img[0, :] = rng.integers(0, 60000, 64)
    for pct in [(0.5, 99.5), (5, 95), (89.9, 99.9)]:
        _, lb = preprocess(img, (8, 8), percentiles=pct)
        assert lb.window == int_window_ref(img, *pct)


@pytest.mark.parametrize("pct", [(0.5, 99.5), (2.0, 98.0), (0.0, 100.0)])
def test_float_percentiles_follow_the_4096_bin_scheme(rng, pct):
    img = rng.normal(100.0, 30.0, (61, 47)).astype(F32)
    _, lb = preprocess(img, (16, 16), percentiles=pct)
    assert lb.window == float_window_ref(img, *pct)
    lo, hi = lb.window
    exact_lo, exact_hi = np.percentile(img, pct, method="inverted_cdf")
    assert lo <= exact_lo and exact_hi <= hi                 # the window holds both percentiles
    bin_width = (float(img.max()) - float(img.min())) / 4096
    assert exact_lo - lo <= bin_width * 1.0001 and hi - exact_hi <= bin_width * 1.0001


def test_float_full_range_window_is_min_max(rng):
    img = rng.uniform(-5, 7, (20, 30)).astype(F32)
    _, lb = preprocess(img, (10, 10), percentiles=(0, 100))
    assert lb.window == (float(img.min()), float(img.max()))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_constant_image_gives_black(dtype):
    img = np.full((40, 50), 7, dtype=dtype)
    x, lb = preprocess(img, (32, 32), mean=0.25, std=0.5)
    assert lb.window == (7.0, 7.0)
    assert np.all(x == F32((0 - 0.25) / 0.5))


def test_degenerate_window_is_a_step(rng):
    # 99.6 % of the pixels are 10: both percentiles are 10, so v' = (v > 10)
    img = np.full((50, 50), 10, np.uint16)
    img[25, 25] = 500
    img[3, 40] = 2
    x, lb = preprocess(img, (50, 50), antialias=False)
    assert lb.window == (10.0, 10.0)
    np.testing.assert_array_equal(x[0, 0], (img > 10).astype(F32))


def test_given_window_broadcasts_and_per_image(rng):
    imgs = rng.integers(0, 4096, (3, 30, 40), dtype=np.uint16)
    x1, lbs = preprocess(imgs, (15, 20), window=(100, 3000))
    assert [lb.window for lb in lbs] == [(100.0, 3000.0)] * 3
    wins = np.array([[0, 4095], [100, 200], [50, 3000]], dtype=np.float64)
    x2, lbs2 = preprocess(imgs, (15, 20), window=wins)
    assert [lb.window for lb in lbs2] == [tuple(w) for w in wins]
    for i in range(3):
        ref = resize_torch(window_ref(imgs[i], *wins[i]), (15, 20), True)
        np.testing.assert_allclose(x2[i, 0], ref, atol=2e-6)
        np.testing.assert_array_equal(x1[i], preprocess(imgs[i], (15, 20), window=(100, 3000))[0][0])


# ---- resampling ------------------------------------------------------------------------------------------------------
SIZES = [((200, 300), (50, 75)), ((200, 300), (64, 64)), ((513, 771), (128, 160)), ((37, 53), (100, 120)),
         ((64, 64), (16, 16)), ((90, 70), (33, 41)), ((5, 7), (5, 7)), ((1, 9), (4, 4))]


@pytest.mark.parametrize("in_hw,out_hw", SIZES)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_antialiased_resize_matches_torch(rng, in_hw, out_hw, dtype):
    img = rng.integers(0, 250, in_hw).astype(dtype) if dtype != np.float32 else rng.normal(0, 1, in_hw).astype(F32)
    x, lb = preprocess(img, out_hw, antialias=True)
    ref = resize_torch(window_ref(img, *lb.window), lb.resized_hw, antialias=True)
    np.testing.assert_allclose(inner(x, lb)[0, 0], ref, atol=5e-6, rtol=0)


def test_filter_matrix_reference_matches_torch(rng):
    f = rng.normal(0, 1, (50, 70)).astype(F32)
    for hw in [(20, 30), (13, 70), (80, 90)]:
        for aa in (True, False):
            np.testing.assert_allclose(resize_ref(f, hw, aa), resize_torch(f, hw, aa), atol=2e-4 if not aa else 1e-5)


def test_one_pixel_wide_images(rng):
    img = np.array([[217], [163], [130]], np.uint8)
    x, lb = preprocess(img, (2, 1), antialias=True)
    v = window_ref(img, 130, 217)[:, 0].astype(np.float64)   # (1, 0.379, 0)
    # tent of radius 1.5: centres 0.75 and 2.25 -> weights (5/6, 1/2) and (1/2, 5/6), normalised
    expect = [(5 / 6 * v[0] + 0.5 * v[1]) / (4 / 3), (0.5 * v[1] + 5 / 6 * v[2]) / (4 / 3)]
    np.testing.assert_allclose(x[0, 0, :, 0], expect, atol=1e-6)


@pytest.mark.parametrize("in_hw,out_hw", SIZES)
def test_plain_bilinear_matches_opencv_and_torch(rng, in_hw, out_hw):
    img = rng.integers(0, 65536, in_hw, dtype=np.uint16)
    x, lb = preprocess(img, out_hw, antialias=False)
    f = window_ref(img, *lb.window)
    nh, nw = lb.resized_hw
    np.testing.assert_allclose(inner(x, lb)[0, 0], cv2.resize(f, (nw, nh), interpolation=cv2.INTER_LINEAR),
                               atol=2e-6, rtol=0)
    # torch computes its source positions with a float32 scale: agreement to ~1e-4
    np.testing.assert_allclose(inner(x, lb)[0, 0], resize_torch(f, (nh, nw), antialias=False), atol=2e-4, rtol=0)


def test_windowing_happens_before_resampling():
    # A saturated bright bar next to in-window tissue: clip-then-filter keeps the bar at 1.0 after averaging with
    # in-window pixels, filter-then-clip would let the saturated values leak into the neighbourhood.
    img = np.full((64, 64), 1000, np.uint16)
    img[:, 30:34] = 60000
    x, lb = preprocess(img, (16, 16), window=(0, 2000))
    clip_first = resize_torch(window_ref(img, 0, 2000), (16, 16), True)
    filter_first = np.clip(resize_torch(img.astype(F32), (16, 16), True) / 2000, 0, 1)
    np.testing.assert_allclose(x[0, 0], clip_first, atol=2e-6)
    assert np.abs(x[0, 0] - filter_first).max() > 0.1


# ---- normalisation, letterbox padding, dtype -------------------------------------------------------------------------
def test_mean_std_and_padding(rng):
    img = rng.integers(0, 4096, (100, 50), dtype=np.uint16)
    x, lb = preprocess(img, (64, 64), mean=0.4, std=0.2)
    assert lb.resized_hw == (64, 32) and (lb.pad_y, lb.pad_x) == (0, 16)
    raw, _ = preprocess(img, (64, 64))
    np.testing.assert_allclose(inner(x, lb), (inner(raw, lb) - F32(0.4)) / F32(0.2), rtol=1e-6, atol=1e-6)
    pad = F32((0 - 0.4) / 0.2)
    assert np.all(x[..., :16] == pad) and np.all(x[..., 48:] == pad)
    y, _ = preprocess(img, (64, 64), mean=0.4, std=0.2, pad_value=-7.5)
    assert np.all(y[..., :16] == F32(-7.5)) and np.all(y[..., 48:] == F32(-7.5))
    np.testing.assert_array_equal(inner(y, lb), inner(x, lb))


@pytest.mark.parametrize("mean,std", [(0.0, 1.0), (0.5, 0.25), (0.0, 1e5), (0.0, 1e-5), (0.3, 3e-5)])
def test_float16_is_round_to_nearest_even_of_float32(rng, mean, std):
    # std=1e5 pushes values into float16 subnormals, std=1e-5 past 65504 (-> inf), mean > 0 makes negatives
    img = rng.integers(0, 65536, (80, 96), dtype=np.uint16)
    x32, _ = preprocess(img, (40, 48), mean=mean, std=std)
    x16, _ = preprocess(img, (40, 48), dtype="float16", mean=mean, std=std)
    assert x16.dtype == np.float16 and x16.shape == (1, 1, 40, 48)
    with np.errstate(over="ignore"):  # overflow to inf is the expected rounding here
        ref = x32.astype(np.float16)
    np.testing.assert_array_equal(x16.view(np.uint16), ref.view(np.uint16))


def test_float64_input_is_converted(rng):
    img = rng.normal(0, 1, (30, 40))
    a, la = preprocess(img, (20, 20))
    b, lb = preprocess(img.astype(F32), (20, 20))
    np.testing.assert_array_equal(a, b)
    assert la == lb


def test_big_endian_input_is_read_correctly(rng):
    img = rng.integers(0, 4096, (30, 40), dtype=np.uint16)
    a, la = preprocess(img.astype(">u2"), (20, 20))
    b, lb = preprocess(img, (20, 20))
    np.testing.assert_array_equal(a, b)
    assert la == lb


def test_batch_equals_single_images(rng):
    imgs = rng.integers(0, 4096, (4, 45, 60), dtype=np.uint16)
    x, lbs = preprocess(imgs, (32, 32), dtype="float16", mean=0.1, std=0.9)
    assert x.shape == (4, 1, 32, 32) and isinstance(lbs, list) and len(lbs) == 4
    for i in range(4):
        xi, li = preprocess(imgs[i], (32, 32), dtype="float16", mean=0.1, std=0.9)
        np.testing.assert_array_equal(x[i], xi[0])
        assert lbs[i] == li


# ---- the transform -----------------------------------------------------------------------------------------------------
def test_transform_round_trip_is_exact(rng):
    _, lb = preprocess(rng.integers(0, 255, (333, 517), dtype=np.uint8), (224, 320))
    pts = rng.uniform(-50, 600, (1000, 2))
    np.testing.assert_allclose(lb.to_image(lb.to_model(pts)), pts, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(lb.to_model(lb.to_image(pts)), pts, rtol=1e-13, atol=1e-12)
    # corners of the image land on the corners of the resized area
    h, w = lb.in_hw
    nh, nw = lb.resized_hw
    corners = lb.to_model([[0, 0], [w, h]])
    np.testing.assert_allclose(corners, [[lb.pad_x, lb.pad_y], [lb.pad_x + nw, lb.pad_y + nh]], atol=1e-9)
    assert lb.to_model(np.zeros((0, 2))).shape == (0, 2)


def test_transform_maps_a_feature_to_its_position():
    img = np.zeros((300, 200), np.uint8)
    img[100:104, 150:154] = 255                        # a 4 x 4 spot centred at (152, 102)
    x, lb = preprocess(img, (128, 128), window=(0, 255))
    m = x[0, 0].astype(np.float64)
    yy, xx = np.mgrid[0:128, 0:128] + 0.5
    centre = np.array([[(m * xx).sum() / m.sum(), (m * yy).sum() / m.sum()]])
    np.testing.assert_allclose(lb.to_image(centre), [[152.0, 102.0]], atol=0.05)


def test_transform_rejects_bad_points():
    lb = preprocess(np.zeros((4, 4), np.uint8), (4, 4))[1]
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        lb.to_model(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="xy must"):
        lb.to_image([["a", "b"]])


# ---- property-based ------------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 40), w=st.integers(1, 40), oh=st.integers(1, 48), ow=st.integers(1, 48),
       n=st.integers(1, 3), dtype=st.sampled_from(["uint8", "uint16", "float32"]), aa=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_random_shapes(h, w, oh, ow, n, dtype, aa, seed):
    rng = np.random.default_rng(seed)
    img = (rng.normal(0, 10, (n, h, w)).astype(F32) if dtype == "float32"
           else rng.integers(0, 256, (n, h, w)).astype(dtype))
    x, lbs = preprocess(img, (oh, ow), antialias=aa, mean=0.5, std=0.5)
    assert x.shape == (n, 1, oh, ow) and x.dtype == F32
    assert np.all(np.isfinite(x)) and x.min() >= -1.0 and x.max() <= 1.0
    for i in range(n):
        lo, hi = lbs[i].window
        # (torch's antialiased kernel is wrong for 1-pixel-wide inputs, so the reference here is the filter matrix)
        ref = resize_ref(window_ref(img[i], lo, hi), lbs[i].resized_hw, aa)
        np.testing.assert_allclose(inner(x[i], lbs[i])[0], (ref - 0.5) / 0.5, atol=2e-5)
        nh, nw = lbs[i].resized_hw
        pad = np.ones((oh, ow), bool)
        pad[lbs[i].pad_y:lbs[i].pad_y + nh, lbs[i].pad_x:lbs[i].pad_x + nw] = False
        assert np.all(x[i, 0][pad] == F32(-1.0))


# ---- errors --------------------------------------------------------------------------------------------------------
def test_non_finite_float_image_is_refused_with_a_count():
    img = np.zeros((10, 10), F32)
    img[1, 2] = np.nan
    img[3, 4] = np.inf
    img[5, 6] = -np.inf
    with pytest.raises(ValueError, match=r"3 non-finite values .* out of 100"):
        preprocess(img, (5, 5))
    with pytest.raises(ValueError, match="1 non-finite value "):
        preprocess(np.array([[1.0, np.nan]], F32), (5, 5), window=(0, 1))
    with pytest.raises(ValueError, match="overflows float32"):
        preprocess(np.array([[-3e38, 3e38]], F32), (5, 5))


@pytest.mark.parametrize("image,match", [
    (np.zeros((0, 5), np.uint8), "positive sizes"),
    (np.zeros((2, 0, 5), np.uint8), "positive sizes"),
    (np.zeros((5,), np.uint8), "2 or 3 dimensions"),
    (np.zeros((1, 2, 3, 4), np.uint8), "2 or 3 dimensions"),
    (np.zeros((4, 4), np.int32), "uint8, uint16 or float32"),
    (np.zeros((4, 4), bool), "uint8, uint16 or float32"),
    ("not an image", "uint8, uint16 or float32"),
])
def test_bad_images(image, match):
    with pytest.raises(ValueError, match=match):
        preprocess(image, (4, 4))


@pytest.mark.parametrize("kwargs,match", [
    (dict(out_hw=(0, 4)), "out_hw must be positive"),
    (dict(out_hw=(4, -1)), "out_hw must be positive"),
    (dict(out_hw=(4,)), "out_hw must be a pair"),
    (dict(out_hw=(4.5, 4)), "out_hw must be a pair"),
    (dict(out_hw="ab"), "out_hw must be a pair"),
    (dict(window=(5, 5)), r"window must be finite with lo < hi"),
    (dict(window=(5, 1)), r"window must be finite with lo < hi"),
    (dict(window=(0, np.nan)), r"window must be finite with lo < hi"),
    (dict(window=(0, 1, 2)), "window must be"),
    (dict(window=np.zeros((2, 2))), "N x 2 array with N = 1"),
    (dict(window="ab"), "window must be"),
    (dict(percentiles=(50, 50)), "0 <= lo < hi <= 100"),
    (dict(percentiles=(-1, 50)), "0 <= lo < hi <= 100"),
    (dict(percentiles=(1, 101)), "0 <= lo < hi <= 100"),
    (dict(percentiles=(1,)), "percentiles must be a pair"),
    (dict(std=0.0), "std must be finite and > 0"),
    (dict(std=-1.0), "std must be finite and > 0"),
    (dict(mean=np.nan), "mean must be finite"),
    (dict(pad_value=np.inf), "pad_value must be finite"),
    (dict(dtype="int8"), "dtype must be 'float32' or 'float16'"),
    (dict(dtype=np.int32), "dtype must be float32 or float16"),
])
def test_bad_arguments(kwargs, match):
    args = dict(out_hw=(4, 4))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        preprocess(np.zeros((6, 6), np.uint8) + np.arange(6, dtype=np.uint8), **args)


def test_per_image_window_errors_name_the_image():
    imgs = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"window\[1\] must be finite with lo < hi"):
        preprocess(imgs, (4, 4), window=[[0, 1], [2, 2], [0, 1]])
    with pytest.raises(ValueError, match="N = 3 images"):
        preprocess(imgs, (4, 4), window=[[0, 1], [0, 1]])
