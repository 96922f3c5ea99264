"""Helpers shared by the GPU parity tests (tests/gpu/test_*_gpu.py): moving arrays to and from the device and the
GPU-vs-CPU comparison rule. A plain module rather than conftest.py content: tests/ and tests/gpu/ both have a
conftest.py, so ``from conftest import ...`` would depend on which of the two pytest imported last."""
from __future__ import annotations

import platform

import numpy as np
import pytest

from ramh_rt import DeviceArray

try:
    import cupy
except ImportError:  # CuPy is optional: DeviceArray covers the device path
    cupy = None

#: Device array kinds the ops must accept: the core's own DeviceArray, and CuPy arrays where CuPy is installed.
KINDS: list[str] = ["device_array"] + (["cupy"] if cupy is not None else [])

#: On x86-64 the CPU twins and the kernels produce the same float bits (no FMA contraction on either side, see
#: ramh/hd_math.hpp); elsewhere the host compiler may round differently and floats are compared with a tolerance.
EXACT_FLOATS: bool = platform.machine().lower() in ("x86_64", "amd64")


def to_device(x, kind: str = "device_array"):
    """Copy a host array to the device as a :class:`ramh_rt.DeviceArray` (``kind="device_array"``) or a CuPy array
    (``kind="cupy"``); the input is made C-contiguous first."""
    x = np.ascontiguousarray(x)
    return DeviceArray.from_host(x) if kind == "device_array" else cupy.asarray(x)


def to_host(a) -> np.ndarray:
    """A device array's contents as a NumPy array (waits for the work that produced it)."""
    return a.to_host()


def assert_parity(gpu: np.ndarray, cpu: np.ndarray) -> None:
    """GPU output equals the CPU twin's: same shape and dtype; integers always bit-exact, floats bit-exact where
    :data:`EXACT_FLOATS`, else within rtol 1e-5 / atol 1e-6 (NaN equal to NaN)."""
    assert gpu.shape == cpu.shape and gpu.dtype == cpu.dtype
    if cpu.dtype.kind in "ui" or EXACT_FLOATS:
        np.testing.assert_array_equal(gpu, cpu)
    else:
        np.testing.assert_allclose(gpu.astype(np.float64), cpu.astype(np.float64), rtol=1e-5, atol=1e-6,
                                   equal_nan=True)



def assert_table_parity(gpu: np.ndarray, cpu: np.ndarray, exact_fields, close_fields, *, rtol: float = 1e-5,
                        atol: float = 0.0, equal_nan: bool = True) -> None:
    """A GPU record table (structured array, one row per instance / ROI) equals the CPU twin's: same dtype and row
    count, ``exact_fields`` bit-exact, ``close_fields`` within ``rtol`` / ``atol`` (NaN equal to NaN where
    ``equal_nan``); a failure names the field."""
    assert gpu.dtype == cpu.dtype and len(gpu) == len(cpu)
    for f in exact_fields:
        np.testing.assert_array_equal(gpu[f], cpu[f], err_msg=f)
    for f in close_fields:
        np.testing.assert_allclose(gpu[f], cpu[f], rtol=rtol, atol=atol, equal_nan=equal_nan, err_msg=f)

def host_and_device(op, x, *args, **kw) -> np.ndarray:
    """Run ``op(x, *args, **kw)`` on the host array ``x`` and on its device copy, check that the device call returns a
    device array whose contents match the host result (:func:`assert_parity`), and return the host result."""
    cpu = op(x, *args, **kw)
    dev = op(to_device(x), *args, **kw)
    assert not isinstance(dev, np.ndarray)
    assert_parity(to_host(dev), cpu)
    return cpu



def assert_raises_like_host(exc: type, op, host_args: tuple, device_args: tuple, **kw) -> None:
    """``op(*device_args, **kw)`` raises ``exc`` with the very message that ``op(*host_args, **kw)`` raises (the
    device path must find the same first bad element as the CPU twin, whose message the CPU tests check)."""
    with pytest.raises(exc) as on_host:
        op(*host_args, **kw)
    with pytest.raises(exc) as on_device:
        op(*device_args, **kw)
    assert str(on_device.value) == str(on_host.value)

class CudaArrayOnly:
    """Any CUDA array: an object exposing only ``__cuda_array_interface__`` (borrowed from a device array ``da``,
    which it keeps alive), to check that the ops accept arrays of libraries they do not know."""

    def __init__(self, da):
        self.da = da

    @property
    def __cuda_array_interface__(self):
        return self.da.__cuda_array_interface__
