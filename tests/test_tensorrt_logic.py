"""TensorRT backend without TensorRT: the pure decisions of trt_logic, and the session's build/cache/run flow driven
through a fake ``tensorrt`` module and fake device memory (TensorRT and a GPU cannot be installed here)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import onnx_factory
from ramh_rt.backends import trt_logic as tl
from ramh_rt.backends.tensorrt_backend import TensorRTSession
from ramh_rt.bundle import ModelSpec, TensorSpec
from ramh_rt.errors import BackendError, FeedError

SM87, SM90, SM61 = (8, 7), (9, 0), (6, 1)
X = TensorSpec("x", (None, 3, 8, 8), "float32")


# ---------------------------------------------------------------------------------------------------------------------
# versions and precision
# ---------------------------------------------------------------------------------------------------------------------

def test_parse_and_check_versions():
    assert tl.parse_version("10.3.0.26") == (10, 3, 0, 26)
    assert tl.parse_version("11.0.0rc1") == (11, 0, 0)
    assert tl.parse_version("10.12.0.36.post1") == (10, 12, 0, 36)
    with pytest.raises(ValueError, match="cannot parse"):
        tl.parse_version("ten")
    assert tl.check_supported("10.3.0") == 10 and tl.check_supported("11.4.1") == 11
    with pytest.raises(ValueError, match="TensorRT 8.6.1 is too old"):
        tl.check_supported("8.6.1")
    with pytest.raises(ValueError, match="newer than this ramh_rt supports"):
        tl.check_supported("12.0.0")


def test_fast_precision_tables():
    assert tl.gpu_has_fast_fp16(SM87) and tl.gpu_has_fast_fp16(SM90) and tl.gpu_has_fast_fp16((5, 3))
    assert not tl.gpu_has_fast_fp16(SM61) and not tl.gpu_has_fast_fp16((5, 2))
    assert tl.gpu_has_fast_int8(SM61) and tl.gpu_has_fast_int8(SM87) and not tl.gpu_has_fast_int8((6, 0))


@pytest.mark.parametrize("requested,model,version,cc,calib,expected", [
    # TensorRT 10, FP32 ONNX: weakly typed, precision by builder flags
    ("auto", "fp32", "10.3.0", SM87, False, tl.BuildPlan("fp16", False, ("FP16",))),
    ("auto", "fp32", "10.3.0", SM61, False, tl.BuildPlan("fp32", False)),
    ("fp32", "fp32", "10.3.0", SM90, False, tl.BuildPlan("fp32", False)),
    ("fp16", "fp32", "10.3.0", SM90, False, tl.BuildPlan("fp16", False, ("FP16",))),
    ("int8", "fp32", "10.3.0", SM87, True, tl.BuildPlan("int8", False, ("INT8", "FP16"), needs_calibrator=True)),
    # precision carried by the ONNX: strongly typed on TensorRT 10
    ("auto", "fp16", "10.3.0", SM87, False, tl.BuildPlan("fp16", True)),
    ("fp16", "fp16", "10.3.0", SM87, False, tl.BuildPlan("fp16", True)),
    ("int8", "int8-qdq", "10.3.0", SM87, False, tl.BuildPlan("int8", True)),
    # TensorRT 11: always strongly typed (no flag to set), precision from the ONNX
    ("auto", "fp32", "11.0.0", SM90, False, tl.BuildPlan("fp32", False)),
    ("auto", "fp16", "11.4.1", SM90, False, tl.BuildPlan("fp16", False)),
    ("int8", "int8-qdq", "11.4.1", SM90, False, tl.BuildPlan("int8", False)),
])
def test_plan_build_matrix(requested, model, version, cc, calib, expected):
    assert tl.plan_build(requested, model, version, cc, has_calibration=calib) == expected


@pytest.mark.parametrize("requested,model,version,calib,message", [
    ("fp16", "fp32", "11.0.0", False, "TensorRT 11.0.0 builds strongly typed networks only.*export the model as an "
                                      "FP16 ONNX"),
    ("int8", "fp32", "11.0.0", True, r"strongly typed networks only.*INT8 Q/DQ ONNX \(ramh-train quantize\)"),
    ("fp32", "fp16", "10.3.0", False, "the ONNX file is fp16"),
    ("int8", "fp16", "10.3.0", True, "the ONNX file is fp16.*INT8 Q/DQ"),
    ("int8", "fp32", "10.3.0", False, "INT8 from an FP32 ONNX needs calibration data"),
    ("bf16", "fp32", "10.3.0", False, "precision must be one of auto, fp32, fp16, int8"),
    ("auto", "fp64", "10.3.0", False, "model precision must be one of"),
    ("auto", "fp32", "8.6.1", False, "too old"),
])
def test_plan_build_refusals(requested, model, version, calib, message):
    with pytest.raises(ValueError, match=message):
        tl.plan_build(requested, model, version, SM87, has_calibration=calib)


def test_plan_build_notes():
    assert any("no fast FP16" in n for n in tl.plan_build("fp16", "fp32", "10.3.0", SM61).notes)
    assert any("no fast INT8" in n for n in tl.plan_build("int8", "fp32", "10.3.0", (6, 0), True).notes)
    assert any("calibration data ignored" in n for n in tl.plan_build("auto", "int8-qdq", "10.3.0", SM87, True).notes)
    assert any(">= 11 has no calibrators" in n for n in tl.plan_build("auto", "fp32", "11.0.0", SM90, True).notes)


# ---------------------------------------------------------------------------------------------------------------------
# profiles
# ---------------------------------------------------------------------------------------------------------------------

def test_batch_limits():
    assert tl.batch_limits() == tl.BatchLimits(1, 16, 16)
    assert tl.batch_limits(2, 4, 8) == tl.BatchLimits(2, 4, 8)
    for args, message in (((0, None, 4), "min_batch must be a positive integer"),
                          ((1, 5, 4), "min_batch <= opt_batch <= max_batch"),
                          ((3, 2, 4), "min_batch <= opt_batch <= max_batch"),
                          ((1, None, 2.5), "max_batch must be a positive integer"),
                          ((True, None, 4), "min_batch")):
        with pytest.raises(ValueError, match=message):
            tl.batch_limits(*args)


def test_profile_shapes_and_batch_check():
    specs = [X, TensorSpec("area", (None, 22), "float32"), TensorSpec("k", (4,), "int64")]
    prof = tl.profile_shapes(specs, tl.BatchLimits(1, 8, 32))
    assert prof == {"x": ((1, 3, 8, 8), (8, 3, 8, 8), (32, 3, 8, 8)),
                    "area": ((1, 22), (8, 22), (32, 22)), "k": ((4,), (4,), (4,))}
    tl.check_batch(None, tl.BatchLimits(1, 8, 32), "m")
    tl.check_batch(32, tl.BatchLimits(1, 8, 32), "m")
    with pytest.raises(ValueError, match=r"m: batch 33 is outside the TensorRT optimisation profile \[1, 32\]"):
        tl.check_batch(33, tl.BatchLimits(1, 8, 32), "m")


# ---------------------------------------------------------------------------------------------------------------------
# cache key, paths and the reuse/rebuild decision
# ---------------------------------------------------------------------------------------------------------------------

def _fields(**over: Any) -> dict[str, Any]:
    kw: dict[str, Any] = dict(model_sha256="a" * 64, trt_version="10.3.0", gpu_name="Orin", compute_capability=SM87,
                              plan=tl.BuildPlan("fp16", False, ("FP16",)),
                              profile=tl.profile_shapes([X], tl.BatchLimits(1, 4, 8)), calibration_sha256=None)
    kw.update(over)
    return tl.key_fields(**kw)


def test_cache_key_is_stable_and_sensitive_to_every_field():
    base = tl.cache_key(_fields())
    assert base == tl.cache_key(_fields()) and len(base) == 64
    variants = {
        "model": _fields(model_sha256="b" * 64),
        "tensorrt": _fields(trt_version="10.3.1"),
        "gpu name": _fields(gpu_name="NVIDIA H100 80GB HBM3"),
        "compute capability": _fields(compute_capability=(8, 6)),
        "precision": _fields(plan=tl.BuildPlan("fp32", False)),
        "strong typing": _fields(plan=tl.BuildPlan("fp16", True)),
        "profile": _fields(profile=tl.profile_shapes([X], tl.BatchLimits(1, 4, 16))),
        "calibration": _fields(calibration_sha256="c" * 64),
        "workspace": _fields(workspace_mb=512),
    }
    keys = {name: tl.cache_key(f) for name, f in variants.items()}
    assert base not in keys.values() and len(set(keys.values())) == len(keys)
    fields = _fields()
    assert fields["key_format"] == tl.PLAN_KEY_FORMAT
    two = tl.profile_shapes([X, TensorSpec("y", (None, 2), "float32")], tl.BatchLimits(1, 1, 1))
    reordered = dict(reversed(list(two.items())))
    assert tl.cache_key(_fields(profile=two)) == tl.cache_key(_fields(profile=reordered))


def test_plan_paths(tmp_path):
    f = _fields(gpu_name="NVIDIA H100 80GB HBM3", compute_capability=SM90)
    p = tl.plan_paths(tmp_path, "bones", f)
    key = tl.cache_key(f)
    assert p.plan == tmp_path / f"bones-{key[:24]}.plan" and p.meta == p.plan.with_suffix(".json")
    assert p.timing_cache.name == "timing-trt10.3.0-NVIDIA_H100_80GB_HBM3-sm90.cache"
    other_model = tl.plan_paths(tmp_path, "joints", _fields(model_sha256="d" * 64, gpu_name="NVIDIA H100 80GB HBM3",
                                                            compute_capability=SM90))
    assert other_model.timing_cache == p.timing_cache and other_model.plan != p.plan
    assert tl.plan_paths(tmp_path, "bones", _fields()).timing_cache != p.timing_cache
    assert tl.slug("a/b c") == "a_b_c" and tl.slug("///") == "unnamed"
    assert tl.plan_cache_dir(tmp_path) == tmp_path / "tensorrt"


def test_decide_plan_branches():
    f = _fields()
    meta = tl.make_meta(f, "s" * 64, 123, 1.5, "2026-01-01T00:00:00+00:00")
    assert meta["key"] == tl.cache_key(f) and meta["plan_bytes"] == 123
    assert tl.decide_plan(f, True, meta, "s" * 64) == tl.PlanDecision("reuse", "cached plan matches")
    assert tl.decide_plan(f, True, meta, "s" * 64, rebuild=True) == tl.PlanDecision("build", "rebuild requested")
    assert tl.decide_plan(f, False, None, None) == tl.PlanDecision("build", "no cached plan")
    d = tl.decide_plan(f, True, None, None)
    assert d.action == "build" and d.stale and "sidecar" in d.reason
    d = tl.decide_plan(f, True, {"fields": "x"}, "s" * 64)
    assert d.stale and "malformed" in d.reason
    old = dict(meta, fields=dict(f, key_format=0))
    assert f"key format changed (0 -> {tl.PLAN_KEY_FORMAT})" in tl.decide_plan(f, True, old, "s" * 64).reason
    old = dict(meta, fields=dict(f, tensorrt="10.2.0"))
    d = tl.decide_plan(f, True, old, "s" * 64)
    assert d.action == "build" and d.stale and d.reason == "tensorrt changed ('10.2.0' -> '10.3.0')"
    old = dict(meta, fields=dict(f, tensorrt="10.2.0", gpu_name="X"))
    assert "and 1 more" in tl.decide_plan(f, True, old, "s" * 64).reason
    d = tl.decide_plan(f, True, meta, "t" * 64)
    assert d.stale and "corrupt" in d.reason


def test_read_meta(tmp_path):
    p = tmp_path / "m.json"
    assert tl.read_meta(p) is None
    p.write_text("{broken")
    assert tl.read_meta(p) is None
    p.write_text("[1]")
    assert tl.read_meta(p) is None
    meta = tl.make_meta(_fields(), "s" * 64, 1, 0.0, "now")
    p.write_text(json.dumps(meta))
    assert tl.read_meta(p) == json.loads(json.dumps(meta))
    assert tl.decide_plan(_fields(), True, tl.read_meta(p), "s" * 64).action == "reuse"  # survives a JSON round trip


# ---------------------------------------------------------------------------------------------------------------------
# dtypes and engine I/O
# ---------------------------------------------------------------------------------------------------------------------

def test_numpy_dtype_mapping():
    assert tl.numpy_dtype("FLOAT") == "float32" and tl.numpy_dtype("DataType.HALF") == "float16"
    assert tl.numpy_dtype("int64") == "int64" and tl.numpy_dtype("BOOL") == "bool"
    for t in ("BF16", "FP8", "INT4", "FP4"):
        with pytest.raises(ValueError, match=f"TensorRT data type {t} has no NumPy equivalent"):
            tl.numpy_dtype(t)


def test_engine_io_problems():
    ins, outs = [X], [TensorSpec("z", (None, 3, 8, 8), "float32")]
    good = [tl.EngineTensor("x", True, "FLOAT", (-1, 3, 8, 8)), tl.EngineTensor("z", False, "FLOAT", (-1, 3, 8, 8))]
    assert tl.engine_io_problems(ins, outs, good) == []
    cases = [
        ([good[0]], "output 'z' is not an I/O tensor of the engine"),
        ([good[0], tl.EngineTensor("z", True, "FLOAT", (-1, 3, 8, 8))], "output 'z' is an input of the engine"),
        ([good[0], tl.EngineTensor("z", False, "HALF", (-1, 3, 8, 8))], "manifest says float32, engine says float16"),
        ([good[0], tl.EngineTensor("z", False, "BF16", (-1, 3, 8, 8))], "BF16 has no NumPy equivalent"),
        ([good[0], tl.EngineTensor("z", False, "FLOAT", (-1, 3, 8))], "rank 3 in the engine, 4 in the manifest"),
        ([good[0], tl.EngineTensor("z", False, "FLOAT", (-1, 3, 9, 8))], "axis 2 is 9 in the engine, 8"),
        (good + [tl.EngineTensor("extra", True, "FLOAT", (1,))], "engine input 'extra' is not declared"),
    ]
    for engine, message in cases:
        problems = tl.engine_io_problems(ins, outs, engine)
        assert any(message in p for p in problems), (message, problems)
    bool_out = [good[0], tl.EngineTensor("z", False, "BOOL", (-1, 3, 8, 8))]
    problems = tl.engine_io_problems(ins, [TensorSpec("z", (None, 3, 8, 8), "bool")], bool_out)
    assert problems == ["output 'z': dtype bool cannot be held by a DeviceArray"]


# ---------------------------------------------------------------------------------------------------------------------
# calibration data
# ---------------------------------------------------------------------------------------------------------------------

def test_calibration_set_from_an_array(rng):
    data = rng.random((10, 3, 8, 8), dtype=np.float32)
    cs = tl.calibration_set(data, [X], 4)
    assert cs.batch_size == 4 and len(cs.batches) == 2 and cs.dropped == 2 and "2 calibration samples" in cs.notes[0]
    np.testing.assert_array_equal(cs.batches[1]["x"], data[4:8])
    assert cs.batches[0]["x"].flags.c_contiguous
    assert cs.sha256 == tl.calibration_set(data.copy(), [X], 4).sha256
    assert cs.sha256 != tl.calibration_set(data[::-1].copy(), [X], 4).sha256


def test_calibration_set_multi_input_and_batch_axis(rng):
    specs = [TensorSpec("a", (2, None), "float32"), TensorSpec("b", (None,), "int64")]
    parts = [{"a": rng.random((2, 3), dtype=np.float32), "b": np.arange(3)},
             {"a": rng.random((2, 3), dtype=np.float32), "b": np.arange(3, 6)}]
    cs = tl.calibration_set(parts, specs, 2)
    assert len(cs.batches) == 3 and cs.batches[0]["a"].shape == (2, 2)  # batch axis 1 kept in place
    np.testing.assert_array_equal(cs.batches[1]["b"], [2, 3])
    np.testing.assert_array_equal(cs.batches[1]["a"], np.concatenate([parts[0]["a"], parts[1]["a"]], axis=1)[:, 2:4])


@pytest.mark.parametrize("data,specs,message", [
    (np.zeros((4, 3, 8, 8), np.float64), [X], "must be float32, got float64"),
    (np.zeros((4, 3, 8, 9), np.float32), [X], r"has shape \(4, 3, 8, 9\), expected \(N, 3, 8, 8\)"),
    (np.zeros((2, 3, 8, 8), np.float32), [X], "holds 2 samples, fewer than one batch of 4"),
    (np.zeros((4, 3, 8, 8), np.float32), [X, X], "single-input models only"),
    ({"y": np.zeros((4, 3, 8, 8), np.float32)}, [X], "has no array for input 'x'"),
    ({"x": np.zeros((4, 3, 8, 8), np.float32), "y": np.zeros((5, 2), np.float32)},
     [X, TensorSpec("y", (None, 2), "float32")], "different sample counts"),
    (np.zeros((4, 3), np.float32), [TensorSpec("s", (4, 3), "float32")], "has no batch axis"),
    ([], [X], "calibration data is empty"),
    ("file.npy", [X], "must be an array, a dict of arrays or a list of dicts"),
])
def test_calibration_set_refusals(data, specs, message):
    with pytest.raises(ValueError, match=message):
        tl.calibration_set(data, specs, 4)


# ---------------------------------------------------------------------------------------------------------------------
# The session's build / cache / run flow, against a fake tensorrt module and fake device memory
# ---------------------------------------------------------------------------------------------------------------------

_ONNX_TO_TRT = {onnx.TensorProto.FLOAT: "FLOAT", onnx.TensorProto.FLOAT16: "HALF", onnx.TensorProto.INT64: "INT64",
                onnx.TensorProto.INT32: "INT32"}


class FakeDevice:
    """Device memory stand-in: arrays addressed by fake pointers."""

    def __init__(self) -> None:
        self.memory: dict[int, np.ndarray] = {}
        self.next_ptr = 0x1000
        self.syncs = 0

    def _register(self, arr: np.ndarray) -> Any:
        ptr, self.next_ptr = self.next_ptr, self.next_ptr + 0x1000
        self.memory[ptr] = arr

        class Dev:
            pass

        d = Dev()
        d.ptr, d.array = ptr, arr
        return d

    def empty(self, shape, dtype):
        return self._register(np.full(shape, np.nan if np.dtype(dtype).kind == "f" else 0, dtype=dtype))

    def from_host(self, array):
        return self._register(np.array(array, copy=True))

    def device_of_pointer(self, ptr):
        return 0 if ptr in self.memory else -1

    def stream_handle(self):
        return 0xABC

    def synchronize(self):
        self.syncs += 1


def make_fake_trt(version: str, device: FakeDevice) -> Any:
    """A module-like object with the TensorRT API surface the backend uses; engines compute z = x + y, w = x."""
    log: dict[str, Any] = {"builds": 0, "network_flags": [], "builder_flags": [], "profiles": [], "timing": [],
                           "calibration_batches": 0, "calibration_profile": None, "workspace": None}

    class Enum:
        def __init__(self, name, value):
            self.name, self.value = name, value

        def __int__(self):
            return self.value

        def __eq__(self, other):
            return isinstance(other, Enum) and other.name == self.name

        def __hash__(self):
            return hash(self.name)

    class Logger:
        VERBOSE, INFO, WARNING, ERROR = 0, 1, 2, 3

        def __init__(self, severity):
            self.severity = severity

    class NetworkDefinitionCreationFlag:
        STRONGLY_TYPED = Enum("STRONGLY_TYPED", 5)

    class BuilderFlag:
        FP16, INT8 = Enum("FP16", 0), Enum("INT8", 1)

    class MemoryPoolType:
        WORKSPACE = Enum("WORKSPACE", 0)

    class TensorIOMode:
        INPUT, OUTPUT = Enum("INPUT", 1), Enum("OUTPUT", 2)

    class IInt8EntropyCalibrator2:
        def __init__(self):
            pass

    class Network:
        def __init__(self, flags):
            self.flags, self.io = flags, []

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        def parse_from_file(self, path):
            try:
                model = onnx.load(path)
            except Exception as e:
                self.errors = [f"cannot read {path}: {e}"]
                return False
            for kind, items in (("in", model.graph.input), ("out", model.graph.output)):
                for vi in items:
                    t = vi.type.tensor_type
                    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
                    self.network.io.append((vi.name, kind == "in", _ONNX_TO_TRT[t.elem_type], dims))
            return True

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

    class TimingCache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return b"TIMING" + bytes([len(log["timing"])])

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, lo, opt, hi):
            self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

    class Config:
        def __init__(self):
            self.flags, self.profiles, self.int8_calibrator, self.cache = [], [], None, None

        def set_flag(self, flag):
            self.flags.append(flag.name)

        def set_memory_pool_limit(self, pool, size):
            log["workspace"] = size

        def add_optimization_profile(self, p):
            self.profiles.append(p)

        def set_calibration_profile(self, p):
            log["calibration_profile"] = p.shapes

        def create_timing_cache(self, data):
            if data and not data.startswith(b"TIMING"):
                raise RuntimeError("corrupt timing cache")
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            log["timing"].append(cache.data)
            return True

        def get_timing_cache(self):
            return self.cache

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            log["network_flags"].append(flags)
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            log["builds"] += 1
            log["builder_flags"].append(list(config.flags))
            log["profiles"].append(config.profiles[0].shapes)
            if config.int8_calibrator is not None:
                cal = config.int8_calibrator
                assert cal.read_calibration_cache() is None
                while True:
                    ptrs = cal.get_batch([n for n, is_in, _, _ in network.io if is_in])
                    if ptrs is None:
                        break
                    assert all(p in device.memory for p in ptrs)
                    log["calibration_batches"] += 1
                cal.write_calibration_cache(b"CALIB")
            desc = {"io": network.io, "profile": {k: [list(s) for s in v] for k, v in config.profiles[0].shapes.items()}}
            return memoryview(b"PLAN:" + json.dumps(desc).encode())

    class Dims(tuple):
        pass

    class Context:
        def __init__(self, engine):
            self.engine, self.shapes, self.addresses = engine, {}, {}

        def set_input_shape(self, name, shape):
            lo, _, hi = self.engine.profile[name]
            ok = all(a <= s <= b for a, s, b in zip(lo, shape, hi))
            if ok:
                self.shapes[name] = tuple(shape)
            return ok

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr
            return True

        def get_tensor_shape(self, name):
            batch = next(iter(self.shapes.values()))[0]
            dims = self.engine.dims[name]
            return Dims(batch if d == -1 else d for d in dims)

        def execute_async_v3(self, stream):
            assert stream == 0xABC
            mem = device.memory
            x = mem[self.addresses["x"]]
            y = mem[self.addresses["y"]]
            mem[self.addresses["z"]][...] = x + y
            mem[self.addresses["w"]][...] = x
            return True

    class Engine:
        def __init__(self, desc):
            self.io = desc["io"]
            self.profile = {k: [tuple(s) for s in v] for k, v in desc["profile"].items()}
            self.dims = {n: d for n, _, _, d in self.io}
            self.contexts = 0

        @property
        def num_io_tensors(self):
            return len(self.io)

        def get_tensor_name(self, i):
            return self.io[i][0]

        def get_tensor_mode(self, name):
            return TensorIOMode.INPUT if next(t for t in self.io if t[0] == name)[1] else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return Enum(next(t for t in self.io if t[0] == name)[2], 0)

        def get_tensor_shape(self, name):
            return Dims(self.dims[name])

        def create_execution_context(self):
            self.contexts += 1
            return Context(self)

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            data = bytes(data)
            if not data.startswith(b"PLAN:"):
                return None
            return Engine(json.loads(data[5:]))

    class FakeTRT:
        pass

    trt = FakeTRT()
    for name, value in dict(Logger=Logger, NetworkDefinitionCreationFlag=NetworkDefinitionCreationFlag,
                            BuilderFlag=BuilderFlag, MemoryPoolType=MemoryPoolType, TensorIOMode=TensorIOMode,
                            IInt8EntropyCalibrator2=IInt8EntropyCalibrator2, OnnxParser=OnnxParser, Builder=Builder,
                            Runtime=Runtime).items():
        setattr(trt, name, value)
    trt.__version__ = version
    trt.log = log
    return trt


@pytest.fixture
def add_spec(tmp_path) -> ModelSpec:
    path = onnx_factory.add_model(tmp_path / "add.onnx")
    shape = (None, 3, 8, 8)
    return ModelSpec(name="add", task="test", path=path, sha256=onnx_factory.sha256(path), precision="fp32", opset=17,
                     inputs=(TensorSpec("x", shape, "float32"), TensorSpec("y", shape, "float32")),
                     outputs=(TensorSpec("z", shape, "float32"), TensorSpec("w", shape, "float32")))


def _session(spec, trt, device, tmp_path, **options):
    options.setdefault("max_batch", 4)
    return TensorRTSession(spec, trt=trt, gpu_name="NVIDIA H100 80GB HBM3", compute_capability=SM90, ops=device,
                           cache_dir=tmp_path / "cache", **options)


def test_build_then_reuse_then_run(add_spec, tmp_path, rng):
    device = FakeDevice()
    trt = make_fake_trt("10.3.0", device)
    s = _session(add_spec, trt, device, tmp_path)
    assert s.build_info["action"] == "build" and s.build_info["reason"] == "no cached plan"
    assert s.plan == tl.BuildPlan("fp16", False, ("FP16",))  # auto on sm_90 from an FP32 ONNX
    assert trt.log["builds"] == 1 and trt.log["builder_flags"] == [["FP16"]] and trt.log["network_flags"] == [0]
    assert trt.log["profiles"][0]["x"] == ((1, 3, 8, 8), (4, 3, 8, 8), (4, 3, 8, 8))
    assert s.paths.plan.is_file() and s.paths.timing_cache.read_bytes().startswith(b"TIMING")
    meta = json.loads(s.paths.meta.read_text())
    assert meta["fields"]["model_sha256"] == add_spec.sha256 and meta["fields"]["gpu_name"] == "NVIDIA H100 80GB HBM3"

    again = _session(add_spec, trt, device, tmp_path)
    assert again.build_info["action"] == "reuse" and trt.log["builds"] == 1

    x = rng.random((3, 3, 8, 8), dtype=np.float32)
    y = rng.random((3, 3, 8, 8), dtype=np.float32)
    out = again.run({"x": x, "y": y})
    np.testing.assert_allclose(out["z"].array, x + y)
    np.testing.assert_array_equal(out["w"].array, x)
    assert device.syncs == 1
    dx = device.from_host(x)

    class Cai:  # a device array of the fake memory, passed by pointer
        __cuda_array_interface__ = {"shape": x.shape, "typestr": "<f4", "data": (dx.ptr, False), "version": 3}

    out = again.run({"x": Cai(), "y": y})
    np.testing.assert_allclose(out["z"].array, x + y)


def test_run_refuses_out_of_profile_batches_and_foreign_devices(add_spec, tmp_path):
    device = FakeDevice()
    s = _session(add_spec, make_fake_trt("10.3.0", device), device, tmp_path)
    with pytest.raises(FeedError, match=r"add: batch 5 is outside the TensorRT optimisation profile \[1, 4\]"):
        s.run({"x": np.zeros((5, 3, 8, 8), np.float32), "y": np.zeros((5, 3, 8, 8), np.float32)})

    class Elsewhere:
        __cuda_array_interface__ = {"shape": (1, 3, 8, 8), "typestr": "<f4", "data": (0xDEAD0000, False), "version": 3}
        device = 1

    with pytest.raises(FeedError, match="input 'x' is on cuda:1; the tensorrt session runs on cuda:0"):
        s.run({"x": Elsewhere(), "y": np.zeros((1, 3, 8, 8), np.float32)})
    with pytest.raises(FeedError, match="must be float32"):
        s.run({"x": np.zeros((1, 3, 8, 8), np.float64), "y": np.zeros((1, 3, 8, 8), np.float32)})


def test_one_context_per_thread(add_spec, tmp_path):
    import threading

    device = FakeDevice()
    s = _session(add_spec, make_fake_trt("10.3.0", device), device, tmp_path)
    feeds = {"x": np.ones((1, 3, 8, 8), np.float32), "y": np.ones((1, 3, 8, 8), np.float32)}
    s.run(feeds)
    s.run(feeds)
    assert s._engine.contexts == 1
    t = threading.Thread(target=s.run, args=(feeds,))
    t.start()
    t.join()
    assert s._engine.contexts == 2


@pytest.mark.parametrize("damage,reason", [
    (lambda p: p.plan.write_bytes(b"PLAN:{not json"), "corrupt"),  # bytes differ from the sidecar's sha256
    (lambda p: p.meta.unlink(), "sidecar"),
    (lambda p: p.meta.write_text("{"), "sidecar"),
])
def test_stale_or_corrupt_plan_is_rebuilt_with_a_warning(add_spec, tmp_path, damage, reason):
    device = FakeDevice()
    trt = make_fake_trt("10.3.0", device)
    first = _session(add_spec, trt, device, tmp_path)
    damage(first.paths)
    with pytest.warns(RuntimeWarning, match=f"cached plan .* is stale .*{reason}"):
        s = _session(add_spec, trt, device, tmp_path)
    assert s.build_info["action"] == "build" and trt.log["builds"] == 2
    assert _session(add_spec, trt, device, tmp_path).build_info["action"] == "reuse"


def test_undeserializable_plan_with_valid_sidecar_is_rebuilt(add_spec, tmp_path):
    import hashlib

    device = FakeDevice()
    trt = make_fake_trt("10.3.0", device)
    first = _session(add_spec, trt, device, tmp_path)
    junk = b"not a plan"
    first.paths.plan.write_bytes(junk)
    meta = json.loads(first.paths.meta.read_text())
    meta["plan_sha256"] = hashlib.sha256(junk).hexdigest()  # e.g. a plan from another TensorRT build
    first.paths.meta.write_text(json.dumps(meta))
    with pytest.warns(RuntimeWarning, match="could not deserialize"):
        s = _session(add_spec, trt, device, tmp_path)
    assert s.build_info["action"] == "build"


def test_changes_that_need_a_new_plan(add_spec, tmp_path):
    device = FakeDevice()
    trt = make_fake_trt("10.3.0", device)
    a = _session(add_spec, trt, device, tmp_path)
    b = _session(add_spec, trt, device, tmp_path, precision="fp32")
    c = _session(add_spec, trt, device, tmp_path, max_batch=8)
    assert len({a.paths.plan, b.paths.plan, c.paths.plan}) == 3 and trt.log["builds"] == 3
    assert trt.log["builder_flags"][1] == []
    d = _session(add_spec, trt, device, tmp_path, rebuild=True)
    assert d.build_info["reason"] == "rebuild requested" and trt.log["builds"] == 4
    other_gpu = TensorRTSession(add_spec, trt=trt, gpu_name="Orin", compute_capability=SM87, ops=device,
                                cache_dir=tmp_path / "cache", max_batch=4)
    assert other_gpu.paths.plan != a.paths.plan and other_gpu.paths.timing_cache != a.paths.timing_cache


def test_timing_cache_is_reused_and_a_corrupt_one_replaced(add_spec, tmp_path):
    device = FakeDevice()
    trt = make_fake_trt("10.3.0", device)
    a = _session(add_spec, trt, device, tmp_path)
    assert trt.log["timing"] == [b""]
    _session(add_spec, trt, device, tmp_path, precision="fp32")
    assert trt.log["timing"][1].startswith(b"TIMING")  # the second build started from the first one's cache
    a.paths.timing_cache.write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="timing cache .* is unusable"):
        _session(add_spec, trt, device, tmp_path, max_batch=2)
    assert trt.log["timing"][-1] == b""


def test_tensorrt_11_builds_strongly_typed_without_flags(add_spec, tmp_path):
    device = FakeDevice()
    trt = make_fake_trt("11.0.0", device)
    s = _session(add_spec, trt, device, tmp_path)
    assert s.plan == tl.BuildPlan("fp32", False) and trt.log["network_flags"] == [0]
    assert trt.log["builder_flags"] == [[]]
    with pytest.raises(ValueError, match="strongly typed networks only"):
        _session(add_spec, trt, device, tmp_path, precision="fp16")


def test_fp16_onnx_is_built_with_the_strongly_typed_flag_on_trt10(add_spec, tmp_path):
    import dataclasses

    device = FakeDevice()
    trt = make_fake_trt("10.3.0", device)
    _session(dataclasses.replace(add_spec, precision="fp16"), trt, device, tmp_path)
    assert trt.log["network_flags"] == [1 << 5] and trt.log["builder_flags"] == [[]]


def test_int8_calibration_flow(add_spec, tmp_path, rng):
    device = FakeDevice()
    trt = make_fake_trt("10.3.0", device)
    calib = {"x": rng.random((6, 3, 8, 8), dtype=np.float32), "y": rng.random((6, 3, 8, 8), dtype=np.float32)}
    s = _session(add_spec, trt, device, tmp_path, precision="int8", calibration=calib, calibration_batch=2)
    assert s.plan.precision == "int8" and trt.log["builder_flags"] == [["INT8", "FP16"]]
    assert trt.log["calibration_batches"] == 3
    assert trt.log["calibration_profile"]["x"] == ((2, 3, 8, 8),) * 3
    assert s.paths.calibration_cache.read_bytes() == b"CALIB"
    assert json.loads(s.paths.meta.read_text())["fields"]["calibration_sha256"]
    with pytest.raises(ValueError, match="needs calibration data"):
        _session(add_spec, trt, device, tmp_path, precision="int8")


def test_parse_failure_and_io_mismatch(add_spec, tmp_path):
    import dataclasses

    device = FakeDevice()
    trt = make_fake_trt("10.3.0", device)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(BackendError, match=r"tensorrt: cannot parse bad.onnx \(add\):\n  cannot read"):
        _session(dataclasses.replace(add_spec, path=bad, sha256="e" * 64), trt, device, tmp_path)
    wrong = dataclasses.replace(add_spec, outputs=(TensorSpec("z", (None, 3, 8, 8), "float16"),
                                                   add_spec.outputs[1]))
    with pytest.raises(BackendError, match="output 'z': manifest says float16, engine says float32"):
        _session(wrong, trt, device, tmp_path)


def test_session_option_validation(add_spec, tmp_path):
    device = FakeDevice()
    trt = make_fake_trt("10.3.0", device)
    with pytest.raises(ValueError, match="log_level must be one of"):
        _session(add_spec, trt, device, tmp_path, log_level="loud")
    with pytest.raises(ValueError, match="workspace_mb must be a positive integer"):
        _session(add_spec, trt, device, tmp_path, workspace_mb=0)
    with pytest.raises(ValueError, match="min_batch <= opt_batch <= max_batch"):
        _session(add_spec, trt, device, tmp_path, min_batch=2, max_batch=1)
    s = _session(add_spec, trt, device, tmp_path, workspace_mb=64)
    assert trt.log["workspace"] == 64 << 20
    assert json.loads(s.paths.meta.read_text())["fields"]["workspace_mb"] == 64


def test_workspace_limit_is_part_of_the_plan_key(add_spec, tmp_path):
    """A plan built under one workspace limit is not reused under another (tactics are chosen within the limit)."""
    device = FakeDevice()
    trt = make_fake_trt("10.3.0", device)
    default = _session(add_spec, trt, device, tmp_path)
    small = _session(add_spec, trt, device, tmp_path, workspace_mb=32)
    assert small.paths.plan != default.paths.plan and small.build_info["action"] == "build"
    assert trt.log["builds"] == 2 and trt.log["workspace"] == 32 << 20
    assert _session(add_spec, trt, device, tmp_path, workspace_mb=32).build_info["action"] == "reuse"
    assert _session(add_spec, trt, device, tmp_path).build_info["action"] == "reuse"


def test_backend_create_session_refuses_other_devices_and_options(monkeypatch, add_spec):
    from ramh_rt.backends import tensorrt_backend

    b = tensorrt_backend.TensorRTBackend()
    monkeypatch.setattr(b, "available", lambda: (True, ""))
    with pytest.raises(ValueError, match=r"unknown option\(s\) fast for tensorrt"):
        b.create_session(add_spec, fast=True)
    with pytest.raises(ValueError, match="runs on cuda:0 .* only, got 'cuda:1'"):
        b.create_session(add_spec, device="cuda:1")
    assert Path(add_spec.path).is_file()
