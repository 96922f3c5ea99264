"""Everything the TensorRT backend decides without touching TensorRT: plain functions, tested with fakes.

* precision: which network flags and builder flags a TensorRT major version needs for a requested precision and the
  precision the ONNX file holds (:func:`plan_build`);
* optimisation profiles: min/opt/max shapes from the manifest's tensors and batch limits (:func:`profile_shapes`);
* the plan cache: the key (model sha256 + TensorRT version + GPU name + compute capability + precision + profile +
  workspace limit + key format), file locations, and the decision to reuse a cached plan or rebuild it from its
  metadata sidecar (:func:`cache_key`, :func:`plan_paths`, :func:`decide_plan`);
* dtype mapping between TensorRT and NumPy, engine I/O checks against the manifest, calibration batches.

TensorRT versions: 10.x (JetPack 6 ships 10.3) and 11.x. TensorRT 11 builds strongly typed networks only (the
``FP16``/``INT8`` builder flags and INT8 calibrators are gone): precision then lives in the ONNX file (an FP16 export, or
INT8 Q/DQ nodes). TensorRT 10 also supports weakly typed builds from an FP32 ONNX with the ``FP16`` flag, or ``INT8``
with an entropy calibrator (deprecated since 10.1 but available).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..bundle import TensorSpec, default_cache_dir

#: Bumped whenever the cache key or the sidecar layout changes, so old plans are rebuilt rather than misread.
#: 2: the builder workspace limit joined the key.
PLAN_KEY_FORMAT = 2
#: Precisions a caller may request.
PRECISIONS = ("auto", "fp32", "fp16", "int8")
#: TensorRT major versions this backend is written for.
SUPPORTED_MAJORS = (10, 11)

#: TensorRT DataType member name -> NumPy dtype name (types NumPy cannot hold are absent: BF16, FP8, INT4, FP4).
TRT_TO_NUMPY: dict[str, str] = {"FLOAT": "float32", "HALF": "float16", "INT32": "int32", "INT64": "int64",
                                "INT8": "int8", "UINT8": "uint8", "BOOL": "bool"}
#: dtypes a :class:`ramh_rt.DeviceArray` can hold (engine inputs/outputs must be among them).
DEVICE_ARRAY_DTYPES = ("uint8", "uint16", "int32", "int64", "float16", "float32")


def parse_version(version: str) -> tuple[int, ...]:
    """``"10.3.0.26"`` -> ``(10, 3, 0, 26)``; a ``.postN``/``rc`` tail is ignored.

    Raises:
        ValueError: no leading ``major.minor``.
    """
    m = re.match(r"^\s*(\d+)\.(\d+)((?:\.\d+)*)", str(version))
    if not m:
        raise ValueError(f"cannot parse a TensorRT version from {version!r}")
    rest = [int(x) for x in m.group(3).split(".") if x]
    return (int(m.group(1)), int(m.group(2)), *rest)


def check_supported(version: str) -> int:
    """The major version of ``version`` when supported.

    Raises:
        ValueError: TensorRT older than 10 or newer than this backend knows (the version is named).
    """
    major = parse_version(version)[0]
    if major < SUPPORTED_MAJORS[0]:
        raise ValueError(f"TensorRT {version} is too old: ramh_rt needs TensorRT 10 or newer "
                         "(execute_async_v3, named I/O tensors, strongly typed networks)")
    if major > SUPPORTED_MAJORS[-1]:
        raise ValueError(f"TensorRT {version} is newer than this ramh_rt supports (up to "
                         f"{SUPPORTED_MAJORS[-1]}.x); upgrade ramh_rt")
    return major


# ---------------------------------------------------------------------------------------------------------------------
# Precision
# ---------------------------------------------------------------------------------------------------------------------

def gpu_has_fast_fp16(compute_capability: tuple[int, int]) -> bool:
    """Native fast FP16 arithmetic: sm_53, sm_60, sm_62 and sm_70 or newer (not sm_61 consumer Pascal)."""
    cc = tuple(compute_capability)
    return cc >= (7, 0) or cc in ((5, 3), (6, 0), (6, 2))


def gpu_has_fast_int8(compute_capability: tuple[int, int]) -> bool:
    """INT8 dot-product instructions (DP4A / tensor cores): sm_61 or newer."""
    return tuple(compute_capability) >= (6, 1)


@dataclass(frozen=True)
class BuildPlan:
    """How to build an engine.

    Attributes:
        precision: the effective precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        strongly_typed: create the network with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (TensorRT 10; in 11
            every network is strongly typed and the flag is not set).
        builder_flags: names of ``tensorrt.BuilderFlag`` members to set (``"FP16"``, ``"INT8"``), TensorRT 10 only.
        needs_calibrator: an INT8 calibrator and calibration profile must be attached (TensorRT 10, FP32 ONNX).
        notes: warnings worth showing the user.
    """

    precision: str
    strongly_typed: bool
    builder_flags: tuple[str, ...] = ()
    needs_calibrator: bool = False
    notes: tuple[str, ...] = ()


def _onnx_precision(model_precision: str) -> str:
    table = {"fp32": "fp32", "fp16": "fp16", "int8-qdq": "int8"}
    if model_precision not in table:
        raise ValueError(f"model precision must be one of {', '.join(table)}, got {model_precision!r}")
    return table[model_precision]


def plan_build(requested: str, model_precision: str, trt_version: str, compute_capability: tuple[int, int],
               has_calibration: bool = False) -> BuildPlan:
    """Decide network and builder flags.

    Args:
        requested: ``"auto"``, ``"fp32"``, ``"fp16"`` or ``"int8"``.
        model_precision: the manifest's ``precision`` of the ONNX file: ``"fp32"``, ``"fp16"``, ``"int8-qdq"``.
        trt_version: ``tensorrt.__version__``.
        compute_capability: (major, minor) of the GPU.
        has_calibration: calibration data was supplied.

    Rules: an FP16 or INT8-Q/DQ ONNX carries its precision, so it is built strongly typed and only ``"auto"`` or its
    own precision may be requested. From an FP32 ONNX, TensorRT 10 builds ``"fp16"`` with the FP16 flag and ``"int8"``
    with the INT8 (+FP16 fallback) flags and a calibrator, which needs calibration data; ``"auto"`` means FP16 where the
    GPU has fast FP16, else FP32. TensorRT 11 builds exactly the ONNX's precision.

    Raises:
        ValueError: unknown precision; a precision the model/TensorRT cannot give (the message says which ONNX to
            export instead); INT8 from FP32 without calibration data; unsupported TensorRT version.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    onnx_prec = _onnx_precision(model_precision)
    major = check_supported(trt_version)
    notes: list[str] = []
    if onnx_prec != "fp32" or major >= 11:
        if requested not in ("auto", onnx_prec):
            why = (f"TensorRT {trt_version} builds strongly typed networks only" if major >= 11 else
                   f"the ONNX file is {model_precision}")
            raise ValueError(f"cannot build {requested} from this model: {why}, so the precision comes from the ONNX "
                             f"file ({model_precision}); export the model as "
                             f"{'an INT8 Q/DQ ONNX (ramh-train quantize)' if requested == 'int8' else 'an ' + requested.upper() + ' ONNX (ramh-train export --fp16)'} "
                             "instead")
        if has_calibration:
            notes.append("calibration data ignored: the precision comes from the ONNX file"
                         + (" (TensorRT >= 11 has no calibrators)" if major >= 11 else ""))
        return BuildPlan(onnx_prec, strongly_typed=major < 11, notes=tuple(notes))
    # TensorRT 10, FP32 ONNX: weakly typed, precision chosen by builder flags.
    if requested == "auto":
        requested = "fp16" if gpu_has_fast_fp16(compute_capability) else "fp32"
    if requested == "fp32":
        return BuildPlan("fp32", strongly_typed=False)
    if requested == "fp16":
        if not gpu_has_fast_fp16(compute_capability):
            notes.append(f"GPU sm_{compute_capability[0]}{compute_capability[1]} has no fast FP16; FP16 may be slower "
                         "than FP32")
        return BuildPlan("fp16", strongly_typed=False, builder_flags=("FP16",), notes=tuple(notes))
    if not has_calibration:
        raise ValueError("INT8 from an FP32 ONNX needs calibration data (calibration=...: representative inputs) with "
                         "TensorRT 10, or use an INT8 Q/DQ bundle (ramh-train quantize)")
    if not gpu_has_fast_int8(compute_capability):
        notes.append(f"GPU sm_{compute_capability[0]}{compute_capability[1]} has no fast INT8")
    return BuildPlan("int8", strongly_typed=False, builder_flags=("INT8", "FP16"), needs_calibrator=True,
                     notes=tuple(notes))


