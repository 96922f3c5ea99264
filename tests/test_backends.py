"""ramh_rt.backends: registry and selection, feed checks, ONNX Runtime CPU for real on tiny ONNX models.

CUDA (onnxruntime-gpu) and TensorRT runs are skipped with the reason when unavailable; their pure logic is covered in
test_tensorrt_logic.py.
"""
from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import onnx_factory
import ramh_rt
from ramh_rt import anatomy
from ramh_rt import backends
from ramh_rt.backends import base
from ramh_rt.bundle import Bundle, ModelSpec, TensorSpec
from ramh_rt.errors import BackendError, FeedError, RamhError


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Bundle:
    return Bundle.load(onnx_factory.make_bundle(tmp_path_factory.mktemp("bk") / "b"))


@pytest.fixture(scope="module")
def cpu():
    return backends.get_backend("onnxruntime-cpu")


@pytest.fixture(scope="module")
def add_spec(tmp_path_factory) -> ModelSpec:
    path = onnx_factory.add_model(tmp_path_factory.mktemp("add") / "add.onnx")
    shape = (None, 3, 8, 8)
    return ModelSpec(name="add", task="test", path=path, sha256=onnx_factory.sha256(path), precision="fp32", opset=17,
                     inputs=(TensorSpec("x", shape, "float32"), TensorSpec("y", shape, "float32")),
                     outputs=(TensorSpec("z", shape, "float32"), TensorSpec("w", shape, "float32")))


class FakeCudaArray:
    """Anything exposing __cuda_array_interface__ (a stand-in for CuPy / DeviceArray where no GPU exists)."""

    def __init__(self, shape, typestr="<f4", strides=None, device=None, ptr=0x7F0000000000):
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr, "data": (ptr, False),
                                         "strides": strides, "version": 3}
        if device is not None:
            self.device = device


# ---------------------------------------------------------------------------------------------------------------------
# registry and selection
# ---------------------------------------------------------------------------------------------------------------------

def test_registry_names_and_unknown_backend():
    assert set(backends.backend_names()) >= {"onnxruntime-cpu", "onnxruntime-cuda", "tensorrt"}
    with pytest.raises(ValueError, match=r"unknown backend 'onnx'; known: auto, .*onnxruntime-cpu.*tensorrt"):
        backends.get_backend("onnx")
    with pytest.raises(ValueError, match="unknown backend"):
        backends.select_backend("onnx")
    with pytest.raises(ValueError, match="already registered"):
        backends.register_backend(backends.OnnxRuntimeBackend("cpu"))


def test_auto_selection_takes_the_first_available_and_explains_the_others():
    backend, skipped = backends.select_backend("auto")
    order = list(backends.AUTO_ORDER)
    assert backend.available() == (True, "")
    assert list(skipped) == order[:order.index(backend.name)]
    for name, reason in skipped.items():
        ok, why = backends.get_backend(name).available()
        assert not ok and reason == why and reason


def test_auto_order_with_fake_backends(monkeypatch):
    class Fake(base.Backend):
        def __init__(self, name, ok):
            self.name, self._ok = name, ok

        def available(self):
            return (True, "") if self._ok else (False, f"{self.name} missing")

        def devices(self):
            return ["cpu"]

        def create_session(self, spec, device=None, **options):
            raise NotImplementedError

    monkeypatch.setattr(base, "_REGISTRY", {})
    for name, ok in (("onnxruntime-cpu", True), ("onnxruntime-cuda", True), ("tensorrt", False)):
        base.register_backend(Fake(name, ok))
    sel = base.select_backend()
    assert sel.backend.name == "onnxruntime-cuda" and sel.unavailable == {"tensorrt": "tensorrt missing"}
    with pytest.raises(BackendError, match="backend tensorrt is not available: tensorrt missing"):
        base.select_backend("tensorrt")
    monkeypatch.setattr(base, "_REGISTRY", {})
    base.register_backend(Fake("tensorrt", False))
    with pytest.raises(BackendError, match="no inference backend is available: tensorrt: tensorrt missing"):
        base.select_backend()


def test_unavailable_backends_say_why_and_refuse_sessions(bundle):
    for name in ("onnxruntime-cuda", "tensorrt"):
        b = backends.get_backend(name)
        ok, reason = b.available()
        if ok:
            continue
        assert reason and b.devices() == []
        d = b.describe()
        assert d["name"] == name and d["available"] is False and d["reason"] == reason
        with pytest.raises(BackendError, match=f"backend {name} is not available"):
            b.create_session(bundle.model("bones"))
        with pytest.raises(BackendError):
            backends.select_backend(name)


