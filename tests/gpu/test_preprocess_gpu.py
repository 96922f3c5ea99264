"""GPU parity tests of ramh_rt.ops.preprocess: the CUDA path held against the CPU twin.

Integer-valued results (windows) must be identical. Float outputs are computed with the same roundings in the same
order on both devices (ramh/hd_math.hpp), so on an x86-64 host they must be bit-identical too (float16 included);
elsewhere (an aarch64 host compiler may round differently) they must agree within 1e-5 relative.
Skipped when the core has no CUDA kernels or no device is visible (tests/gpu/conftest.py)."""
from __future__ import annotations

import numpy as np
import pytest

import ramh_rt
from ramh_rt.ops import preprocess

from gpu_parity import CudaArrayOnly, assert_parity, to_device as to_dev, to_host

def run_both(img, out_hw, **kw):
    x_cpu, lb_cpu = preprocess(img, out_hw, **kw)
    x_dev, lb_dev = preprocess(to_dev(img), out_hw, **kw)
    assert not isinstance(x_dev, np.ndarray)
    x_gpu = to_host(x_dev)
    assert_parity(x_gpu, x_cpu)
    assert lb_dev == lb_cpu   # geometry and windows (integer histograms: exact; float: same bins and edges)
    return x_gpu, lb_dev