# ---------------------------------------------------------------------------------------------------------------------
# Optimisation profiles
# ---------------------------------------------------------------------------------------------------------------------

Shape = tuple[int, ...]


@dataclass(frozen=True)
class BatchLimits:
    """Batch sizes of the optimisation profile: ``min <= opt <= max``; TensorRT tunes kernels for ``opt``."""

    min: int
    opt: int
    max: int


def batch_limits(min_batch: int = 1, opt_batch: int | None = None, max_batch: int = 16) -> BatchLimits:
    """Validated :class:`BatchLimits`; ``opt_batch`` defaults to ``max_batch`` (kernels tuned for full batches).

    Raises:
        ValueError: not positive integers, or not ``min <= opt <= max`` (the values are named).
    """
    for key, v in (("min_batch", min_batch), ("max_batch", max_batch), ("opt_batch", opt_batch)):
        if v is None and key == "opt_batch":
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{key} must be a positive integer, got {v!r}")
    opt = max_batch if opt_batch is None else opt_batch
    if not min_batch <= opt <= max_batch:
        raise ValueError(f"batch limits must satisfy min_batch <= opt_batch <= max_batch, got {min_batch}, {opt}, "
                         f"{max_batch}")
    return BatchLimits(min_batch, opt, max_batch)


def profile_shapes(inputs: Sequence[TensorSpec], limits: BatchLimits) -> dict[str, tuple[Shape, Shape, Shape]]:
    """(min, opt, max) shape per input: dynamic dimensions take the batch limits, fixed ones stay.

    Inputs without a dynamic dimension get (shape, shape, shape); TensorRT needs no profile for them, but listing
    them keeps the cache key complete.
    """
    out = {}
    for spec in inputs:
        out[spec.name] = (tuple(limits.min if d is None else d for d in spec.shape),
                          tuple(limits.opt if d is None else d for d in spec.shape),
                          tuple(limits.max if d is None else d for d in spec.shape))
    return out