def test_tensorrt_reports_missing_package(monkeypatch):
    from ramh_rt.backends import tensorrt_backend

    def no_trt():
        raise ImportError("No module named 'tensorrt'")

    monkeypatch.setattr(tensorrt_backend, "_import_trt", no_trt)
    ok, reason = backends.TensorRTBackend().available()
    assert not ok and reason.startswith("tensorrt is not installed")
    assert backends.TensorRTBackend().describe()["versions"] == {}


def test_versions_name_the_engine_package_and_its_version(monkeypatch):
    import onnxruntime

    from ramh_rt.backends import tensorrt_backend

    assert backends.get_backend("onnxruntime-cpu").versions() == {"onnxruntime": onnxruntime.__version__}
    fake = type("FakeTensorRT", (), {"__version__": "10.9.0"})
    monkeypatch.setattr(tensorrt_backend, "_import_trt", lambda: fake)
    assert backends.TensorRTBackend().versions() == {"tensorrt": "10.9.0"}


def test_describe_backends_lists_all():
    described = backends.describe_backends()
    assert {d["name"] for d in described} >= {"onnxruntime-cpu", "onnxruntime-cuda", "tensorrt"}
    cpu = next(d for d in described if d["name"] == "onnxruntime-cpu")
    assert cpu["available"] and cpu["devices"] == ["cpu"] and "onnxruntime" in cpu["versions"]


# ---------------------------------------------------------------------------------------------------------------------
# ONNX Runtime CPU, for real
# ---------------------------------------------------------------------------------------------------------------------

def _conv1x1(image: np.ndarray) -> np.ndarray:
    w = onnx_factory.seeded_weights((anatomy.NUM_BONE_CLASSES, 1, 1, 1), 1)[:, 0, 0, 0]
    b = np.linspace(-1, 1, anatomy.NUM_BONE_CLASSES, dtype=np.float32)
    return image[:, 0][:, None] * w[None, :, None, None] + b[None, :, None, None]


def test_bones_model_output_matches_numpy(cpu, bundle, rng):
    session = cpu.create_session(bundle.model("bones"))
    assert isinstance(session, backends.Session)
    assert session.device == "cpu" and session.providers == ("CPUExecutionProvider",)
    assert session.input_specs == bundle.model("bones").inputs
    for batch in (1, 3):
        image = rng.random((batch, 1, 64, 64), dtype=np.float32)
        out = session.run({"image": image})
        assert list(out) == ["logits"]
        assert out["logits"].shape == (batch, anatomy.NUM_BONE_CLASSES, 64, 64) and out["logits"].dtype == np.float32
        np.testing.assert_allclose(out["logits"], _conv1x1(image), rtol=1e-5, atol=1e-6)


def test_joints_and_global_models(cpu, bundle, rng):
    joints = cpu.create_session(bundle.model("joints"))
    roi = rng.random((5, 1, 32, 32), dtype=np.float32)
    area = np.eye(len(anatomy.AREA_STEMS), dtype=np.float32)[[0, 3, 7, 9, 21]]
    out = joints.run({"roi": roi, "area": area})
    np.testing.assert_array_equal(out["erosion"], roi)
    np.testing.assert_allclose(out["be_logits"], area @ onnx_factory.seeded_weights((22, 6), 2), rtol=1e-5)
    np.testing.assert_allclose(out["jsn_logits"], area @ onnx_factory.seeded_weights((22, 5), 3), rtol=1e-5)
    glob = cpu.create_session(bundle.model("global"))
    image = rng.random((2, 1, 64, 64), dtype=np.float32)
    out = glob.run({"image": image})
    np.testing.assert_allclose(out["svdh"][:, 0], image.mean(axis=(1, 2, 3)) * 10, rtol=1e-5)
    assert out["severity"].shape == (2, len(anatomy.SEVERITY_NAMES))


def test_non_contiguous_numpy_feed_is_accepted(cpu, add_spec, rng):
    s = cpu.create_session(add_spec)
    x = rng.random((2, 8, 8, 3), dtype=np.float32).transpose(0, 3, 1, 2)  # right shape, not C-contiguous
    y = np.ones((2, 3, 8, 8), np.float32)
    out = s.run({"x": x, "y": y})
    np.testing.assert_allclose(out["z"], x + 1)
    np.testing.assert_array_equal(out["w"], x)


