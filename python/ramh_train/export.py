"""ONNX export with a parity check, TensorRT-compatibility lint, model bundles (write + verify) and CPU latency.

Export path: the model is copied, its BatchNorms are folded into the convolutions in float64 and its ordinal
thresholds frozen to constants (:func:`ramh_train.models.blocks.prepare_for_export`); the copy is traced with
PyTorch's TorchScript-based ONNX exporter (``dynamo=False``: it needs no onnxscript and emits plain opset-17
graphs). The graph is checked (``onnx.checker``) and linted against :data:`TENSORRT_OPS`, the ops TensorRT 10 builds
natively, with no Shape/Gather arithmetic and no control flow. ONNX Runtime (CPU) then runs
it on several inputs and the outputs are compared with PyTorch's (eval mode, unfolded fp32 model): for each output,
``max_abs = max |ort - torch|`` and ``max_rel = max_abs / max |torch|`` (relative to the output's range, because an
element-wise ratio is meaningless near zero). Export fails (:class:`ParityError`) unless
``max_abs <= atol + rtol * max |torch|`` for every output and input; defaults: fp32 ``atol 1e-4, rtol 1e-3``,
fp16 ``atol 2e-2, rtol 2e-2``.

FP16 (``fp16=True``): TensorRT 10's strongly typed mode (the only mode in TensorRT 11) takes precision from the
graph, so the fp16 model is fp16 *inside the ONNX*: weights are stored in fp16, the inputs stay float32 and are cast
to fp16 after the model's fp32 front end (:meth:`ExportableModel.prepare`: e.g. JointNet's window normalisation,
whose raw 16-bit intensities would overflow fp16), and every output is cast back to float32. The I/O contract of an
fp16 model is therefore identical to the fp32 one (manifest ``precision: "fp16"``, tensor dtypes ``float32``).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import statistics
import tempfile
import time
import warnings
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ramh_rt import anatomy
from ramh_rt.bundle import Bundle, sha256_file
from ramh_rt.errors import BundleError
from ramh_rt.manifest import MANIFEST_NAME, MODEL_TASKS, SUPPORTED_SCHEMA_VERSIONS

from .models.blocks import ExportableModel, count_parameters, prepare_for_export

#: The manifest schema version written: the newest the runtime reads.
SCHEMA_VERSION = SUPPORTED_SCHEMA_VERSIONS[-1]
#: Model roles of a bundle, in the runtime's order.
BUNDLE_ROLES = tuple(MODEL_TASKS)

#: ONNX ops TensorRT 10 supports natively that these models may use. Anything else fails the lint: notably Shape,
#: Gather, ConstantOfShape, Expand, NonZero, Loop/If/Scan (dynamic shape arithmetic and control flow) and
#: BatchNormalization (must be folded).
TENSORRT_OPS = frozenset({
    "Conv", "ConvTranspose", "Resize", "MaxPool", "AveragePool", "GlobalAveragePool",
    "Relu", "Sigmoid", "Clip", "Softmax",
    "Add", "Sub", "Mul", "Div", "Concat", "Gemm", "MatMul",
    "ReduceMean", "ReduceSum", "ReduceMax", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Slice",
    "Cast", "Constant", "Identity",
})

DEFAULT_TOLERANCES = {"fp32": {"atol": 1e-4, "rtol": 1e-3}, "fp16": {"atol": 2e-2, "rtol": 2e-2}}


class ParityError(RuntimeError):
    """ONNX Runtime and PyTorch disagree beyond the stated tolerance."""


# ---------------------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------------------

class _ExportWrapper(nn.Module):
    """Runs an :class:`ExportableModel` and returns its exported outputs as a tuple (fp16: see module docstring)."""

    def __init__(self, model: ExportableModel, fp16: bool):
        super().__init__()
        self.model = model
        self.fp16 = fp16

    def forward(self, *inputs: torch.Tensor):
        prepared = self.model.prepare(*inputs)
        if self.fp16:
            prepared = tuple(t.half() if torch.is_floating_point(t) else t for t in prepared)
        out = self.model.body(*prepared)
        return tuple(out[name].float() if self.fp16 else out[name] for name in self.model.output_names)


def _validate_model_inputs(model: nn.Module, example_inputs) -> tuple[torch.Tensor, ...]:
    if not isinstance(model, ExportableModel):
        raise TypeError(f"model must be a ramh_train ExportableModel (BoneSegNet, JointNet, GlobalNet), "
                        f"got {type(model).__name__}")
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    example_inputs = tuple(example_inputs)
    if len(example_inputs) != len(model.input_names):
        raise ValueError(f"example_inputs must hold {len(model.input_names)} tensors "
                         f"({', '.join(model.input_names)}), got {len(example_inputs)}")
    for name, t in zip(model.input_names, example_inputs):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.float32:
            raise ValueError(f"example input {name!r} must be a float32 torch.Tensor, got "
                             f"{getattr(t, 'dtype', type(t).__name__)}")
    model.check_inputs(*example_inputs)
    return example_inputs


def graph_ops(model_proto) -> Counter:
    """Op-type counts of an ONNX model's main graph."""
    return Counter(node.op_type for node in model_proto.graph.node)


