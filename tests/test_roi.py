"""CPU tests of ramh_rt.ops.crop_rois / paste_rois against exact slicing, an ideal float64 sampler, OpenCV warpAffine
and a float32 NumPy emulation of the documented arithmetic (which the kernels must match bit for bit)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramh_rt.ops import crop_rois, paste_rois

cv2 = pytest.importorskip("cv2")

F32 = np.float32


# ---- references ------------------------------------------------------------------------------------------------------
def sincos_deg(a: float) -> tuple[float, float]:
    r = a % 360.0
    exact = {0.0: (0.0, 1.0), 90.0: (1.0, 0.0), 180.0: (0.0, -1.0), 270.0: (-1.0, 0.0)}
    if r in exact:
        return exact[r]
    return float(np.sin(np.deg2rad(a))), float(np.cos(np.deg2rad(a)))


def crop_points64(box, oh, ow):
    """Ideal sample points of the documented geometry, float64: (oh, ow) arrays px, py."""
    cx, cy, w, h, a = box
    s, c = sincos_deg(a)
    j = ((np.arange(ow) + 0.5) / ow - 0.5) * w
    i = ((np.arange(oh) + 0.5) / oh - 0.5) * h
    px = cx + j[None, :] * c + i[:, None] * s
    py = cy - j[None, :] * s + i[:, None] * c
    return px, py


def crop_points32(box, oh, ow):
    """The same points with the kernels' float32 arithmetic (one rounding per operation, in the documented order)."""
    cx, cy, w, h, a = box
    s, c = sincos_deg(a)
    sw, sh = w / ow, h / oh
    ax, ay, bx, by = F32(sw * c), F32(-sw * s), F32(sh * s), F32(sh * c)
    jj = np.arange(ow, dtype=F32) + F32(0.5 - 0.5 * ow)
    ii = np.arange(oh, dtype=F32) + F32(0.5 - 0.5 * oh)
    px = F32(cx) + (jj[None, :] * ax + ii[:, None] * bx)
    py = F32(cy) + (jj[None, :] * ay + ii[:, None] * by)
    return px, py


def bilinear_fill(img, px, py, fill, dtype):
    """Bilinear sampling with half-pixel centres; neighbours outside the image read `fill`. dtype: float32 emulates the
    kernel's roundings, float64 is the ideal value."""
    h, w = img.shape
    one = dtype(1)
    x, y = px.astype(dtype) - dtype(0.5), py.astype(dtype) - dtype(0.5)
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    x0 = np.clip(x0, -2, w + 1).astype(np.int64)
    y0 = np.clip(y0, -2, h + 1).astype(np.int64)

    def at(yy, xx):
        ok = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
        v = np.full(xx.shape, dtype(fill), dtype)
        v[ok] = img[yy[ok], xx[ok]]
        return v

    top = at(y0, x0) * (one - fx) + at(y0, x0 + 1) * fx
    bot = at(y0 + 1, x0) * (one - fx) + at(y0 + 1, x0 + 1) * fx
    out = top * (one - fy) + bot * fy
    far = ~((x > -1) & (x < w) & (y > -1) & (y < h))
    out[far] = fill
    return out


def nearest_fill(img, px, py, fill):
    h, w = img.shape
    ok = (px >= 0) & (px < w) & (py >= 0) & (py < h)
    out = np.full(px.shape, fill, img.dtype)
    out[ok] = img[np.floor(py[ok]).astype(np.int64), np.floor(px[ok]).astype(np.int64)]
    return out


def crop_emulated(img, boxes, oh, ow, interpolation, fill):
    out = []
    for b in boxes:
        px, py = crop_points32(b, oh, ow)
        if interpolation == "bilinear":
            out.append(bilinear_fill(img, px, py, fill, F32))
        else:
            out.append(nearest_fill(img, px, py, fill))
    return np.array(out).reshape(len(out), oh, ow)


