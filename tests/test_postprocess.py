"""ramh_rt.ops.postprocess_masks on the CPU, held against an independent reference built from scipy.ndimage
(label, binary_fill_holes) and scikit-image (regionprops)."""
from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from skimage.measure import regionprops

import ramh_rt.ops.postprocess as postprocess_module
from ramh_rt.ops import INSTANCE_DTYPE, postprocess_masks

EIGHT = np.ones((3, 3), dtype=bool)


# ---- reference -----------------------------------------------------------------------------------------------------
def _components_raster_order(fg):
    """8-connected components as boolean masks, ordered by their first pixel in raster order."""
    lab, k = ndi.label(fg, structure=EIGHT)
    if k == 0:
        return []
    flat = lab.ravel()
    idx = np.flatnonzero(flat)
    _, first = np.unique(flat[idx], return_index=True)  # first occurrence (raster order) of each label
    order = np.argsort(idx[first])
    return [lab == (o + 1) for o in order]


def _reference_plane(fg, keep_all, min_area, fill):
    comps = _components_raster_order(fg)
    areas = [int(c.sum()) for c in comps]
    if keep_all:
        kept = [c for c, a in zip(comps, areas) if a >= max(min_area, 1)]
    elif comps:
        best = int(np.argmax(areas))  # argmax returns the first maximum = first in raster order
        kept = [comps[best]] if areas[best] >= max(min_area, 1) else []
    else:
        kept = []
    if not fill:
        return kept
    filled = [ndi.binary_fill_holes(k) for k in kept]
    out = []
    for i, f in enumerate(filled):
        inst = f.copy()
        for j, k in enumerate(kept):
            if j != i and np.all(f[k]):  # component j lies inside i's filled region: its fill is its own
                inst &= ~filled[j]
        out.append(inst)
    return out


def _moments(mask):
    """Exact central-moment numerators from integer sums (the definition the core documents)."""
    ys, xs = np.nonzero(mask)
    n = len(xs)
    xs = xs.astype(object)
    ys = ys.astype(object)
    sx, sy = int(xs.sum()), int(ys.sum())
    sxx, syy, sxy = int((xs * xs).sum()), int((ys * ys).sum()), int((xs * ys).sum())
    n2 = float(n) * float(n)
    a = float(n * sxx - sx * sx) / n2
    c = float(n * syy - sy * sy) / n2
    b = float(n * sxy - sx * sy) / n2
    return a, b, c


def _orientation_deg(a, b, c):
    d = -0.5 * math.degrees(math.atan2(2 * b, a - c))
    return d + 180.0 if d <= -90.0 else (0.0 if d == 0 else d)


def reference(logits, mode="multilabel", threshold=0.0, keep="largest", min_area=0, fill_holes=False):
    x = np.asarray(logits)
    squeeze = x.ndim == 3
    if squeeze:
        x = x[None]
    x = x.astype(np.float32)
    n_img, n_ch, h, w = x.shape
    thr = np.broadcast_to(np.asarray(threshold, np.float32), (n_ch,))
    keeps = [keep] * n_ch if isinstance(keep, str) else list(keep)
    masks = np.zeros(x.shape, np.uint8)
    rows = []
    for n in range(n_img):
        if mode == "multiclass":
            am = np.argmax(x[n], axis=0)
            xm = x[n].astype(np.float64)
            mx = xm.max(axis=0)
            with np.errstate(invalid="ignore"):  # the max term is exactly 1, also for +-inf logits
                e = np.where(xm == mx, 1.0, np.exp(xm - mx))
            prob = e / e.sum(axis=0)
        for c in range(n_ch):
            if mode == "multilabel":
                fg = x[n, c] > thr[c]
                score = 1.0 / (1.0 + np.exp(-x[n, c].astype(np.float64)))
            else:
                fg = am == c
                score = prob[c]
            for i, inst in enumerate(_reference_plane(fg, keeps[c] == "all", min_area, fill_holes)):
                masks[n, c] |= inst.astype(np.uint8)
                (p,) = regionprops(inst.astype(np.uint8))
                a, b, cc = _moments(inst)
                r0, c0, r1, c1 = p.bbox
                rows.append(dict(batch=n, channel=c, index=i, area=int(inst.sum()), bbox=[c0, r0, c1, r1],
                                 centroid=[p.centroid[1] + 0.5, p.centroid[0] + 0.5],
                                 orientation=_orientation_deg(a, b, cc), major=p.axis_major_length,
                                 minor=p.axis_minor_length, score=float(score[inst].mean()),
                                 sk_orientation=p.orientation, abc=(a, b, cc)))
    return (masks[0] if squeeze else masks), rows


