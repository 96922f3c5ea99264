"""Argument handling shared by every op: one place that tells device arrays from host data, reads host arrays in
native byte order, and reads integer and number pairs.

Ranges are not checked here: the C++ core validates every value range (and names the argument), so the two cannot
disagree. What is checked here is only what must be known before the core is called (which device, which dtype).
"""
from __future__ import annotations

import numpy as np

from .. import _core


def is_device_array(obj) -> bool:
    """True for CUDA arrays: :class:`ramh_rt.DeviceArray`, CuPy, PyTorch CUDA tensors, any object exposing
    ``__cuda_array_interface__``. False for NumPy arrays, sequences and PyTorch *CPU* tensors (whose
    ``__cuda_array_interface__`` attribute raises), which are host data."""
    if isinstance(obj, _core.DeviceArray):
        return True
    try:
        return hasattr(obj, "__cuda_array_interface__")
    except Exception:  # noqa: BLE001 - a property that raises something other than AttributeError: not CUDA
        return False


def array_dtype(obj) -> np.dtype:
    """The NumPy dtype of an array the core reads: a host array's, or a CUDA array's ``__cuda_array_interface__``
    typestr (a PyTorch tensor's ``dtype`` is not a NumPy dtype)."""
    if is_device_array(obj) and not isinstance(obj, _core.DeviceArray):
        return np.dtype(obj.__cuda_array_interface__["typestr"])
    return np.dtype(obj.dtype)


def array_shape(obj) -> tuple[int, ...]:
    """The shape of an array the core reads (host, :class:`ramh_rt.DeviceArray` or ``__cuda_array_interface__``)."""
    if is_device_array(obj) and not isinstance(obj, _core.DeviceArray):
        return tuple(int(v) for v in obj.__cuda_array_interface__["shape"])
    return tuple(int(v) for v in obj.shape)


def host_array(obj, name: str, allowed: tuple = (), *, float64_to_float32: bool = False,
               bool_as_uint8: bool = False) -> np.ndarray:
    """``obj`` as a NumPy array the core can read: native byte order (a big-endian ``'>f4'`` from a file is
    converted, never read as is), optionally bool read as uint8 0/1 and float64 narrowed to float32.

    Args:
        obj: array-like (NumPy, a sequence, a PyTorch CPU tensor...).
        name: the argument's name, for messages.
        allowed: accepted dtypes after conversion (empty: any).
        float64_to_float32: convert float64 to float32 first.
        bool_as_uint8: read a bool array as uint8 (masks); otherwise bool is just another dtype.

    Raises:
        ValueError: ``obj`` cannot be read as an array, or its dtype is not in ``allowed`` (both named).
    """
    try:
        a = np.asarray(obj)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} could not be read as an array: {e}") from None
    if bool_as_uint8 and a.dtype == np.bool_:
        a = a.view(np.uint8)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if float64_to_float32 and a.dtype == np.float64:
        a = a.astype(np.float32)
    if allowed and a.dtype not in allowed:
        names = [np.dtype(t).name for t in allowed]
        names = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        raise ValueError(f"{name} must be of dtype {names}, got {a.dtype}")
    return a


def array_arg(obj, name: str, allowed: tuple = (), *, float64_to_float32: bool = False, bool_as_uint8: bool = False):
    """A device array unchanged (the core reads it where it is), anything else through :func:`host_array`."""
    if is_device_array(obj):
        return obj
    return host_array(obj, name, allowed, float64_to_float32=float64_to_float32, bool_as_uint8=bool_as_uint8)


def pair(value, name: str, cast=float, what: str = "numbers") -> tuple:
    """``(a, b)`` from a 2-sequence, each through ``cast``.

    Raises:
        ValueError: not a pair, or an element ``cast`` refuses (the message names ``name``).
    """
    try:
        a, b = value
        return cast(a), cast(b)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of {what}, got {value!r}") from None


def int_value(v) -> int:
    """An integer from an int-valued number (``4``, ``4.0``, ``np.int64(4)``); bools and fractions refused.

    Raises:
        ValueError: anything else.
    """
    if isinstance(v, (bool, np.bool_)) or int(v) != v:
        raise ValueError(f"expected an integer, got {v!r}")
    return int(v)


def int_pair(value, name: str, what: str = "integers") -> tuple[int, int]:
    """A pair of integers such as ``out_hw`` (see :func:`int_value`); ``what`` describes it in the message.

    Raises:
        ValueError: not a pair of integers (named).
    """
    return pair(value, name, int_value, what)


def check_record_layout(what: str, core_dtype, expected: np.dtype) -> None:
    """Check at import time that the compiled core's record layout ``core_dtype`` (a NumPy structured dtype the core
    fills by memcpy) equals the layout ``expected`` that the Python module documents and reads.

    Raises:
        ImportError: the two differ (a stale ``_core`` build); the message names ``what`` (e.g. ``"instance"``),
            both layouts and the fix.
    """
    if np.dtype(core_dtype) != expected:
        raise ImportError(f"ramh_rt._core was built with {what} layout {core_dtype}, "
                          f"this module expects {expected}: rebuild the core")