def paste_emulated(rois, boxes, out_hw, reduce, fill):
    """Float32 emulation of paste_rois: coverage test, sampler and combination as documented."""
    oh, ow = out_hw
    rh, rw = rois.shape[1:]
    out = np.full(out_hw, fill, rois.dtype)
    covered = np.zeros(out_hw, bool)
    qx = np.arange(ow, dtype=F32)[None, :] + F32(0.5)
    qy = np.arange(oh, dtype=F32)[:, None] + F32(0.5)
    for roi, (cx, cy, w, h, a) in zip(rois, boxes):
        s, c = sincos_deg(a)
        kux, kuy, kvx, kvy = F32(c * rw / w), F32(-s * rw / w), F32(s * rh / h), F32(c * rh / h)
        dx, dy = qx - F32(cx), qy - F32(cy)
        rx = (dx * kux + dy * kuy) + F32(0.5 * rw)
        ry = (dx * kvx + dy * kvy) + F32(0.5 * rh)
        inside = (rx >= 0) & (rx < rw) & (ry >= 0) & (ry < rh)
        if roi.dtype == np.uint8:
            xi = np.minimum(np.floor(rx).astype(np.int64), rw - 1)
            yi = np.minimum(np.floor(ry).astype(np.int64), rh - 1)
            v = roi[np.clip(yi, 0, rh - 1), np.clip(xi, 0, rw - 1)]
        else:
            x, y = rx - F32(0.5), ry - F32(0.5)
            x0, y0 = np.floor(x), np.floor(y)
            fx, fy = x - x0, y - y0
            x0 = np.clip(x0, -1, rw).astype(np.int64)
            y0 = np.clip(y0, -1, rh).astype(np.int64)
            xa, xb = np.clip(x0, 0, rw - 1), np.clip(x0 + 1, 0, rw - 1)
            ya, yb = np.clip(y0, 0, rh - 1), np.clip(y0 + 1, 0, rh - 1)
            one = F32(1)
            top = roi[ya, xa] * (one - fx) + roi[ya, xb] * fx
            bot = roi[yb, xa] * (one - fx) + roi[yb, xb] * fx
            v = top * (one - fy) + bot * fy
        first = inside & ~covered
        again = inside & covered
        out[first] = v[first]
        if roi.dtype == np.uint8:
            out[again] = (out[again] | v[again]) if reduce == "or" else np.maximum(out[again], v[again])
        else:
            out[again] = np.fmax(out[again], v[again])
        covered |= inside
    return out


def smooth_image(h, w, dtype=F32):
    yy, xx = np.mgrid[0:h, 0:w]
    v = 30000 + 20000 * np.sin(xx / 23.0) * np.cos(yy / 17.0)
    return v.astype(dtype)


def cv2_inverse_map(box, oh, ow):
    """cv2.warpAffine WARP_INVERSE_MAP matrix (dst pixel index -> src pixel index, centres at integers)."""
    cx, cy, w, h, a = box
    s, c = sincos_deg(a)
    ax, ay, bx, by = w / ow * c, -w / ow * s, h / oh * s, h / oh * c
    x0 = cx + (0.5 - ow / 2) * ax + (0.5 - oh / 2) * bx - 0.5
    y0 = cy + (0.5 - ow / 2) * ay + (0.5 - oh / 2) * by - 0.5
    return np.array([[ax, bx, x0], [ay, by, y0]])


# ---- crop: exact cases -------------------------------------------------------------------------------------------
def test_axis_aligned_integer_boxes_are_slices(rng):
    img = rng.integers(0, 65536, (60, 80), dtype=np.uint16)
    boxes = [[30.0, 20.0, 16, 10, 0.0], [8.0, 5.0, 16, 10, 0.0], [72.0, 55.0, 16, 10, 360.0]]
    got = crop_rois(img, boxes, (10, 16), "nearest")
    assert got.dtype == np.uint16 and got.shape == (3, 10, 16)
    np.testing.assert_array_equal(got[0], img[15:25, 22:38])
    np.testing.assert_array_equal(got[1], img[0:10, 0:16])
    np.testing.assert_array_equal(got[2], img[50:60, 64:80])
    # at 1:1 scale bilinear samples pixel centres: the same values, as float32
    np.testing.assert_array_equal(crop_rois(img, boxes, (10, 16)), got.astype(F32))