def check_tensorrt_ops(model_proto, allowed: frozenset[str] = TENSORRT_OPS) -> None:
    """Raise ValueError naming every op of the graph outside ``allowed`` (default :data:`TENSORRT_OPS`)."""
    bad = {op: n for op, n in graph_ops(model_proto).items() if op not in allowed}
    if bad:
        raise ValueError(f"graph uses ops outside the TensorRT-safe set: {dict(sorted(bad.items()))}")


def ort_session(path_or_bytes, *, threads: int | None = None):
    """An ONNX Runtime CPU InferenceSession (``threads`` intra-op threads; default ORT's choice)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    src = str(path_or_bytes) if isinstance(path_or_bytes, (str, Path)) else path_or_bytes
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


def _spec_shape(spec: dict, batch: int) -> tuple[int, ...]:
    return tuple(batch if d == "N" else int(d) for d in spec["shape"])


def parity_check(model: ExportableModel, session, input_sets: Sequence[tuple[torch.Tensor, ...]], *, atol: float,
                 rtol: float) -> dict:
    """Compare ONNX Runtime with PyTorch (eval, fp32) on each input set; see the module docstring for the measure.

    Returns:
        ``{"atol", "rtol", "cases": [{"batch", "outputs": {name: {"max_abs", "max_rel", "ref_max"}}}],
        "max_abs": {name: worst}, "max_rel": {name: worst}, "passed": bool}``. Output shapes are also checked
        against :meth:`ExportableModel.output_spec`.
    """
    model = model.eval()
    specs = {s["name"]: s for s in model.output_spec()}
    cases, worst_abs, worst_rel, failures = [], {}, {}, []
    for inputs in input_sets:
        batch = int(inputs[0].shape[0])
        with torch.no_grad():
            ref = model(*inputs)
        got = session.run(list(model.output_names),
                          {n: t.detach().cpu().numpy() for n, t in zip(model.input_names, inputs)})
        case = {"batch": batch, "outputs": {}}
        for name, arr in zip(model.output_names, got):
            r = ref[name].detach().cpu().numpy().astype(np.float64)
            want_shape = _spec_shape(specs[name], batch)
            if arr.shape != want_shape or r.shape != want_shape:
                raise ParityError(f"output {name!r}: ONNX shape {arr.shape}, torch shape {r.shape}, "
                                  f"spec {want_shape}")
            if not np.all(np.isfinite(arr)):
                raise ParityError(f"output {name!r}: ONNX Runtime produced non-finite values")
            diff = float(np.max(np.abs(arr.astype(np.float64) - r))) if r.size else 0.0
            ref_max = float(np.max(np.abs(r))) if r.size else 0.0
            rel = diff / ref_max if ref_max > 0 else (0.0 if diff == 0 else math.inf)
            case["outputs"][name] = {"max_abs": diff, "max_rel": rel, "ref_max": ref_max}
            worst_abs[name] = max(worst_abs.get(name, 0.0), diff)
            worst_rel[name] = max(worst_rel.get(name, 0.0), rel)
            if diff > atol + rtol * ref_max:
                failures.append(f"{name} (batch {batch}): max |ort - torch| = {diff:.3g} > "
                                f"{atol:g} + {rtol:g} x {ref_max:.3g}")
        cases.append(case)
    report = {"atol": atol, "rtol": rtol, "cases": cases, "max_abs": worst_abs, "max_rel": worst_rel,
              "passed": not failures}
    if failures:
        raise ParityError("ONNX Runtime / PyTorch parity failed: " + "; ".join(failures))
    return report


def export_onnx(model: ExportableModel, example_inputs, path: str | os.PathLike, *, opset: int = 17,
                fp16: bool = False, dynamic_batch: bool = True, parity_inputs: Sequence[tuple] | None = None,
                tolerances: Mapping[str, float] | None = None) -> dict:
    """Export ``model`` to ONNX at ``path`` and prove it runs in ONNX Runtime like it does in PyTorch.

    Args:
        model: a :class:`~ramh_train.models.BoneSegNet`, :class:`~ramh_train.models.JointNet` or
            :class:`~ramh_train.models.GlobalNet` (left unchanged; a folded copy is exported).
        example_inputs: tuple of float32 tensors in :attr:`ExportableModel.input_names` order (the trace input).
        path: output ``.onnx`` file (parent directory must exist; an existing file is replaced).
        opset: ONNX opset, >= 17.
        fp16: export an fp16 graph with float32 I/O (module docstring).
        dynamic_batch: make axis 0 of every input and output dynamic (named ``"N"``).
        parity_inputs: input tuples for the parity check; default: ``example_inputs``, the model's random and
            realistic :meth:`~ExportableModel.example_inputs` at batch 2 (batch 1 when ``dynamic_batch`` is off).
        tolerances: ``{"atol", "rtol"}`` overriding :data:`DEFAULT_TOLERANCES` for this precision.

    Returns:
        A report: ``{"path", "sha256", "bytes", "opset", "precision", "parameters", "ops": {op: count},
        "parity": parity report, "manifest": {...}}`` where ``manifest`` holds this model's schema fields
        ``precision, opset, parameters, inputs, outputs, parity`` (merge it with :meth:`manifest_fields` for
        :func:`write_bundle`).

    Raises:
        TypeError / ValueError: bad model, inputs or arguments; ValueError also for a graph with ops outside
        :data:`TENSORRT_OPS`. ParityError: ONNX Runtime disagrees beyond tolerance.
    """
    import onnx

    example_inputs = _validate_model_inputs(model, example_inputs)
    if not isinstance(opset, int) or opset < 17:
        raise ValueError(f"opset must be an int >= 17, got {opset!r}")
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"path must end in .onnx, got {str(path)!r}")
    if not path.parent.is_dir():
        raise ValueError(f"directory of path does not exist: {str(path.parent)!r}")
    precision = "fp16" if fp16 else "fp32"
    tol = dict(DEFAULT_TOLERANCES[precision])
    if tolerances:
        unknown = set(tolerances) - {"atol", "rtol"}
        if unknown:
            raise ValueError(f"tolerances accepts atol and rtol, got {sorted(unknown)}")
        tol.update({k: float(v) for k, v in tolerances.items()})

    was_training = model.training
    model.eval()
    try:
        folded = prepare_for_export(model)
        if fp16:
            folded = folded.half()
        wrapper = _ExportWrapper(folded, fp16).eval()
        dynamic_axes = None
        if dynamic_batch:
            dynamic_axes = {n: {0: "N"} for n in (*model.input_names, *model.output_names)}
        buf = io.BytesIO()
        with warnings.catch_warnings():
            # the TorchScript exporter announces its deprecation on every call; the graphs it emits are what we want
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            with torch.no_grad():
                torch.onnx.export(wrapper, example_inputs, buf, dynamo=False, opset_version=opset,
                                  input_names=list(model.input_names), output_names=list(model.output_names),
                                  dynamic_axes=dynamic_axes, do_constant_folding=True)
        proto = onnx.load_from_string(buf.getvalue())
        onnx.checker.check_model(proto)
        # strict shape inference: every tensor shape must follow from the input shapes (TensorRT needs that)
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
        check_tensorrt_ops(proto)
        proto.doc_string = f"ramh_rt {model.task} model ({type(model).__name__}, {precision})"
        meta = {"ramh_task": model.task, "ramh_config": json.dumps(model.config, sort_keys=True),
                "ramh_precision": precision, "ramh_anatomy_version": anatomy.ANATOMY_VERSION}
        del proto.metadata_props[:]
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        data = proto.SerializeToString()

        if parity_inputs is None:
            b = 2 if dynamic_batch else int(example_inputs[0].shape[0])
            parity_inputs = [example_inputs, model.example_inputs(b, kind="random", seed=1),
                             model.example_inputs(b, kind="realistic", seed=2)]
        parity_inputs = [_validate_model_inputs(model, p) for p in parity_inputs]
        if not dynamic_batch:
            for p in parity_inputs:
                if p[0].shape[0] != example_inputs[0].shape[0]:
                    raise ValueError("with dynamic_batch=False every parity input needs the example batch size")
        parity = parity_check(model, ort_session(data), parity_inputs, **tol)

        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        model.train(was_training)

    inputs = model.input_spec()
    outputs = model.output_spec()
    if not dynamic_batch:
        b = int(example_inputs[0].shape[0])
        for spec in (*inputs, *outputs):
            spec["shape"] = [b if d == "N" else d for d in spec["shape"]]
    params = count_parameters(model)
    parity_summary = {"atol": parity["atol"], "rtol": parity["rtol"], "max_abs": parity["max_abs"],
                      "max_rel": parity["max_rel"], "cases": len(parity["cases"])}
    return {
        "path": str(path),
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "opset": opset,
        "precision": precision,
        "parameters": params,
        "ops": dict(sorted(graph_ops(proto).items())),
        "parity": parity,
        "manifest": {"precision": precision, "opset": opset, "parameters": params, "inputs": inputs,
                     "outputs": outputs, "parity": parity_summary},
    }


def measure_latency(path: str | os.PathLike, inputs: Sequence[np.ndarray | torch.Tensor], *,
                    input_names: Sequence[str] | None = None, runs: int = 20, warmup: int = 3,
                    threads: int | None = None) -> dict:
    """ONNX Runtime CPU latency of one model: ``{"median_ms", "min_ms", "max_ms", "runs", "threads"}``.

    ``inputs`` are given in the graph's input order unless ``input_names`` names them.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got {runs}, {warmup}")
    sess = ort_session(path, threads=threads)
    names = list(input_names) if input_names is not None else [i.name for i in sess.get_inputs()]
    if len(names) != len(inputs):
        raise ValueError(f"the model takes {len(names)} inputs, got {len(inputs)}")
    feed = {n: (t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t))
            for n, t in zip(names, inputs)}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "runs": runs,
            "threads": threads}


