"""GPU parity tests of ramh_rt.ops.crop_rois / paste_rois: the CUDA path held against the CPU twin.

Sample positions, coverage and nearest picks are computed with the same float32 roundings on both devices
(ramh/detail/roi_impl.hpp): integer outputs must be identical, and float outputs bit-identical on an x86-64 host
(within 1e-5 relative elsewhere). Skipped when the core has no CUDA kernels or no device is visible."""
from __future__ import annotations

import numpy as np
import pytest

from ramh_rt.ops import crop_rois, paste_rois

from gpu_parity import CudaArrayOnly, assert_parity, host_and_device, to_device as to_dev, to_host

def random_boxes(rng, n, h, w, margin=0.0, angles=(-180, 180), size=(5, 300)):
    return np.column_stack([rng.uniform(-margin, w + margin, n), rng.uniform(-margin, h + margin, n),
                            rng.uniform(*size, n), rng.uniform(*size, n), rng.uniform(*angles, n)])


def crop_both(img, boxes, out_hw, interpolation="bilinear", fill=0):
    return host_and_device(crop_rois, img, boxes, out_hw, interpolation, fill)


def paste_both(rois, boxes, out_hw, reduce="max", fill=0):
    return host_and_device(paste_rois, rois, boxes, out_hw, reduce, fill)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_crop_parity(rng, dtype, interpolation):
    h, w = 700, 900
    img = (rng.normal(0, 1000, (h, w)).astype(np.float32) if dtype == np.float32
           else rng.integers(0, np.iinfo(dtype).max, (h, w), dtype=dtype, endpoint=True))
    boxes = random_boxes(rng, 40, h, w, margin=100)
    for out_hw, fill in [((224, 224), 0), ((17, 33), 5), ((1, 1), 0)]:
        crop_both(img, boxes, out_hw, interpolation, fill)


def test_crop_parity_realistic_joint_rois(rng):
    img = rng.integers(0, 65536, (2048, 2560), dtype=np.uint16)
    boxes = random_boxes(rng, 32, 2048, 2560, angles=(-40, 40), size=(150, 300))
    crop_both(img, boxes, (224, 224))
    labels = rng.integers(0, 31, (2048, 2560), dtype=np.uint8)
    crop_both(labels, boxes, (224, 224), "nearest")


def test_crop_parity_right_angles_and_nan_fill(rng):
    img = rng.normal(0, 1, (90, 110)).astype(np.float32)
    boxes = np.array([[30.0, 20.0, 16, 10, a] for a in (0.0, 90.0, 180.0, 270.0, -90.0, 720.0)] +
                     [[0.2, 0.7, 9.5, 3.25, 0.0], [109.9, 89.9, 20, 20, 33.0]])
    crop_both(img, boxes, (10, 16), fill=np.nan)
    crop_both(img, boxes, (10, 16), "nearest", fill=np.nan)


def test_crop_parity_label_stack(rng):
    stack = rng.integers(0, 2, (30, 256, 320), dtype=np.uint8)
    boxes = random_boxes(rng, 12, 256, 320, size=(20, 90))
    out = crop_both(stack, boxes, (64, 64), "nearest")
    assert out.shape == (12, 30, 64, 64)


def test_crop_empty_on_device():
    dev = crop_rois(to_dev(np.zeros((8, 8), np.uint16)), np.zeros((0, 5)), (4, 3))
    assert tuple(dev.shape) == (0, 4, 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_paste_parity(rng, dtype):
    h, w = 600, 800
    n = 40
    rois = (rng.normal(0, 1, (n, 31, 47)).astype(np.float32) if dtype == np.float32
            else rng.integers(0, 256, (n, 31, 47), dtype=np.uint8))
    boxes = random_boxes(rng, n, h, w, margin=60, size=(3, 250))
    for reduce in (["max", "or"] if dtype == np.uint8 else ["max"]):
        paste_both(rois, boxes, (h, w), reduce, fill=7)


def test_paste_parity_many_rois_and_nans(rng):
    # more ROIs than one block's staging area (256) and NaNs in the float maps
    n = 300
    rois = rng.normal(0, 1, (n, 8, 8)).astype(np.float32)
    rois[rng.random(rois.shape) < 0.1] = np.nan
    boxes = random_boxes(rng, n, 200, 300, margin=20, size=(4, 60))
    paste_both(rois, boxes, (200, 300), fill=np.nan)
    paste_both((rois > 0).astype(np.uint8), boxes, (200, 300), "or")


def test_paste_parity_realistic(rng):
    boxes = random_boxes(rng, 32, 2048, 2560, angles=(-40, 40), size=(150, 300))
    img = rng.integers(0, 65536, (2048, 2560), dtype=np.uint16)
    rois = crop_rois(img, boxes, (224, 224))
    paste_both(rois, boxes, (2048, 2560))
    paste_both((rois > 30000).astype(np.uint8), boxes, (2048, 2560), "or")


def test_paste_no_rois_on_device():
    dev = paste_rois(to_dev(np.zeros((0, 4, 4), np.float32)), np.zeros((0, 5)), (5, 6), fill=2.5)
    assert np.all(to_host(dev) == np.float32(2.5))


def test_device_array_boxes_are_accepted(rng):
    img = rng.integers(0, 255, (50, 60), dtype=np.uint8)
    boxes = random_boxes(rng, 4, 50, 60, size=(5, 30)).astype(np.float32)
    got = crop_rois(to_dev(img), to_dev(boxes), (8, 8), "nearest")   # the tiny box table is copied to the host
    np.testing.assert_array_equal(to_host(got), crop_rois(img, boxes, (8, 8), "nearest"))


def test_any_cuda_array_of_boxes_is_accepted_by_crop_and_paste(rng):
    img = rng.integers(0, 255, (50, 60), dtype=np.uint8)
    boxes = random_boxes(rng, 4, 50, 60, size=(5, 30)).astype(np.float32)
    dev_boxes = CudaArrayOnly(to_dev(boxes))
    got = crop_rois(img, dev_boxes, (8, 8), "nearest")  # host image, device boxes: same answer
    np.testing.assert_array_equal(got, crop_rois(img, boxes, (8, 8), "nearest"))
    rois = (rng.random((4, 8, 8)) > 0.5).astype(np.uint8)
    np.testing.assert_array_equal(to_host(paste_rois(to_dev(rois), dev_boxes, (50, 60))),
                                  paste_rois(rois, boxes, (50, 60)))
    with pytest.raises(ValueError, match="boxes on a CUDA device must be float32"):
        crop_rois(img, CudaArrayOnly(to_dev(boxes.astype(np.int32))), (8, 8))


def test_bad_arguments_on_device():
    with pytest.raises(ValueError, match=r"boxes\[0\] must have w > 0"):
        crop_rois(to_dev(np.zeros((8, 8), np.uint8)), [[1, 1, 0, 1, 0]], (2, 2))
    with pytest.raises(ValueError, match="reduce='or' needs uint8"):
        paste_rois(to_dev(np.zeros((1, 4, 4), np.float32)), [[1, 1, 1, 1, 0]], (4, 4), "or")


def test_cupy_input_if_available(rng):
    cp = pytest.importorskip("cupy")
    img = rng.integers(0, 65536, (300, 400), dtype=np.uint16)
    boxes = random_boxes(rng, 8, 300, 400, size=(20, 80))
    got = crop_rois(cp.asarray(img), boxes, (32, 32))
    assert_parity(cp.asnumpy(cp.asarray(got)), crop_rois(img, boxes, (32, 32)))