def assert_matches_reference(logits, **kw):
    masks, inst = postprocess_masks(logits, **kw)
    ref_masks, rows = reference(logits, **kw)
    assert masks.dtype == np.uint8 and masks.shape == np.asarray(logits).shape
    np.testing.assert_array_equal(masks, ref_masks)
    assert inst.dtype == INSTANCE_DTYPE
    assert len(inst) == len(rows)
    for got, ref in zip(inst, rows):
        assert (got["batch"], got["channel"], got["index"], got["area"]) == (
            ref["batch"], ref["channel"], ref["index"], ref["area"])
        assert got["bbox"].tolist() == ref["bbox"]
        np.testing.assert_allclose(got["centroid"], ref["centroid"], rtol=1e-12)
        np.testing.assert_allclose(got["major_axis_length"], ref["major"], rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(got["minor_axis_length"], ref["minor"], rtol=1e-9, atol=1e-6)
        assert got["orientation"] == pytest.approx(ref["orientation"], abs=1e-9)
        np.testing.assert_allclose(got["mean_score"], ref["score"], rtol=1e-5, atol=1e-7)
        a, b, c = ref["abc"]
        l1, l2 = ref["major"], ref["minor"]
        if l1 - l2 > 1e-3 * max(l1, 1e-12):  # orientation is defined: compare with scikit-image's (axis 0 based)
            sk = math.degrees(ref["sk_orientation"]) - 90.0
            diff = (got["orientation"] - sk) % 180.0
            assert min(diff, 180.0 - diff) < 1e-6
    return masks, inst


def test_moments_of_a_very_wide_row_are_exact():
    """A run ending past x = 1.66e6: the closed form x^2 sum's intermediate product passes 2^63 there (UBSan caught
    it; the result was garbage) while the sum fits in 64 bits."""
    w = 1_700_000
    _, inst = postprocess_masks(np.ones((1, 1, 1, w), np.float32))
    (r,) = inst
    assert r["area"] == w and r["bbox"].tolist() == [0, 0, w, 1]
    # a 1 x w segment: variance of the column centres (w^2 - 1) / 12, major axis 4 sqrt(var), as scikit-image has it
    assert r["major_axis_length"] == pytest.approx(4 * math.sqrt((w * w - 1) / 12), rel=1e-12)
    assert r["minor_axis_length"] == 0 and r["orientation"] == 0


# ---- fixed cases -----------------------------------------------------------------------------------------------
def test_instance_dtype_is_documented_layout():
    assert INSTANCE_DTYPE.itemsize == 80
    assert INSTANCE_DTYPE.names == ("batch", "channel", "index", "area", "bbox", "centroid", "orientation",
                                    "major_axis_length", "minor_axis_length", "mean_score")


def test_docstring_example():
    assert doctest.testmod(postprocess_module).failed == 0


def test_diagonal_touch_is_connected_and_largest_wins():
    x = np.full((1, 6, 7), -5, np.float32)
    x[0, 0, 0] = x[0, 1, 1] = x[0, 2, 2] = 5  # diagonal chain: one component of 3
    x[0, 4, 4:7] = 5
    x[0, 5, 3] = 5  # 4 pixels, diagonal contact at (4,4)-(5,3)
    masks, inst = assert_matches_reference(x)
    assert len(inst) == 1 and inst[0]["area"] == 4 and inst[0]["bbox"].tolist() == [3, 4, 7, 6]


def test_tie_goes_to_first_in_raster_order():
    x = np.full((1, 5, 8), -1, np.float32)
    x[0, 3, 0:2] = 1  # starts later in raster order
    x[0, 0, 5:7] = 1  # same area, first pixel earlier
    _, inst = assert_matches_reference(x)
    assert inst[0]["bbox"].tolist() == [5, 0, 7, 1]


def test_empty_and_full_planes():
    x = np.stack([np.full((5, 4), -1, np.float32), np.full((5, 4), 1, np.float32)])
    masks, inst = assert_matches_reference(x, keep="all", fill_holes=True)
    assert masks[0].sum() == 0 and masks[1].sum() == 20
    assert inst["channel"].tolist() == [1]
    np.testing.assert_allclose(inst[0]["centroid"], [2.0, 2.5])


def test_one_pixel_images():
    for v in (-1.0, 1.0):
        masks, inst = assert_matches_reference(np.full((2, 3, 1, 1), v, np.float32), keep="all", fill_holes=True)
        assert len(inst) == (6 if v > 0 else 0)
        if v > 0:
            assert inst[0]["major_axis_length"] == 0 and inst[0]["orientation"] == 0
            assert inst["batch"].tolist() == [0, 0, 0, 1, 1, 1]
            assert inst["channel"].tolist() == [0, 1, 2, 0, 1, 2]


def test_fill_holes_nested_components_do_not_overlap():
    fg = np.zeros((11, 11), bool)
    fg[1:10, 1] = fg[1:10, 9] = fg[1, 1:10] = fg[9, 1:10] = True  # ring, hole = 7 x 7
    fg[4:7, 4:7] = True
    fg[5, 5] = False  # inner ring with a 1-pixel hole, nested in the outer ring's hole
    x = np.where(fg, 3.0, -3.0).astype(np.float32)[None]
    masks, inst = assert_matches_reference(x, keep="all", fill_holes=True)
    np.testing.assert_array_equal(masks[0], ndi.binary_fill_holes(fg))
    assert inst["area"].tolist() == [81 - 9, 9]  # outer: ring + hole minus the inner instance; inner: 8 + 1
    outer_only, inst2 = assert_matches_reference(x, keep="largest", fill_holes=True)
    assert inst2["area"].tolist() == [81]  # the dropped inner ring is background, so it is filled in


def test_hole_touching_border_is_not_filled():
    fg = np.ones((5, 5), bool)
    fg[2, 0:3] = False  # a bay open to the left border
    fg[1:4, 3] = True
    x = np.where(fg, 1.0, -1.0).astype(np.float32)[None]
    masks, _ = assert_matches_reference(x, fill_holes=True)
    np.testing.assert_array_equal(masks[0], fg)


def test_diagonal_gap_does_not_close_a_hole():
    # The 4-connected background leaks through nowhere here, but a ring closed only diagonally is still closed
    # for 8-connected foreground: its inside is a hole.
    fg = np.zeros((5, 5), bool)
    fg[0, 2] = fg[1, 1] = fg[1, 3] = fg[2, 0] = fg[2, 4] = fg[3, 1] = fg[3, 3] = fg[4, 2] = True
    x = np.where(fg, 1.0, -1.0).astype(np.float32)[None]
    masks, inst = assert_matches_reference(x, fill_holes=True)
    assert masks[0, 2, 2] == 1 and inst[0]["area"] == 13


def test_orientation_convention_on_screen():
    def orient(points, shape=(9, 9)):
        x = np.full((1,) + shape, -1, np.float32)
        for r, c in points:
            x[0, r, c] = 1
        return float(postprocess_masks(x)[1][0]["orientation"])

    assert orient([(4, c) for c in range(9)]) == 0.0  # horizontal
    assert orient([(r, 4) for r in range(9)]) == 90.0  # vertical: +90, never -90
    assert orient([(8 - i, i) for i in range(9)]) == pytest.approx(45.0)  # rises to the right on screen
    assert orient([(i, i) for i in range(9)]) == pytest.approx(-45.0)  # falls to the right on screen


def test_multiclass_argmax_ties_and_softmax_score():
    x = np.zeros((3, 4, 5), np.float32)  # all tied: every pixel goes to channel 0
    masks, inst = assert_matches_reference(x, mode="multiclass", keep="all")
    assert masks[0].all() and not masks[1:].any()
    assert inst[0]["mean_score"] == pytest.approx(1 / 3, rel=1e-6)
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2, 4, 12, 13)).astype(np.float32)
    y[0, 1, 3:6, 3:6] = 5
    assert_matches_reference(y, mode="multiclass", keep=["all", "largest", "all", "largest"], fill_holes=True)


