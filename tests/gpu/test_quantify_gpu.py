"""quantify_erosions on CUDA held against the CPU twin: integer fields bit-identical, float fields within 1e-5."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ramh_rt.ops import quantify_erosions

from gpu_parity import KINDS, assert_raises_like_host, assert_table_parity, to_device

INT_FIELDS = ("eroded_roi_px", "bone_roi_px", "lesions", "largest_lesion_roi_px")
FLOAT_FIELDS = ("eroded_px", "eroded_mm2", "bone_px", "eroded_fraction", "largest_lesion_px", "mean_probability")


def assert_gpu_matches_cpu(ero, bone, boxes, spacing, kind="device_array", boxes_on_device=False, **kw):
    cpu = quantify_erosions(ero, bone, boxes, spacing, **kw)
    dev_boxes = to_device(np.asarray(boxes, np.float32), kind) if boxes_on_device else boxes
    gpu = quantify_erosions(to_device(ero, kind), to_device(bone, kind), dev_boxes, spacing, **kw)
    assert_table_parity(gpu, cpu, INT_FIELDS, FLOAT_FIELDS, rtol=1e-5, atol=0.0)
    return gpu


def rois(n, h, w, seed, k=None, u8=False):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    ero = np.zeros((n, h, w), np.float32)
    for i in range(n):
        for _ in range(rng.integers(0, 6)):  # a few notches of random size
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1, 0.2 * min(h, w) + 1)
            ero[i] = np.maximum(ero[i], np.clip(1 - ((yy - cy) ** 2 + (xx - cx) ** 2) / r**2, 0, 1))
    ero = np.clip(ero + rng.uniform(0, 0.05, ero.shape), 0, 1).astype(np.float32)
    if u8:
        ero = (ero >= 0.5).astype(np.uint8)
    shape = (n, h, w) if k is None else (n, k, h, w)
    bone = (rng.random(shape) < 0.5).astype(np.uint8)
    boxes = np.column_stack([rng.uniform(0, 900, n), rng.uniform(0, 900, n), rng.uniform(20, 90, n),
                             rng.uniform(20, 90, n), rng.uniform(-90, 90, n)]).astype(np.float32)
    return ero, bone, boxes


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("boxes_on_device", [False, True])
def test_realistic_batch_of_rois(kind, boxes_on_device):
    ero, bone, boxes = rois(16, 256, 256, 0, k=2)
    assert_gpu_matches_cpu(ero, bone, boxes, list(np.linspace(0.08, 0.2, 16)), kind, boxes_on_device)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 31, 33), (2, 64, 64), (2, 65, 130), (5, 7, 100)])
@pytest.mark.parametrize("u8", [False, True])
def test_sizes_around_tile_boundaries(shape, u8):
    ero, bone, boxes = rois(*shape, seed=sum(shape), u8=u8)
    for min_lesion in (0, 4, 50):
        assert_gpu_matches_cpu(ero, bone, boxes, 0.1, min_lesion_px=min_lesion, threshold=0.5)


def test_diagonal_lesions_across_tile_corners():
    ero = np.zeros((1, 96, 96), np.float32)
    idx = np.arange(96)
    ero[0, idx, idx] = 0.9
    t = assert_gpu_matches_cpu(ero, np.zeros((1, 96, 96), np.uint8), np.array([[0, 0, 96, 96, 0]], np.float32), None)
    assert t["lesions"].tolist() == [1] and t["largest_lesion_roi_px"].tolist() == [96]


@st.composite
def cases(draw):
    n, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 80)), draw(st.integers(1, 80))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ero = rng.random((n, h, w)).astype(np.float32)
    if draw(st.booleans()):
        ero = (ero < draw(st.floats(0, 1))).astype(np.uint8)
    k = draw(st.sampled_from([None, 1, 3]))
    bone = (rng.random((n, h, w) if k is None else (n, k, h, w)) < 0.3).astype(np.uint8)
    boxes = np.column_stack([rng.uniform(0, 99, (n, 2)), rng.uniform(1, 50, (n, 2)), np.zeros(n)]).astype(np.float32)
    return (ero, bone, boxes, draw(st.sampled_from([None, 0.1]))), dict(
        threshold=draw(st.sampled_from([0.5, 0.2, 1.0])), min_lesion_px=draw(st.integers(0, 5)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_random_rois_match_cpu(case):
    args, kw = case
    assert_gpu_matches_cpu(*args, **kw)


@pytest.mark.parametrize("bad", [np.nan, 1.5, -0.25])
def test_bad_probabilities_raise_like_the_cpu(bad):
    e = np.zeros((3, 40, 40), np.float32)
    e[1, 35, 2] = bad
    e[2, 0, 0] = bad
    bone, boxes = np.zeros((3, 40, 40), np.uint8), np.ones((3, 5), np.float32)
    assert_raises_like_host(ValueError, quantify_erosions, (e, bone, boxes, 0.1),
                            (to_device(e), to_device(bone), boxes, 0.1))


def test_mixed_devices_are_rejected():
    e = np.zeros((2, 8, 8), np.float32)
    b = np.zeros((2, 8, 8), np.uint8)
    boxes = np.ones((2, 5), np.float32)
    with pytest.raises(ValueError, match="erosion and bone_masks must be on the same device"):
        quantify_erosions(to_device(e), b, boxes, 0.1)
    with pytest.raises(ValueError, match="boxes must be on the host or on the CUDA device of erosion"):
        quantify_erosions(e, b, to_device(boxes), 0.1)