@pytest.mark.parametrize("angle,k", [(90.0, -1), (180.0, 2), (270.0, 1), (-90.0, 1)])
def test_right_angle_rotations_are_rot90(rng, angle, k):
    img = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    # box of 12 x 8 (w x h) centred at (25, 20): for 90/270 its image footprint is 8 wide and 12 tall
    box = [[25.0, 20.0, 12, 8, angle]]
    crop = crop_rois(img, box, (8, 12), "nearest")[0]
    footprint = img[14:26, 21:29] if angle % 180 else img[16:24, 19:31]
    np.testing.assert_array_equal(crop, np.rot90(footprint, k))


def test_downscaled_crop_samples_the_documented_points(rng):
    img = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    # 32 x 32 box -> 8 x 8 crop: crop pixel (i, j) samples (16 + 4 j + 2, 16 + 4 i + 2) = centre of pixel (18+4j, 18+4i)
    crop = crop_rois(img, [[32.0, 32.0, 32, 32, 0]], (8, 8), "nearest")[0]
    np.testing.assert_array_equal(crop, img[18:48:4, 18:48:4])


# ---- crop: against references ---------------------------------------------------------------------------------------
def random_boxes(rng, n, h, w, margin=0.0, angles=(-45, 45)):
    return np.column_stack([rng.uniform(-margin, w + margin, n), rng.uniform(-margin, h + margin, n),
                            rng.uniform(5, 60, n), rng.uniform(5, 60, n), rng.uniform(*angles, n)])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_crop_matches_float32_emulation_exactly(rng, dtype):
    img = (rng.normal(0, 100, (70, 90)).astype(F32) if dtype == np.float32
           else rng.integers(0, np.iinfo(dtype).max, (70, 90), dtype=dtype, endpoint=True))
    boxes = random_boxes(rng, 20, 70, 90, margin=30)
    for interp, fill in [("bilinear", 0.0), ("bilinear", 17.5), ("nearest", 3)]:
        got = crop_rois(img, boxes, (13, 21), interp, fill)
        np.testing.assert_array_equal(got, crop_emulated(img, boxes, 13, 21, interp, fill))
        assert got.dtype == (F32 if interp == "bilinear" else dtype)


def test_crop_bilinear_matches_ideal_sampler(rng):
    img = smooth_image(300, 400)
    boxes = random_boxes(rng, 16, 300, 400, margin=50, angles=(-180, 180))
    got = crop_rois(img, boxes, (32, 48), fill=1000.0)
    for b, g in zip(boxes, got):
        px, py = crop_points64(b, 32, 48)
        ref = bilinear_fill(img.astype(np.float64), px, py, 1000.0, np.float64)
        # float32 positions (errors ~1e-4 px at these coordinates) times the gradient (< 1500 / px)
        np.testing.assert_allclose(g, ref, atol=2.0, rtol=1e-6)


def test_crop_matches_opencv_warp_affine(rng):
    img = smooth_image(256, 320)
    boxes = random_boxes(rng, 12, 256, 320, margin=20)
    got = crop_rois(img, boxes, (40, 40), fill=5.0)
    for b, g in zip(boxes, got):
        ref = cv2.warpAffine(img, cv2_inverse_map(b, 40, 40), (40, 40), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=5.0)
        # OpenCV quantises sub-pixel positions to 1/32 pixel: errors up to gradient / 32 (~50 here)
        np.testing.assert_allclose(g, ref, atol=60)
        assert np.abs(g - ref).mean() < 15