def test_infinite_logits():
    x = np.full((2, 4, 4), -np.inf, np.float32)
    x[0, 1:3, 1:3] = np.inf
    x[1, 0, 0] = np.inf
    assert_matches_reference(x, keep="all")
    masks, inst = assert_matches_reference(x, mode="multiclass", keep="all")
    # (0, 0) is +inf only in channel 1: probability exactly 1. The 2 x 2 block is +inf in channel 0: probability 1.
    # Elsewhere both channels are -inf, a tie that goes to channel 0 with probability 1/2 (not NaN).
    assert inst[["channel", "area"]].tolist() == [(0, 15), (1, 1)]
    assert inst["mean_score"].tolist() == [pytest.approx((4 + 11 * 0.5) / 15, rel=1e-9), 1.0]


def test_float16_matches_float32_reference():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(2, 3, 17, 19)) * 3).astype(np.float16)
    x[0, 0, 0, :4] = [0.0, -0.0, np.float16(6e-8), np.float16(-6e-8)]  # signed zeros and subnormals
    for thr in (0.0, [0.5, -1.25, 2e-8]):
        assert_matches_reference(x, threshold=thr, keep="all", fill_holes=True)
    assert_matches_reference(x, mode="multiclass", keep="all")
    assert_matches_reference(x, threshold=float("inf"))
    assert_matches_reference(x, threshold=-float("inf"), keep="all")


