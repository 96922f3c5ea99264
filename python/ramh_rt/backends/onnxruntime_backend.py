"""ONNX Runtime backends: ``onnxruntime-cpu`` and ``onnxruntime-cuda`` (IO binding, tensors stay on the device).

CPU sessions take and return NumPy arrays. CUDA sessions (``onnxruntime-gpu`` installed and a ramh_rt core built
with CUDA) bind device-array inputs by pointer, copy NumPy inputs to the device once, and write outputs into
:class:`ramh_rt.DeviceArray` buffers from the core's memory pool, so a pipeline's tensors never leave the GPU. The
CUDA execution provider computes on the core's CUDA stream (``user_compute_stream``), so it is ordered with the
core's kernels.

Sessions are thread-safe: ``run()`` may be called from several threads at once (ONNX Runtime's ``InferenceSession.run``
is thread-safe and each call builds its own IO binding).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..bundle import ModelSpec, TensorSpec
from ..errors import BackendError, FeedError
from .base import Backend, check_feeds, output_shape, parse_device, physical_cores

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
              "tensor(uint16)": "uint16", "tensor(bool)": "bool"}

_GRAPH_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
                 "all": "ORT_ENABLE_ALL"}

#: dtypes a :class:`ramh_rt.DeviceArray` can hold (CUDA sessions write their outputs into DeviceArrays).
_DEVICE_ARRAY_DTYPES = ("uint8", "uint16", "int32", "int64", "float16", "float32")

#: A one-node ONNX model (Identity, float[1], IR 7, opset 13) used to check that the CUDA execution provider can be
#: created at all: onnxruntime-gpu lists CUDAExecutionProvider in get_available_providers() even when its CUDA/cuDNN
#: libraries are missing, and InferenceSession then falls back to the CPU with only a log line.
_PROBE_MODEL = (b'\x08\x07\x12\x00:;\n\x10\n\x01x\x12\x01y"\x08Identity\x12\x05probeZ\x0f\n\x01x\x12\n\n\x08\x08\x01'
                b'\x12\x04\n\x02\x08\x01b\x0f\n\x01y\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01B\x04\n\x00\x10\r')
_CUDA_PROBE: dict[int, tuple[bool, str]] = {}
_CUDA_PROBE_LOCK = threading.Lock()

#: Options accepted by :meth:`OnnxRuntimeBackend.create_session`.
SESSION_OPTIONS = ("intra_op_threads", "inter_op_threads", "allow_spinning", "graph_optimization", "log_severity",
                   "cudnn_conv_algo_search", "use_core_stream", "gpu_mem_limit_mb")


def _import_ort() -> Any:
    import onnxruntime

    return onnxruntime


def _probe_cuda_ep(ort: Any) -> tuple[bool, str]:
    """(True, "") when ONNX Runtime can create its CUDA execution provider here, else (False, why). Cached per module.

    A tiny session is created with ``[CUDAExecutionProvider, CPUExecutionProvider]`` and ``get_providers()`` read
    back: ONNX Runtime drops a CUDA provider it cannot load (missing or mismatched CUDA/cuDNN libraries) and carries on
    with the CPU. A probe that fails for any other reason is inconclusive and reported as available, so that
    ``create_session`` gives the real error.
    """
    key = id(ort)
    with _CUDA_PROBE_LOCK:
        if key in _CUDA_PROBE:
            return _CUDA_PROBE[key]
        try:
            # onnxruntime-gpu >= 1.21 does not find the CUDA/cuDNN libraries of the nvidia-* wheels by itself unless
            # PyTorch loaded them first; preload_dlls() is its documented way to load them from site-packages.
            if hasattr(ort, "preload_dlls"):
                try:
                    ort.preload_dlls()
                except Exception:  # noqa: BLE001 - the probe session below says whether the provider loads anyway
                    pass
            so = ort.SessionOptions()
            so.log_severity_level = 3
            probe = ort.InferenceSession(_PROBE_MODEL, sess_options=so,
                                         providers=[("CUDAExecutionProvider", {"device_id": "0"}),
                                                    "CPUExecutionProvider"])
            providers = list(probe.get_providers())
        except Exception:  # noqa: BLE001 - inconclusive: let create_session report the real error
            providers = None
        if providers is None or "CUDAExecutionProvider" in providers:
            result = (True, "")
        else:
            version = getattr(ort, "__version__", "?")
            try:
                from onnxruntime.capi import build_and_package_info as info  # type: ignore[import-not-found]

                cuda = getattr(info, "cuda_version", "") or "?"
            except Exception:  # noqa: BLE001 - only for the message
                cuda = "?"
            result = (False, f"onnxruntime {version} lists CUDAExecutionProvider but cannot create it here, so "
                             f"sessions would run on the CPU (its CUDA {cuda} / cuDNN 9 libraries are missing or do "
                             "not match; ONNX Runtime's log names the library; see https://onnxruntime.ai/docs/"
                             "execution-providers/CUDA-ExecutionProvider.html#requirements)")
        _CUDA_PROBE[key] = result
        return result


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime on the CPU (``provider="cpu"``) or through its CUDA execution provider (``provider="cuda"``)."""

    def __init__(self, provider: str) -> None:
        if provider not in ("cpu", "cuda"):
            raise ValueError(f"provider must be 'cpu' or 'cuda', got {provider!r}")
        self.provider = provider
        self.name = f"onnxruntime-{provider}"

    def available(self) -> tuple[bool, str]:
        try:
            ort = _import_ort()
        except ImportError:
            return False, "onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu for CUDA)"
        if self.provider == "cpu":
            return True, ""
        providers = ort.get_available_providers()
        if "CUDAExecutionProvider" not in providers:
            return False, ("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu instead of onnxruntime; "
                           f"providers here: {', '.join(providers)})")
        from .. import build_info, cuda_available

        if not build_info()["cuda"]:
            return False, "the ramh_rt core was built without CUDA (needed for device arrays and IO binding)"
        if not cuda_available():
            return False, "no CUDA device is visible"
        return _probe_cuda_ep(ort)

    def devices(self) -> list[str]:
        if not self.available()[0]:
            return []
        if self.provider == "cpu":
            return ["cpu"]
        from .. import _core

        return [f"cuda:{i}" for i in range(_core.cuda_device_count())]

    engine_package = "onnxruntime"

    def _import_engine(self) -> Any:
        return _import_ort()

    def create_session(self, spec: ModelSpec, device: str | int | None = None, **options: Any) -> "OrtSession":
        """Create an ONNX Runtime session for ``spec``.

        Args:
            spec: the model.
            device: ``"cpu"`` (CPU backend); ``"cuda"``, ``"cuda:N"`` or ``N`` (CUDA backend).
            **options:
                intra_op_threads (int): threads inside one operator; default: physical cores available to this
                    process (:func:`ramh_rt.backends.base.physical_cores`; hyper-threads do not help these kernels).
                inter_op_threads (int): threads across independent operators; default 1 (sequential execution).
                allow_spinning (bool): let idle intra-op threads busy-wait for the next operator; default False.
                    ``analyze()`` alternates three sessions with the core's OpenMP kernels, and a session's threads
                    spinning after its run take the cores from whatever runs next: off, the default bundle's p50 per
                    hand on 2 cores went from 437 to 333 ms. Turn it on for one session run back to back.
                graph_optimization (str): ``"all"`` (default), ``"extended"``, ``"basic"`` or ``"disable"``.
                log_severity (int): ONNX Runtime log level, 0 (verbose) .. 4 (fatal); default 3 (errors).
                cudnn_conv_algo_search (str): CUDA only; ``"EXHAUSTIVE"`` (default), ``"HEURISTIC"``, ``"DEFAULT"``.
                use_core_stream (bool): CUDA only; compute on the ramh_rt core's stream (default True).
                gpu_mem_limit_mb (int): CUDA only; cap of ONNX Runtime's own arena.

        Raises:
            BackendError: backend unavailable, or ONNX Runtime cannot load the model, or the model's inputs/outputs
                differ from the manifest (name, dtype, rank, fixed dimensions).
            ValueError: unknown option or bad value, or a device of the wrong kind.
        """
        self._require_available()
        unknown = sorted(set(options) - set(SESSION_OPTIONS))
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)} for {self.name}; known: "
                             f"{', '.join(SESSION_OPTIONS)}")
        device_id = parse_device(device, self.provider)
        if self.provider == "cuda":
            from .. import _core

            count = int(_core.cuda_device_count())
            if device_id >= count:
                raise ValueError(f"device cuda:{device_id} does not exist ({count} CUDA device(s) visible)")
        return OrtSession(spec, self.provider, device_id, options)