def test_bilinear_border_blends_with_fill():
    img = np.full((10, 10), 100.0, F32)
    # points straddling the left border (x = 0): half-way between fill 0 and the first column
    got = crop_rois(img, [[0.5, 5.0, 1.0, 1.0, 0.0], [0.0, 5.0, 1.0, 1.0, 0.0], [-1.0, 5.0, 1.0, 1.0, 0.0]], (1, 1))
    np.testing.assert_allclose(got.ravel(), [100.0, 50.0, 0.0])
    nearest = crop_rois(img.astype(np.uint8), [[0.5, 5.0, 1, 1, 0], [-0.01, 5.0, 1, 1, 0]], (1, 1), "nearest", 7)
    np.testing.assert_array_equal(nearest.ravel(), [100, 7])


def test_nan_fill_marks_outside_samples():
    img = np.full((10, 10), 3.0, F32)
    got = crop_rois(img, [[5.0, 5.0, 14.0, 1.0, 0.0]], (1, 14), fill=np.nan)[0, 0]
    # crop column j samples px = j - 1.5, i.e. neighbours floor(j - 2) and floor(j - 2) + 1: columns 2..10 have both
    # inside; column 11 has the right neighbour (weight 0) outside and is NaN, as documented
    assert np.isnan(got[:2]).all() and np.all(got[2:11] == 3.0) and np.isnan(got[11:]).all()


def test_label_stack_crop_equals_per_channel(rng):
    stack = rng.integers(0, 2, (5, 40, 60), dtype=np.uint8)
    boxes = random_boxes(rng, 4, 40, 60)
    got = crop_rois(stack, boxes, (9, 11), "nearest")
    assert got.shape == (4, 5, 9, 11) and got.dtype == np.uint8
    for c in range(5):
        np.testing.assert_array_equal(got[:, c], crop_rois(stack[c], boxes, (9, 11), "nearest"))
    np.testing.assert_array_equal(crop_rois(stack.astype(bool), boxes, (9, 11), "nearest"), got)


def test_big_endian_input_is_read_correctly(rng):
    img = rng.integers(0, 65536, (30, 40), dtype=np.uint16)
    boxes = random_boxes(rng, 5, 30, 40)
    np.testing.assert_array_equal(crop_rois(img.astype(">u2"), boxes, (6, 7)), crop_rois(img, boxes, (6, 7)))
    rois = rng.normal(0, 1, (5, 6, 7)).astype(">f4")
    np.testing.assert_array_equal(paste_rois(rois, boxes, (30, 40)), paste_rois(rois.astype(F32), boxes, (30, 40)))


def test_empty_box_list():
    img = np.zeros((8, 8), np.uint16)
    assert crop_rois(img, np.zeros((0, 5)), (4, 3)).shape == (0, 4, 3)
    assert crop_rois(img, [], (4, 3), "nearest").dtype == np.uint16
    assert crop_rois(np.zeros((2, 8, 8), F32), [], (4, 3)).shape == (0, 2, 4, 3)


# ---- paste ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("angle", [0.0, 90.0, 180.0, 270.0])
def test_paste_inverts_crop_exactly_for_aligned_boxes(rng, angle):
    img = rng.integers(1, 256, (50, 70), dtype=np.uint8)
    boxes = np.array([[20.0, 15.0, 12, 8, angle], [50.0, 35.0, 10, 14, angle]])
    # each box cropped at 1:1 scale (out_hw = (h, w)) and pasted back; the boxes do not overlap
    crops = [crop_rois(img, [b], (int(b[3]), int(b[2])), "nearest")[0] for b in boxes]
    pasted = np.maximum(*(paste_rois(c[None], [b], img.shape) for c, b in zip(crops, boxes)))
    inside = pasted > 0
    expect = np.zeros_like(img, bool)
    for cx, cy, w, h, a in boxes:
        fw, fh = (h, w) if a % 180 else (w, h)
        expect[int(cy - fh / 2):int(cy + fh / 2), int(cx - fw / 2):int(cx + fw / 2)] = True
    np.testing.assert_array_equal(inside, expect)
    np.testing.assert_array_equal(pasted[inside], img[inside])


