"""The inference seam: :class:`Session` and :class:`Backend`, the registry, and the checks every backend shares.

One seam for every engine (like mmdeploy's ``Net``): a backend turns a bundle's :class:`~ramh_rt.bundle.ModelSpec`
into a session; a session runs a dict of named arrays into a dict of named arrays. On CPU backends the arrays are
NumPy; on CUDA backends outputs are :class:`ramh_rt.DeviceArray` (inputs may be device arrays, i.e. anything with
``__cuda_array_interface__``, or NumPy, copied to the device once).
"""
from __future__ import annotations

import math
import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np

from ..bundle import ModelSpec, TensorSpec
from ..errors import BackendError, FeedError
from ..ops._args import is_device_array  # noqa: F401 - one definition, re-exported for the backends


@runtime_checkable
class Session(Protocol):
    """A model ready to run on one backend and device.

    Attributes:
        input_specs: the model's inputs (name, shape with ``None`` for the dynamic batch, dtype), in manifest order.
        output_specs: the model's outputs, in manifest order.
    """

    input_specs: tuple[TensorSpec, ...]
    output_specs: tuple[TensorSpec, ...]

    def run(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Run the model.

        Args:
            feeds: one array per input name, of the input's dtype and shape; every dynamic (batch) dimension takes
                the same value across inputs.

        Returns:
            One array per output name: NumPy on CPU backends, :class:`ramh_rt.DeviceArray` on CUDA backends.

        Raises:
            FeedError: missing or unexpected names, wrong dtype/shape/device (the input and expectation are named).
            BackendError: the engine failed.
        """
        ...


class Backend(ABC):
    """An inference engine that can create :class:`Session` objects. Registered by :attr:`name`."""

    #: Registry name, e.g. ``"onnxruntime-cpu"``.
    name: str = ""

    @abstractmethod
    def available(self) -> tuple[bool, str]:
        """(True, "") when sessions can be created here, else (False, why not: what is missing and how to get it)."""

    @abstractmethod
    def devices(self) -> list[str]:
        """Devices sessions can run on: ``["cpu"]`` or ``["cuda:0", ...]``; empty when unavailable."""

    @abstractmethod
    def create_session(self, spec: ModelSpec, device: str | int | None = None, **options: Any) -> Session:
        """Create a session for one model of a bundle.

        Args:
            spec: the model (from :meth:`ramh_rt.bundle.Bundle.model`).
            device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``N``; None = the backend's first device.
            **options: backend-specific settings (see each backend); unknown ones raise ValueError.

        Raises:
            BackendError: the backend is unavailable or the engine refuses the model.
            ValueError: an unknown option or device.
        """

    #: Python package of the engine behind this backend (``"onnxruntime"``, ``"tensorrt"``), named in :meth:`versions`.
    engine_package: str = ""

    def _import_engine(self) -> Any:
        """The engine's Python module; raises ImportError (or whatever a broken install raises) when it cannot load."""
        raise ImportError(f"backend {self.name} names no engine package")

    def versions(self) -> dict[str, str]:
        """``{engine_package: version}``, e.g. ``{"onnxruntime": "1.23.2"}``; empty when the engine cannot be imported."""
        try:
            return {self.engine_package: str(self._import_engine().__version__)}
        except Exception:  # noqa: BLE001 - a missing or broken engine is reported by available(), not here
            return {}

    def describe(self) -> dict[str, Any]:
        """``{"name", "available", "reason", "devices", "versions"}`` for ``ramh info``."""
        ok, reason = self.available()
        return {"name": self.name, "available": ok, "reason": reason, "devices": self.devices() if ok else [],
                "versions": self.versions()}

    def _require_available(self) -> None:
        ok, reason = self.available()
        if not ok:
            raise BackendError(f"backend {self.name} is not available: {reason}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# ---------------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------------

#: Order in which ``select_backend("auto")`` tries the backends.
AUTO_ORDER: tuple[str, ...] = ("tensorrt", "onnxruntime-cuda", "onnxruntime-cpu")

_REGISTRY: dict[str, Backend] = {}
_LOCK = threading.Lock()


def register_backend(backend: Backend, *, replace: bool = False) -> None:
    """Register ``backend`` under ``backend.name``.

    Raises:
        ValueError: the name is empty, or taken and ``replace`` is False.
    """
    if not backend.name:
        raise ValueError("backend.name must be a non-empty string")
    with _LOCK:
        if backend.name in _REGISTRY and not replace:
            raise ValueError(f"a backend named {backend.name!r} is already registered")
        _REGISTRY[backend.name] = backend


def backend_names() -> tuple[str, ...]:
    """Names of the registered backends."""
    return tuple(_REGISTRY)


def get_backend(name: str) -> Backend:
    """The registered backend called ``name``.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown backend {name!r}; known: auto, {', '.join(_REGISTRY)}") from None


class BackendSelection(NamedTuple):
    """Result of :func:`select_backend`: the backend chosen, and why each better one was skipped."""

    backend: Backend
    unavailable: dict[str, str]


def select_backend(name: str = "auto", exclude: Sequence[str] = ()) -> BackendSelection:
    """Pick a backend.

    Args:
        name: ``"auto"`` tries :data:`AUTO_ORDER` (``tensorrt``, ``onnxruntime-cuda``, ``onnxruntime-cpu``) and takes
            the first available; any other registered name takes that backend.
        exclude: with ``"auto"``, backends not to try (ones that already failed to load a bundle, say).

    Returns:
        ``(backend, unavailable)``; with ``"auto"``, ``unavailable`` maps each backend tried before the chosen one to
        the reason it could not be used (empty for an explicit name). Record it in ``ramh info`` / ``Analysis.meta``.

    Raises:
        ValueError: unknown name (the known ones are listed).
        BackendError: the named backend, or with ``"auto"`` every backend, is unavailable (the reasons are given).
    """
    if name == "auto":
        skipped: dict[str, str] = {}
        for candidate in AUTO_ORDER:
            if candidate not in _REGISTRY or candidate in exclude:
                continue
            ok, reason = _REGISTRY[candidate].available()
            if ok:
                return BackendSelection(_REGISTRY[candidate], skipped)
            skipped[candidate] = reason
        if not skipped and exclude:
            raise BackendError(f"no inference backend is left to try (excluded: {', '.join(exclude)})")
        raise BackendError("no inference backend is available: "
                           + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    backend = get_backend(name)
    ok, reason = backend.available()
    if not ok:
        raise BackendError(f"backend {name} is not available: {reason}")
    return BackendSelection(backend, {})


# ---------------------------------------------------------------------------------------------------------------------
# Arrays and feeds
# ---------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ArrayInfo:
    """What a session needs to know about one feed array.

    Attributes:
        shape: dimensions.
        dtype: NumPy dtype.
        on_device: True for CUDA arrays (``__cuda_array_interface__``).
        ptr: device pointer of a CUDA array (0 for host arrays).
        device_id: CUDA device of the array when it says (``DeviceArray.device``), else None.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    on_device: bool
    ptr: int = 0
    device_id: int | None = None


def array_info(x: Any, what: str) -> ArrayInfo:
    """Shape, dtype, device and pointer of a NumPy or CUDA array.

    Raises:
        FeedError: ``x`` is neither a NumPy array nor a C-contiguous CUDA array (named by ``what``).
    """
    if isinstance(x, np.ndarray):
        return ArrayInfo(tuple(int(s) for s in x.shape), x.dtype, False)
    if is_device_array(x):
        cai = x.__cuda_array_interface__
        shape = tuple(int(s) for s in cai["shape"])
        dtype = np.dtype(cai["typestr"])
        strides = cai.get("strides")
        if strides is not None:
            expect = dtype.itemsize
            for dim, stride in zip(reversed(shape), reversed(strides)):
                if dim > 1 and stride != expect:
                    raise FeedError(f"{what} must be a C-contiguous CUDA array (make a contiguous copy first)")
                expect *= dim
        device = getattr(x, "device", None)
        device_id = device if isinstance(device, int) and not isinstance(device, bool) else \
            getattr(device, "id", None) if device is not None else None
        if device_id is None and device is not None:
            device_id = getattr(device, "index", None)  # torch.device
        return ArrayInfo(shape, dtype, True, int(cai["data"][0]), device_id)
    raise FeedError(f"{what} must be a NumPy array or a CUDA array (__cuda_array_interface__), got "
                    f"{type(x).__name__}")


def check_feeds(model: str, specs: Sequence[TensorSpec], feeds: Mapping[str, Any]) -> tuple[dict[str, ArrayInfo],
                                                                                          int | None]:
    """Check feeds against input specs; return per-input :class:`ArrayInfo` and the batch (None if no dynamic dim).

    Raises:
        FeedError: not a mapping; missing or unexpected names; wrong dtype, rank or fixed dimension; a dynamic
            dimension < 1 or different across inputs. Every message names ``model``, the input and the expectation.
    """
    if not isinstance(feeds, Mapping):
        raise FeedError(f"{model}: feeds must be a dict of input name -> array, got {type(feeds).__name__}")
    names = [s.name for s in specs]
    missing = [n for n in names if n not in feeds]
    extra = [n for n in feeds if n not in names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(map(repr, missing))}")
        if extra:
            parts.append(f"unexpected {', '.join(map(repr, extra))}")
        raise FeedError(f"{model}: feeds do not match the model's inputs ({'; '.join(parts)}); expected exactly "
                        f"{', '.join(map(repr, names))}")
    infos: dict[str, ArrayInfo] = {}
    batch: int | None = None
    batch_from = ""
    for spec in specs:
        what = f"{model}: input {spec.name!r}"
        info = array_info(feeds[spec.name], what)
        expected_shape = _shape_text(spec.shape)
        if info.dtype != np.dtype(spec.dtype):
            raise FeedError(f"{what} must be {spec.dtype}, got {info.dtype} (shape {expected_shape} expected)")
        if len(info.shape) != len(spec.shape):
            raise FeedError(f"{what} must have shape {expected_shape}, got {info.shape} (rank {len(info.shape)} "
                            f"instead of {len(spec.shape)})")
        for axis, (want, got) in enumerate(zip(spec.shape, info.shape)):
            if want is None:
                if got < 1:
                    raise FeedError(f"{what}: the batch dimension (axis {axis}) must be >= 1, got {got}")
                if batch is None:
                    batch, batch_from = got, spec.name
                elif got != batch:
                    raise FeedError(f"{what} has batch {got} but input {batch_from!r} has batch {batch}; all "
                                    "inputs must share one batch size")
            elif got != want:
                raise FeedError(f"{what} must have shape {expected_shape}, got {info.shape} (axis {axis} is {got}, "
                                f"expected {want})")
        infos[spec.name] = info
    return infos, batch


def _shape_text(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


def output_shape(spec: TensorSpec, batch: int | None) -> tuple[int, ...]:
    """Concrete shape of an output for a run with ``batch`` (None: the model has no dynamic dimension).

    Raises:
        BackendError: the output is dynamic but the inputs fix no batch.
    """
    if not spec.is_dynamic:
        return tuple(int(d) for d in spec.shape)  # type: ignore[arg-type]
    if batch is None:
        raise BackendError(f"output {spec.name!r} has a dynamic batch dimension but no input fixes one")
    return spec.concrete_shape(batch)


def parse_device(device: str | int | None, kind: str) -> int:
    """Device index from ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``N`` or None, for a backend of ``kind``.

    Args:
        kind: ``"cpu"`` (only ``"cpu"``/None accepted; returns -1) or ``"cuda"``.

    Raises:
        ValueError: a device of the other kind, or malformed (the value is named).
    """
    if kind == "cpu":
        if device in (None, "cpu"):
            return -1
        raise ValueError(f"device must be 'cpu' for a CPU backend, got {device!r}")
    if device is None or device == "cuda":
        return 0
    if isinstance(device, int) and not isinstance(device, bool) and device >= 0:
        return device
    if isinstance(device, str) and device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise ValueError(f"device must be 'cuda', 'cuda:N' or a device index N >= 0, got {device!r}")


# ---------------------------------------------------------------------------------------------------------------------
# CPU threads
# ---------------------------------------------------------------------------------------------------------------------

def physical_cores() -> int:
    """Physical CPU cores this process may use: the cores (not hyper-threads) of its CPU affinity set, capped by a
    cgroup CPU quota (containers). At least 1.

    Why physical: inference kernels are compute-bound; two threads on one core's hyper-threads compete for the same
    units and usually run slower than one.
    """
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = list(range(os.cpu_count() or 1))
    cores = len(allowed)
    topology = _cpu_topology()
    if topology:
        pairs = {topology[c] for c in allowed if c in topology}
        if pairs:
            cores = len(pairs)
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _cpu_topology() -> dict[int, tuple[str, str]]:
    """logical CPU -> (physical id, core id) from /proc/cpuinfo (x86; ARM lists no core id: empty, 1 thread/core)."""
    out: dict[int, tuple[str, str]] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return out
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "processor" in fields and "core id" in fields:
            try:
                out[int(fields["processor"])] = (fields.get("physical id", "0"), fields["core id"])
            except ValueError:
                continue
    return out


def _cgroup_cpu_quota() -> float | None:
    """CPUs granted by a cgroup v2 (cpu.max) or v1 (cfs quota/period) limit, or None when unlimited/unknown."""
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as fh:
            quota, period = fh.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", encoding="ascii") as fh:
            quota_us = int(fh.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us", encoding="ascii") as fh:
            period_us = int(fh.read())
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


__all__ = ["Session", "Backend", "BackendSelection", "ArrayInfo", "AUTO_ORDER", "register_backend", "backend_names",
           "get_backend", "select_backend", "is_device_array", "array_info", "check_feeds", "output_shape",
           "parse_device", "physical_cores"]
