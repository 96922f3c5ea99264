"""TensorRT backend: engines built from the bundle's ONNX, cached as plans, run on the core's CUDA stream.

``tensorrt`` is imported lazily; without it :meth:`TensorRTBackend.available` says so and nothing else fails. Written
against the TensorRT 10 and 11 Python APIs (JetPack 6 ships 10.3): ``Builder``/``OnnxParser``/``BuilderConfig`` to
build, ``Runtime.deserialize_cuda_engine`` to load, named I/O tensors with ``set_input_shape``/``set_tensor_address``
and ``execute_async_v3`` to run. Every decision that does not need TensorRT itself (precision flags per version,
profiles, the plan-cache key and the reuse/rebuild choice) lives in :mod:`ramh_rt.backends.trt_logic`.

Plan cache: ``<cache>/tensorrt/<model>-<key>.plan`` with a ``.json`` sidecar, where the key hashes the model's
sha256, the TensorRT version, the GPU name and compute capability, the precision and flags, the optimisation
profile, the builder workspace limit and a key-format version. A plan whose sidecar does not match, whose bytes are
corrupt or that TensorRT cannot deserialize is rebuilt with a ``RuntimeWarning`` instead of failing. A timing cache
per (TensorRT version, GPU) makes rebuilds fast. Two processes building the same plan at once both succeed; the last
atomic rename wins.

Threads: a session keeps one execution context per thread (created on first use; each holds its own activation
memory), so ``run()`` may be called from several threads. Work from all threads is enqueued on the core's stream and so
executes one batch after another on the GPU.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..bundle import ModelSpec, TensorSpec, sha256_file
from ..errors import BackendError, FeedError
from ..fs import write_atomic
from . import trt_logic
from .base import Backend, check_feeds, parse_device

#: Options accepted by :meth:`TensorRTBackend.create_session`.
SESSION_OPTIONS = ("precision", "min_batch", "opt_batch", "max_batch", "calibration", "calibration_batch",
                   "workspace_mb", "cache_dir", "rebuild", "log_level")

_LOG_LEVELS = ("verbose", "info", "warning", "error")


def _import_trt() -> Any:
    import tensorrt

    return tensorrt


class TensorRTBackend(Backend):
    """NVIDIA TensorRT on CUDA device 0 (the device current in this process)."""

    name = "tensorrt"

    def available(self) -> tuple[bool, str]:
        try:
            trt = _import_trt()
        except ImportError:
            return False, ("tensorrt is not installed (pip install tensorrt on x86-64; on Jetson, JetPack's "
                           "python3-libnvinfer)")
        except Exception as e:  # a broken install (missing libnvinfer) raises OSError and friends
            return False, f"tensorrt failed to import: {e}"
        try:
            trt_logic.check_supported(trt.__version__)
        except ValueError as e:
            return False, str(e)
        from .. import build_info, cuda_available

        if not build_info()["cuda"]:
            return False, "the ramh_rt core was built without CUDA (TensorRT reads and writes the core's device arrays)"
        if not cuda_available():
            return False, "no CUDA device is visible"
        return True, ""

    def devices(self) -> list[str]:
        return ["cuda:0"] if self.available()[0] else []

    engine_package = "tensorrt"

    def _import_engine(self) -> Any:
        return _import_trt()

    def create_session(self, spec: ModelSpec, device: str | int | None = None, **options: Any) -> "TensorRTSession":
        """Build (or load from the plan cache) an engine for ``spec`` and return a session.

        Args:
            spec: the model.
            device: ``"cuda"``, ``"cuda:0"``, ``0`` or None; other devices are refused.
            **options:
                precision (str): ``"auto"`` (default), ``"fp32"``, ``"fp16"``, ``"int8"``; see
                    :func:`ramh_rt.backends.trt_logic.plan_build` for what each TensorRT version can build.
                min_batch, opt_batch, max_batch (int): optimisation profile for the dynamic batch (default 1, max_batch,
                    16); runs outside [min_batch, max_batch] raise FeedError.
                calibration: INT8 calibration inputs (TensorRT 10, FP32 ONNX); see
                    :func:`ramh_rt.backends.trt_logic.calibration_set`.
                calibration_batch (int): samples per calibration batch (default 8).
                workspace_mb (int): builder workspace limit (default: TensorRT's, the device memory).
                cache_dir (path): cache root (default :func:`ramh_rt.bundle.default_cache_dir`); plans go to
                    ``<cache_dir>/tensorrt``.
                rebuild (bool): ignore a cached plan.
                log_level (str): TensorRT log level: ``"verbose"``, ``"info"``, ``"warning"`` (default), ``"error"``.

        Raises:
            BackendError: TensorRT unavailable, ONNX parsing or engine build failed (the parser's errors are listed),
                or the engine's I/O differs from the manifest.
            ValueError: unknown option or bad value, device other than cuda:0, or an impossible precision request.
        """
        self._require_available()
        unknown = sorted(set(options) - set(SESSION_OPTIONS))
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)} for tensorrt; known: {', '.join(SESSION_OPTIONS)}")
        device_id = parse_device(device, "cuda")
        if device_id != 0:
            raise ValueError(f"the tensorrt backend runs on cuda:0 (the process's current device) only, got {device!r}; "
                             "select the GPU with CUDA_VISIBLE_DEVICES")
        from .. import _core

        props = _core.device_properties(0)
        return TensorRTSession(spec, trt=_import_trt(), gpu_name=str(props["name"]),
                               compute_capability=tuple(int(x) for x in props["compute_capability"]),
                               ops=CoreDeviceOps(0), **options)


class CoreDeviceOps:
    """The device services a TensorRT session needs, from the ramh_rt core (pool memory, the core's stream)."""

    def __init__(self, device: int = 0) -> None:
        from .. import DeviceArray, _core

        self._core = _core
        self._device_array = DeviceArray
        self.device = device

    def empty(self, shape: tuple[int, ...], dtype: str) -> Any:
        return self._device_array.empty(list(shape), dtype, self.device)

    def from_host(self, array: np.ndarray) -> Any:
        return self._device_array.from_host(array, self.device)

    def device_of_pointer(self, ptr: int) -> int:
        return int(self._core.device_of_pointer(ptr))

    def stream_handle(self) -> int:
        return int(self._core.stream_handle(self.device))

    def synchronize(self) -> None:
        self._core.synchronize(self.device)


_LOGGERS: dict[str, Any] = {}
_LOGGERS_LOCK = threading.Lock()


def _logger(trt: Any, level: str) -> Any:
    # TensorRT expects few loggers per process; share one per level.
    with _LOGGERS_LOCK:
        key = f"{id(trt)}:{level}"
        if key not in _LOGGERS:
            _LOGGERS[key] = trt.Logger(getattr(trt.Logger, level.upper()))
        return _LOGGERS[key]


class TensorRTSession:
    """A TensorRT engine for one model. Create it with :meth:`TensorRTBackend.create_session`.

    Attributes:
        spec: the model spec; input_specs / output_specs: its tensors.
        backend: ``"tensorrt"``; device: ``"cuda:0"``.
        plan: the :class:`~ramh_rt.backends.trt_logic.BuildPlan` (effective precision, flags).
        limits: the batch limits of the optimisation profile.
        build_info: ``{"action": "reuse"|"build", "reason", "plan_path", "seconds", "precision", "tensorrt"}`` for
            provenance (``Analysis.meta``).
    """

    def __init__(self, spec: ModelSpec, *, trt: Any, gpu_name: str, compute_capability: tuple[int, int], ops: Any,
                 precision: str = "auto", min_batch: int = 1, opt_batch: int | None = None, max_batch: int = 16,
                 calibration: Any = None, calibration_batch: int = 8, workspace_mb: int | None = None,
                 cache_dir: str | Path | None = None, rebuild: bool = False, log_level: str = "warning") -> None:
        if log_level not in _LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(_LOG_LEVELS)}, got {log_level!r}")
        if workspace_mb is not None and (isinstance(workspace_mb, bool) or not isinstance(workspace_mb, int)
                                         or workspace_mb < 1):
            raise ValueError(f"workspace_mb must be a positive integer, got {workspace_mb!r}")
        self.spec = spec
        self.input_specs: tuple[TensorSpec, ...] = spec.inputs
        self.output_specs: tuple[TensorSpec, ...] = spec.outputs
        self.backend = "tensorrt"
        self.device = "cuda:0"
        self._trt = trt
        self._ops = ops
        self._logger = _logger(trt, log_level)
        version = str(trt.__version__)

        self.limits = trt_logic.batch_limits(min_batch, opt_batch, max_batch)
        calib = (trt_logic.calibration_set(calibration, spec.inputs, calibration_batch)
                 if calibration is not None else None)
        self.plan = trt_logic.plan_build(precision, spec.precision, version, compute_capability,
                                         has_calibration=calib is not None)
        for note in self.plan.notes + (calib.notes if calib is not None else ()):
            warnings.warn(f"tensorrt ({spec.name}): {note}", RuntimeWarning, stacklevel=3)
        profile = trt_logic.profile_shapes(spec.inputs, self.limits)
        fields = trt_logic.key_fields(model_sha256=spec.sha256, trt_version=version, gpu_name=gpu_name,
                                      compute_capability=compute_capability, plan=self.plan, profile=profile,
                                      calibration_sha256=calib.sha256 if calib is not None and
                                      self.plan.needs_calibrator else None, workspace_mb=workspace_mb)
        cache = trt_logic.plan_cache_dir(Path(cache_dir) if cache_dir is not None else None)
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BackendError(f"tensorrt: cannot create the plan cache {cache} ({e}); set RAMH_CACHE_DIR or "
                               "cache_dir to a writable directory") from None
        self.paths = trt_logic.plan_paths(cache, spec.name, fields)

        plan_exists = self.paths.plan.is_file()
        meta = trt_logic.read_meta(self.paths.meta) if plan_exists else None
        plan_sha = sha256_file(self.paths.plan) if plan_exists and meta is not None else None
        decision = trt_logic.decide_plan(fields, plan_exists, meta, plan_sha, rebuild=bool(rebuild))
        self._runtime = trt.Runtime(self._logger)
        engine = None
        if decision.action == "reuse":
            engine = self._deserialize(self.paths.plan.read_bytes())
            if engine is None:
                decision = trt_logic.PlanDecision("build", "TensorRT could not deserialize the cached plan", stale=True)
        if decision.stale:
            warnings.warn(f"tensorrt ({spec.name}): cached plan {self.paths.plan} is stale ({decision.reason}); "
                          "rebuilding it", RuntimeWarning, stacklevel=3)
        seconds = 0.0
        if engine is None:
            t0 = time.perf_counter()
            data = _build_serialized(trt, self._logger, spec, self.plan, profile, calib, self.paths, workspace_mb,
                                     ops)
            seconds = time.perf_counter() - t0
            write_atomic(self.paths.plan, data)
            meta_out = trt_logic.make_meta(fields, hashlib.sha256(data).hexdigest(), len(data), seconds,
                                           _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
            write_atomic(self.paths.meta, json.dumps(meta_out, indent=1))
            engine = self._deserialize(data)
            if engine is None:
                raise BackendError(f"tensorrt: the engine just built for {spec.name} cannot be deserialized "
                                   "(see the TensorRT log)")
        self._engine = engine
        self.build_info = {"action": decision.action, "reason": decision.reason, "plan_path": str(self.paths.plan),
                           "seconds": round(seconds, 3), "precision": self.plan.precision, "tensorrt": version}
        problems = trt_logic.engine_io_problems(spec.inputs, spec.outputs, self._engine_tensors())
        if problems:
            raise BackendError(f"tensorrt: engine for {spec.name} does not match its manifest entry:\n  "
                               + "\n  ".join(problems))
        self._local = threading.local()

    def _deserialize(self, data: bytes) -> Any:
        try:
            return self._runtime.deserialize_cuda_engine(data)
        except Exception:  # TensorRT raises on some corrupt plans and returns None on others
            return None

    def _engine_tensors(self) -> list[trt_logic.EngineTensor]:
        trt, engine = self._trt, self._engine
        out = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = engine.get_tensor_dtype(name)
            out.append(trt_logic.EngineTensor(
                name=name, is_input=engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                dtype=getattr(dtype, "name", str(dtype)), shape=tuple(int(d) for d in engine.get_tensor_shape(name))))
        return out

    def _context(self) -> Any:
        ctx = getattr(self._local, "context", None)
        if ctx is None:
            ctx = self._engine.create_execution_context()
            if ctx is None:
                raise BackendError(f"tensorrt: cannot create an execution context for {self.spec.name} (out of device "
                                   "memory?)")
            self._local.context = ctx
        return ctx

    def run(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Run the engine; see :meth:`ramh_rt.backends.base.Session.run`.

        NumPy inputs are copied to the device once; device inputs (on cuda:0, C-contiguous) are used by pointer.
        Outputs are :class:`ramh_rt.DeviceArray` from the core's pool; the call returns when they are ready.

        Raises:
            FeedError: feeds do not match the inputs, or the batch is outside the optimisation profile.
            BackendError: TensorRT refused a shape/address or the execution failed.
        """
        infos, batch = check_feeds(self.spec.name, self.input_specs, feeds)
        try:
            trt_logic.check_batch(batch, self.limits, self.spec.name)
        except ValueError as e:
            raise FeedError(str(e)) from None
        ctx = self._context()
        keep_alive = []
        for spec in self.input_specs:
            info = infos[spec.name]
            if info.on_device:
                where = info.device_id if info.device_id is not None else self._ops.device_of_pointer(info.ptr)
                if where != 0:
                    raise FeedError(f"{self.spec.name}: input {spec.name!r} is on cuda:{where}; the tensorrt session "
                                    "runs on cuda:0")
                ptr = info.ptr
            else:
                dev = self._ops.from_host(np.ascontiguousarray(feeds[spec.name]))
                keep_alive.append(dev)
                ptr = dev.ptr
            if not ctx.set_input_shape(spec.name, tuple(info.shape)):
                raise FeedError(f"{self.spec.name}: TensorRT refused shape {info.shape} for input {spec.name!r}")
            if not ctx.set_tensor_address(spec.name, int(ptr)):
                raise BackendError(f"tensorrt: cannot set the address of input {spec.name!r} of {self.spec.name}")
        outputs: dict[str, Any] = {}
        for spec in self.output_specs:
            shape = tuple(int(d) for d in ctx.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise BackendError(f"tensorrt: output {spec.name!r} of {self.spec.name} has unresolved shape {shape}")
            out = self._ops.empty(shape, spec.dtype)
            if not ctx.set_tensor_address(spec.name, int(out.ptr)):
                raise BackendError(f"tensorrt: cannot set the address of output {spec.name!r} of {self.spec.name}")
            outputs[spec.name] = out
        if not ctx.execute_async_v3(self._ops.stream_handle()):
            raise BackendError(f"tensorrt: execution of {self.spec.name} failed (see the TensorRT log)")
        self._ops.synchronize()  # outputs are complete, and the inputs copied above may be released
        del keep_alive
        return outputs

    def __repr__(self) -> str:
        return (f"TensorRTSession(model={self.spec.name!r}, precision={self.plan.precision!r}, "
                f"batch={self.limits.min}..{self.limits.max})")


def _build_serialized(trt: Any, logger: Any, spec: ModelSpec, plan: trt_logic.BuildPlan,
                      profile: Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]],
                      calib: trt_logic.CalibrationSet | None, paths: trt_logic.PlanPaths, workspace_mb: int | None,
                      ops: Any) -> bytes:
    """Parse the ONNX file and build a serialized engine (the plan bytes); updates the timing cache file."""
    builder = trt.Builder(logger)
    flags = 0
    if plan.strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(spec.path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BackendError(f"tensorrt: cannot parse {Path(spec.path).name} ({spec.name}):\n  " + "\n  ".join(errors))
    config = builder.create_builder_config()
    if workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.items():
        opt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    calibrator = None
    if plan.needs_calibrator:
        if calib is None:  # plan_build refuses INT8-with-calibrator without data; keep the invariant explicit
            raise BackendError("tensorrt: INT8 calibration requested without calibration data")
        calib_profile = builder.create_optimization_profile()
        for s in spec.inputs:
            shape = s.concrete_shape(calib.batch_size)
            calib_profile.set_shape(s.name, shape, shape, shape)
        config.set_calibration_profile(calib_profile)
        calibrator = _make_calibrator(trt, calib, paths.calibration_cache, ops)
        config.int8_calibrator = calibrator
    _attach_timing_cache(config, paths.timing_cache, spec.name)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"tensorrt: building the engine for {spec.name} failed (see the TensorRT log above)")
    try:
        write_atomic(paths.timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    except OSError as e:  # a read-only cache costs build time later, not correctness now
        warnings.warn(f"tensorrt: cannot save the timing cache {paths.timing_cache} ({e})", RuntimeWarning)
    return bytes(memoryview(serialized))


def _attach_timing_cache(config: Any, path: Path, model: str) -> None:
    data = b""
    if path.is_file():
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
    cache = None
    try:
        cache = config.create_timing_cache(data)
    except Exception:
        cache = None
    if cache is None or not config.set_timing_cache(cache, False):
        if data:
            warnings.warn(f"tensorrt ({model}): timing cache {path} is unusable (corrupt or from another TensorRT/GPU); "
                          "starting a new one", RuntimeWarning)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)


def _make_calibrator(trt: Any, calib: trt_logic.CalibrationSet, cache_path: Path, ops: Any) -> Any:
    """An IInt8EntropyCalibrator2 (TensorRT 10) feeding ``calib``'s batches from device memory."""

    class _EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = iter(calib.batches)
            self._current: list[Any] = []  # device copies of the batch TensorRT is reading

        def get_batch_size(self) -> int:
            return calib.batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            try:
                feed = next(self._batches)
            except StopIteration:
                return None  # no more batches
            self._current = [ops.from_host(feed[n]) for n in names]
            return [int(a.ptr) for a in self._current]

        def read_calibration_cache(self) -> bytes | None:
            try:
                return cache_path.read_bytes() if cache_path.is_file() else None
            except OSError:
                return None

        def write_calibration_cache(self, cache: Any) -> None:
            try:
                write_atomic(cache_path, bytes(memoryview(cache)))
            except OSError as e:
                warnings.warn(f"tensorrt: cannot save the calibration cache {cache_path} ({e})", RuntimeWarning)

    return _EntropyCalibrator()


__all__ = ["TensorRTBackend", "TensorRTSession", "CoreDeviceOps", "SESSION_OPTIONS"]