def test_paste_bilinear_reproduces_a_smooth_image(rng):
    img = smooth_image(200, 260)
    boxes = random_boxes(rng, 6, 200, 260, angles=(-180, 180))
    boxes[:, 2:4] = rng.uniform(30, 50, (6, 2))
    boxes[:, 0:2] = rng.uniform(50, 150, (6, 2))
    # crops at 1:1 scale (ROI pixel ~ image pixel): paste(crop(x)) ~ x away from the box border
    for b in boxes:
        oh, ow = int(round(b[3])), int(round(b[2]))
        roi = crop_rois(img, [b], (oh, ow))
        pasted = paste_rois(roi, [b], img.shape, fill=np.nan)
        shrunk = b.copy()
        shrunk[2:4] -= 4
        interior = paste_rois(np.ones((1, 4, 4), np.uint8), [shrunk], img.shape) > 0
        assert interior.sum() > 300
        # two bilinear resamplings of a smooth image: error << the image's local variation (~1000 / px)
        np.testing.assert_allclose(pasted[interior], img[interior], atol=60)
        assert np.isnan(pasted).sum() > 0 and not np.isnan(pasted[interior]).any()


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_paste_matches_float32_emulation_exactly(rng, dtype):
    rois = (rng.normal(0, 1, (12, 9, 13)).astype(F32) if dtype == np.float32
            else rng.integers(0, 256, (12, 9, 13), dtype=np.uint8))
    boxes = random_boxes(rng, 12, 60, 80, margin=15, angles=(-180, 180))
    for reduce in (["max", "or"] if dtype == np.uint8 else ["max"]):
        got = paste_rois(rois, boxes, (60, 80), reduce, fill=7)
        np.testing.assert_array_equal(got, paste_emulated(rois, boxes, (60, 80), reduce, 7))
        assert got.dtype == dtype


