import pytest

import ramh_rt


def test_build_info_reports_the_build():
    info = ramh_rt.build_info()
    assert set(info) >= {"version", "cuda", "cuda_architectures", "cuda_compiler", "cxx_compiler", "openmp"}
    assert info["version"] == ramh_rt.__version__
    if info["cuda"]:
        archs = info["cuda_architectures"].split(",")
        assert archs and all(a.strip() for a in archs)
    else:
        assert info["cuda_architectures"] == ""


def test_cuda_available_is_consistent_with_build():
    if not ramh_rt.build_info()["cuda"]:
        assert ramh_rt.cuda_available() is False
    assert isinstance(ramh_rt.cuda_available(), bool)


@pytest.mark.skipif(ramh_rt.cuda_available(), reason="checks the no-device error path")
def test_device_array_without_device_raises_clearly():
    with pytest.raises(RuntimeError, match="CUDA"):
        ramh_rt.DeviceArray.empty((4, 4), "float32")


@pytest.mark.parametrize("shape,dtype", [([2**62], "float32"), ([2**32, 2**32], "uint8"), ([2**61, 4], "uint8")])
def test_device_array_shape_that_cannot_be_allocated_is_refused_before_any_device(shape, dtype):
    """A wrapped byte count would hand out a tiny block under a huge exported shape; refused with the shape, on
    machines with or without a GPU alike."""
    with pytest.raises(ValueError, match="is too large for one array"):
        ramh_rt.DeviceArray.empty(shape, dtype)
    with pytest.raises(ValueError, match="negative"):
        ramh_rt.DeviceArray.empty([-1], dtype)
