"""ramh_rt.ops.quantify_erosions on the CPU, held against an independent numpy/scipy.ndimage reference."""
from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

import ramh_rt.ops.quantify as quantify_module
from ramh_rt.ops import EROSION_DTYPE, quantify_erosions

EIGHT = np.ones((3, 3), dtype=bool)


def reference(erosion, bone_masks, boxes, spacing_mm, threshold=0.5, min_lesion_px=4):
    erosion = np.asarray(erosion)
    probs = erosion.dtype == np.float32
    eroded = erosion >= np.float32(threshold) if probs else erosion != 0
    bone = np.asarray(bone_masks) != 0
    if bone.ndim == 4:
        bone = bone.any(axis=1)
    union = bone | eroded
    n, h, w = erosion.shape
    boxes = np.asarray(boxes, np.float32).astype(np.float64)
    if spacing_mm is None:
        spacing = [math.nan] * n
    elif np.isscalar(spacing_mm):
        spacing = [float(spacing_mm)] * n
    else:
        spacing = [math.nan if s is None else float(s) for s in spacing_mm]
    rows = []
    for r in range(n):
        lab, k = ndi.label(eroded[r], structure=EIGHT)
        sizes = np.bincount(lab.ravel(), minlength=k + 1)[1:]
        lesions = sizes[sizes >= min_lesion_px]
        scale = (boxes[r, 2] / w) * (boxes[r, 3] / h)
        e_roi, b_roi = int(eroded[r].sum()), int(union[r].sum())
        rows.append(dict(
            eroded_roi_px=e_roi, eroded_px=e_roi * scale, eroded_mm2=e_roi * scale * spacing[r] ** 2,
            bone_roi_px=b_roi, bone_px=b_roi * scale, eroded_fraction=e_roi / b_roi if b_roi else 0.0,
            lesions=len(lesions), largest_lesion_roi_px=int(lesions.max()) if len(lesions) else 0,
            largest_lesion_px=(int(lesions.max()) if len(lesions) else 0) * scale,
            mean_probability=float(erosion[r][eroded[r]].astype(np.float64).mean()) if probs and e_roi else math.nan,
        ))
    return rows


INT_FIELDS = ("eroded_roi_px", "bone_roi_px", "lesions", "largest_lesion_roi_px")
FLOAT_FIELDS = ("eroded_px", "eroded_mm2", "bone_px", "eroded_fraction", "largest_lesion_px", "mean_probability")


def assert_matches_reference(*args, **kw):
    table = quantify_erosions(*args, **kw)
    rows = reference(*args, **kw)
    assert table.dtype == EROSION_DTYPE and len(table) == len(rows)
    for got, ref in zip(table, rows):
        for f in INT_FIELDS:
            assert int(got[f]) == ref[f], f
        for f in FLOAT_FIELDS:
            np.testing.assert_allclose(got[f], ref[f], rtol=1e-9, atol=0, equal_nan=True, err_msg=f)
    return table


def boxes_for(n, w=24.0, h=36.0):
    return np.array([[100 + 5 * i, 80, w, h, 15.0 * i] for i in range(n)], np.float32)


def test_erosion_dtype_is_documented_layout():
    assert EROSION_DTYPE.itemsize == 72
    assert EROSION_DTYPE.names == ("eroded_roi_px", "eroded_px", "eroded_mm2", "bone_roi_px", "bone_px",
                                   "eroded_fraction", "lesions", "largest_lesion_roi_px", "largest_lesion_px",
                                   "mean_probability")


def test_docstring_example():
    assert doctest.testmod(quantify_module).failed == 0


def test_fixed_case_values():
    ero = np.zeros((2, 12, 12), np.float32)
    ero[0, 1:3, 1:3] = 0.8  # lesion of 4
    ero[0, 5, 5] = 0.7  # 1 pixel: below min_lesion_px
    ero[0, 6, 6] = 0.6  # diagonal contact with (5, 5): one component of 2
    ero[0, 9, 9] = 0.4  # below the threshold
    bone = np.zeros((2, 12, 12), np.uint8)
    bone[0, 0:10, 0:10] = 1
    boxes = boxes_for(2, w=24.0, h=6.0)  # one ROI pixel = 2 * 0.5 = 1 image pixel
    t = assert_matches_reference(ero, bone, boxes, [0.2, None], min_lesion_px=3)
    assert t["eroded_roi_px"].tolist() == [6, 0]
    assert t["lesions"].tolist() == [1, 0] and t["largest_lesion_roi_px"].tolist() == [4, 0]
    assert t["bone_roi_px"].tolist() == [100, 0]
    assert t[0]["eroded_mm2"] == pytest.approx(6 * 0.04)
    assert math.isnan(t[1]["eroded_mm2"]) and math.isnan(t[1]["mean_probability"])
    assert t[1]["eroded_fraction"] == 0.0
    assert t[0]["mean_probability"] == pytest.approx((4 * 0.8 + 0.7 + 0.6) / 6, rel=1e-7)


