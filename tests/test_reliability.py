"""No silent wrong answer: float images with outliers, byte orders, a file name's side against the anatomy,
spacing and overlay arguments; masks and overlays of huge films in bounded time and memory."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ramh_rt import io as rio
from ramh_rt import ops, rle
from ramh_rt.cli import sample_image_path
from ramh_rt.pipeline import Analyzer

_HC = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer(backend="onnxruntime-cpu")


@pytest.fixture(scope="module")
def hand() -> np.ndarray:
    """The sample right hand at half size (uint8)."""
    im = Image.open(sample_image_path())
    return np.asarray(im.resize((im.size[0] // 2, im.size[1] // 2), Image.BILINEAR))


@pytest.fixture(scope="module")
def reference(analyzer, hand):
    return analyzer.analyze(hand, side="R", spacing_mm=0.1)


# ---------------------------------------------------------------------------------------------------------------------
# 1. float images with outliers
# ---------------------------------------------------------------------------------------------------------------------

def test_normal_float_images_keep_their_binned_window(hand):
    f = hand.astype(np.float32)
    x, lb = ops.preprocess(f, (256, 256))
    assert lb.window_warning is None
    # the rerun the refinement does passes windows back: that reproduces the output bit for bit
    assert np.array_equal(ops.preprocess(f, (256, 256), window=lb.window)[0], x)
    assert ops.preprocess(hand, (64, 64))[1].window_warning is None  # integer images are exact already


@settings(max_examples=25, deadline=None, suppress_health_check=_HC)
@given(n_out=st.integers(1, 40), exp=st.integers(4, 37), sign=st.sampled_from([-1.0, 1.0]), seed=st.integers(0, 99))
def test_extreme_pixels_get_the_exact_percentile_window(hand, n_out, exp, sign, seed):
    f = hand.astype(np.float32).copy()
    idx = np.random.default_rng(seed).choice(f.size, n_out, replace=False)
    f.reshape(-1)[idx] = sign * np.float32(10.0 ** exp)
    _, lb = ops.preprocess(f, (128, 128))
    want = np.percentile(f, [0.5, 99.5], method="inverted_cdf")
    assert lb.window == (float(want[0]), float(want[1]))
    assert f"{n_out} pixel(s) lie far outside" in lb.window_warning and "clipped" in lb.window_warning


def test_a_batch_refines_only_the_images_that_need_it(hand):
    clean = hand.astype(np.float32)
    spiked = clean.copy()
    spiked[5, 7] = 1e12
    x, lbs = ops.preprocess(np.stack([clean, spiked, clean]), (96, 96))
    x0, lb0 = ops.preprocess(clean, (96, 96))
    x1, lb1 = ops.preprocess(spiked, (96, 96))
    assert [lb.window_warning is None for lb in lbs] == [True, False, True]
    assert lbs[1].window == lb1.window and lbs[0].window == lb0.window
    assert np.array_equal(x[0], x0[0]) and np.array_equal(x[1], x1[0]) and np.array_equal(x[2], x0[0])


@settings(max_examples=4, deadline=None, suppress_health_check=_HC)
@given(n_out=st.integers(1, 20), exp=st.integers(5, 30), seed=st.integers(0, 99))
def test_outliers_do_not_change_the_analysis(analyzer, hand, reference, n_out, exp, seed):
    """A few extreme pixels (random count, place on the film's background and magnitude) in a float image: the
    window does not collapse, so the same bones and scores as the clean image, and a warning that names the clipped
    extremes. (On the background: an extreme pixel inside a joint's ROI is a changed joint, which may score
    differently.)"""
    f = hand.astype(np.float32).copy()
    rng = np.random.default_rng(seed)
    background = np.flatnonzero(hand.reshape(-1) == 0)
    f.reshape(-1)[rng.choice(background, n_out, replace=False)] = np.float32(10.0 ** exp)
    a = analyzer.analyze(f, side="R", spacing_mm=0.1)
    assert [b.name for b in a.bones] == [b.name for b in reference.bones]
    assert abs(a.totals.svdh - reference.totals.svdh) <= 2
    assert any("far outside" in w and "clipped" in w for w in a.meta.warnings)


# ---------------------------------------------------------------------------------------------------------------------
# 2. byte order: every op gives the native answer
# ---------------------------------------------------------------------------------------------------------------------

_order = st.sampled_from(["<", ">", "="])


def _as(a: np.ndarray, order: str) -> np.ndarray:
    return a.astype(a.dtype.newbyteorder(order))


@settings(max_examples=30, deadline=None)
@given(o1=_order, o2=_order, o3=_order, seed=st.integers(0, 10_000))
def test_every_op_reads_any_byte_order(o1, o2, o3, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (3, 12, 12)).astype(np.float32)
    m0, i0 = ops.postprocess_masks(logits, keep="all")
    m1, i1 = ops.postprocess_masks(_as(logits, o1), keep="all")
    assert np.array_equal(m0, m1) and i0.tobytes() == i1.tobytes()

    ero = rng.random((2, 8, 8)).astype(np.float32)
    bone = (rng.random((2, 8, 8)) > 0.3).astype(np.uint8)
    boxes = np.array([[40, 40, 16, 16, 0], [30, 20, 8, 12, 10]], np.float32)
    q0 = ops.quantify_erosions(ero, bone, boxes, 0.1)
    q1 = ops.quantify_erosions(_as(ero, o1), _as(bone, o2), _as(boxes, o3), 0.1)
    assert q0.tobytes() == q1.tobytes()

    img = rng.integers(0, 4096, (40, 50)).astype(np.uint16)
    x0, _ = ops.preprocess(img, (16, 16))
    x1, _ = ops.preprocess(_as(img, o1), (16, 16))
    assert np.array_equal(x0, x1)
    b = np.array([[25.0, 20.0, 10.0, 8.0, 15.0]])
    c0 = ops.crop_rois(img.astype(np.float32), b, (6, 6))
    c1 = ops.crop_rois(_as(img.astype(np.float32), o2), _as(b, o3), (6, 6))
    assert np.array_equal(c0, c1)
    assert np.array_equal(ops.paste_rois(c0, b, (40, 50)), ops.paste_rois(_as(c0, o1), _as(b, o2), (40, 50)))


def test_big_endian_examples_from_the_report():
    logits = np.full((1, 8, 8), -4.0, np.float32)
    logits[0, 2:6, 2:6] = 4.0
    _, inst = ops.postprocess_masks(logits.astype(">f4"), keep="all")
    assert inst["area"].tolist() == [16]
    ero = np.full((1, 4, 4), 0.75, ">f4")
    t = ops.quantify_erosions(ero, np.ones((1, 4, 4), np.uint8), [[10, 10, 4, 4, 0]], None)
    assert int(t["eroded_roi_px"][0]) == 16


class _BigEndianCudaArray:
    """Describes device memory in big-endian order (no memory behind it: the core refuses it before any access)."""

    __cuda_array_interface__ = {"shape": (1, 4, 4), "typestr": ">f4", "data": (0, False), "version": 3}


def test_non_native_device_memory_is_refused_by_name():
    with pytest.raises(ValueError, match="logits has non-native byte order"):
        ops.postprocess_masks(_BigEndianCudaArray())
    with pytest.raises(ValueError, match="image has non-native byte order"):
        ops.preprocess(_BigEndianCudaArray(), (8, 8))


class _CudaBoxes:
    """An empty N x 5 box table described as device memory (N = 0: nothing to read, works without CUDA)."""

    def __init__(self, typestr):
        self.__cuda_array_interface__ = {"shape": (0, 5), "typestr": typestr, "data": (0, False), "version": 3}


def test_crop_and_paste_take_device_boxes_like_quantify():
    img = np.zeros((10, 10), np.uint8)
    assert ops.crop_rois(img, _CudaBoxes("<f4"), (2, 2), "nearest").shape == (0, 2, 2)
    assert ops.paste_rois(np.zeros((0, 2, 2), np.uint8), _CudaBoxes("<f4"), (10, 10)).shape == (10, 10)
    with pytest.raises(ValueError, match="boxes on a CUDA device must be float32"):
        ops.crop_rois(img, _CudaBoxes("<i4"), (2, 2))


def test_is_device_array_says_no_to_host_data():
    from ramh_rt.ops._args import is_device_array

    assert not is_device_array(np.zeros(3)) and not is_device_array([1, 2])
    torch = pytest.importorskip("torch")
    assert not is_device_array(torch.zeros(3))  # a CPU tensor is host data
    assert ops.preprocess(torch.zeros((40, 40), dtype=torch.uint8), (8, 8))[0].shape == (1, 1, 8, 8)


# ---------------------------------------------------------------------------------------------------------------------
# 3. the side from a file name against the anatomy
# ---------------------------------------------------------------------------------------------------------------------

def test_file_name_side_that_contradicts_the_anatomy_is_a_warning(analyzer, hand, tmp_path):
    Image.fromarray(hand).save(tmp_path / "x_L.png")  # a right hand saved as left
    Image.fromarray(hand).save(tmp_path / "x_R.png")
    wrong = analyzer.analyze(tmp_path / "x_L.png")
    assert (wrong.meta.side, wrong.meta.side_source) == ("R", "detected")
    assert any("file name says side L" in w and "anatomy" in w for w in wrong.meta.warnings)
    assert all(k.startswith(("Patient_ID", "RH_")) for k in wrong.to_ra2_csv_row())
    right = analyzer.analyze(tmp_path / "x_R.png")
    assert (right.meta.side, right.meta.side_source) == ("R", "filename")
    assert not any("file name says" in w for w in right.meta.warnings)
    given = analyzer.analyze(tmp_path / "x_L.png", side="L")  # the caller's word is used as given
    assert (given.meta.side, given.meta.side_source) == ("L", "user")


# ---------------------------------------------------------------------------------------------------------------------
# 4. spacing and overlay arguments
# ---------------------------------------------------------------------------------------------------------------------

BAD_SPACINGS = [math.nan, math.inf, -math.inf, 0.0, -0.1, "0.1mm", True, np.float32("nan")]


@pytest.mark.parametrize("bad", BAD_SPACINGS, ids=repr)
def test_bad_spacing_is_refused_by_name_everywhere(analyzer, hand, bad):
    loaded = rio.load_image(hand)
    for call in (lambda: analyzer.analyze(loaded, spacing_mm=bad), lambda: analyzer.analyze(hand, spacing_mm=bad),
                 lambda: rio.with_overrides(loaded, spacing_mm=bad),
                 lambda: analyzer.analyze_batch([hand, loaded], spacing_mm=bad),
                 lambda: analyzer.analyze_batch([hand], spacing_mm=[bad])):
        with pytest.raises(ValueError, match="spacing_mm"):
            call()


def test_a_loaded_image_made_by_hand_is_checked(hand):
    import dataclasses

    loaded = rio.load_image(hand)
    with pytest.raises(ValueError, match="spacing_mm"):
        dataclasses.replace(loaded, spacing_mm=math.nan)
    with pytest.raises(ValueError, match="side"):
        dataclasses.replace(loaded, side="left")
    assert dataclasses.replace(loaded, spacing_mm=np.float32(0.5)).spacing_mm == 0.5


def test_numpy_scalar_spacing_and_loaded_image_overrides(analyzer, hand):
    loaded = rio.load_image(hand)
    out = analyzer.analyze_batch([hand, loaded], spacing_mm=np.float32(0.1), side=np.str_("R"))
    assert [a.meta.spacing_mm for a in out] == [float(np.float32(0.1))] * 2
    assert [a.meta.spacing_source for a in out] == ["user", "user"]
    assert [a.meta.side_source for a in out] == ["user", "user"]
    a = analyzer.analyze(loaded, spacing_mm=np.float64(0.2))
    assert a.meta.spacing_mm == 0.2 and a.to_json()  # JSON-compliant
    with pytest.raises(ValueError, match="side"):
        analyzer.analyze(loaded, side="up")


@pytest.mark.parametrize("bad", [0, -10, 63, 2.5, "800", True])
def test_overlay_max_side_is_validated(reference, bad):
    with pytest.raises(ValueError, match="max_side"):
        reference.overlay(max_side=bad)
    assert max(reference.overlay(max_side=64).size) >= 64


# ---------------------------------------------------------------------------------------------------------------------
# 12. masks of huge films from the bbox crops
# ---------------------------------------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 30), w=st.integers(1, 30), data=st.data())
def test_encode_crop_equals_encode_of_the_full_mask(h, w, data):
    x0 = data.draw(st.integers(0, w)); x1 = data.draw(st.integers(x0, w))
    y0 = data.draw(st.integers(0, h)); y1 = data.draw(st.integers(y0, h))
    seed = data.draw(st.integers(0, 2 ** 32 - 1))
    crop = np.random.default_rng(seed).random((y1 - y0, x1 - x0)) < data.draw(st.sampled_from([0.0, 0.3, 0.9, 1.0]))
    full = np.zeros((h, w), bool)
    full[y0:y1, x0:x1] = crop
    assert rle.encode_crop(crop, (x0, y0, x1, y1), (h, w)) == rle.encode(full)
    with pytest.raises(ValueError):
        rle.encode_crop(np.zeros((y1 - y0 + 1, 1), bool), (x0, y0, x1, y1), (h, w))


def test_to_json_masks_unchanged(reference):
    import json

    d = json.loads(reference.to_json(include_masks=True))
    for rec, b in zip(d["bones"], reference.bones):
        assert rec["mask_rle"] == rle.encode(b.mask)
    assert d["erosion_mask_rle"] == rle.encode(reference.erosion_mask)
