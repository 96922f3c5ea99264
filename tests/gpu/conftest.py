"""GPU parity tests: the same cases as tests/, run on CUDA and held against the CPU twin.

Skipped with a reason when the core has no CUDA kernels or no device is visible. The helpers the parity tests share
(device transfer, the comparison rule, the device array kinds) are in gpu_parity.py."""
import pytest

import ramh_rt


def pytest_collection_modifyitems(config, items):
    info = ramh_rt.build_info()
    if not info["cuda"]:
        reason = "ramh_rt was built without CUDA kernels (no nvcc at build time or RAMH_CUDA=OFF)"
    elif not ramh_rt.cuda_available():
        reason = "no CUDA device is visible on this machine"
    else:
        return
    for item in items:
        if "tests/gpu" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.skip(reason=reason))