def smooth_u16(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    base = 2000 + 1500 * np.sin(xx / 90.0) * np.cos(yy / 70.0) + rng.normal(0, 200, (h, w))
    base[:, : w // 5] = 40   # flat background: many equal values hammer one histogram bin
    return base.clip(0, 65535).astype(np.uint16)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("in_hw,out_hw", [((200, 300), (50, 75)), ((200, 300), (64, 64)), ((37, 53), (100, 120)),
                                          ((513, 771), (128, 160)), ((1, 9), (4, 4)), ((5, 7), (5, 7))])
@pytest.mark.parametrize("antialias", [True, False])
def test_parity_shapes_and_dtypes(rng, dtype, in_hw, out_hw, antialias):
    if dtype == "float32":
        img = rng.normal(0, 100, in_hw).astype(np.float32)
    else:
        img = rng.integers(0, np.iinfo(dtype).max, in_hw, dtype=dtype, endpoint=True)
    run_both(img, out_hw, antialias=antialias, mean=0.3, std=0.7)


@pytest.mark.parametrize("out_hw", [(512, 640), (1024, 1280), (640, 640)])
def test_parity_realistic_radiograph(rng, out_hw):
    img = smooth_u16(rng, 2048, 2560)
    for dtype in ("float32", "float16"):
        run_both(img, out_hw, dtype=dtype, mean=0.5, std=0.25)


@pytest.mark.parametrize("pct", [(0.5, 99.5), (0.0, 100.0), (3.7, 50.0)])
def test_parity_percentiles(rng, pct):
    for img in (rng.integers(0, 256, (3, 61, 47), dtype=np.uint8),
                rng.integers(0, 65536, (3, 61, 47), dtype=np.uint16),
                smooth_u16(rng, 300, 400)[None],
                rng.normal(5, 3, (3, 61, 47)).astype(np.float32)):
        run_both(img, (32, 32), percentiles=pct)


def test_parity_float16_extremes(rng):
    img = rng.integers(0, 65536, (2, 80, 96), dtype=np.uint16)
    for mean, std in [(0.0, 1e5), (0.0, 1e-5), (0.3, 3e-5)]:
        x16, _ = run_both(img, (40, 48), dtype="float16", mean=mean, std=std)
        x32, _ = run_both(img, (40, 48), dtype="float32", mean=mean, std=std)
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(x16.view(np.uint16), x32.astype(np.float16).view(np.uint16))


def test_parity_constant_and_step_images():
    run_both(np.full((2, 40, 50), 7, np.uint16), (32, 32), mean=0.25, std=0.5)
    run_both(np.full((40, 50), -3.5, np.float32), (32, 32))
    img = np.full((50, 50), 10, np.uint16)
    img[25, 25] = 500
    x, lb = run_both(img, (50, 50), antialias=False)
    assert lb.window == (10.0, 10.0)
    np.testing.assert_array_equal(x[0, 0], (img > 10).astype(np.float32))


def test_parity_given_windows_and_padding(rng):
    imgs = rng.integers(0, 4096, (5, 100, 50), dtype=np.uint16)
    run_both(imgs, (64, 64), window=(100, 3000), pad_value=-2.0)
    run_both(imgs, (64, 64), window=rng.uniform(0, 2000, (5, 1)) + [[0, 1000]], mean=0.1, std=0.2)


def test_batch_in_one_call_equals_single_calls(rng):
    imgs = rng.integers(0, 4096, (6, 45, 60), dtype=np.uint16)
    x, lbs = preprocess(to_dev(imgs), (32, 32), dtype="float16")
    x = to_host(x)
    for i in range(6):
        xi, li = preprocess(to_dev(imgs[i]), (32, 32), dtype="float16")
        np.testing.assert_array_equal(x[i], to_host(xi)[0])
        assert lbs[i] == li


def test_device_output_is_a_device_array(rng):
    x, _ = preprocess(to_dev(rng.integers(0, 255, (30, 40), dtype=np.uint8)), (16, 16), dtype="float16")
    assert isinstance(x, ramh_rt.DeviceArray)
    assert x.shape == (1, 1, 16, 16) and x.dtype == np.float16 and x.device == 0
    assert x.__cuda_array_interface__["typestr"] == "<f2"


def test_non_finite_pixels_on_device_are_refused_with_a_count():
    img = np.zeros((3, 10, 10), np.float32)
    img[0, 1, 2] = np.nan
    img[2, 3, 4] = np.inf
    with pytest.raises(ValueError, match=r"2 non-finite values .* out of 300"):
        preprocess(to_dev(img), (5, 5))
    with pytest.raises(ValueError, match="1 non-finite value "):
        preprocess(to_dev(np.array([[1.0, np.nan]], np.float32)), (5, 5), window=(0, 1))
    with pytest.raises(ValueError, match="overflows float32"):
        preprocess(to_dev(np.array([[-3e38, 3e38]], np.float32)), (5, 5))


def test_bad_arguments_on_device():
    with pytest.raises(ValueError, match="std must be finite and > 0"):
        preprocess(to_dev(np.zeros((6, 6), np.uint8)), (4, 4), std=0.0)
    with pytest.raises(ValueError, match="uint8, uint16 or float32"):
        preprocess(to_dev(np.zeros((6, 6), np.int32)), (4, 4))


def test_cupy_input_if_available(rng):
    cp = pytest.importorskip("cupy")
    img = rng.integers(0, 65536, (2, 120, 90), dtype=np.uint16)
    x, lbs = preprocess(cp.asarray(img), (64, 64), dtype="float16")
    x_cpu, lbs_cpu = preprocess(img, (64, 64), dtype="float16")
    assert_parity(cp.asnumpy(cp.asarray(x)), x_cpu)
    assert lbs == lbs_cpu


def test_float_window_with_extreme_pixels_is_refined_alike_on_both_devices(rng):
    img = smooth_u16(rng, 300, 400).astype(np.float32)
    img[10, 20] = 1e12    # squeezes the 4096 bins over [min, max]: the exact percentiles are used instead
    img[200, 5] = -3e9
    x_gpu, lb = run_both(img, (128, 160))
    assert lb.window_warning is not None and "2 pixel(s) lie far outside" in lb.window_warning
    want = np.percentile(img, [0.5, 99.5], method="inverted_cdf")
    assert lb.window == (float(want[0]), float(want[1]))
    batch = np.stack([img, smooth_u16(rng, 300, 400).astype(np.float32)])
    x_b, lbs = preprocess(CudaArrayOnly(to_dev(batch)), (128, 160))   # a bare CUDA array: copied to the host to refine
    assert [b.window_warning is None for b in lbs] == [False, True]
    assert_parity(to_host(x_b)[0:1], x_gpu)