def check_batch(batch: int | None, limits: BatchLimits, model: str) -> None:
    """Raise ValueError when ``batch`` lies outside the profile the engine was built for (None: static model)."""
    if batch is not None and not limits.min <= batch <= limits.max:
        raise ValueError(f"{model}: batch {batch} is outside the TensorRT optimisation profile [{limits.min}, "
                         f"{limits.max}]; split the batch or recreate the session with max_batch >= {batch}")


# ---------------------------------------------------------------------------------------------------------------------
# Plan cache
# ---------------------------------------------------------------------------------------------------------------------

def key_fields(*, model_sha256: str, trt_version: str, gpu_name: str, compute_capability: tuple[int, int],
               plan: BuildPlan, profile: Mapping[str, tuple[Shape, Shape, Shape]],
               calibration_sha256: str | None = None, workspace_mb: int | None = None) -> dict[str, Any]:
    """Everything a plan depends on, as a JSON-compatible dict (stored in the sidecar, hashed into the key).

    The GPU's compute capability is part of it (a plan built on sm_90 does not run on sm_87), and so is its name (two
    boards of one capability may still differ in SM count and memory, which changes the tactics chosen). So is the
    builder workspace limit (None: TensorRT's default): tactics are chosen within it, and a plan built with a larger
    one may need more scratch memory per execution context than the caller now allows.
    """
    return {
        "key_format": PLAN_KEY_FORMAT,
        "model_sha256": model_sha256,
        "tensorrt": str(trt_version),
        "gpu_name": str(gpu_name),
        "compute_capability": [int(compute_capability[0]), int(compute_capability[1])],
        "precision": plan.precision,
        "strongly_typed": plan.strongly_typed,
        "builder_flags": list(plan.builder_flags),
        "profile": {name: [list(s) for s in shapes] for name, shapes in sorted(profile.items())},
        "calibration_sha256": calibration_sha256,
        "workspace_mb": None if workspace_mb is None else int(workspace_mb),
    }