@pytest.mark.parametrize("feeds,message", [
    (lambda r: {"x": r.random((2, 3, 8, 8), dtype=np.float32)}, r"add: feeds do not match the model's inputs "
                                                                 r"\(missing 'y'\); expected exactly 'x', 'y'"),
    (lambda r: {"x": np.zeros((2, 3, 8, 8), np.float32), "y": np.zeros((2, 3, 8, 8), np.float32),
                "q": np.zeros(1)}, r"unexpected 'q'"),
    (lambda r: {"x": np.zeros((2, 3, 8, 8), np.float64), "y": np.zeros((2, 3, 8, 8), np.float32)},
     r"add: input 'x' must be float32, got float64"),
    (lambda r: {"x": np.zeros((3, 8, 8), np.float32), "y": np.zeros((2, 3, 8, 8), np.float32)},
     r"input 'x' must have shape \(N, 3, 8, 8\), got \(3, 8, 8\) \(rank 3 instead of 4\)"),
    (lambda r: {"x": np.zeros((2, 4, 8, 8), np.float32), "y": np.zeros((2, 3, 8, 8), np.float32)},
     r"input 'x' must have shape \(N, 3, 8, 8\), got \(2, 4, 8, 8\) \(axis 1 is 4, expected 3\)"),
    (lambda r: {"x": np.zeros((2, 3, 8, 8), np.float32), "y": np.zeros((3, 3, 8, 8), np.float32)},
     r"input 'y' has batch 3 but input 'x' has batch 2"),
    (lambda r: {"x": np.zeros((0, 3, 8, 8), np.float32), "y": np.zeros((0, 3, 8, 8), np.float32)},
     r"batch dimension \(axis 0\) must be >= 1, got 0"),
    (lambda r: {"x": [[1.0]], "y": np.zeros((2, 3, 8, 8), np.float32)},
     r"input 'x' must be a NumPy array or a CUDA array"),
    (lambda r: [("x", 1)], r"feeds must be a dict"),
    (lambda r: {"x": FakeCudaArray((2, 3, 8, 8)), "y": np.zeros((2, 3, 8, 8), np.float32)},
     r"input 'x' is a CUDA array but onnxruntime-cpu runs on the CPU"),
])
def test_bad_feeds_name_the_input_and_expectation(cpu, add_spec, rng, feeds, message):
    s = cpu.create_session(add_spec)
    with pytest.raises(FeedError, match=message) as exc:
        s.run(feeds(rng))
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, RamhError)


def test_manifest_and_graph_mismatch_is_refused(cpu, add_spec, tmp_path):
    bad_dtype = dataclasses.replace(add_spec, inputs=(TensorSpec("x", (None, 3, 8, 8), "float16"), add_spec.inputs[1]))
    with pytest.raises(BackendError, match="input 'x': manifest says float16, graph says float32"):
        cpu.create_session(bad_dtype)
    bad_dim = dataclasses.replace(add_spec, outputs=(TensorSpec("z", (None, 3, 9, 8), "float32"),))
    with pytest.raises(BackendError, match="output 'z': axis 2 is 8 in the graph, 9 in the manifest"):
        cpu.create_session(bad_dim)
    missing = dataclasses.replace(add_spec, inputs=(add_spec.inputs[0],))
    with pytest.raises(BackendError, match="graph inputs 'y' are not declared"):
        cpu.create_session(missing)
    fixed_batch_path = onnx_factory.add_model(tmp_path / "fixed.onnx", shape=(2, 3, 8, 8))
    dynamic_in_manifest = dataclasses.replace(add_spec, path=fixed_batch_path)
    with pytest.raises(BackendError, match="axis 0 is dynamic \\(N\\) in the manifest but fixed to 2"):
        cpu.create_session(dynamic_in_manifest)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage")
    with pytest.raises(BackendError, match="cannot load model add \\(corrupt.onnx\\)"):
        cpu.create_session(dataclasses.replace(add_spec, path=corrupt))