def _positive_int(options: Mapping[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be a positive integer, got {value!r}")
    return value


class OrtSession:
    """A model on ONNX Runtime. Create it with :meth:`OnnxRuntimeBackend.create_session`.

    Attributes:
        spec: the model spec.
        input_specs / output_specs: the model's tensors (from the manifest, checked against the ONNX file).
        backend: ``"onnxruntime-cpu"`` or ``"onnxruntime-cuda"``.
        device: ``"cpu"`` or ``"cuda:N"``.
        providers: the execution providers ONNX Runtime actually uses.
        cpu_nodes: CUDA sessions: op types of the nodes ONNX Runtime placed on the CPU provider (it keeps shape
            arithmetic there on purpose; compute-heavy ops here mean the CUDA provider lacks a kernel), None where
            this ONNX Runtime cannot report node placement; CPU sessions: ().
        intra_op_threads: the intra-op thread count set.
        allow_spinning: whether idle ONNX Runtime threads busy-wait (see :meth:`OnnxRuntimeBackend.create_session`).
    """

    def __init__(self, spec: ModelSpec, provider: str, device_id: int, options: Mapping[str, Any]) -> None:
        ort = _import_ort()
        self.spec = spec
        self.input_specs: tuple[TensorSpec, ...] = spec.inputs
        self.output_specs: tuple[TensorSpec, ...] = spec.outputs
        self.backend = f"onnxruntime-{provider}"
        self._cuda = provider == "cuda"
        self._device_id = device_id
        self._on_core_stream = False  # set by _cuda_provider_options
        self.device = f"cuda:{device_id}" if self._cuda else "cpu"

        so = ort.SessionOptions()
        level = options.get("graph_optimization", "all")
        if level not in _GRAPH_LEVELS:
            raise ValueError(f"graph_optimization must be one of {', '.join(_GRAPH_LEVELS)}, got {level!r}")
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _GRAPH_LEVELS[level])
        self.intra_op_threads = _positive_int(options, "intra_op_threads", physical_cores())
        so.intra_op_num_threads = self.intra_op_threads
        so.inter_op_num_threads = _positive_int(options, "inter_op_threads", 1)
        spinning = options.get("allow_spinning", False)
        if not isinstance(spinning, bool):
            raise ValueError(f"allow_spinning must be True or False, got {spinning!r}")
        self.allow_spinning = spinning
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
        severity = options.get("log_severity", 3)
        if isinstance(severity, bool) or not isinstance(severity, int) or not 0 <= severity <= 4:
            raise ValueError(f"log_severity must be an integer 0..4, got {severity!r}")
        so.log_severity_level = severity
        if self._cuda:  # lets cpu_nodes say which nodes ONNX Runtime kept on the CPU (ignored by older versions)
            so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")

        providers: list[Any]
        if self._cuda:
            providers = [("CUDAExecutionProvider", self._cuda_provider_options(options)), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(str(spec.path), sess_options=so, providers=providers)
        except Exception as e:  # ONNX Runtime raises its own exception types for unreadable/unsupported models
            raise BackendError(f"{self.backend}: cannot load model {spec.name} ({Path(spec.path).name}): {e}") from e
        self.providers = tuple(self._session.get_providers())
        if self._cuda:
            if "CUDAExecutionProvider" not in self.providers:
                raise BackendError(f"{self.backend}: ONNX Runtime could not enable the CUDA execution provider for "
                                   f"{spec.name} (providers in use: {', '.join(self.providers)})")
            self._check_cuda_provider_applied(spec)
        self.cpu_nodes: tuple[str, ...] | None = _cpu_nodes(self._session) if self._cuda else ()
        problems = _io_problems(spec, self._session)
        if problems:
            raise BackendError(f"{self.backend}: model {spec.name} ({Path(spec.path).name}) does not match its "
                               "manifest entry:\n  " + "\n  ".join(problems))
        self._output_names = [t.name for t in self.output_specs]

    def _cuda_provider_options(self, options: Mapping[str, Any]) -> dict[str, str]:
        from .. import _core

        algo = options.get("cudnn_conv_algo_search", "EXHAUSTIVE")
        if algo not in ("EXHAUSTIVE", "HEURISTIC", "DEFAULT"):
            raise ValueError(f"cudnn_conv_algo_search must be EXHAUSTIVE, HEURISTIC or DEFAULT, got {algo!r}")
        opts = {"device_id": str(self._device_id), "cudnn_conv_algo_search": algo}
        self._on_core_stream = False
        if options.get("use_core_stream", True):
            handle = int(_core.stream_handle(self._device_id))
            if handle:  # ONNX Runtime treats 0 (the legacy default stream) as "no user stream"
                opts["user_compute_stream"] = str(handle)
                self._on_core_stream = True
        if "gpu_mem_limit_mb" in options:
            opts["gpu_mem_limit"] = str(_positive_int(options, "gpu_mem_limit_mb", 1) * 2 ** 20)
        self._requested_cuda_options = dict(opts)
        return opts

    def _check_cuda_provider_applied(self, spec: ModelSpec) -> None:
        """Hold the CUDA provider ONNX Runtime created against the options asked for.

        ``get_provider_options()`` reports the provider's effective settings (``CUDAExecutionProviderInfo::
        ToProviderOptions``: ``device_id``, ``user_compute_stream``...). A provider on another device is refused; one
        that does not compute on the core's stream (the option dropped, or not reported by this ONNX Runtime) makes
        the session synchronise the core's stream before each run instead of relying on stream order. Outputs must be
        dtypes a DeviceArray holds.
        """
        requested = getattr(self, "_requested_cuda_options", {})
        try:
            actual = dict(self._session.get_provider_options().get("CUDAExecutionProvider", {}))
        except Exception:  # noqa: BLE001 - an ONNX Runtime without the query: rely on synchronisation
            actual = {}
        device = actual.get("device_id")
        if device is not None and str(device) != requested.get("device_id", str(self._device_id)):
            raise BackendError(f"{self.backend}: ONNX Runtime created the CUDA execution provider for {spec.name} on "
                               f"device {device}, not on {self.device}")
        if self._on_core_stream and str(actual.get("user_compute_stream")) != requested.get("user_compute_stream"):
            self._on_core_stream = False
        unsupported = [f"{t.name!r} ({t.dtype})" for t in spec.outputs if t.dtype not in _DEVICE_ARRAY_DTYPES]
        if unsupported:
            raise BackendError(f"{self.backend}: outputs {', '.join(unsupported)} of {spec.name} have dtypes a "
                               f"DeviceArray cannot hold ({', '.join(_DEVICE_ARRAY_DTYPES)}); use onnxruntime-cpu "
                               "or export the model with supported output dtypes")

    def run(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Run the model; see :meth:`ramh_rt.backends.base.Session.run`.

        CPU: NumPy in, NumPy out (device arrays are refused: copy them with ``.to_host()``).
        CUDA: NumPy or device arrays in (device arrays must be C-contiguous and on this session's device), DeviceArray
        out, allocated from the core's pool; the call returns when the outputs are ready.

        Raises:
            FeedError: feeds do not match the inputs (names, dtype, shape, batch, device).
            BackendError: ONNX Runtime failed (the model name and ONNX Runtime's message are given).
        """
        infos, batch = check_feeds(self.spec.name, self.input_specs, feeds)
        if not self._cuda:
            for name, info in infos.items():
                if info.on_device:
                    raise FeedError(f"{self.spec.name}: input {name!r} is a CUDA array but {self.backend} runs on the "
                                    "CPU; pass a NumPy array (DeviceArray.to_host()) or use a CUDA backend")
            try:
                outs = self._session.run(self._output_names,
                                         {k: np.ascontiguousarray(feeds[k]) for k in infos})
            except Exception as e:
                raise BackendError(f"{self.backend}: running {self.spec.name} failed: {e}") from e
            return dict(zip(self._output_names, outs))
        return self._run_cuda(feeds, infos, batch)

    def _run_cuda(self, feeds: Mapping[str, Any], infos: Mapping[str, Any], batch: int | None) -> dict[str, Any]:
        from .. import DeviceArray, _core

        binding = self._session.io_binding()
        for spec in self.input_specs:
            info = infos[spec.name]
            if info.on_device:
                where = info.device_id if info.device_id is not None else _core.device_of_pointer(info.ptr)
                if where != self._device_id:
                    raise FeedError(f"{self.spec.name}: input {spec.name!r} is on cuda:{where} but the session runs "
                                    f"on {self.device}")
                binding.bind_input(spec.name, "cuda", self._device_id, np.dtype(spec.dtype), list(info.shape),
                                   info.ptr)
            else:
                binding.bind_cpu_input(spec.name, np.ascontiguousarray(feeds[spec.name]))
        outputs: dict[str, Any] = {}
        for spec in self.output_specs:
            shape = output_shape(spec, batch)
            out = DeviceArray.empty(list(shape), spec.dtype, self._device_id)
            binding.bind_output(spec.name, "cuda", self._device_id, np.dtype(spec.dtype), list(shape), out.ptr)
            outputs[spec.name] = out
        if not self._on_core_stream:
            # Pool memory is stream-ordered on the core's stream; ONNX Runtime's own stream may only touch it after
            # the allocations have completed there.
            _core.synchronize(self._device_id)
        try:
            binding.synchronize_inputs()
            self._session.run_with_iobinding(binding)
            binding.synchronize_outputs()
        except Exception as e:
            raise BackendError(f"{self.backend}: running {self.spec.name} failed: {e}") from e
        return outputs

    def __repr__(self) -> str:
        return f"OrtSession(model={self.spec.name!r}, backend={self.backend!r}, device={self.device!r})"


def _cpu_nodes(session: Any) -> tuple[str, ...] | None:
    """Op types of the nodes placed on CPUExecutionProvider (``get_provider_graph_assignment_info``, recorded with the
    ``session.record_ep_graph_assignment_info`` config entry), or None when this ONNX Runtime cannot tell."""
    try:
        return tuple(str(n.op_type) for sg in session.get_provider_graph_assignment_info()
                     if sg.ep_name == "CPUExecutionProvider" for n in sg.get_nodes())
    except Exception:  # noqa: BLE001 - an older ONNX Runtime, or recording not enabled: unknown
        return None


def _io_problems(spec: ModelSpec, session: Any) -> list[str]:
    """Differences between the manifest's tensors and the ONNX graph's (names, dtypes, ranks, fixed dims)."""
    problems = []
    for kind, declared, actual in (("input", spec.inputs, session.get_inputs()),
                                   ("output", spec.outputs, session.get_outputs())):
        graph = {a.name: a for a in actual}
        declared_names = [t.name for t in declared]
        missing = [n for n in declared_names if n not in graph]
        extra = [n for n in graph if n not in declared_names]
        if missing:
            problems.append(f"{kind}s {', '.join(map(repr, missing))} declared in the manifest are not in the graph "
                            f"(graph {kind}s: {', '.join(graph)})")
        if extra and kind == "input":
            problems.append(f"graph inputs {', '.join(map(repr, extra))} are not declared in the manifest")
        for t in declared:
            a = graph.get(t.name)
            if a is None:
                continue
            dtype = _ORT_TYPES.get(a.type, a.type)
            if dtype != t.dtype:
                problems.append(f"{kind} {t.name!r}: manifest says {t.dtype}, graph says {dtype}")
            if len(a.shape) != len(t.shape):
                problems.append(f"{kind} {t.name!r}: manifest shape {_fmt(t.shape)} has rank {len(t.shape)}, graph "
                                f"shape {a.shape} rank {len(a.shape)}")
                continue
            for axis, (want, got) in enumerate(zip(t.shape, a.shape)):
                if want is not None and isinstance(got, int) and got != want:
                    problems.append(f"{kind} {t.name!r}: axis {axis} is {got} in the graph, {want} in the manifest")
                if want is None and isinstance(got, int) and got > 0:
                    problems.append(f"{kind} {t.name!r}: axis {axis} is dynamic (N) in the manifest but fixed to "
                                    f"{got} in the graph")
    return problems


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


__all__ = ["OnnxRuntimeBackend", "OrtSession", "SESSION_OPTIONS"]
