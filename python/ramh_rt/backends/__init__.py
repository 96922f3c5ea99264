"""Inference backends behind one seam: ``select_backend(name).backend.create_session(spec).run(feeds)``.

Registered backends: ``"onnxruntime-cpu"``, ``"onnxruntime-cuda"``, ``"tensorrt"``. ``select_backend("auto")`` takes
the first available of tensorrt, onnxruntime-cuda, onnxruntime-cpu and reports why the others were skipped.

Example::

    from ramh_rt.bundle import Bundle
    from ramh_rt.backends import select_backend

    backend, skipped = select_backend("auto")
    session = backend.create_session(Bundle.load().model("bones"))
    logits = session.run({"image": batch})["logits"]
"""
from __future__ import annotations

from .base import (AUTO_ORDER, ArrayInfo, Backend, BackendSelection, Session, array_info, backend_names,
                   check_feeds, get_backend, is_device_array, output_shape, parse_device, physical_cores,
                   register_backend, select_backend)
from .onnxruntime_backend import OnnxRuntimeBackend, OrtSession
from .tensorrt_backend import TensorRTBackend, TensorRTSession

register_backend(OnnxRuntimeBackend("cpu"), replace=True)
register_backend(OnnxRuntimeBackend("cuda"), replace=True)
register_backend(TensorRTBackend(), replace=True)


def describe_backends() -> list[dict]:
    """``Backend.describe()`` of every registered backend (name, available, reason, devices, versions)."""
    return [get_backend(n).describe() for n in backend_names()]


__all__ = ["AUTO_ORDER", "ArrayInfo", "Backend", "BackendSelection", "Session", "OnnxRuntimeBackend", "OrtSession",
           "TensorRTBackend", "TensorRTSession", "array_info", "backend_names", "check_feeds", "describe_backends",
           "get_backend", "is_device_array", "output_shape", "parse_device", "physical_cores", "register_backend",
           "select_backend"]