def test_static_model_and_other_dtypes(cpu, tmp_path, rng):
    path = onnx_factory.add_model(tmp_path / "i64.onnx", dtype="int64", shape=(4, 5))
    spec = ModelSpec(name="i64", task="test", path=path, sha256="0" * 64, precision="fp32", opset=17,
                     inputs=(TensorSpec("x", (4, 5), "int64"), TensorSpec("y", (4, 5), "int64")),
                     outputs=(TensorSpec("z", (4, 5), "int64"), TensorSpec("w", (4, 5), "int64")))
    s = cpu.create_session(spec)
    x = rng.integers(-100, 100, (4, 5))
    out = s.run({"x": x, "y": x})
    np.testing.assert_array_equal(out["z"], 2 * x)
    assert out["z"].dtype == np.int64


def test_session_options(cpu, add_spec):
    s = cpu.create_session(add_spec)
    assert s.intra_op_threads == base.physical_cores()
    s = cpu.create_session(add_spec, intra_op_threads=1, inter_op_threads=1, graph_optimization="basic",
                           log_severity=4)
    assert s.intra_op_threads == 1
    with pytest.raises(ValueError, match=r"unknown option\(s\) threads for onnxruntime-cpu; known: intra_op_threads"):
        cpu.create_session(add_spec, threads=2)
    with pytest.raises(ValueError, match="intra_op_threads must be a positive integer, got 0"):
        cpu.create_session(add_spec, intra_op_threads=0)
    with pytest.raises(ValueError, match="graph_optimization must be one of"):
        cpu.create_session(add_spec, graph_optimization="max")
    with pytest.raises(ValueError, match="log_severity"):
        cpu.create_session(add_spec, log_severity=9)
    with pytest.raises(ValueError, match="allow_spinning must be True or False, got 1"):
        cpu.create_session(add_spec, allow_spinning=1)


@pytest.mark.parametrize("spinning", [None, False, True])
def test_spinning_reaches_onnxruntime(cpu, add_spec, spinning):
    """Idle-thread spinning is off unless asked for (three sessions and the core's OpenMP kernels share the cores);
    the setting must be the one ONNX Runtime's session really holds."""
    s = cpu.create_session(add_spec, **({} if spinning is None else {"allow_spinning": spinning}))
    held = s._session.get_session_options()
    want = "1" if spinning else "0"
    assert s.allow_spinning is bool(spinning)
    assert held.get_session_config_entry("session.intra_op.allow_spinning") == want
    assert held.get_session_config_entry("session.inter_op.allow_spinning") == want
    with pytest.raises(ValueError, match="device must be 'cpu' for a CPU backend, got 'cuda:0'"):
        cpu.create_session(add_spec, device="cuda:0")


def test_concurrent_runs_from_threads_are_correct(cpu, add_spec):
    s = cpu.create_session(add_spec, intra_op_threads=1)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        r = np.random.default_rng(seed)
        try:
            for _ in range(20):
                x = r.random((2, 3, 8, 8), dtype=np.float32)
                y = r.random((2, 3, 8, 8), dtype=np.float32)
                np.testing.assert_allclose(s.run({"x": x, "y": y})["z"], x + y, rtol=1e-6)
        except BaseException as e:  # reported to the main thread below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


# ---------------------------------------------------------------------------------------------------------------------
# helpers: devices, arrays, threads
# ---------------------------------------------------------------------------------------------------------------------

def test_parse_device():
    assert base.parse_device(None, "cpu") == -1 and base.parse_device("cpu", "cpu") == -1
    assert base.parse_device(None, "cuda") == 0 and base.parse_device("cuda", "cuda") == 0
    assert base.parse_device("cuda:2", "cuda") == 2 and base.parse_device(1, "cuda") == 1
    for bad in ("cuda:x", "gpu", -1, True, "cpu"):
        with pytest.raises(ValueError, match="device must be"):
            base.parse_device(bad, "cuda")


def test_array_info_for_cuda_arrays():
    info = base.array_info(FakeCudaArray((2, 3), "<f2", device=1, ptr=4096), "x")
    assert info.on_device and info.shape == (2, 3) and info.dtype == np.float16 and info.ptr == 4096
    assert info.device_id == 1
    assert base.array_info(FakeCudaArray((2, 3), strides=(12, 4)), "x").on_device  # explicit compact strides
    with pytest.raises(FeedError, match="x must be a C-contiguous CUDA array"):
        base.array_info(FakeCudaArray((2, 3), strides=(4, 8)), "x")
    assert not base.is_device_array(np.zeros(3)) and base.is_device_array(FakeCudaArray((1,)))