def test_paste_rotated_masks_match_opencv(rng):
    masks = (rng.random((5, 24, 24)) > 0.5).astype(np.uint8)
    boxes = np.array([[60, 50, 40, 30, 33.0], [120, 80, 50, 50, -71.0], [90, 130, 30, 60, 150.0],
                      [40, 140, 45, 25, 12.5], [150, 30, 35, 35, 200.0]])
    h, w = 170, 190
    for m, b in zip(masks, boxes):
        got = paste_rois(m[None], [b], (h, w), fill=0)
        cov = paste_rois(np.ones((1, 24, 24), np.uint8), [b], (h, w)) > 0
        # independent: the ROI warped into the image with the inverse map (image pixel -> ROI pixel) by OpenCV
        cx, cy, bw, bh, a = b
        s, c = sincos_deg(a)
        k = np.array([[c * 24 / bw, -s * 24 / bw], [s * 24 / bh, c * 24 / bh]])
        t = k @ (np.array([0.5, 0.5]) - [cx, cy]) + [12.0 - 0.5, 12.0 - 0.5]
        M = np.column_stack([k, t])
        ref = cv2.warpAffine(m, M, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        ref_cov = cv2.warpAffine(np.ones_like(m), M, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
        # OpenCV rounds positions to 1/1024 pixel: disagreements only where a position is that close to a boundary
        assert (cov != ref_cov).mean() < 0.002
        both = cov & ref_cov
        assert (got[both] != ref[both]).mean() < 0.01
        assert cov.sum() == pytest.approx(bw * bh, rel=0.06)


def test_overlaps_max_and_or():
    a = np.full((1, 4, 4), 1, np.uint8)
    b = np.full((1, 4, 4), 2, np.uint8)
    boxes = np.array([[4.0, 4.0, 4, 4, 0.0], [6.0, 4.0, 4, 4, 0.0]])   # overlap: columns 4..5
    rois = np.concatenate([a, b])
    mx = paste_rois(rois, boxes, (8, 10), "max")
    orr = paste_rois(rois, boxes, (8, 10), "or", fill=9)
    assert mx[3, 3] == 1 and mx[3, 4] == 2 and mx[3, 7] == 2 and mx[3, 8] == 0
    assert orr[3, 3] == 1 and orr[3, 4] == 3 and orr[3, 7] == 2 and orr[3, 8] == 9


def test_float_max_ignores_nan_and_order(rng):
    rois = rng.normal(0, 1, (3, 6, 6)).astype(F32)
    rois[0, :3] = np.nan
    rois[1] = np.nan
    boxes = np.array([[10.0, 10.0, 6, 6, 0.0], [10.0, 10.0, 6, 6, 0.0], [11.0, 10.0, 6, 6, 0.0]])
    got = paste_rois(rois, boxes, (20, 20), fill=-1.0)
    for perm in ([2, 1, 0], [1, 0, 2], [1, 2, 0]):
        np.testing.assert_array_equal(paste_rois(rois[perm], boxes[perm], (20, 20), fill=-1.0), got)
    np.testing.assert_array_equal(got, paste_emulated(rois, boxes, (20, 20), "max", F32(-1.0)))
    assert np.isnan(got[7, 7])           # only ROI 0 (NaN row) and ROI 1 (all NaN) cover it
    assert not np.isnan(got[12, 12])     # ROI 2 covers it with a number


def test_paste_with_no_rois_is_fill():
    out = paste_rois(np.zeros((0, 4, 4), F32), np.zeros((0, 5)), (5, 6), fill=2.5)
    assert out.shape == (5, 6) and np.all(out == F32(2.5))


# ---- property-based ------------------------------------------------------------------------------------------------
box_st = st.tuples(st.floats(-40, 140), st.floats(-40, 120), st.floats(0.3, 150), st.floats(0.3, 150),
                   st.one_of(st.sampled_from([0.0, 90.0, -90.0, 180.0, 270.0, 360.0]), st.floats(-720, 720)))


@settings(max_examples=60, deadline=None)
@given(boxes=st.lists(box_st, min_size=0, max_size=6), oh=st.integers(1, 20), ow=st.integers(1, 20),
       h=st.integers(1, 100), w=st.integers(1, 100), seed=st.integers(0, 2**32 - 1))
def test_crop_and_paste_random(boxes, oh, ow, h, w, seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 65536, (h, w), dtype=np.uint16)
    b = np.array(boxes, dtype=np.float64).reshape(-1, 5)
    for interp in ("bilinear", "nearest"):
        got = crop_rois(img, b, (oh, ow), interp, fill=11)
        assert got.shape == (len(b), oh, ow)
        np.testing.assert_array_equal(got, crop_emulated(img, b, oh, ow, interp, 11))
    masks = rng.integers(0, 4, (len(b), oh, ow), dtype=np.uint8)
    np.testing.assert_array_equal(paste_rois(masks, b, (h, w), "or", 250),
                                  paste_emulated(masks, b, (h, w), "or", 250))
    vals = rng.normal(0, 1, (len(b), oh, ow)).astype(F32)
    np.testing.assert_array_equal(paste_rois(vals, b, (h, w), fill=-9),
                                  paste_emulated(vals, b, (h, w), "max", F32(-9)))


# ---- errors --------------------------------------------------------------------------------------------------------
IMG = np.zeros((10, 10), np.uint8)


@pytest.mark.parametrize("boxes,match", [
    ([[5, 5, 2, 2, 0], [5, np.nan, 2, 2, 0]], r"boxes\[1\] must be finite"),
    ([[5, 5, 2, 2, np.inf]], r"boxes\[0\] must be finite"),
    ([[5, 5, 2, 2, 0], [5, 5, 2, 2, 0], [5, 5, 0, 2, 0]], r"boxes\[2\] must have w > 0 and h > 0, got w=0"),
    ([[5, 5, 2, -1, 0]], r"boxes\[0\] must have w > 0 and h > 0"),
    ([[5, 5, 2, 2]], r"N x 5 .* got shape \(1, 4\)"),
    ([5, 5, 2, 2, 0], r"N x 5 .* got shape \(5,\)"),
    ([[2e7, 5, 2, 2, 0]], r"boxes\[0\] is out of range"),
    ("abc", "boxes must be an N x 5 array"),
])
def test_bad_boxes(boxes, match):
    with pytest.raises(ValueError, match=match):
        crop_rois(IMG, boxes, (4, 4))
    with pytest.raises(ValueError, match=match):
        paste_rois(np.zeros((len(boxes) if np.ndim(boxes) == 2 else 1, 4, 4), np.uint8), boxes, (10, 10))


@pytest.mark.parametrize("call,match", [
    (lambda: crop_rois(IMG, [[5, 5, 2, 2, 0]], (4, 4), "cubic"), "interpolation must be 'bilinear' or 'nearest'"),
    (lambda: crop_rois(IMG, [[5, 5, 2, 2, 0]], (0, 4)), r"out_hw\[0\] must be in \[1, 2\^24\]"),
    (lambda: crop_rois(IMG, [[5, 5, 2, 2, 0]], (4,)), "out_hw must be a pair"),
    (lambda: crop_rois(IMG, [[5, 5, 2, 2, 0]], (4, 2.5)), "out_hw must be a pair"),
    (lambda: crop_rois(np.zeros(10, np.uint8), [[5, 5, 2, 2, 0]], (4, 4)), "2 or 3 dimensions"),
    (lambda: crop_rois(np.zeros((0, 10), np.uint8), [[5, 5, 2, 2, 0]], (4, 4)), "positive sizes"),
    (lambda: crop_rois(IMG.astype(np.int32), [[5, 5, 2, 2, 0]], (4, 4)), "dtype uint8, uint16 or float32"),
    (lambda: crop_rois(IMG, [[5, 5, 2, 2, 0]], (4, 4), "nearest", fill=256), r"integer in \[0, 255\]"),
    (lambda: crop_rois(IMG, [[5, 5, 2, 2, 0]], (4, 4), "nearest", fill=1.5), r"integer in \[0, 255\]"),
    (lambda: crop_rois(IMG, [[5, 5, 2, 2, 0]], (4, 4), fill=np.inf), r"fill must be finite \(or NaN\)"),
    (lambda: crop_rois(IMG, [[5, 5, 2, 2, 0]], (4, 4), "nearest", fill=np.nan), r"integer in \[0, 255\]"),
    (lambda: crop_rois(IMG, [[5, 5, 2, 2, 0]], (4, 4), fill="x"), "fill must be a number"),
    (lambda: paste_rois(np.zeros((2, 4, 4), np.uint8), [[5, 5, 2, 2, 0]], (10, 10)),
     "same count, got 2 rois and 1 boxes"),
    (lambda: paste_rois(np.zeros((1, 4, 4), np.uint16), [[5, 5, 2, 2, 0]], (10, 10)), "dtype float32 or uint8"),
    (lambda: paste_rois(np.zeros((4, 4), np.uint8), [[5, 5, 2, 2, 0]], (10, 10)), "rois must have 3 dimensions"),
    (lambda: paste_rois(np.zeros((1, 4, 4), F32), [[5, 5, 2, 2, 0]], (10, 10), "or"), "reduce='or' needs uint8"),
    (lambda: paste_rois(np.zeros((1, 4, 4), F32), [[5, 5, 2, 2, 0]], (10, 10), "sum"), "reduce must be 'max' or"),
    (lambda: paste_rois(np.zeros((1, 4, 4), np.uint8), [[5, 5, 2, 2, 0]], (10, -1)), r"out_hw\[1\] must be in"),
    (lambda: paste_rois(np.zeros((1, 4, 4), np.uint8), [[5, 5, 2, 2, 0]], (10, 10), fill=-1), r"integer in \[0, 255\]"),
    (lambda: paste_rois(np.zeros((1, 0, 4), np.uint8), [[5, 5, 2, 2, 0]], (10, 10)), r"ROI height must be in"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