def test_per_channel_keep_threshold_and_min_area():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 3, 20, 20)).astype(np.float32)
    assert_matches_reference(x, threshold=[0.0, 0.5, -0.5], keep=["all", "largest", "all"], min_area=3,
                             fill_holes=True)


def test_min_area_drops_a_small_largest_component():
    x = np.full((1, 6, 6), -1, np.float32)
    x[0, 0, 0:2] = 1
    _, inst = assert_matches_reference(x, min_area=3)
    assert len(inst) == 0


def test_three_dimensional_input_gives_three_dimensional_masks():
    x = np.random.default_rng(3).normal(size=(2, 9, 8)).astype(np.float32)
    masks, inst = assert_matches_reference(x, keep="all")
    assert masks.shape == (2, 9, 8) and (inst["batch"] == 0).all()


def test_sorted_by_batch_channel_index():
    x = np.random.default_rng(4).normal(size=(3, 2, 16, 16)).astype(np.float32)
    _, inst = assert_matches_reference(x, keep="all")
    keys = list(zip(inst["batch"], inst["channel"], inst["index"]))
    assert keys == sorted(keys)


def test_realistic_size_against_reference():
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:96, 0:120]
    x = np.empty((1, 4, 96, 120), np.float32)
    for c in range(4):
        cy, cx, ry, rx = rng.uniform(20, 70), rng.uniform(20, 90), rng.uniform(8, 25), rng.uniform(8, 25)
        d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        x[0, c] = (1 - d) * 4 + rng.normal(scale=0.6, size=d.shape)
    assert_matches_reference(x, keep=["largest", "all", "largest", "all"], fill_holes=True, min_area=2)


# ---- property-based -------------------------------------------------------------------------------------------
@st.composite
def logit_cases(draw):
    n = draw(st.integers(1, 2))
    c = draw(st.integers(1, 3))
    h = draw(st.integers(1, 18))
    w = draw(st.integers(1, 18))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.floats(0.05, 0.95))
    rng = np.random.default_rng(seed)
    on = rng.random((n, c, h, w)) < density
    x = np.where(on, rng.uniform(0.01, 4, on.shape), -rng.uniform(0.01, 4, on.shape)).astype(np.float32)
    if draw(st.booleans()):
        x = x.astype(np.float16)
    mode = draw(st.sampled_from(["multilabel", "multiclass"]))
    keep = draw(st.one_of(st.sampled_from(["largest", "all"]),
                          st.lists(st.sampled_from(["largest", "all"]), min_size=c, max_size=c)))
    kw = dict(mode=mode, keep=keep, min_area=draw(st.integers(0, 4)), fill_holes=draw(st.booleans()))
    if mode == "multilabel" and draw(st.booleans()):
        kw["threshold"] = [float(v) for v in rng.uniform(-1, 1, c)]
    return x, kw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logit_cases())
def test_matches_reference_on_random_masks(case):
    x, kw = case
    assert_matches_reference(x, **kw)


# ---- bad arguments -----------------------------------------------------------------------------------------------
GOOD = np.zeros((1, 2, 4, 4), np.float32)