def test_output_shape():
    assert base.output_shape(TensorSpec("a", (None, 4), "float32"), 3) == (3, 4)
    assert base.output_shape(TensorSpec("a", (2, 4), "float32"), None) == (2, 4)
    with pytest.raises(BackendError, match="no input fixes one"):
        base.output_shape(TensorSpec("a", (None, 4), "float32"), None)


def test_physical_cores(monkeypatch):
    n = base.physical_cores()
    assert 1 <= n <= (os.cpu_count() or 1)
    monkeypatch.setattr(base.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(base, "_cpu_topology", lambda: {0: ("0", "0"), 1: ("0", "0"), 2: ("0", "1"), 3: ("0", "1")})
    monkeypatch.setattr(base, "_cgroup_cpu_quota", lambda: None)
    assert base.physical_cores() == 2  # two hyper-threads per core
    monkeypatch.setattr(base, "_cpu_topology", lambda: {})
    assert base.physical_cores() == 4  # no topology (ARM): one thread per core
    monkeypatch.setattr(base, "_cgroup_cpu_quota", lambda: 1.5)
    assert base.physical_cores() == 2  # container quota of 1.5 CPUs


def test_cgroup_and_topology_parsers_do_not_fail():
    q = base._cgroup_cpu_quota()
    assert q is None or q > 0
    topo = base._cpu_topology()
    assert all(isinstance(k, int) and len(v) == 2 for k, v in topo.items())


# ---------------------------------------------------------------------------------------------------------------------
# CUDA backends: real runs where available (e.g. the H100 machine), skipped with the reason here
# ---------------------------------------------------------------------------------------------------------------------

def _skip_unless(name: str) -> backends.Backend:
    b = backends.get_backend(name)
    ok, reason = b.available()
    if not ok:
        pytest.skip(f"{name} unavailable: {reason}")
    return b


def test_onnxruntime_cuda_matches_cpu(bundle, rng):
    cuda = _skip_unless("onnxruntime-cuda")
    spec = bundle.model("joints")
    gpu = cuda.create_session(spec, device="cuda:0")
    ref = backends.get_backend("onnxruntime-cpu").create_session(spec)
    roi = rng.random((4, 1, 32, 32), dtype=np.float32)
    area = np.eye(22, dtype=np.float32)[:4]
    expected = ref.run({"roi": roi, "area": area})
    out = gpu.run({"roi": roi, "area": area})  # NumPy in: copied once
    for k, v in expected.items():
        assert isinstance(out[k], ramh_rt.DeviceArray)
        np.testing.assert_allclose(out[k].to_host(), v, rtol=1e-4, atol=1e-5)
    dev_in = {"roi": ramh_rt.DeviceArray.from_host(roi), "area": ramh_rt.DeviceArray.from_host(area)}
    out = gpu.run(dev_in)  # device in: bound by pointer
    for k, v in expected.items():
        np.testing.assert_allclose(out[k].to_host(), v, rtol=1e-4, atol=1e-5)


def test_tensorrt_matches_numpy(add_spec, tmp_path, rng):
    trt_backend = _skip_unless("tensorrt")
    s = trt_backend.create_session(add_spec, precision="fp32", max_batch=4, cache_dir=tmp_path)
    x = rng.random((3, 3, 8, 8), dtype=np.float32)
    y = rng.random((3, 3, 8, 8), dtype=np.float32)
    out = s.run({"x": x, "y": y})
    np.testing.assert_allclose(out["z"].to_host(), x + y, rtol=1e-5)
    assert s.build_info["action"] == "build"
    again = trt_backend.create_session(add_spec, precision="fp32", max_batch=4, cache_dir=tmp_path)
    assert again.build_info["action"] == "reuse"
    with pytest.raises(FeedError, match="outside the TensorRT optimisation profile"):
        again.run({"x": np.zeros((5, 3, 8, 8), np.float32), "y": np.zeros((5, 3, 8, 8), np.float32)})
    Path(s.paths.plan).write_bytes(b"corrupt")
    with pytest.warns(RuntimeWarning, match="stale"):
        rebuilt = trt_backend.create_session(add_spec, precision="fp32", max_batch=4, cache_dir=tmp_path)
    np.testing.assert_allclose(rebuilt.run({"x": x, "y": y})["z"].to_host(), x + y, rtol=1e-5)


def test_cuda_io_binding_flow_against_fakes(monkeypatch, add_spec):
    """The CUDA run path (IO binding) driven with a fake ONNX Runtime session and fake device memory: device inputs are
    bound by pointer, NumPy inputs through bind_cpu_input, outputs to pool arrays of the concrete batch shape."""
    from ramh_rt.backends.onnxruntime_backend import OrtSession

    calls: list[tuple] = []

    class FakeDeviceArray:
        next_ptr = 0x10000

        def __init__(self, shape, dtype, device):
            self.shape, self.dtype, self.device = tuple(shape), np.dtype(dtype), device
            self.ptr = FakeDeviceArray.next_ptr
            FakeDeviceArray.next_ptr += 0x1000

        @classmethod
        def empty(cls, shape, dtype, device=0):
            return cls(shape, dtype, device)

    class FakeBinding:
        def bind_input(self, name, device_type, device_id, element_type, shape, ptr):
            calls.append(("bind_input", name, device_type, device_id, np.dtype(element_type), tuple(shape), ptr))

        def bind_cpu_input(self, name, array):
            calls.append(("bind_cpu_input", name, array.shape, array.flags.c_contiguous))

        def bind_output(self, name, device_type, device_id, element_type, shape, ptr):
            calls.append(("bind_output", name, device_type, device_id, np.dtype(element_type), tuple(shape), ptr))

        def synchronize_inputs(self):
            calls.append(("sync_inputs",))

        def synchronize_outputs(self):
            calls.append(("sync_outputs",))

    class FakeOrt:
        def io_binding(self):
            return FakeBinding()

        def run_with_iobinding(self, binding):
            calls.append(("run",))

    monkeypatch.setattr(ramh_rt, "DeviceArray", FakeDeviceArray)
    monkeypatch.setattr(ramh_rt._core, "synchronize", lambda device=0: calls.append(("core_sync", device)))
    monkeypatch.setattr(ramh_rt._core, "device_of_pointer", lambda ptr: 0)
    session = object.__new__(OrtSession)  # skip __init__: no CUDA provider here
    session.spec, session.input_specs, session.output_specs = add_spec, add_spec.inputs, add_spec.outputs
    session._session, session._device_id, session.device, session._on_core_stream = FakeOrt(), 0, "cuda:0", False
    session._cuda, session.backend = True, "onnxruntime-cuda"

    x = FakeCudaArray((2, 3, 8, 8), ptr=0xABC000, device=0)
    y = np.zeros((2, 8, 8, 3), np.float32).transpose(0, 3, 1, 2)
    out = session.run({"x": x, "y": y})
    assert calls[0] == ("bind_input", "x", "cuda", 0, np.dtype("float32"), (2, 3, 8, 8), 0xABC000)
    assert calls[1] == ("bind_cpu_input", "y", (2, 3, 8, 8), True)
    assert [c[0] for c in calls[2:]] == ["bind_output", "bind_output", "core_sync", "sync_inputs", "run",
                                         "sync_outputs"]
    assert calls[2][:6] == ("bind_output", "z", "cuda", 0, np.dtype("float32"), (2, 3, 8, 8))
    assert set(out) == {"z", "w"} and out["z"].ptr == calls[2][6] and out["z"].shape == (2, 3, 8, 8)

    calls.clear()
    session._on_core_stream = True
    session.run({"x": x, "y": y})
    assert ("core_sync", 0) not in calls  # ONNX Runtime runs on the core's stream: already ordered

    elsewhere = FakeCudaArray((2, 3, 8, 8), device=1)
    with pytest.raises(FeedError, match="input 'x' is on cuda:1 but the session runs on cuda:0"):
        session.run({"x": elsewhere, "y": y})


# ---------------------------------------------------------------------------------------------------------------------
# ONNX Runtime CUDA without a GPU: the CUDA-provider probe, "auto" fallback and session creation against fakes
# ---------------------------------------------------------------------------------------------------------------------

class FakeOrtModule:
    """The slice of the ``onnxruntime`` module the backend touches. ``InferenceSession`` wraps a real CPU session (for
    the graph's inputs/outputs) but reports the providers and provider options a CUDA build would (``report``,
    ``options``); ``probe`` is what the CUDA-provider probe session reports (an exception instance is raised)."""

    __version__ = "1.31.1"

    def __init__(self, report=("CUDAExecutionProvider", "CPUExecutionProvider"), options=None,
                 probe=("CUDAExecutionProvider", "CPUExecutionProvider")):
        import onnxruntime

        self._ort = onnxruntime
        self.SessionOptions = onnxruntime.SessionOptions
        self.GraphOptimizationLevel = onnxruntime.GraphOptimizationLevel
        self.report, self.options, self.probe = list(report), options, probe
        self.sessions: list[tuple[Any, Any]] = []  # (model, providers) of every InferenceSession created
        self.probes = 0

    def get_available_providers(self):
        return ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

    def InferenceSession(self, model, sess_options=None, providers=None):  # noqa: N802 - ONNX Runtime's name
        fake = self
        self.sessions.append((model, providers))
        if isinstance(model, bytes):  # the probe
            self.probes += 1
            if isinstance(self.probe, Exception):
                raise self.probe

            class Probe:
                def get_providers(self):
                    return list(fake.probe)

            return Probe()
        real = self._ort.InferenceSession(model, sess_options=sess_options, providers=["CPUExecutionProvider"])

        class Reporting:
            def get_providers(self):
                return list(fake.report)

            def get_provider_options(self):
                return {"CUDAExecutionProvider": dict(fake.options or {}), "CPUExecutionProvider": {}}

            def get_inputs(self):
                return real.get_inputs()

            def get_outputs(self):
                return real.get_outputs()

        return Reporting()


@pytest.fixture
def fake_cuda_host(monkeypatch):
    """A host that looks CUDA-capable to the ONNX Runtime CUDA backend: core built with CUDA, one device, a core
    stream handle; no TensorRT. Returns a function installing a FakeOrtModule."""
    from ramh_rt.backends import onnxruntime_backend as ob, tensorrt_backend as tb

    def no_trt():
        raise ImportError("No module named 'tensorrt'")

    monkeypatch.setattr(tb, "_import_trt", no_trt)
    monkeypatch.setattr(ramh_rt, "build_info", lambda: {"cuda": True})
    monkeypatch.setattr(ramh_rt, "cuda_available", lambda: True)
    monkeypatch.setattr(ramh_rt._core, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(ramh_rt._core, "stream_handle", lambda device=0: 0xC0DE00)
    monkeypatch.setattr(ob, "_CUDA_PROBE", {})

    def install(**kw) -> FakeOrtModule:
        fake = FakeOrtModule(**kw)
        monkeypatch.setattr(ob, "_import_ort", lambda: fake)
        return fake

    return install


def test_cuda_probe_model_loads_and_sees_a_cpu_fallback(monkeypatch):
    """The embedded probe model is a valid ONNX model for the real ONNX Runtime, and on this CPU-only build the probe
    session (asked for CUDA, then CPU) falls back to the CPU, which the probe reports."""
    import warnings

    import onnxruntime
    from ramh_rt.backends import onnxruntime_backend as ob

    monkeypatch.setattr(ob, "_CUDA_PROBE", {})
    cpu_session = onnxruntime.InferenceSession(ob._PROBE_MODEL, providers=["CPUExecutionProvider"])
    x = np.array([3.5], np.float32)
    np.testing.assert_array_equal(cpu_session.run(None, {"x": x})[0], x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Specified provider 'CUDAExecutionProvider' is not in available ..."
        ok, why = ob._probe_cuda_ep(onnxruntime)
    assert not ok and "cannot create it here, so sessions would run on the CPU" in why


def test_auto_falls_back_to_cpu_when_the_cuda_provider_cannot_load(fake_cuda_host):
    """onnxruntime-gpu lists CUDAExecutionProvider even when its CUDA/cuDNN libraries are missing; a session then runs
    on the CPU. available() probes for that, so "auto" skips ORT-CUDA with the reason and takes ORT-CPU."""
    fake = fake_cuda_host(probe=("CPUExecutionProvider",))
    ok, why = backends.get_backend("onnxruntime-cuda").available()
    assert not ok and "onnxruntime 1.31.1 lists CUDAExecutionProvider but cannot create it" in why
    assert fake.sessions == [(fake.sessions[0][0], [("CUDAExecutionProvider", {"device_id": "0"}),
                                                    "CPUExecutionProvider"])]
    sel = backends.select_backend("auto")
    assert sel.backend.name == "onnxruntime-cpu"
    assert list(sel.unavailable) == ["tensorrt", "onnxruntime-cuda"] and sel.unavailable["onnxruntime-cuda"] == why
    assert sel.unavailable["tensorrt"].startswith("tensorrt is not installed")
    assert fake.probes == 1  # cached: one probe per process
    assert backends.get_backend("onnxruntime-cuda").devices() == []


@pytest.mark.parametrize("probe", [("CUDAExecutionProvider", "CPUExecutionProvider"), RuntimeError("odd build")])
def test_cuda_probe_passes_or_is_inconclusive(fake_cuda_host, probe):
    fake_cuda_host(probe=probe)
    assert backends.get_backend("onnxruntime-cuda").available() == (True, "")
    assert backends.select_backend("auto").backend.name == "onnxruntime-cuda"


def test_cuda_session_creation_against_a_fake_cuda_build(fake_cuda_host, add_spec, tmp_path):
    """Provider options as the CUDA EP documents them (all strings; user_compute_stream = the core's stream handle),
    CUDA then CPU; the effective options read back decide whether the session relies on the core's stream order."""
    from ramh_rt.backends.onnxruntime_backend import OrtSession

    stream = str(0xC0DE00)
    fake = fake_cuda_host(options={"device_id": "0", "has_user_compute_stream": "1", "user_compute_stream": stream})
    cuda = backends.get_backend("onnxruntime-cuda")
    s = cuda.create_session(add_spec, device="cuda:0")
    assert isinstance(s, OrtSession) and s.device == "cuda:0" and s._on_core_stream
    assert s.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert s.cpu_nodes is None  # this fake cannot report node placement
    assert fake.sessions[-1][1] == [("CUDAExecutionProvider", {"device_id": "0", "cudnn_conv_algo_search": "EXHAUSTIVE",
                                                               "user_compute_stream": stream}),
                                    "CPUExecutionProvider"]

    s = cuda.create_session(add_spec, gpu_mem_limit_mb=256, use_core_stream=False, cudnn_conv_algo_search="HEURISTIC")
    assert not s._on_core_stream
    assert fake.sessions[-1][1][0] == ("CUDAExecutionProvider", {"device_id": "0", "gpu_mem_limit": str(256 << 20),
                                                                 "cudnn_conv_algo_search": "HEURISTIC"})

    fake.options = {"device_id": "0", "has_user_compute_stream": "0", "user_compute_stream": "0"}
    assert not cuda.create_session(add_spec)._on_core_stream  # stream not applied: synchronise instead
    fake.options = None
    assert not cuda.create_session(add_spec)._on_core_stream  # nothing reported: synchronise instead

    fake.options = {"device_id": "1", "user_compute_stream": stream}
    with pytest.raises(BackendError, match="created the CUDA execution provider for add on device 1, not on cuda:0"):
        cuda.create_session(add_spec)
    fake.options, fake.report = {"device_id": "0", "user_compute_stream": stream}, ["CPUExecutionProvider"]
    with pytest.raises(BackendError, match="could not enable the CUDA execution provider for add \\(providers in use: "
                                           "CPUExecutionProvider\\)"):
        cuda.create_session(add_spec)
    fake.report = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(ValueError, match="device cuda:2 does not exist \\(1 CUDA device\\(s\\) visible\\)"):
        cuda.create_session(add_spec, device="cuda:2")

    import onnx
    from onnx import TensorProto, helper

    vi = [helper.make_tensor_value_info(n, TensorProto.DOUBLE, ["N", 4]) for n in ("x", "z")]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "f64", [vi[0]], [vi[1]])
    path = tmp_path / "f64.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    f64 = dataclasses.replace(add_spec, path=path, inputs=(TensorSpec("x", (None, 4), "float64"),),
                              outputs=(TensorSpec("z", (None, 4), "float64"),))
    with pytest.raises(BackendError, match="outputs 'z' \\(float64\\) of add have dtypes a DeviceArray cannot hold"):
        cuda.create_session(f64)


def test_cpu_node_placement_is_read_from_onnx_runtime(add_spec):
    """cpu_nodes comes from get_provider_graph_assignment_info (recorded on request); on this CPU-only ONNX Runtime
    every node is on the CPU provider, which is what a CUDA session would list for nodes the CUDA provider lacks."""
    import onnxruntime
    from ramh_rt.backends.onnxruntime_backend import _cpu_nodes

    so = onnxruntime.SessionOptions()
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    session = onnxruntime.InferenceSession(str(add_spec.path), so, providers=["CPUExecutionProvider"])
    nodes = _cpu_nodes(session)
    assert nodes is None or sorted(nodes) == ["Add", "Identity"]  # None: an ONNX Runtime without the query
    assert _cpu_nodes(object()) is None
    assert backends.get_backend("onnxruntime-cpu").create_session(add_spec).cpu_nodes == ()