# ---------------------------------------------------------------------------------------------------------------------
# Bundles
# ---------------------------------------------------------------------------------------------------------------------

def _jsonable(obj):
    """Plain-JSON form of a manifest value: NumPy scalars/arrays to Python, tuples to lists, and non-finite floats
    (NaN metrics of an empty class, say) to null, because strict JSON has no NaN/Infinity."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise ValueError(f"manifest value of type {type(obj).__name__} is not JSON-serialisable: {obj!r}")


def write_bundle(out_dir: str | os.PathLike, models: Mapping[str, Mapping], manifest_fields: Mapping, *,
                 overwrite: bool = False) -> Path:
    """Write a model bundle directory atomically: ``<role>.onnx`` files and ``manifest.json`` (schema version 1).

    Args:
        out_dir: the bundle directory to create (its parent must exist).
        models: role (``"bones"``, ``"joints"`` and optionally ``"global"``) -> entry. Each entry holds ``"onnx"``
            (path of an exported ONNX file) and the model's manifest fields, typically
            ``{**export_report["manifest"], **model.manifest_fields(...)}``; ``file`` and ``sha256`` are set here.
        manifest_fields: top-level fields: ``bundle_id``, ``version`` (semver) and ``training_data`` are required;
            ``description``, ``clinical_use`` and ``metrics`` are optional. ``schema_version``, ``created`` (UTC now)
            and ``anatomy_version`` (:data:`ramh_rt.anatomy.ANATOMY_VERSION`) are set here. Values are written as
            strict JSON: NumPy values become Python numbers and NaN/inf become null.
        overwrite: replace an existing ``out_dir`` (swapped in by rename, the old one removed afterwards).

    Returns:
        the bundle directory.

    Raises:
        ValueError: unknown role, missing ONNX file, a field this function owns given with another value.
        BundleError (:class:`ramh_rt.errors.BundleError`): the written bundle fails :func:`verify_bundle`, i.e. the
            runtime's own :meth:`ramh_rt.bundle.Bundle.load` refuses it (every manifest problem listed with its field
            path), or an ONNX graph's inputs/outputs differ from the manifest's.
        FileExistsError: ``out_dir`` exists and ``overwrite`` is False.

    The bundle is assembled in a temporary sibling directory, verified, then renamed into place, so a reader never
    sees a half-written bundle.
    """
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        raise ValueError(f"parent directory of out_dir does not exist: {str(out_dir.parent)!r}")
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"bundle directory already exists: {str(out_dir)!r} (pass overwrite=True)")
    unknown = set(models) - set(BUNDLE_ROLES)
    if unknown:
        raise ValueError(f"unknown model roles {sorted(unknown)}; known: {', '.join(BUNDLE_ROLES)}")
    fields = dict(manifest_fields)
    if fields.get("anatomy_version", anatomy.ANATOMY_VERSION) != anatomy.ANATOMY_VERSION:
        raise ValueError(f"manifest_fields anatomy_version {fields['anatomy_version']!r} differs from this "
                         f"ramh_rt's {anatomy.ANATOMY_VERSION!r}")
    for owned in ("schema_version", "created", "models"):
        if owned in fields:
            raise ValueError(f"manifest_fields must not set {owned!r} (write_bundle sets it)")
    for role, entry in models.items():
        src = entry.get("onnx") if isinstance(entry, Mapping) else None
        if src is None or not Path(src).is_file():
            raise ValueError(f"models[{role!r}]['onnx'] must name an existing ONNX file, got {src!r}")

    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        manifest_models = {}
        for role in BUNDLE_ROLES:
            if role not in models:
                continue
            entry = dict(models[role])
            src = Path(entry.pop("onnx"))
            name = f"{role}.onnx"
            shutil.copyfile(src, tmp / name)
            entry["file"] = name
            entry["sha256"] = sha256_file(tmp / name)
            manifest_models[role] = entry
        manifest = _jsonable({"schema_version": SCHEMA_VERSION, **fields,
                              "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                              "anatomy_version": anatomy.ANATOMY_VERSION, "models": manifest_models})
        with open(tmp / MANIFEST_NAME, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        verify_bundle(tmp)
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _io_of_graph(graph_values) -> list[tuple[str, list]]:
    out = []
    for v in graph_values:
        dims = []
        for d in v.type.tensor_type.shape.dim:
            dims.append(d.dim_param if d.dim_param else int(d.dim_value))
        out.append((v.name, dims))
    return out


def verify_bundle(path: str | os.PathLike, *, check_onnx_io: bool = True) -> dict:
    """Check a bundle (directory or .zip) the way the runtime will, and return its manifest.

    The bundle is loaded with :meth:`ramh_rt.bundle.Bundle.load` (manifest structure, value ranges, anatomy, every
    model file's SHA-256; a zip is unpacked into a throwaway cache), then (``check_onnx_io``) each ONNX graph's
    input/output names and shapes are compared with the manifest's (a dynamic batch dimension must be named ``"N"``).

    Raises:
        BundleError (:class:`ramh_rt.errors.BundleError`): what ``Bundle.load`` refuses (its message names the file
        or field and what differs), or a graph whose inputs/outputs differ from the manifest.
    """
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="ramh-verify-") as cache:
        bundle = Bundle.load(path, cache_dir=cache)
        manifest = bundle.manifest
        if check_onnx_io:
            for role in bundle.model_names:
                spec = bundle.model(role)
                _check_onnx_io(path, role, spec.path.name, spec.path.read_bytes(), manifest["models"][role])
    return manifest


def _check_onnx_io(path: Path, role: str, name: str, data: bytes, entry: dict) -> None:
    import onnx

    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types for a broken protobuf
        raise BundleError(f"{path}: model {role!r} file {name!r} is not a readable ONNX model: {exc}") from exc
    initializers = {i.name for i in proto.graph.initializer}
    graph_inputs = [v for v in proto.graph.input if v.name not in initializers]
    for kind, graph_side, manifest_side in (("inputs", _io_of_graph(graph_inputs), entry["inputs"]),
                                            ("outputs", _io_of_graph(proto.graph.output), entry["outputs"])):
        want = [(t["name"], list(t["shape"])) for t in manifest_side]
        if graph_side != want:
            raise BundleError(f"{path}: model {role!r} ONNX {kind} {graph_side} differ from the manifest's {want}")