@pytest.mark.parametrize("logits, kw, match", [
    (np.zeros((4, 4), np.float32), {}, "logits must have 3 or 4 dimensions"),
    (np.zeros((1, 1, 2, 4, 4), np.float32), {}, "logits must have 3 or 4 dimensions"),
    (np.zeros((1, 2, 4, 4), np.float64), {}, "logits"),
    (np.zeros((1, 2, 4, 4), np.int32), {}, "logits must be of dtype float32/float16"),
    (np.zeros((1, 2, 0, 4), np.float32), {}, "logits must have positive sizes"),
    (GOOD, {"threshold": [0.0, 0.0, 0.0]}, "threshold must be a scalar or have one value per channel"),
    (GOOD, {"threshold": [[0.0]]}, "threshold must be a scalar or a 1-D"),
    (GOOD, {"threshold": "high"}, "threshold"),
    (GOOD, {"threshold": float("nan")}, "threshold must not be NaN"),
    (GOOD, {"threshold": [0.0, float("nan")]}, r"threshold must not be NaN \(channel 1\)"),
    (GOOD, {"mode": "softmax"}, "mode must be 'multilabel' or 'multiclass'"),
    (GOOD, {"mode": "multiclass", "threshold": 0.5}, "threshold is not used in multiclass mode"),
    (GOOD, {"keep": "biggest"}, "keep entries must be 'largest' or 'all'"),
    (GOOD, {"keep": ["all"] * 3}, "keep must be one mode or one per channel"),
    (GOOD, {"keep": []}, "keep must not be empty"),
    (GOOD, {"keep": 3}, "keep must be"),
    (GOOD, {"min_area": -1}, "min_area must be >= 0, got -1"),
    (GOOD, {"min_area": 2.5}, "min_area must be an integer"),
    (GOOD, {"fill_holes": "yes"}, "fill_holes must be True or False"),
])
def test_bad_arguments_raise_value_error(logits, kw, match):
    with pytest.raises(ValueError, match=match):
        postprocess_masks(logits, **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("mode", ["multilabel", "multiclass"])
def test_nan_logits_raise_and_name_the_plane(dtype, mode):
    x = np.zeros((2, 3, 4, 4), dtype)
    x[1, 2, 3, 1] = np.nan
    x[1, 1, 0, 0] = np.nan if mode == "multiclass" else 0
    where = "batch 1, channel 1" if mode == "multiclass" else "batch 1, channel 2"
    with pytest.raises(ValueError, match=f"logits contain NaN \\(first in {where}\\)"):
        postprocess_masks(x, mode=mode)


def test_cuda_input_without_cuda_build_raises_runtime_error():
    import ramh_rt

    if ramh_rt.build_info()["cuda"]:
        pytest.skip("this build has CUDA kernels; tests/gpu covers the device path")

    class FakeCuda:
        __cuda_array_interface__ = {"shape": (1, 1, 2, 2), "typestr": "<f4", "data": (0, False), "version": 3}

    with pytest.raises(RuntimeError, match="without CUDA"):
        postprocess_masks(FakeCuda())


def test_parallel_batch_equals_plane_by_plane():
    # 2 x 8 x 768 x 768 values take the OpenMP path; each single plane is small enough for one thread.
    rng = np.random.default_rng(6)
    x = (rng.normal(size=(2, 8, 768, 768)) * 2 + 0.5).astype(np.float32)
    keep = ["all", "largest"] * 4
    masks, inst = postprocess_masks(x, keep=keep, fill_holes=True, min_area=2)
    rows = []
    for n in range(2):
        for c in range(8):
            m, t = postprocess_masks(x[n, c][None, None], keep=keep[c], fill_holes=True, min_area=2)
            np.testing.assert_array_equal(masks[n, c], m[0, 0])
            t["batch"], t["channel"] = n, c
            rows.append(t)
    np.testing.assert_array_equal(inst, np.concatenate(rows))


# ---- one instance at full resolution: dilated_window, upsample_instance ----------------------------------------------
CROSS = ndi.generate_binary_structure(2, 1)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), data=st.data())
def test_dilated_window_equals_dilating_the_plane_zeroed_outside_the_window(h, w, data):
    from ramh_rt.ops import dilated_window

    seed = data.draw(st.integers(0, 2**31 - 1))
    plane = (np.random.default_rng(seed).random((h, w)) < 0.3).astype(np.uint8) * 7  # nonzero is on
    x0 = data.draw(st.integers(0, w - 1))
    x1 = data.draw(st.integers(x0 + 1, w))
    y0 = data.draw(st.integers(0, h - 1))
    y1 = data.draw(st.integers(y0 + 1, h))
    zeroed = np.zeros((h, w), bool)
    zeroed[y0:y1, x0:x1] = plane[y0:y1, x0:x1] > 0
    want = ndi.binary_dilation(zeroed, structure=CROSS)
    got, (wx0, wy0) = dilated_window(plane, (x0, y0, x1, y1))
    assert got.dtype == bool
    assert (wx0, wy0) == (max(0, x0 - 1), max(0, y0 - 1))
    assert got.shape == (min(h, y1 + 1) - wy0, min(w, x1 + 1) - wx0)
    placed = np.zeros((h, w), bool)
    placed[wy0:wy0 + got.shape[0], wx0:wx0 + got.shape[1]] = got
    np.testing.assert_array_equal(placed, want)  # the same pixels, none lost outside the returned window