def test_erosion_outside_bone_counts_in_the_union():
    ero = np.zeros((1, 6, 6), np.uint8)
    ero[0, 0, 0:3] = 1
    bone = np.zeros((1, 6, 6), np.uint8)
    bone[0, 0:2, 2:6] = 1  # overlaps the erosion in one pixel
    t = assert_matches_reference(ero, bone, boxes_for(1), 0.1, min_lesion_px=1)
    assert t[0]["bone_roi_px"] == 8 + 2 and t[0]["eroded_fraction"] == pytest.approx(3 / 10)
    assert math.isnan(t[0]["mean_probability"])  # uint8 input has no probabilities


def test_stacked_bone_masks_are_united():
    rng = np.random.default_rng(0)
    ero = rng.random((3, 16, 20)).astype(np.float32)
    bones = (rng.random((3, 4, 16, 20)) < 0.2).astype(np.uint8) * 255  # any nonzero value is bone
    t4 = assert_matches_reference(ero, bones, boxes_for(3), [0.1, 0.2, 0.3])
    t3 = quantify_erosions(ero, bones.any(axis=1), boxes_for(3), [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(t4, t3)


def test_threshold_is_inclusive_and_one_pixel_rois():
    ero = np.array([[[0.5]], [[0.49999997]], [[1.0]]], np.float32)
    t = assert_matches_reference(ero, np.zeros((3, 1, 1), np.uint8), boxes_for(3), 1.0, min_lesion_px=0)
    assert t["eroded_roi_px"].tolist() == [1, 0, 1] and t["lesions"].tolist() == [1, 0, 1]


def test_full_and_empty_rois():
    ero = np.stack([np.ones((9, 7), np.float32), np.zeros((9, 7), np.float32)])
    t = assert_matches_reference(ero, np.ones((2, 9, 7), np.uint8), boxes_for(2), None)
    assert t["eroded_fraction"].tolist() == [1.0, 0.0] and t["lesions"].tolist() == [1, 0]


@st.composite
def roi_cases(draw):
    n = draw(st.integers(1, 3))
    h = draw(st.integers(1, 20))
    w = draw(st.integers(1, 20))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density = draw(st.floats(0.0, 1.0))
    if draw(st.booleans()):
        ero = np.where(rng.random((n, h, w)) < density, rng.uniform(0.5, 1.0, (n, h, w)),
                       rng.uniform(0.0, 0.5, (n, h, w))).astype(np.float32)
    else:
        ero = (rng.random((n, h, w)) < density).astype(np.uint8)
    k = draw(st.sampled_from([None, 1, 3]))
    shape = (n, h, w) if k is None else (n, k, h, w)
    bone = (rng.random(shape) < draw(st.floats(0.0, 1.0))).astype(np.uint8)
    boxes = np.column_stack([rng.uniform(0, 500, n), rng.uniform(0, 500, n), rng.uniform(1, 80, n),
                             rng.uniform(1, 80, n), rng.uniform(-180, 180, n)]).astype(np.float32)
    spacing = draw(st.one_of(st.none(), st.floats(0.01, 1.0),
                             st.lists(st.one_of(st.none(), st.floats(0.01, 1.0)), min_size=n, max_size=n)))
    kw = dict(threshold=draw(st.sampled_from([0.5, 0.25, 0.9, 1.0])), min_lesion_px=draw(st.integers(0, 6)))
    return (ero, bone, boxes, spacing), kw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(roi_cases())
def test_matches_reference_on_random_rois(case):
    args, kw = case
    assert_matches_reference(*args, **kw)


# ---- bad arguments -----------------------------------------------------------------------------------------------
E = np.zeros((2, 4, 4), np.float32)
B = np.zeros((2, 4, 4), np.uint8)
X = boxes_for(2)


@pytest.mark.parametrize("args, kw, match", [
    ((np.zeros((4, 4), np.float32), B, X, 0.1), {}, "erosion must be N x h x w"),
    ((E.astype(np.float64), B, X, 0.1), {}, "erosion"),
    ((E.astype(np.int32), B, X, 0.1), {}, "erosion must be of dtype float32/uint8"),
    ((np.zeros((2, 0, 4), np.float32), B[:, :0], X, 0.1), {}, "erosion must have positive sizes"),
    ((E, B.astype(np.float32), X, 0.1), {}, "bone_masks must be of dtype uint8"),
    ((E, B[:, :3], X, 0.1), {}, "bone_masks must be N x h x w or N x K x h x w"),
    ((E, B[:1], X, 0.1), {}, "bone_masks must be N x h x w or N x K x h x w"),
    ((E, B[:, None, None], X, 0.1), {}, "bone_masks must have 3 or 4 dimensions"),
    ((E, B, X[:1], 0.1), {}, r"boxes must be N x 5 .* N=2"),
    ((E, B, X[:, :4], 0.1), {}, "boxes must be N x 5"),
    ((E, B, "boxes", 0.1), {}, "boxes must be an N x 5 array of numbers"),
    ((E, B, np.where(np.arange(10).reshape(2, 5) == 7, np.nan, X), 0.1), {}, "boxes must be finite, got nan in ROI 1"),
    ((E, B, X * np.array([1, 1, 0, 1, 1], np.float32), 0.1), {}, "boxes must have positive w and h"),
    ((E, B, X, -0.1), {}, "spacing_mm must be > 0"),
    ((E, B, X, [0.1, 0.0]), {}, "spacing_mm must be > 0 .* ROI 1"),
    ((E, B, X, [0.1, float("inf")]), {}, "spacing_mm must be > 0"),
    ((E, B, X, [0.1]), {}, r"spacing_mm must have one value per ROI \(N=2\), got 1"),
    ((E, B, X, "0.1"), {}, "spacing_mm entries must be numbers or None"),
    ((E, B, X, 7j), {}, "spacing_mm must be None, a number or one value per ROI"),
    ((E, B, X, 0.1), {"threshold": 0.0}, r"threshold must be in \(0, 1\]"),
    ((E, B, X, 0.1), {"threshold": 1.5}, r"threshold must be in \(0, 1\]"),
    ((E, B, X, 0.1), {"threshold": float("nan")}, r"threshold must be in \(0, 1\]"),
    ((E, B, X, 0.1), {"threshold": "0.5"}, "threshold must be a number"),
    ((E, B, X, 0.1), {"min_lesion_px": -1}, "min_lesion_px must be >= 0, got -1"),
    ((E, B, X, 0.1), {"min_lesion_px": 2.5}, "min_lesion_px must be an integer"),
])
def test_bad_arguments_raise_value_error(args, kw, match):
    with pytest.raises(ValueError, match=match):
        quantify_erosions(*args, **kw)


@pytest.mark.parametrize("bad", [np.nan, 1.5, -0.25])
def test_probabilities_outside_unit_interval_raise_and_name_the_roi(bad):
    e = np.zeros((3, 5, 5), np.float32)
    e[1, 2, 2] = bad
    e[2, 0, 0] = bad
    with pytest.raises(ValueError, match=r"erosion must hold probabilities in \[0, 1\]; ROI 1 "):
        quantify_erosions(e, np.zeros((3, 5, 5), np.uint8), boxes_for(3), 0.1)


def test_cuda_input_without_cuda_build_raises_runtime_error():
    import ramh_rt

    if ramh_rt.build_info()["cuda"]:
        pytest.skip("this build has CUDA kernels; tests/gpu covers the device path")

    class FakeCuda:
        def __init__(self, shape, typestr):
            self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (0, False), "version": 3}

    with pytest.raises(RuntimeError, match="without CUDA"):
        quantify_erosions(FakeCuda((1, 2, 2), "<f4"), FakeCuda((1, 2, 2), "|u1"), boxes_for(1), 0.1)


def test_parallel_batch_equals_roi_by_roi():
    # 44 ROIs of 256 x 256 with 2 bone masks take the OpenMP path; a single ROI is small enough for one thread.
    rng = np.random.default_rng(7)
    ero = rng.random((44, 256, 256)).astype(np.float32)
    bone = (rng.random((44, 2, 256, 256)) < 0.3).astype(np.uint8)
    boxes = boxes_for(44)
    table = quantify_erosions(ero, bone, boxes, 0.1, threshold=0.7)
    for r in range(44):
        np.testing.assert_array_equal(table[r:r + 1], quantify_erosions(ero[r:r + 1], bone[r:r + 1], boxes[r:r + 1],
                                                                         0.1, threshold=0.7))
