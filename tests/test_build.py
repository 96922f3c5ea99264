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