@pytest.mark.parametrize("window, match", [((2, 2, 2, 5), "non-empty"), ((0, 0, 9, 4), "inside"),
                                           ((-1, 0, 3, 3), "inside"), ((0, 0, 2.5, 3), "four integers"),
                                           ((0, 0, 3), "four integers"), (None, "four integers")])
def test_dilated_window_names_a_bad_window(window, match):
    from ramh_rt.ops import dilated_window

    with pytest.raises(ValueError, match=match):
        dilated_window(np.ones((6, 8), np.uint8), window)
    with pytest.raises(ValueError, match="H x W"):
        dilated_window(np.ones((2, 6, 8), np.uint8), (0, 0, 2, 2))


def test_upsample_instance_on_the_model_grid_is_threshold_and_dilated_mask():
    """A box covering the canvas at scale 1 samples every model pixel at its centre: the result is exactly
    ``logits > threshold`` where the instance's dilated window is."""
    from ramh_rt.ops import upsample_instance

    rng = np.random.default_rng(11)
    logits = rng.normal(size=(20, 24)).astype(np.float32)
    mask = np.zeros((20, 24), np.uint8)
    mask[4:9, 5:11] = 1
    mask[14:18, 15:20] = 1  # another instance of the class, outside the window: must not show
    box = np.array([[12.0, 10.0, 24.0, 20.0, 0.0]], np.float32)
    got = upsample_instance(logits, mask, (5, 4, 11, 9), box, (20, 24), 0.25)
    near = np.zeros((20, 24), bool)
    near[4:9, 5:11] = True
    near = ndi.binary_dilation(near, structure=CROSS)
    np.testing.assert_array_equal(got, (logits > 0.25) & near)


def test_upsample_instance_scales_the_dilated_mask_and_leaves_scratch_zero():
    from ramh_rt.ops import dilated_window, upsample_instance

    logits = np.full((10, 12), 5.0, np.float32)  # above the threshold everywhere: only the instance mask cuts
    mask = np.zeros((10, 12), np.uint8)
    mask[3:6, 2:7] = 1
    box = np.array([[6.0, 5.0, 12.0, 10.0, 0.0]], np.float32)  # the whole canvas onto a 2x finer grid
    scratch = np.zeros((10, 12), np.uint8)
    got = upsample_instance(logits, mask, (2, 3, 7, 6), box, (20, 24), 0.0, scratch=scratch)
    assert not scratch.any()
    win, (wx0, wy0) = dilated_window(mask, (2, 3, 7, 6))
    near = np.zeros((10, 12), bool)
    near[wy0:wy0 + win.shape[0], wx0:wx0 + win.shape[1]] = win
    np.testing.assert_array_equal(got, near.repeat(2, axis=0).repeat(2, axis=1))  # nearest: each pixel 2 x 2
    np.testing.assert_array_equal(upsample_instance(logits, mask, (2, 3, 7, 6), box, (20, 24), 0.0), got)
    with pytest.raises(ValueError, match="scratch"):
        upsample_instance(logits, mask, (2, 3, 7, 6), box, (20, 24), 0.0, scratch=np.zeros((10, 12), np.float32))
    with pytest.raises(ValueError, match="one shape"):
        upsample_instance(logits[:9], mask, (2, 3, 7, 6), box, (20, 24), 0.0)
    with pytest.raises(ValueError, match="one .* box"):
        upsample_instance(logits, mask, (2, 3, 7, 6), np.vstack([box, box]), (20, 24), 0.0)
    np.testing.assert_array_equal(upsample_instance(logits, mask, (2, 3, 7, 6), box[0], (20, 24), 0.0), got)