def cache_key(fields: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of :func:`key_fields`."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def slug(text: str) -> str:
    """A file-name-safe form of ``text`` (GPU names hold spaces and slashes)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "unnamed"


@dataclass(frozen=True)
class PlanPaths:
    """Files of one cached engine: the serialized plan, its JSON sidecar, the timing cache shared by every model built
    with the same TensorRT on the same GPU, and the INT8 calibration cache."""

    plan: Path
    meta: Path
    timing_cache: Path
    calibration_cache: Path


def plan_cache_dir(cache_root: Path | None = None) -> Path:
    """``<cache root>/tensorrt`` (cache root: :func:`ramh_rt.bundle.default_cache_dir`)."""
    return Path(cache_root if cache_root is not None else default_cache_dir()) / "tensorrt"


def plan_paths(cache_dir: Path, model_name: str, fields: Mapping[str, Any]) -> PlanPaths:
    """File locations for a model whose :func:`key_fields` are ``fields``, under ``cache_dir``."""
    key = cache_key(fields)
    cc = fields["compute_capability"]
    device_tag = f"trt{slug(fields['tensorrt'])}-{slug(fields['gpu_name'])}-sm{cc[0]}{cc[1]}"
    calib = fields.get("calibration_sha256") or "none"
    return PlanPaths(plan=cache_dir / f"{slug(model_name)}-{key[:24]}.plan",
                     meta=cache_dir / f"{slug(model_name)}-{key[:24]}.json",
                     timing_cache=cache_dir / f"timing-{device_tag}.cache",
                     calibration_cache=cache_dir / f"calib-{slug(model_name)}-{fields['model_sha256'][:16]}-"
                                                   f"{str(calib)[:16]}-{device_tag}.cache")


def make_meta(fields: Mapping[str, Any], plan_sha256: str, plan_bytes: int, build_seconds: float,
              created: str) -> dict[str, Any]:
    """The sidecar written next to a plan: the key fields plus the plan's sha256 and size and how it was built."""
    return {"key": cache_key(fields), "fields": dict(fields), "plan_sha256": plan_sha256, "plan_bytes": int(plan_bytes),
            "build_seconds": float(build_seconds), "created": created}


def read_meta(path: Path) -> dict[str, Any] | None:
    """The sidecar at ``path``, or None when it is missing, unreadable or not a JSON object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class PlanDecision:
    """``action`` is ``"reuse"`` or ``"build"``; ``reason`` says why; ``stale`` is True when a cached plan existed but
    could not be used (worth a warning), False for a first build or a requested rebuild."""

    action: str
    reason: str
    stale: bool = False


def decide_plan(fields: Mapping[str, Any], plan_exists: bool, meta: Mapping[str, Any] | None,
                plan_sha256: str | None, rebuild: bool = False) -> PlanDecision:
    """Reuse the cached plan or build a new one.

    Args:
        fields: :func:`key_fields` of the engine wanted now.
        plan_exists: the plan file exists.
        meta: its sidecar (:func:`read_meta`), None if missing or corrupt.
        plan_sha256: sha256 of the plan file as it is now (None if not computed because the plan is missing).
        rebuild: the caller asked for a fresh build.
    """
    if rebuild:
        return PlanDecision("build", "rebuild requested")
    if not plan_exists:
        return PlanDecision("build", "no cached plan")
    if meta is None:
        return PlanDecision("build", "cached plan has no readable metadata sidecar", stale=True)
    old = meta.get("fields")
    if not isinstance(old, Mapping):
        return PlanDecision("build", "cached plan metadata is malformed", stale=True)
    if old.get("key_format") != fields.get("key_format"):
        return PlanDecision("build", f"cache key format changed ({old.get('key_format')} -> "
                                     f"{fields.get('key_format')})", stale=True)
    changed = [k for k in sorted(fields) if old.get(k) != fields[k]]
    if changed:
        k = changed[0]
        return PlanDecision("build", f"{k} changed ({old.get(k)!r} -> {fields[k]!r})"
                                     + (f" and {len(changed) - 1} more" if len(changed) > 1 else ""), stale=True)
    if plan_sha256 is None or meta.get("plan_sha256") != plan_sha256:
        return PlanDecision("build", "cached plan file is corrupt (sha256 differs from its sidecar)", stale=True)
    return PlanDecision("reuse", "cached plan matches")


# ---------------------------------------------------------------------------------------------------------------------
# Engine I/O
# ---------------------------------------------------------------------------------------------------------------------

def numpy_dtype(trt_dtype_name: str) -> str:
    """NumPy dtype name of a TensorRT ``DataType`` member name (``"FLOAT"`` -> ``"float32"``).

    Raises:
        ValueError: a TensorRT type without a NumPy equivalent (BF16, FP8, INT4, FP4...).
    """
    name = str(trt_dtype_name).rsplit(".", 1)[-1].upper()
    if name not in TRT_TO_NUMPY:
        raise ValueError(f"TensorRT data type {name} has no NumPy equivalent; keep such tensors inside the engine "
                         "(export the model with float32/float16/int32/int64 inputs and outputs)")
    return TRT_TO_NUMPY[name]


@dataclass(frozen=True)
class EngineTensor:
    """One I/O tensor of a deserialized engine: name, is_input, TensorRT dtype name, shape (-1 = dynamic)."""

    name: str
    is_input: bool
    dtype: str
    shape: tuple[int, ...]


def engine_io_problems(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                       engine: Sequence[EngineTensor]) -> list[str]:
    """Differences between the manifest's tensors and an engine's I/O tensors (names, direction, dtype, rank, fixed
    dimensions, and dtypes a DeviceArray cannot hold)."""
    problems: list[str] = []
    by_name = {t.name: t for t in engine}
    for kind, specs, want_input in (("input", inputs, True), ("output", outputs, False)):
        for spec in specs:
            t = by_name.get(spec.name)
            if t is None:
                problems.append(f"{kind} {spec.name!r} is not an I/O tensor of the engine (engine tensors: "
                                f"{', '.join(by_name)})")
                continue
            if t.is_input != want_input:
                problems.append(f"{kind} {spec.name!r} is an {'input' if t.is_input else 'output'} of the engine")
            try:
                dt = numpy_dtype(t.dtype)
            except ValueError as e:
                problems.append(f"{kind} {spec.name!r}: {e}")
                continue
            if dt != spec.dtype:
                problems.append(f"{kind} {spec.name!r}: manifest says {spec.dtype}, engine says {dt}")
            if dt not in DEVICE_ARRAY_DTYPES:
                problems.append(f"{kind} {spec.name!r}: dtype {dt} cannot be held by a DeviceArray")
            if len(t.shape) != len(spec.shape):
                problems.append(f"{kind} {spec.name!r}: rank {len(t.shape)} in the engine, {len(spec.shape)} in the "
                                "manifest")
                continue
            for axis, (want, got) in enumerate(zip(spec.shape, t.shape)):
                if want is not None and got != -1 and got != want:
                    problems.append(f"{kind} {spec.name!r}: axis {axis} is {got} in the engine, {want} in the manifest")
    declared = {s.name for s in inputs}
    for t in engine:
        if t.is_input and t.name not in declared:
            problems.append(f"engine input {t.name!r} is not declared in the manifest")
    return problems


# ---------------------------------------------------------------------------------------------------------------------
# INT8 calibration data
# ---------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CalibrationSet:
    """Calibration batches of one fixed batch size (TensorRT calibrates at the calibration profile's shape).

    Attributes:
        batches: list of ``{input name: C-contiguous array}`` with every dynamic dimension equal to ``batch_size``.
        batch_size: the batch of every batch.
        dropped: samples left over after the last full batch (not used).
        sha256: digest of the data (part of the plan key and calibration-cache name).
    """

    batches: list[dict[str, np.ndarray]]
    batch_size: int
    dropped: int = 0
    sha256: str = ""
    notes: tuple[str, ...] = field(default=())


def calibration_set(data: Any, inputs: Sequence[TensorSpec], batch_size: int) -> CalibrationSet:
    """Split representative inputs into calibration batches.

    Args:
        data: for a single-input model, one array ``[M, ...]``; for any model, a mapping ``{input name: [M, ...]}``
            or a sequence of such mappings (concatenated along the batch axis). Arrays must match the inputs' dtypes
            and fixed dimensions; the batch axis is the input's dynamic axis (the first ``N``).
        inputs: the model's inputs.
        batch_size: samples per calibration batch (>= 1).

    Raises:
        ValueError: a missing input, a dtype/shape mismatch, inconsistent sample counts, fewer samples than
            ``batch_size``, or a static model (INT8 calibration batches need a batch axis).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(data, np.ndarray):
        if len(inputs) != 1:
            raise ValueError(f"a single calibration array fits single-input models only; this one has inputs "
                             f"{', '.join(s.name for s in inputs)}: pass {{name: array}}")
        data = {inputs[0].name: data}
    if isinstance(data, Mapping):
        parts: list[Mapping[str, Any]] = [data]
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        parts = list(data)
    else:
        raise ValueError(f"calibration data must be an array, a dict of arrays or a list of dicts, got "
                         f"{type(data).__name__}")
    if not parts:
        raise ValueError("calibration data is empty")
    arrays: dict[str, np.ndarray] = {}
    for spec in inputs:
        if None not in spec.shape:
            raise ValueError(f"input {spec.name!r} has no batch axis; INT8 calibration needs dynamic-batch inputs")
        axis = spec.shape.index(None)
        chunks = []
        for i, part in enumerate(parts):
            if not isinstance(part, Mapping) or spec.name not in part:
                raise ValueError(f"calibration item {i} has no array for input {spec.name!r}")
            a = np.asarray(part[spec.name])
            if a.dtype != np.dtype(spec.dtype):
                raise ValueError(f"calibration data for {spec.name!r} must be {spec.dtype}, got {a.dtype}")
            if a.ndim != len(spec.shape) or any(w is not None and g != w for w, g in zip(spec.shape, a.shape)):
                raise ValueError(f"calibration data for {spec.name!r} has shape {a.shape}, expected "
                                 f"({', '.join('N' if d is None else str(d) for d in spec.shape)})")
            chunks.append(np.moveaxis(a, axis, 0))
        arrays[spec.name] = np.concatenate(chunks, axis=0)
    counts = {n: a.shape[0] for n, a in arrays.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"calibration inputs hold different sample counts: {counts}")
    total = next(iter(counts.values()))
    if total < batch_size:
        raise ValueError(f"calibration data holds {total} samples, fewer than one batch of {batch_size}")
    n_batches = total // batch_size
    h = hashlib.sha256()
    batches = []
    for b in range(n_batches):
        feed = {}
        for spec in inputs:
            axis = spec.shape.index(None)
            chunk = np.ascontiguousarray(np.moveaxis(arrays[spec.name][b * batch_size:(b + 1) * batch_size], 0, axis))
            h.update(spec.name.encode())
            h.update(chunk.tobytes())
            feed[spec.name] = chunk
        batches.append(feed)
    dropped = total - n_batches * batch_size
    notes = (f"{dropped} calibration samples beyond the last full batch of {batch_size} are not used",) if dropped else ()
    return CalibrationSet(batches, batch_size, dropped, h.hexdigest(), notes)


__all__ = ["PLAN_KEY_FORMAT", "PRECISIONS", "SUPPORTED_MAJORS", "TRT_TO_NUMPY", "DEVICE_ARRAY_DTYPES", "parse_version",
           "check_supported", "gpu_has_fast_fp16", "gpu_has_fast_int8", "BuildPlan", "plan_build", "BatchLimits",
           "batch_limits", "profile_shapes", "check_batch", "key_fields", "cache_key", "slug", "PlanPaths",
           "plan_cache_dir", "plan_paths", "make_meta", "read_meta", "PlanDecision", "decide_plan", "numpy_dtype",
           "EngineTensor", "engine_io_problems", "CalibrationSet", "calibration_set"]
