"""ramh_rt — edge inference SDK for hand radiographs of rheumatoid-arthritis patients (RAM-H1200).

``ramh_rt.analyze(image)`` (and :class:`Analyzer` for many images) runs the whole pipeline; the C++/CUDA core lives in
:mod:`ramh_rt._core` and :mod:`ramh_rt.ops` exposes its kernels with NumPy in/out on the CPU and device arrays in/out
on CUDA.
"""
from __future__ import annotations

from . import _core
from ._core import DeviceArray

__version__: str = _core.build_info()["version"]


def build_info() -> dict:
    """What this build of the core contains.

    Returns a dict with ``version``, ``cuda`` (bool: CUDA kernels compiled in), ``cuda_architectures`` (e.g.
    ``"87,90"``), ``cuda_compiler``, ``cxx_compiler`` and ``openmp``.
    """
    return dict(_core.build_info())


def cuda_available() -> bool:
    """True when CUDA kernels are compiled in *and* a CUDA device can be used now (driver present, device visible)."""
    return bool(_core.cuda_available())


_LAZY = {"analyze": "pipeline", "analyze_hands": "pipeline", "Analyzer": "pipeline", "AnalysisError": "pipeline",
         "Analysis": "result", "compare": "progression", "Progression": "progression"}


def __getattr__(name: str):
    # The pipeline pulls in ONNX Runtime: load it on first use so `import ramh_rt` (and the ops) stay light.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ramh_rt' has no attribute {name!r}")


__all__ = ["Analysis", "AnalysisError", "Analyzer", "DeviceArray", "Progression", "analyze", "analyze_hands",
           "build_info", "compare",
           "cuda_available", "__version__"]
